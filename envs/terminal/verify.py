"""Verification of terminal tasks, out of the agent's reach.

The agent was root in its container and is assumed adversarial. In order:

1. Every agent process is killed (`stop_agent`): no daemon can rewrite a reward file,
   swap the tests or append to the log later.
2. The container's changes against its image are read by the engine and checked
   against the protected-path policy (`envs.integrity.policy`): a change to the test
   toolchain, its start-up hooks, pytest configuration, `/tests` or `/logs` ends the
   episode as `tampered` (reward 0, the paths in `reward_details["tampered"]`); the
   tests never run on a tampered filesystem.
3. The filesystem is committed to an image and the agent's container removed. The
   tests run in a **fresh container** of that snapshot (label `envfarm.role=verifier`):
   no agent process, shell function, alias, exported variable or mount survives.
   `/tests` and `/logs/verifier` are removed (the paths themselves: a link is removed,
   never followed) and created anew, then the task's tests are uploaded. The script
   runs under `env -i` with the image's configured environment, `HOME`, `LANG`,
   `TEST_DIR=/tests` and the task's `[verifier.env]`, in `bash --noprofile --norc`,
   after `ldconfig` rebuilt the loader's cache (the agent's cache is never used),
   from the image's working directory, under the task's verifier timeout.
4. After the run, every process in the verifier container is killed too (the tested
   code may have left a daemon), and the outputs are read through the archive API,
   bounded (`read_capped`). Grading is `envs.terminal.grading`.

No verdict (no reward file, no JUnit report, a verifier container that fails while the
engine answers): the same tests run once on the task's
pristine image (cached per task and image). If they give a verdict there, the agent's
changes broke the verifier: `agent_fault`, reward 0, the cause kept. If not, the task's
verifier is broken: `task_error`. Tests that run past their timeout score 0: the time
budget is part of the task. `infra_error` is left for the engine failing.

Residual risk: code the tests import (the agent's solution) runs inside the tests'
process as root and can write the reward file or the report itself; closing that needs
tests that do not run the agent's code in their own process, which Harbor and
Terminal-Bench tasks do not offer. The policy closes every path by which the agent's
code runs *without* being imported by the tests.
"""

from __future__ import annotations

import logging
import secrets
import shlex
import threading
import time
from pathlib import Path
from typing import Any

from envs.core import VerifierResult
from envs.integrity import ProtectedPaths, agent_changes, blame, read_capped, stop_agent
from envs.terminal.grading import (
    NoVerdict,
    Verdict,
    defined_tests,
    grade_pytest,
    harbor_verdict,
    parse_pytest,
    tb1_verdict,
)
from envs.terminal.task import TerminalTask
from sandbox.errors import AgentCaused, SandboxError, TaskError

__all__ = ["grade_pytest", "parse_pytest", "run_tests", "verify_episode"]

_log = logging.getLogger(__name__)
LOG_TAIL_BYTES = 4000
OUTPUT_CAP_BYTES = 4 << 20
"""Cap of a reward file or JUnit report read back (bigger: no verdict)."""
MAX_EVIDENCE = 50
CLEAN_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

_PREPARE = (
    "for p in /tests /logs; do if [ -L \"$p\" ] || { [ -e \"$p\" ] && [ ! -d \"$p\" ]; }; "
    "then rm -f \"$p\"; fi; done; "
    "rm -rf /tests /logs/verifier && mkdir -p /tests /logs/verifier /logs/agent && "
    "{ ! command -v ldconfig >/dev/null 2>&1 || ldconfig 2>/dev/null || true; }")
"""Fresh verifier paths, and the loader's cache rebuilt from its (protected)
configuration: a cache the agent wrote could map a library the toolchain loads to
a file of its own anywhere (`/etc/ld.so.cache` changes under honest installs, so it
is rebuilt rather than protected)."""

_pristine_lock = threading.Lock()
_pristine: dict[tuple[str, str], str | None] = {}
"""(task id, image) → None when the tests give a verdict on the pristine image, else why not."""


def verify_episode(backend: Any, agent: Any, task: TerminalTask, *, image: str, workdir: str,
                   image_env: dict[str, str], limits: Any, cap_add: list[str]) -> VerifierResult:
    """Score the finished episode whose container is `agent` (closed here, whatever happens).

    Raises AgentCaused (agent_fault), TaskError or InfraError; returns a `VerifierResult`
    with status ok, tampered, agent_fault or task_error otherwise."""
    policy = ProtectedPaths(workdir, image_env, task.path_policy())
    snapshot: str | None = None
    try:
        stop_agent(agent, backend)
        changes = agent_changes(agent, backend)
        violations = policy.check(changes, read=lambda p: read_capped(agent, p))
        if violations:
            # shallowest first: a replaced folder says more than the files below it
            ordered = sorted(violations, key=lambda v: (v.path.count("/"), v.path))
            evidence = [str(v) for v in ordered[:MAX_EVIDENCE]]
            return VerifierResult(0.0, {"tampered": evidence, "tampered_count": len(violations),
                                        "format": task.format}, "tampered",
                                  "the agent changed what the verifier trusts: "
                                  + "; ".join(evidence[:3]))
        started = time.monotonic()
        try:
            snapshot = agent.snapshot()
        except SandboxError as exc:
            raise blame(exc, agent, backend) from exc
        snapshot_s = time.monotonic() - started
    except BaseException:
        agent.close()
        raise
    _in_background(agent.close)  # removal is off the verdict's path (~0.3 s)
    try:
        outcome, details = run_tests(backend, snapshot, task, workdir=workdir,
                                     image_env=image_env, limits=limits, cap_add=cap_add,
                                     remove_pyc=policy.bytecode(changes))
    except SandboxError as exc:
        if not backend.healthy():
            raise
        # the engine answers and started the task's image for the agent: what fails
        # here is the agent's filesystem (the pristine run below says for sure)
        outcome, details = NoVerdict(f"the verifier's container failed: {exc}"), {}
    finally:
        _in_background(lambda: backend.remove_image(snapshot))
    details["snapshot_s"] = round(snapshot_s, 3)
    if isinstance(outcome, Verdict):
        return VerifierResult(outcome.reward, {**details, **outcome.details})
    pristine_problem = pristine_verdict_problem(backend, task, image, workdir=workdir,
                                                image_env=image_env, limits=limits,
                                                cap_add=cap_add)
    if pristine_problem is None:
        raise AgentCaused(f"the tests produced no verdict on the agent's filesystem "
                          f"({outcome.reason}) but do on the task's image: the agent's "
                          f"changes broke them; log tail: {details.get('log_tail', '')[-500:]}")
    raise TaskError(f"the task's tests produce no verdict even on its own image: "
                    f"{pristine_problem}")


def pristine_verdict_problem(backend: Any, task: TerminalTask, image: str, **kwargs: Any
                             ) -> str | None:
    """None when the task's tests give a verdict on its untouched image, else why not."""
    key = (task.id, image)
    with _pristine_lock:
        if key in _pristine:
            return _pristine[key]
    outcome, details = run_tests(backend, image, task, **kwargs)
    problem = None if isinstance(outcome, Verdict) else (
        f"{outcome.reason}; log tail:\n{details.get('log_tail', '')}")
    with _pristine_lock:
        _pristine[key] = problem
    return problem


def run_tests(backend: Any, image: str, task: TerminalTask, *, workdir: str,
              image_env: dict[str, str], limits: Any, cap_add: list[str],
              remove_pyc: list[str] | None = None) -> tuple[Verdict | NoVerdict, dict[str, Any]]:
    """Run the task's tests in a fresh container of `image`; (verdict or why none, details)."""
    started = time.monotonic()
    limits = limits.model_copy(update={"timeout_s": max(60.0, task.verifier_timeout_s)})
    sandbox = backend.start(image, limits, cap_add=list(cap_add), use_pool=False, workdir="/",
                            labels={"envfarm.task": task.id[:200], "envfarm.role": "verifier"})
    try:
        container_s = time.monotonic() - started
        prepared = sandbox.exec(_PREPARE, timeout_s=60)
        if not prepared.ok:
            return NoVerdict(f"cannot create /tests and /logs/verifier: "
                             f"{prepared.output[-300:]}"), {"log_tail": prepared.output[-500:]}
        if remove_pyc:
            sandbox.write_file("/logs/envfarm-pyc.txt", "\n".join(remove_pyc) + "\n")
            sandbox.exec("while IFS= read -r f; do case \"$f\" in */) rm -rf -- \"$f\";; "
                         "*) rm -f -- \"$f\";; esac; done < /logs/envfarm-pyc.txt; "
                         "rm -f /logs/envfarm-pyc.txt", timeout_s=60)
        sandbox.upload_dir(task.tests_dir, "/tests")
        script = "/tests/test.sh"
        if task.format == "tb1":
            sandbox.write_file("/tests/run-tests.sh", Path(task.test_script).read_bytes(),
                               mode=0o755)
            script = "/tests/run-tests.sh"
        junit = f"/logs/verifier/junit-{secrets.token_hex(8)}.xml"
        env = clean_env(image_env, task, junit if task.format == "tb1" else None)
        exports = " ".join(shlex.quote(f"{k}={v}") for k, v in env.items())
        log_path = "/logs/verifier/test-stdout.txt"
        command = (f"cd {shlex.quote(workdir or '/')} && env -i {exports} "
                   f"bash --noprofile --norc {script} > {log_path} 2>&1")
        run = sandbox.exec(command, timeout_s=task.verifier_timeout_s)
        sandbox.stop_processes()  # the tested code may have left something running
        log = sandbox.exec(f"tail -c {LOG_TAIL_BYTES} {log_path} 2>/dev/null", timeout_s=30)
        details: dict[str, Any] = {
            "format": task.format, "exit_code": None if run.timed_out else run.exit_code,
            "duration_s": round(run.duration_s, 2), "log_tail": log.output[-LOG_TAIL_BYTES:],
            "verifier_container_s": round(container_s, 3)}
        if run.timed_out:
            details["reason"] = f"tests ran past their {task.verifier_timeout_s:g} s timeout"
            return Verdict(0.0), details
        if task.format == "tb1":
            report = read_capped(sandbox, junit, OUTPUT_CAP_BYTES)
            details["printed_results"] = dict(list(parse_pytest(log.output).items())[:50])
            return tb1_verdict(report, run.exit_code, defined_tests(task.tests_dir)), details
        return harbor_verdict(read_capped(sandbox, "/logs/verifier/reward.txt", OUTPUT_CAP_BYTES),
                              read_capped(sandbox, "/logs/verifier/reward.json",
                                          OUTPUT_CAP_BYTES)), details
    finally:
        sandbox.close()


def _in_background(fn: Any) -> None:
    """Run a cleanup off the caller's path; a non-daemon thread, so the process waits for
    it at exit (a crash in between leaves labelled containers for `envfarm sandbox gc`)."""
    def run() -> None:
        try:
            fn()
        except Exception as exc:  # noqa: BLE001 — cleanup only; gc finds what is left
            _log.warning("verifier cleanup failed: %s", exc)

    threading.Thread(target=run, name="envfarm-verify-cleanup").start()


def clean_env(image_env: dict[str, str], task: TerminalTask, junit: str | None) -> dict[str, str]:
    """The tests' whole environment: the image's configured one (the task's Dockerfile),
    fixed defaults, `TEST_DIR`, the task's verifier env, and pytest's report path."""
    env = {"PATH": CLEAN_PATH, "HOME": "/root", "LANG": "C.UTF-8", **image_env,
           "TEST_DIR": "/tests", **task.verifier_env}
    if junit:
        addopts = env.get("PYTEST_ADDOPTS", "")
        env["PYTEST_ADDOPTS"] = f"{addopts} --junitxml={junit}".strip()
    return env
