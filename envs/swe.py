"""`SWEEnv` (`envfarm/swe-v0`): fix a real repository issue, rewarded by its unit tests.

Episode: the instance's environment image starts with `base_commit` injected into
/testbed as one fresh commit (no later history reachable) and the test patch's files
absent; the agent gets the problem statement and `bash`, `str_replace`, `finish`.

Verifier (at finish, max turns or timeout): the agent's `git diff` against the injected
commit, test files left out, is applied in a FRESH sandbox from the pristine image with
the test patch; the tests run with a JUnit report, or as the dataset's own eval script
graded by its log parser (`swe_tasks.eval_script`); reward 1.0 when every FAIL_TO_PASS and
PASS_TO_PASS test passes, else 0.0, with the per-test report in `info["reward_details"]`.
A diff that does not apply scores 0 with the reason. A sandbox failure is `infra_error`.

Tasks come from the catalogue (`kind="swe"`), from `instances` given to the constructor,
or, with neither, the bundled example (`swe_tasks.example`).
"""

from __future__ import annotations

import base64
from typing import Any

from envs.core import ToolEnv, VerifierResult
from envs.tools import BashTool, FinishTool, StrReplaceEditorTool, Tool
from sandbox import Limits
from swe_tasks.environment import ensure_image
from swe_tasks.example import EXAMPLE_ID, example_instance
from swe_tasks.instance import SWEInstance
from swe_tasks.repo_spec import RepoSpec, spec_for
from swe_tasks.testrun import put_tests_in_place, run_tests
from swe_tasks.workspace import AgentDiff, agent_diff, apply_patch, inject

SYSTEM_PROMPT = (
    "You are an autonomous software engineer working in a Linux container. The repository "
    "is checked out at /testbed. Resolve the issue below by editing the source code. Use "
    "the bash tool to explore and run code and the str_replace tool to edit files. Do not "
    "modify or add tests: hidden tests decide whether the issue is resolved. There is no "
    "human to answer questions. Call finish when you are done."
)
AGENT_LIMITS = Limits(cpus=1, memory_mb=4096, pids=1024, network=False, timeout_s=120)


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

    tool_names = ("bash", "str_replace", "finish")

    def __init__(self, *, instances: list[dict[str, Any]] | None = None,
                 limits: Limits | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._given = {i["instance_id"]: SWEInstance.model_validate(i) for i in instances or []}
        self.limits = limits or AGENT_LIMITS
        self.instance: SWEInstance | None = None
        self.repo_spec: RepoSpec | None = None
        self.image: str | None = None
        self.base_sha: str | None = None
        self.inject_s: float | None = None

    # -- ToolEnv hooks ------------------------------------------------------------------

    def _begin(self, task_id: str | None, seed: int | None) -> tuple[list[dict], list[Tool]]:
        inst = self._resolve(task_id)
        self.instance, self.task_id = inst, inst.instance_id
        self.repo_spec = spec_for(inst)
        self.image = ensure_image(inst, spec=self.repo_spec)
        self.sandbox = self._start()
        injected = inject(self.sandbox, inst, hide_tests=True, post_inject=self.repo_spec.post_inject)
        self.base_sha, self.inject_s = injected.base_sha, injected.duration_s
        prompt = (f"<issue>\n{inst.problem_statement.strip()}\n</issue>\n\n"
                  "The repository is at /testbed. Make the minimal change to the non-test "
                  "source files that resolves the issue, then call finish.")
        messages = [{"role": "system", "content": SYSTEM_PROMPT},
                    {"role": "user", "content": prompt}]
        return messages, [BashTool(), StrReplaceEditorTool(), FinishTool()]

    def _verify(self) -> VerifierResult:
        if self.instance is None or self.sandbox is None or self.base_sha is None:
            return VerifierResult(0.0, {}, "infra_error", "no sandbox to verify")
        inst, spec = self.instance, self.repo_spec or spec_for(self.instance)
        diff = agent_diff(self.sandbox, inst, self.base_sha)
        self._end()  # the agent's container is no longer needed: free it first
        details: dict[str, Any] = {"patch": diff.diff, "changed": list(diff.changed),
                                   "excluded_test_paths": list(diff.excluded)}
        if diff.error:
            return VerifierResult(0.0, {**details, "reason": diff.error})
        return self._grade_in_fresh_sandbox(inst, spec, diff, details)

    def _grade_in_fresh_sandbox(self, inst: SWEInstance, spec: RepoSpec, diff: AgentDiff,
                                details: dict[str, Any]) -> VerifierResult:
        with self.backend.start(self.image, self.limits, workdir="/testbed",
                                              labels={"envfarm.task": inst.instance_id[:200],
                                                      "envfarm.role": "verifier"}) as fresh:
            inject(fresh, inst, hide_tests=False, post_inject=spec.post_inject)
            applied = apply_patch(fresh, diff.diff, "agent")
            if not applied.applied:
                return VerifierResult(0.0, {**details, "reason": "the agent's patch does not "
                                            "apply", "apply_log": applied.log})
            tests = put_tests_in_place(fresh, inst)
            if not tests.applied:
                return VerifierResult(0.0, {**details, "reason": "the test patch does not apply "
                                            "(the task is broken)", "apply_log": tests.log})
            run = run_tests(fresh, inst, spec)
        report = run.grade.as_dict()
        return VerifierResult(1.0 if run.grade.resolved else 0.0, {
            **details, "report": report, "reason": run.grade.reason,
            "tests_exit_code": run.exit_code, "tests_duration_s": round(run.duration_s, 3),
            "tests_output_tail": run.output_tail[-1500:],
        })

    # -- helpers ------------------------------------------------------------------------

    def _start(self) -> Any:
        if self.instance is None or self.image is None:
            raise RuntimeError("_start before the instance and its image are known")
        return self.backend.start(
            self.image, self.limits, workdir="/testbed",
            labels={"envfarm.task": self.instance.instance_id[:200], "envfarm.role": "agent"})

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


def patch_command(patch: str) -> str:
    """A bash command that applies `patch` in /testbed (base64, so any text survives)."""
    payload = base64.b64encode(patch.encode()).decode()
    return f"cd /testbed && echo {payload} | base64 -d > /tmp/fix.diff && git apply /tmp/fix.diff"
