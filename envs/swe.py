"""`SWEEnv` (`envfarm/swe-v0`): fix a real repository issue, rewarded by its unit tests.

Episode: the instance's environment image starts with `base_commit` injected into
/testbed as one fresh commit (no later history reachable) and the test patch's files
absent; the agent gets the problem statement and `bash`, `str_replace`, `finish`.

Verifier (at finish, max turns or timeout). The agent is root in its sandbox and assumed
adversarial, so nothing it could touch is trusted:
1. every agent process is killed (`Sandbox.stop_processes`), then its /testbed is read
   through the engine's archive API on the host and compared with the injected tree
   (`swe_tasks.agent_diff.read_changes`): no agent shell, `git`, config or process takes
   part. Over `agent_diff.MAX_CHANGED_BYTES` of changes is an agent fault (reward 0).
2. a FRESH sandbox from the pristine image gets the same commit; trusted git there turns
   the kept changes into a patch, which is filtered by its own `diff --git` headers:
   test files and conftest.py are dropped (as SWE-bench drops them), pytest
   configuration, plugin registration, shadowing modules and in-process tampering
   (`swe_tasks.patch_scan`) make the episode `tampered` (reward 0, evidence in
   `reward_details["tampered"]`) and the tests do not run (`swe_tasks.integrity`).
3. the patch and the test patch are applied there and the tests run as an unprivileged
   user, their JUnit report streamed to a root-only reader (`swe_tasks.testrun`), or the
   dataset's own eval script runs framed (`swe_tasks.eval_script`). Reward 1.0 when
   every FAIL_TO_PASS and PASS_TO_PASS test passes, else 0.0, with the per-test report
   in `info["reward_details"]` (bounded: the patch is kept up to `MAX_DETAILS_PATCH`).
A diff that does not apply scores 0 with the reason. A sandbox the agent's own code ran
out of memory is an agent fault; other sandbox failures are `infra_error`.

Tasks come from the catalogue (`kind="swe"`), from `instances` given to the constructor,
or, with neither, the bundled example (`swe_tasks.example`).
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

from envs import status as st
from envs.core import ToolEnv, VerifierResult
from envs.integrity import blame
from envs.tools import BashTool, FinishTool, StrReplaceEditorTool, Tool
from sandbox import Limits
from sandbox.errors import AgentCaused, ContainerDied, SandboxError
from swe_tasks import network
from swe_tasks.agent_diff import Change, ChangesTooLarge, build_patch, read_changes
from swe_tasks.environment import ensure_image
from swe_tasks.example import EXAMPLE_ID, example_instance
from swe_tasks.instance import SWEInstance
from swe_tasks.repo_spec import RepoSpec, spec_for
from swe_tasks.testrun import VERIFIER_CAPS, put_tests_in_place, run_tests, tests_limits
from swe_tasks.workspace import Injected, apply_patch, inject

SYSTEM_PROMPT = (
    "You are an autonomous software engineer working in a Linux container. The repository "
    "is checked out at /testbed. Resolve the issue below by editing the source code. Use "
    "the bash tool to explore and run code and the str_replace tool to edit files. Do not "
    "modify or add tests: hidden tests decide whether the issue is resolved. There is no "
    "human to answer questions. Call finish when you are done."
)
AGENT_LIMITS = Limits(cpus=1, memory_mb=4096, pids=1024, network=False, timeout_s=120)
MAX_DETAILS_PATCH = 256 * 1024
"""Characters of the agent's patch kept in `reward_details` (the rest is cut, marked)."""
MAX_DETAILS_ITEMS = 200
"""Entries kept of each path list in `reward_details`."""


class SWEEnv(ToolEnv):
    """SWE-bench-format tasks; tools `bash`, `str_replace`, `finish`.

    Args:
        instances: SWE-bench-format records to draw tasks from instead of the catalogue.
        limits: sandbox limits of the agent's and the verifier's containers.
        run: the `envfarm.run` label of the sandboxes (for `envfarm sandbox gc`); default:
            the rollout run driving this episode.
        backend: the `sandbox.Backend` to start sandboxes on (default: the configured one).
        **kwargs: `ToolEnv` limits (max_turns, time_limit_s, ...).
    """

    tool_classes = (BashTool, StrReplaceEditorTool, FinishTool)

    def __init__(self, *, instances: list[dict[str, Any]] | None = None,
                 limits: Limits | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._given = {i["instance_id"]: SWEInstance.model_validate(i) for i in instances or []}
        self.limits = limits or AGENT_LIMITS
        self.instance: SWEInstance | None = None
        self.repo_spec: RepoSpec | None = None
        self.image: str | None = None
        self.base_sha: str | None = None
        self.injected: Injected | None = None
        self.inject_s: float | None = None

    @classmethod
    def prepare_image(cls, task_id: str, options: Mapping[str, Any]) -> str | None:
        """The image `task_id`'s episode starts from (the one `reset` uses: environment
        image, plus the instance's own layer where it has one), built by content without
        an episode; a second call finds it. The task comes from `options["instances"]`,
        the bundled example, or the catalogue (`options["catalogue_url"]`). Raises
        ImageBuildError or PythonUnavailable (TaskErrors), SourceUnavailable when the
        repository cannot be reached."""
        given = {i["instance_id"]: i for i in options.get("instances") or []}
        if task_id in given:
            inst = SWEInstance.model_validate(given[task_id])
        elif task_id == EXAMPLE_ID:
            inst = example_instance()
        else:
            from swe_tasks.catalogue import Catalogue

            inst = SWEInstance.from_task(Catalogue(options.get("catalogue_url")).get(task_id))
        return ensure_image(inst, spec=spec_for(inst))

    # -- ToolEnv hooks ------------------------------------------------------------------

    def _begin(self, task_id: str | None, seed: int | None) -> tuple[list[dict], list[Tool]]:
        inst = self._resolve(task_id)
        self.instance, self.task_id = inst, inst.instance_id
        self.repo_spec = spec_for(inst)
        self.image = ensure_image(inst, spec=self.repo_spec)
        self.sandbox = self._start()
        injected = inject(self.sandbox, inst, hide_tests=True, post_inject=self.repo_spec.post_inject)
        self.injected = injected
        self.base_sha, self.inject_s = injected.base_sha, injected.duration_s
        prompt = (f"<issue>\n{inst.problem_statement.strip()}\n</issue>\n\n"
                  "The repository is at /testbed. Make the minimal change to the non-test "
                  "source files that resolves the issue, then call finish.")
        messages = [{"role": "system", "content": SYSTEM_PROMPT},
                    {"role": "user", "content": prompt}]
        return messages, [BashTool(), StrReplaceEditorTool(), FinishTool()]

    def _verify(self) -> VerifierResult:
        if self.instance is None or self.sandbox is None or self.injected is None:
            return VerifierResult(0.0, {}, "infra_error", "no sandbox to verify")
        inst, spec = self.instance, self.repo_spec or spec_for(self.instance)
        try:
            changes = self._agent_changes(inst, self.injected)
        except ChangesTooLarge as exc:
            return VerifierResult(0.0, {"reason": str(exc)}, st.AGENT_FAULT, str(exc))
        except FileNotFoundError:
            why = "the agent removed /testbed"
            return VerifierResult(0.0, {"reason": why}, st.AGENT_FAULT, why)
        self._end()  # the agent's container is no longer needed: free it first
        return self._grade_in_fresh_sandbox(inst, spec, changes)

    def _agent_changes(self, inst: SWEInstance, injected: Injected) -> list[Change]:
        """Stop every agent process, then read /testbed from outside (module docstring)."""
        sandbox = self.sandbox
        try:
            sandbox.stop_processes()
            return read_changes(sandbox, inst, injected)
        except SandboxError as exc:  # a container the agent stopped (ptrace, OOM): its doing
            blamed = blame(exc, sandbox, self.backend)
            if blamed is exc:
                raise
            raise blamed from exc

    def _grade_in_fresh_sandbox(self, inst: SWEInstance, spec: RepoSpec,
                                changes: list[Change]) -> VerifierResult:
        limits = tests_limits(self.limits, spec)
        with self.backend.start(self.image, limits, workdir="/testbed",
                                cap_add=list(VERIFIER_CAPS),
                                labels={"envfarm.task": inst.instance_id[:200],
                                        "envfarm.role": "verifier"}) as fresh:
            network.prepare(fresh, spec.network)  # as gold validation runs the tests
            inject(fresh, inst, hide_tests=False, post_inject=spec.post_inject)
            diff = build_patch(fresh, inst, changes)
            details: dict[str, Any] = {
                "patch": _cut(diff.diff, MAX_DETAILS_PATCH),
                "changed": _few(diff.changed), "excluded_test_paths": _few(diff.excluded),
                "dropped": _few(diff.dropped), "ignored": _few(diff.ignored)}
            if diff.error:
                return VerifierResult(0.0, {**details, "reason": diff.error})
            if diff.tampered:
                first = diff.tampered[0]
                why = (f"the agent's change tampers with the test run: {first['path']}: "
                       f"{first.get('reason') or first.get('why')}")
                return VerifierResult(0.0, {**details, "tampered": _few(diff.tampered),
                                            "reason": why}, st.TAMPERED, why)
            applied = apply_patch(fresh, diff.diff, "agent")
            if not applied.applied:
                return VerifierResult(0.0, {**details, "reason": "the agent's patch does not "
                                            "apply", "apply_log": applied.log})
            tests = put_tests_in_place(fresh, inst)
            if not tests.applied:
                return VerifierResult(0.0, {**details, "reason": "the test patch does not apply "
                                            "(the task is broken)", "apply_log": tests.log})
            try:
                run = run_tests(fresh, inst, spec)
            except ContainerDied as exc:
                self._blame_the_agent_if_oom(fresh, exc)
                raise
        report = run.grade.as_dict()
        return VerifierResult(1.0 if run.grade.resolved else 0.0, {
            **details, "report": report, "reason": run.grade.reason,
            "tests_exit_code": run.exit_code, "tests_duration_s": round(run.duration_s, 3),
            "tests_user": run.tests_user, "tests_output_tail": run.output_tail[-1500:],
        })

    def _blame_the_agent_if_oom(self, sandbox: Any, exc: Exception) -> None:
        """Raise AgentCaused when `sandbox` stopped because the agent's code ran it out of
        memory (the engine says OOMKilled and still answers); else return."""
        state = getattr(sandbox, "state", None)
        if state is None:
            return
        try:
            info = state()
        except SandboxError:
            return
        if info.get("OOMKilled") and not info.get("Running") and self.backend.healthy():
            raise AgentCaused(f"the agent's code ran its sandbox out of memory ({exc})") from exc

    # -- helpers ------------------------------------------------------------------------

    def _start(self) -> Any:
        if self.instance is None or self.image is None:
            raise RuntimeError("_start before the instance and its image are known")
        return self.backend.start(
            self.image, self.limits, workdir="/testbed",
            labels={"envfarm.task": self.instance.instance_id[:200], "envfarm.role": "agent"})

    def has_task(self, task_id: str) -> bool:
        """Whether `task_id` is one this env can reset to: given, the bundled example, or
        in its catalogue (what `envfarm rollout`'s preflight asks before any sandbox)."""
        try:
            self._resolve(task_id)
        except KeyError:
            return False
        return True

    def _resolve(self, task_id: str | None) -> SWEInstance:
        if task_id is None:
            if self._given:
                ids = sorted(self._given)
                return self._given[ids[int(self.np_random.integers(0, len(ids)))]]
            return example_instance()
        if task_id in self._given:
            return self._given[task_id]
        if task_id == EXAMPLE_ID:
            return example_instance()
        return SWEInstance.from_task(self.catalogue().get(task_id))

    def oracle_actions(self, task_id: str | None = None) -> list[dict[str, Any]]:
        """The gold patch as actions (written and `git apply`-ed with bash), then finish."""
        inst = self._resolve(task_id) if task_id is not None else self.instance
        if inst is None:
            raise RuntimeError("give a task id or call reset() first")
        return [
            {"content": "", "tool_calls": [{"name": "bash", "arguments": {
                "command": patch_command(inst.patch)}}]},
            {"content": "", "tool_calls": [{"name": "finish", "arguments": {}}]},
        ]


def _cut(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return text[:limit] + f"\n[... {len(text) - limit} characters of the patch cut ...]\n"


def _few(items: Any) -> list[Any]:
    items = list(items)
    if len(items) <= MAX_DETAILS_ITEMS:
        return items
    return [*items[:MAX_DETAILS_ITEMS], f"[... {len(items) - MAX_DETAILS_ITEMS} more]"]


def patch_command(patch: str) -> str:
    """A bash command that applies `patch` in /testbed (base64, so any text survives)."""
    payload = base64.b64encode(patch.encode()).decode()
    return f"cd /testbed && echo {payload} | base64 -d > /tmp/fix.diff && git apply /tmp/fix.diff"
