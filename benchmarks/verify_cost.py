"""What verifying out of the agent's reach costs per episode, beside the old in-place path.

    .venv/bin/python benchmarks/verify_cost.py [--rounds 5] [--out FILE]

For each task: start the agent's container, run the oracle, then verify it either the
old way (a small copy kept here as the baseline: tests copied into the agent's own
container and run through its shell) or the new way (`envs.terminal.verify`: stop its
processes, protected-path check, snapshot, fresh container, clean env). Rounds are
interleaved so load from other work falls on both alike. Table: verify_cost.md.
"""

from __future__ import annotations

import argparse
import shlex
import statistics
import sys
import time
from pathlib import Path

sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

from envs.terminal.env import (
    EXAMPLE_TASKS,
    ROOT_CAPS,
    TerminalEnv,
    _image_config,
    oracle_actions,
    shared_images,
)
from envs.terminal.task import load_task
from envs.terminal.verify import verify_episode

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "terminal-bench" / "tb1"
TASKS = [EXAMPLE_TASKS / "hello-file", DATA / "evoeval" / "0",
         DATA / "aider_polyglot" / "polyglot_python_bowling"]


def old_verify(sandbox, task, workdir: str) -> float:
    """The pre-issue-12 path, kept as the baseline: everything in the agent's container."""
    sandbox.exec("rm -rf /tests /logs/verifier && mkdir -p /tests /logs/verifier /logs/agent")
    sandbox.upload_dir(task.tests_dir, "/tests")
    script = "/tests/test.sh"
    if task.format == "tb1":
        sandbox.write_file("/tests/run-tests.sh", Path(task.test_script).read_bytes(), mode=0o755)
        script = "/tests/run-tests.sh"
    exports = " ".join(f"{k}={shlex.quote(v)}" for k, v in
                       {"TEST_DIR": "/tests", **task.verifier_env}.items())
    sandbox.exec(f"(cd {shlex.quote(workdir)} && env {exports} bash {script} "
                 "> /logs/verifier/test-stdout.txt 2>&1); echo $?",
                 timeout_s=task.verifier_timeout_s)
    sandbox.read_file("/logs/verifier/test-stdout.txt")
    return 0.0


def one(env: TerminalEnv, task, path: str) -> tuple[float, float]:
    """(seconds to verify, reward) of one oracle episode verified by `path`."""
    env.reset(options={"task_id": task.path})
    for action in oracle_actions(task)[:-1]:
        env.step(action)
    sandbox, env.sandbox = env.sandbox, None
    workdir, image_env = _image_config(shared_images().builder.client, env.image)
    started = time.monotonic()
    if path == "old":
        try:
            reward = old_verify(sandbox, task, workdir)
        finally:
            sandbox.close()
    else:
        reward = verify_episode(env.backend, sandbox, task, image=env.image, workdir=workdir,
                                image_env=image_env, limits=env._limits,
                                cap_add=ROOT_CAPS).reward
    return time.monotonic() - started, reward


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--out", type=Path,
                        default=Path(__file__).parent / "results" / "verify_cost.md")
    args = parser.parse_args()
    tasks = [load_task(p) for p in TASKS if p.is_dir()]
    times: dict[tuple[str, str], list[float]] = {}
    rewards: dict[str, list[float]] = {}
    with TerminalEnv(run="bench-verify-cost") as env:
        for task in tasks:
            one(env, task, "old")  # warm: image built, caches filled
        for _ in range(args.rounds):
            for task in tasks:
                for path in ("old", "new"):
                    seconds, reward = one(env, task, path)
                    times.setdefault((task.id, path), []).append(seconds)
                    if path == "new":
                        rewards.setdefault(task.id, []).append(reward)
    lines = ["# Verification cost: snapshot + fresh container vs in-place (same run)", "",
             f"{args.rounds} oracle episodes per task and path, interleaved, on this shared "
             f"2-core machine, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}. Seconds "
             "from the agent's last command to the verdict (old: tests run in the agent's "
             "container through its shell; new: stop processes, protected-path check, "
             "`docker commit`, fresh verifier container, clean env, container and snapshot "
             "removed).", "",
             "| task | old median s | new median s | added median s | new rewards |",
             "|---|---|---|---|---|"]
    added_all = []
    for task in tasks:
        old = statistics.median(times[(task.id, "old")])
        new = statistics.median(times[(task.id, "new")])
        added_all.append(new - old)
        lines.append(f"| {task.id} | {old:.2f} | {new:.2f} | {new - old:+.2f} | "
                     f"{','.join(f'{r:g}' for r in rewards[task.id])} |")
    lines += ["", f"Median added per episode over the tasks: "
              f"{statistics.median(added_all):+.2f} s."]
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
