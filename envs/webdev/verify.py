"""Score a web-dev workspace in a real browser, in a fresh sandbox with no network.

`BrowserVerifier.verify(task, workspace_dir, artifacts_dir)` starts a container from
the pristine browser image (never the agent's container: the agent was root there
and could have replaced Chromium or Playwright), copies the workspace in, runs
`runner.py` (loopback server + Chromium + the task's checks), copies the artifacts
out, and returns a `VerifierResult` whose reward is the weighted share of checks
passed, gated on behaviour: when the task has checks that interact with the page and
then expect something (`Check.exercises_behaviour`), the reward is 0 unless at least
half of their weight passes. A page that only shows the initial state (or loads cleanly
and does nothing) passes the render checks but none of these, and scores 0. What the
page does is scored. A runner that produced no result is blamed by a control run on a
blank page: the page's doing (it hung the renderer, ate the memory) is `agent_fault`
(reward 0, kept: otherwise a policy learns to hang the browser instead of scoring 0);
only a browser that fails the blank page too is an `infra_error`.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from envs.core import VerifierResult
from envs.webdev.tasks import BUILTIN_CHECKS, WebDevTask
from sandbox import Limits
from sandbox.errors import AgentCaused

RUNNER_SOURCE = (Path(__file__).parent / "runner.py").read_text()
_DIR = "/opt/envfarm-webdev"
_OUT = "/tmp/webdev-out"
CONTROL_TIMEOUT_S = 180.0
"""The control run's limit: a blank page takes seconds, but a loaded machine must not
turn a page's fault into an infra_error (only the failure path pays it)."""
CONTROL_PAGE = "<!doctype html><html><body><p>envfarm control page</p></body></html>\n"
BUILTIN_WEIGHTS = {"loads": 1.0, "no_uncaught_errors": 1.0, "no_console_errors": 1.0,
                   "fits_viewport": 1.0}
"""Default weights of the built-in checks (the runner keeps the same table)."""
BUILTIN_GROUPS = {"loads": "executability", "no_uncaught_errors": "executability",
                  "no_console_errors": "executability", "fits_viewport": "layout"}


class BrowserVerifierConfig(BaseModel):
    """Resources and time of one browser verification."""

    model_config = ConfigDict(extra="forbid")

    cpus: float = Field(1.0, gt=0, description="CPU share of the verifier container, in cores.")
    memory_mb: int = Field(1536, ge=256, description="Memory cap of the verifier container.")
    pids: int = Field(1024, ge=64, description="Chromium runs many processes and threads.")
    timeout_s: float = Field(300.0, gt=0, description="Wall limit of the whole check run.")
    action_timeout_ms: int = Field(
        5000, ge=100, description="How long a click/fill waits for its element (generous: a "
        "loaded machine must not fail a correct page; only failing steps pay it).")
    expect_timeout_ms: int = Field(3000, ge=100, description="How long an expectation retries.")
    video: Literal["playwright", "frames", "none"] = Field(
        "playwright", description="Playwright's screencast (falls back to frames), the "
        "per-check frames assembled by ffmpeg, or no video (frames and screenshot still kept).")


class BrowserVerifier:
    """Runs a task's browser checks against a workspace folder on the host."""

    def __init__(self, backend: Any, image: str,
                 config: BrowserVerifierConfig | None = None) -> None:
        self.backend, self.image = backend, image
        self.config = config or BrowserVerifierConfig()

    def verify(self, task: WebDevTask, workspace_dir: Path | None,
               artifacts_dir: Path) -> VerifierResult:
        """Score `workspace_dir` (None or empty: nothing was built) against `task`.

        Raises InfraError subclasses only when the engine fails; a runner without a
        result comes back as status "infra_error"."""
        cfg = self.config
        started = time.monotonic()
        if workspace_dir is None or not (Path(workspace_dir) / task.entry).is_file():
            return self._no_page(task, artifacts_dir, started)  # no browser needed to say so
        spec = {**task.runner_spec(), "video": cfg.video}
        run, peak, container_s = self._run(spec, workspace_dir, artifacts_dir)
        result_file = artifacts_dir / "result.json"
        if not result_file.is_file():
            why = "timed out" if run.timed_out else f"exited {run.exit_code}"
            last = run.output.strip().splitlines()[-1:] or ""
            self._blame_the_page(task, why)
            return VerifierResult(0.0, {"runner_output": run.output[-4000:]}, "infra_error",
                                  f"the browser check runner {why} without a result: {last}")
        result = json.loads(result_file.read_text())
        reward, details = score(result, artifacts_dir, container_s, time.monotonic() - started,
                                behaviour=behaviour_checks(task))
        details["memory_peak_mb"] = round(int(peak) / 2**20, 1) if peak.isdigit() else None
        return VerifierResult(reward, details)

    def _run(self, spec: dict[str, Any], workspace_dir: Path, artifacts_dir: Path,
             timeout_s: float | None = None) -> tuple[Any, str, float]:
        """Run the runner on `workspace_dir` in a fresh container; (the exec's result, the
        memory peak as read, seconds to start the container). Artifacts land in
        `artifacts_dir`."""
        cfg = self.config
        started = time.monotonic()
        timeout_s = timeout_s or cfg.timeout_s
        limits = Limits(cpus=cfg.cpus, memory_mb=cfg.memory_mb, pids=cfg.pids, network=False,
                        timeout_s=timeout_s, output_limit_bytes=16_000)
        with self.backend.start(self.image, limits, workdir="/",
                                labels={"envfarm.role": "webdev-verifier"}) as sb:
            container_s = time.monotonic() - started
            sb.exec(f"mkdir -p /workspace {_DIR} {_OUT}")
            if any(Path(workspace_dir).iterdir()):
                sb.upload_dir(workspace_dir, "/workspace")
            spec = {**spec, "workspace": "/workspace",
                    "action_timeout_ms": cfg.action_timeout_ms,
                    "expect_timeout_ms": cfg.expect_timeout_ms}
            sb.write_file(f"{_DIR}/runner.py", RUNNER_SOURCE)
            sb.write_file(f"{_DIR}/spec.json", json.dumps(spec))
            run = sb.exec(f"python3 {_DIR}/runner.py {_DIR}/spec.json {_OUT} 2>&1 | tail -c 8000",
                          timeout_s=timeout_s)
            peak = sb.exec("cat /sys/fs/cgroup/memory.peak 2>/dev/null || "  # cgroup v2, else v1
                           "cat /sys/fs/cgroup/memory/memory.max_usage_in_bytes 2>/dev/null || "
                           "true").output.strip()
            artifacts_dir.mkdir(parents=True, exist_ok=True)
            try:
                sb.download_dir(_OUT, artifacts_dir)
            except FileNotFoundError:
                pass
        return run, peak, container_s

    def _blame_the_page(self, task: WebDevTask, why: str) -> None:
        """The runner gave no result on the agent's page: run it on a blank control page
        (same image, limits and viewport, no task checks). When the control gives a
        result, the agent's page broke the runner (a script that hangs the renderer after
        load, eats the memory cap, kills the browser): `AgentCaused` (agent_fault, reward
        0, kept); otherwise the browser itself is broken and the infra_error stands."""
        cfg = self.config
        with tempfile.TemporaryDirectory(prefix="webdev-control-") as tmp:
            page, out = Path(tmp) / "page", Path(tmp) / "out"
            page.mkdir()
            (page / task.entry).parent.mkdir(parents=True, exist_ok=True)
            (page / task.entry).write_text(CONTROL_PAGE)
            spec = {**task.runner_spec(), "checks": [], "layout_in_viewport": [],
                    "video": "none"}
            self._run(spec, page, out, timeout_s=max(cfg.timeout_s, CONTROL_TIMEOUT_S))
            if (out / "result.json").is_file():
                raise AgentCaused(f"the browser check runner {why} without a result on this "
                                  "page, but gives one on a blank page: the page broke it")

    @staticmethod
    def _no_page(task: WebDevTask, artifacts_dir: Path, started: float) -> VerifierResult:
        """Every check failed because the entry page does not exist."""
        error = f"not run: there is no /workspace/{task.entry}"
        weights = {**BUILTIN_WEIGHTS, **task.builtin_weights}
        checks = [{"name": n, "group": BUILTIN_GROUPS[n], "weight": weights[n], "passed": False,
                   "error": error, "duration_ms": 0} for n in BUILTIN_CHECKS]
        checks += [{"name": c.name, "group": c.group, "weight": c.weight, "passed": False,
                    "error": error, "duration_ms": 0} for c in task.checks]
        result = {"checks": checks, "frames": []}
        artifacts_dir.mkdir(parents=True, exist_ok=True)
        (artifacts_dir / "result.json").write_text(json.dumps(result, indent=1))
        reward, details = score(result, artifacts_dir, 0.0, time.monotonic() - started,
                                behaviour=behaviour_checks(task))
        details["memory_peak_mb"] = None
        return VerifierResult(reward, details)


MAX_DETAIL_ITEMS = 200
"""Errors and blocked requests kept in `reward_details` (the page decides how many)."""
BEHAVIOUR_PASS_SHARE = 0.5
"""Share of the behaviour checks' weight a page must pass to score anything."""


def behaviour_checks(task: WebDevTask) -> set[str]:
    """Names of the task's checks that interact with the page, then expect something."""
    return {c.name for c in task.checks if c.exercises_behaviour}


def score(result: dict[str, Any], artifacts_dir: Path, container_s: float,
          total_s: float, behaviour: set[str] | None = None) -> tuple[float, dict[str, Any]]:
    """Reward = weighted share of passed checks, gated on the behaviour checks (`behaviour`:
    their names; None: every functional check); details keep every check and artifact."""
    checks = result.get("checks", [])
    total = sum(c["weight"] for c in checks)
    passed = sum(c["weight"] for c in checks if c["passed"])
    reward = passed / total if total else 0.0
    gated = [c for c in checks if (c["name"] in behaviour if behaviour is not None
                                   else c["group"] == "function")]
    if behaviour is not None and not gated:  # a task without interactions: its functions
        gated = [c for c in checks if c["group"] == "function"]
    gate = None
    gated_total = sum(c["weight"] for c in gated)
    gated_passed = sum(c["weight"] for c in gated if c["passed"])
    if gated and (gated_passed == 0 or gated_passed < BEHAVIOUR_PASS_SHARE * gated_total):
        # A page that loads cleanly and shows the initial state but does not behave as
        # asked earns nothing: otherwise a static page would collect the render checks.
        reward, gate = 0.0, (f"behaviour checks passed {gated_passed:g} of {gated_total:g} "
                             f"weight (needs {BEHAVIOUR_PASS_SHARE:.0%})")
    groups: dict[str, list[float]] = {}
    for c in checks:
        g = groups.setdefault(c["group"], [0.0, 0.0])
        g[0] += c["weight"] if c["passed"] else 0.0
        g[1] += c["weight"]

    def path(name: str | None) -> str | None:
        return str(artifacts_dir / name) if name else None

    details = {
        "checks_reward": round(reward, 6),
        "gate": gate,
        "checks": checks,
        "checks_passed": sum(1 for c in checks if c["passed"]),
        "checks_total": len(checks),
        "groups": {k: round(v[0] / v[1], 6) for k, v in groups.items() if v[1]},
        "artifacts": {
            "dir": str(artifacts_dir),
            "final_screenshot": path(result.get("final_screenshot")),
            "video": path(result.get("video")),
            "video_source": result.get("video_source"),
            "frames": [str(artifacts_dir / f) for f in result.get("frames", [])],
            "result": str(artifacts_dir / "result.json"),
        },
        "page_errors": list(result.get("page_errors", []))[:MAX_DETAIL_ITEMS],
        "console_errors": list(result.get("console_errors", []))[:MAX_DETAIL_ITEMS],
        "blocked_requests": list(result.get("blocked_requests", []))[:MAX_DETAIL_ITEMS],
        "runner_error": result.get("runner_error"),
        "video_error": result.get("video_error"),
        "browser_version": result.get("browser_version"),
        "timings_s": {
            "container_start": round(container_s, 3),
            "browser_start": result.get("browser_start_ms", 0) / 1000,
            "runner": result.get("wall_ms", 0) / 1000,
            "total": round(total_s, 3),
        },
    }
    return reward, details

