"""Gold validation: does an instance's reference fix really fix its failing tests?

One run, in a fresh sandbox from the environment image: inject `base_commit`, apply
`test_patch`, run FAIL_TO_PASS (each must not pass), apply `patch`, run FAIL_TO_PASS +
PASS_TO_PASS (all must pass). A task runs `runs` times; the verdict is
- `valid`: every run passed;
- `invalid` (with why): every run failed the same way; the reason names the tests that
  did not do what they must and their outcomes (`failed`, `error`, `missing`, ...);
- `task_error`: the environment cannot be had: its image does not build (the tail of
  the build log is kept, `Verdict.log_tail`) or its Python is not available here;
- `flaky`: the runs disagree: one resolves and another does not, or a test passes in one
  run and not in another at the same step. A failure that only changes kind (failed in
  one run, error in the other) is not a disagreement: the test fails either way.
An infrastructure failure (Docker died) or a repository that is not on this machine
(no mirror, offline) leaves the task `unvalidated`, with the reason: the task is not to
blame.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from sandbox import DockerBackend, ImageBuilder, Limits
from sandbox.errors import ImageBuildError, InfraError, TaskError
from swe_tasks import network
from swe_tasks.catalogue import TaskRecord
from swe_tasks.environment import ensure_image
from swe_tasks.git_source import SourceUnavailable
from swe_tasks.grading import MISSING, PASSING
from swe_tasks.instance import SWEInstance
from swe_tasks.pythons import PythonUnavailable, log_tail
from swe_tasks.repo_spec import RepoSpec, spec_for
from swe_tasks.testrun import put_tests_in_place, run_tests, tests_limits
from swe_tasks.workspace import apply_patch, inject

VALIDATION_LIMITS = Limits(cpus=1, memory_mb=4096, pids=1024, network=False, timeout_s=600)


@dataclass
class RunOutcome:
    """One validation run: passed or not, why, and the per-test evidence."""

    ok: bool
    reason: str | None = None
    before: dict[str, str] = field(default_factory=dict)
    after: dict[str, str] = field(default_factory=dict)


@dataclass
class Verdict:
    """A task's validation verdict; `log_tail` is the build log's end (task_error only)."""

    status: str
    reason: str | None
    runs: list[RunOutcome] = field(default_factory=list)
    log_tail: str | None = None
    image: str | None = None


def failing_tests(expected: dict[str, str], must_pass: bool, limit: int = 8) -> str:
    """`test (outcome)` for each test that did not do what it must, at most `limit`."""
    bad = [f"{t} ({o})" for t, o in expected.items() if (o in PASSING) != must_pass]
    more = f" and {len(bad) - limit} more" if len(bad) > limit else ""
    return ", ".join(bad[:limit]) + more


def build_cause(error: ImageBuildError) -> str:
    """One line saying why an image did not build: the failing step's last error line."""
    lines = [ln.strip() for ln in (error.log or str(error)).splitlines() if ln.strip()]
    first = str(error).splitlines()[0] if str(error) else "build failed"
    for ln in reversed(lines):
        low = ln.lower()
        if ln.startswith("ERROR:") or "error:" in low or "could not" in low or "no matching" in low:
            return f"{first[:200]} -- {ln[:300]}"
    return first[:300]


def validate_run(instance: SWEInstance, image: str, spec: RepoSpec,
                 backend: DockerBackend) -> RunOutcome:
    """One gold-validation run in a fresh sandbox. Raises InfraError when Docker fails."""
    with backend.start(image, tests_limits(VALIDATION_LIMITS, spec), workdir="/testbed") as sb:
        network.prepare(sb, spec.network)
        inject(sb, instance, hide_tests=False, post_inject=spec.post_inject)
        tp = put_tests_in_place(sb, instance)
        if not tp.applied:
            return RunOutcome(False, f"test_patch does not apply: {tp.log[-300:]}")
        before = run_tests(sb, instance, spec, pass_to_pass=[]).grade
        out = RunOutcome(False, before=before.fail_to_pass)
        # An empty patch must score 0: resolution needs every FAIL_TO_PASS test, so one
        # that fails without the fix is enough. Some SWE-bench lists hold tests that pass
        # either way (their "before" run failed for network reasons): named, not fatal.
        early = failing_tests(before.fail_to_pass, must_pass=False)
        if before.fail_to_pass and all(o in PASSING for o in before.fail_to_pass.values()):
            out.reason = f"an empty patch would score 1: every FAIL_TO_PASS passes without " \
                         f"the fix: {early}"
            return out
        gp = apply_patch(sb, instance.patch, "gold")
        if not gp.applied:
            out.reason = f"the gold patch does not apply: {gp.log[-300:]}"
            return out
        after = run_tests(sb, instance, spec).grade
        out.after = {**after.fail_to_pass, **after.pass_to_pass}
        out.ok = after.resolved
        if out.ok and early:
            out.reason = f"mislabelled FAIL_TO_PASS (passes without the fix): {early}"
        if not after.resolved:
            bad = failing_tests(out.after, must_pass=True)
            out.reason = f"with the gold patch: {after.reason}" + (
                f"; failing: {bad}" if bad and bad not in (after.reason or "") else "")
            needs_net = [t for t in out.after if out.after[t] not in PASSING
                         and any(t.startswith(p) for p in spec.network_tests)]
            if needs_net:
                out.reason += f"; these need the internet: {', '.join(needs_net[:5])}"
        return out


def validate_instance(instance: SWEInstance, *, runs: int = 2,
                      backend: DockerBackend | None = None,
                      builder: ImageBuilder | None = None) -> Verdict:
    """Validate one instance (see module docstring). InfraError propagates (retry)."""
    backend = backend or DockerBackend(run="validate")
    spec = spec_for(instance)
    try:
        image = ensure_image(instance, builder, spec)
    except ImageBuildError as e:
        return Verdict("task_error", f"environment image does not build: {build_cause(e)}",
                       log_tail=log_tail(e, 60))
    except PythonUnavailable as e:
        return Verdict("task_error", str(e), log_tail=e.log_tail or None)
    except SourceUnavailable:
        raise  # not the task's fault: it stays unvalidated
    except TaskError as e:
        return Verdict("invalid", str(e))
    outcomes = [validate_run(instance, image, spec, backend) for _ in range(max(1, runs))]
    verdict = verdict_of(outcomes)
    verdict.image = image
    return verdict


def verdict_of(outcomes: list[RunOutcome]) -> Verdict:
    """The verdict of one task's runs (see the module docstring)."""
    first = outcomes[0]
    changed = _changed_tests(outcomes)
    if changed or any(o.ok != first.ok for o in outcomes[1:]):
        oks = [o.ok for o in outcomes]
        why = "; ".join(changed[:5]) or next((o.reason for o in outcomes if o.reason), "")
        return Verdict("flaky", f"runs disagree (resolved per run: {oks}): {why}", outcomes)
    if first.ok:
        return Verdict("valid", first.reason, outcomes)  # a mislabelled-F2P note, or None
    return Verdict("invalid", first.reason, outcomes)


def _changed_tests(outcomes: list[RunOutcome]) -> list[str]:
    """Each test that passes in some runs and not in others, at the same step, with what
    it did in each run. Runs that did not reach a step are not compared at it."""
    changed = []
    for step, of in (("without", lambda o: o.before), ("with", lambda o: o.after)):
        reached = [(i, of(o)) for i, o in enumerate(outcomes, 1) if of(o)]
        for test in dict.fromkeys(t for _, seen in reached for t in seen):
            got = [(i, seen.get(test, MISSING)) for i, seen in reached]
            if len({outcome in PASSING for _, outcome in got}) > 1:
                runs = ", ".join(f"{outcome} in run {i}" for i, outcome in got)
                changed.append(f"{test} {step} the gold patch: {runs}")
    return changed


def validate_tasks(tasks: list[TaskRecord], *, concurrency: int = 2, runs: int = 2,
                   on_result: Callable[..., None],
                   backend: DockerBackend | None = None) -> None:
    """Validate many SWE tasks in parallel sandboxes; `on_result(id, status, reason)` once
    per task, from worker threads, with a fourth argument (the build log's tail) for
    `task_error`. The `envfarm tasks validate` validator for kind swe."""
    backend = backend or DockerBackend(run="validate")
    builder = ImageBuilder()

    def one(task: TaskRecord) -> None:
        try:
            verdict = validate_instance(SWEInstance.from_task(task), runs=runs,
                                        backend=backend, builder=builder)
        except InfraError as e:
            on_result(task.id, "unvalidated", f"infrastructure error, retry: {e}")
            return
        except SourceUnavailable as e:
            on_result(task.id, "unvalidated", str(e))
            return
        except (TaskError, ValueError) as e:  # the record itself is broken
            on_result(task.id, "invalid", f"{type(e).__name__}: {e}")
            return
        except Exception as e:  # noqa: BLE001 - our bug, not the task's: leave it for a rerun
            on_result(task.id, "unvalidated", f"validator error {type(e).__name__}: {e}")
            return
        if verdict.status == "task_error":
            on_result(task.id, verdict.status, verdict.reason, verdict.log_tail)
        else:
            on_result(task.id, verdict.status, verdict.reason)

    with ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
        list(pool.map(one, tasks))
