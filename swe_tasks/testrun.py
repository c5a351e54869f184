"""Run an instance's tests in a sandbox and grade them: the JUnit report, or the log of
the dataset's own eval script where it gives one (`swe_tasks.eval_script`).

JUnit (the default): the test files the FAIL_TO_PASS / PASS_TO_PASS ids name run whole,
in the test patch's order, as the SWE-bench harness runs them (its test command over the
test patch's files); only the listed ids are graded, unrelated tests may fail without
harm. Not by node id: pytest runs ids in the order given, and suites whose tests share
state (sphinx's `shared_result` apps) fail in an order the dataset never ran
(sphinx-doc__sphinx-8120: test_text_docfields fails after test_customize_system_message).

Who can reach what (the code under test is the agent's; it runs inside pytest):
- pytest runs as an unprivileged user (`TESTS_UID`, via `setpriv`) when the sandbox has
  `VERIFIER_CAPS`; everything of the runner (its script, the exit code, the report's
  copy, the output tail) lives in a root-only directory. Afterwards every process of
  that user is killed (as that user: `kill -9 -1`), so nothing the tests started writes
  anything later, and /testbed is given back to root. During the run /testbed belongs to
  that user except the test files (test paths, the test patch's files) and pytest's
  configuration files, which stay root's and read-only, in folders that are root's and
  sticky: the code under test cannot rewrite, move or delete a test before pytest
  collects it (it can still add files; a new conftest.py is what `swe_tasks.patch_scan`
  looks for). Without the capabilities the tests
  run as root, as before, and `TestRun.tests_user` says so.
- The JUnit report is a FIFO that only root reads (`root:nogroup 0620`): pytest streams
  its report into it and a root `head` copies it; nothing can rewrite or truncate what
  was already read, and the code under test cannot read the real report out of it.
  Root holds a write end of it for the whole run, so the copy ends only after pytest
  exited and every process of the test user is gone: whatever anyone else wrote into it
  (before pytest's report, or after) is in the copy, and nobody can make the reader stop
  early and leave pytest's own report unread.
  The stream must be exactly one XML document from its first byte (`<?xml` once, at the
  start): lines written into it by anyone besides pytest, before or after its report,
  leave no verdict.
- The exit code is pytest's own, as root's shell saw it, written by root; the output is
  kept only as a tail for humans, never read for verdicts. pytest's configuration is the
  repository's pristine one (`swe_tasks.integrity` keeps the agent's changes to it, and
  conftest files, out of the verifier), `PYTEST_ADDOPTS` / `PYTEST_PLUGINS` are unset and
  the cache plugin is off.
- In-process patching by the package under test cannot be stopped by any of this: see
  `swe_tasks.patch_scan`.

Eval script: the script runs framed (`swe_tasks.eval_script.Frame`): its output goes
into a log file read back whole (the shell's output is bounded), whose digest must match
the one the wrapper sealed into its own output; only the frame's section is parsed. The
script's install steps (`pip install -e .`, builds) run under the same clock as its
tests, so it gets `EVAL_SCRIPT_SETUP_S` beyond the tests' limit.

Call `put_tests_in_place` after the code under test is in /testbed and before
`run_tests`: it applies the test patch, unless the eval script applies it itself.
"""

from __future__ import annotations

import os
import shlex
import uuid
from dataclasses import dataclass

from sandbox import Limits, Sandbox
from sandbox.errors import SandboxError
from swe_tasks.eval_script import Frame, LogEval, log_eval_for
from swe_tasks.grading import MAX_REPORT_BYTES, GradeReport, grade, grade_log
from swe_tasks.instance import SWEInstance
from swe_tasks.log_parsers import parse_log, runner_finished
from swe_tasks.network import runner_env
from swe_tasks.repo_spec import RepoSpec
from swe_tasks.workspace import TESTBED, PatchResult, apply_patch

TESTS_UID = 65534
"""The unprivileged user (nobody) pytest runs as when the sandbox allows it (see
`VERIFIER_CAPS`)."""
VERIFIER_CAPS = ["SETUID", "SETGID", "CHOWN", "KILL"]
"""Capabilities a verifier sandbox needs to run the tests as `TESTS_UID` and to stop what
they leave running; without them the tests run as root (noted in `TestRun.tests_user`)."""
RUNNER_SLACK_S = 180.0
"""Time the runner gets beyond the tests' limit (ownership changes, reaping)."""
EVAL_SCRIPT_SETUP_S = 600.0
"""Time an eval-script run gets beyond the tests' limit, for the install steps it runs."""


def tests_limits(limits: Limits, spec: RepoSpec) -> Limits:
    """`limits` with the CPUs the harness gives the tests (`RepoSpec.cpus`), as far as
    this machine has them. Suites count the CPUs their cgroup grants: pylint 2.14+ skips
    its `needs_two_cores` tests under a one-CPU quota, and lists them as PASS_TO_PASS."""
    if spec.cpus is None or spec.cpus <= limits.cpus:
        return limits
    return limits.model_copy(update={"cpus": min(spec.cpus, float(os.cpu_count() or 1))})


def test_targets(instance: SWEInstance, test_ids: list[str] | None = None) -> list[str]:
    """The test files to run: those the ids name, in the test patch's order (the harness
    runs the test patch's files in that order), then the others in first-seen order; the
    test patch's Python files when no id names a file."""
    ids = test_ids if test_ids is not None else instance.FAIL_TO_PASS + instance.PASS_TO_PASS
    named: dict[str, None] = {}
    for tid in ids:
        if "::" in tid:
            named.setdefault(tid.split("::", 1)[0])
    patch_files = [p for p in instance.test_files if p.endswith(".py")]
    if not named:
        return patch_files
    return [p for p in patch_files if p in named] + [p for p in named if p not in patch_files]


@dataclass
class TestRun:
    """One run of the tests: the grade, the exit code and the end of the output."""

    grade: GradeReport
    exit_code: int
    timed_out: bool
    duration_s: float
    output_tail: str
    tests_user: str = "root"
    """Who the tests ran as: `uid 65534` (the verifier could drop privileges), else root."""

    __test__ = False  # not a pytest class


def run_tests(sandbox: Sandbox, instance: SWEInstance, spec: RepoSpec, *,
              fail_to_pass: list[str] | None = None, pass_to_pass: list[str] | None = None,
              timeout_s: float | None = None) -> TestRun:
    """Run the tests of `instance` in /testbed and grade them (see module docstring).

    Raises SandboxError (an InfraError: retry, never score) if the sandbox fails, the eval
    wrapper's key file included; UnknownLogParser (a TaskError) if the dataset's log parser
    is not known here. A failing or hanging test is a result.
    """
    f2p = instance.FAIL_TO_PASS if fail_to_pass is None else fail_to_pass
    p2p = instance.PASS_TO_PASS if pass_to_pass is None else pass_to_pass
    limit = timeout_s or spec.test_timeout_s
    log_eval = log_eval_for(instance)
    if log_eval is not None:
        return _run_eval_script(sandbox, log_eval, spec, f2p, p2p, limit)
    return _run(sandbox, spec, test_targets(instance, f2p + p2p), f2p, p2p, limit,
                instance.test_files)


_RUNNER = r"""set -u
D={d}; P={p}; U={uid}
cd /testbed || exit 90
user=root
protect() {{  # test files and pytest configuration stay root's; their folders sticky
  local f d
  find /testbed -path /testbed/.git -prune -o -type f \( -name 'test_*.py' -o \
    -name '*_test.py' -o -name test.py -o -name tests.py -o -name conftest.py -o \
    -name pytest.ini -o -name .pytest.ini -o -name tox.ini -o -name setup.cfg -o \
    -name pyproject.toml -o -path '*/tests/*' -o -path '*/test/*' \) -print0 > $D/protected
  printf '/testbed/%s\0' {test_files} >> $D/protected
  while IFS= read -r -d '' f; do
    [ -f "$f" ] && [ ! -L "$f" ] || continue
    chown 0:0 -- "$f" && chmod go-w -- "$f" || return 1
    d=${{f%/*}}
    while [ "${{#d}}" -ge 8 ] && [ -z "${{seen[$d]:-}}" ]; do
      seen[$d]=1; chown 0:0 -- "$d" && chmod 1777 -- "$d" || return 1; d=${{d%/*}}
    done
  done < $D/protected
}}
declare -A seen
if setpriv --reuid=$U --regid=$U --clear-groups true 2>/dev/null; then
  H=$(mktemp -d /tmp/envfarm-home.XXXXXXXX) && chown $U:$U "$H" && chown -R $U:$U /testbed \
    && protect && chown 0:$U $P/report && chmod 620 $P/report && user=$U
fi
echo "$user" > $D/user
head -c {cap} $P/report > $D/report.xml 4>&- &
reader=$!
exec 4<>$P/report  # root holds a write end: no EOF, so no blocked writer, until it closes
{exports}export HOME=${{H:-/root}}
unset PYTEST_ADDOPTS PYTEST_PLUGINS
if [ "$user" = root ]; then as=; else as="setpriv --reuid=$U --regid=$U --clear-groups"; fi
timeout -k 10 {limit} $as {command} -p no:cacheprovider --junitxml=$P/report -o junit_family=xunit1 \
  --rootdir=/testbed {targets} < /dev/null > $D/out.log 2>&1 4>&-
rc=$?
if [ "$user" != root ]; then
  for i in 1 2 3 4 5; do setpriv --reuid=$U --regid=$U --clear-groups kill -9 -1 2>/dev/null; done
fi
exec 4>&-
for i in $(seq 100); do kill -0 $reader 2>/dev/null || break; sleep 0.05; done
kill -9 $reader 2>/dev/null; wait $reader 2>/dev/null
tail -c 65536 $D/out.log > $D/out; rm -f $D/out.log
[ "$user" = root ] || chown -R 0:0 /testbed
echo "$rc" > $D/rc
"""


def _run(sandbox: Sandbox, spec: RepoSpec, targets_list: list[str], f2p: list[str],
         p2p: list[str], limit: float, test_files: list[str] | None = None) -> TestRun:
    """One pytest run under `_RUNNER` (module docstring: who can reach what)."""
    absent = _absent_files(sandbox, [t.split("::", 1)[0] for t in f2p + p2p if "::" in t],
                           test_files or [])
    kept = [t for t in targets_list if t.split("::", 1)[0] not in absent]
    targets_list = kept or [f for f in test_files or [] if f.endswith(".py")] or targets_list
    tag = uuid.uuid4().hex
    work, pipe = f"/tmp/envfarm-run-{tag}", f"/tmp/envfarm-pipe-{tag}"
    env = {**spec.env, **runner_env(spec.network)}
    exports = "".join(f"export {k}={shlex.quote(v)}\n" for k, v in env.items())
    script = _RUNNER.format(d=work, p=pipe, uid=TESTS_UID, cap=MAX_REPORT_BYTES + 1,
                            test_files=" ".join(shlex.quote(f) for f in test_files or []),
                            exports=exports, limit=int(limit) + 1, command=spec.test_command,
                            targets=" ".join(shlex.quote(t) for t in targets_list))
    setup = sandbox.exec(f"umask 077 && mkdir -m 700 {work} && mkdir -m 711 {pipe} && "
                         f"mkfifo -m 600 {pipe}/report")
    if not setup.ok:
        raise SandboxError(f"cannot prepare the test run: {setup.output[-300:]}")
    sandbox.write_file(f"{work}/run.sh", script, mode=0o700)
    res = sandbox.exec(f"bash {work}/run.sh", timeout_s=limit + RUNNER_SLACK_S)
    rc_text = _read(sandbox, f"{work}/rc", 64).strip()
    xml = _read(sandbox, f"{work}/report.xml", MAX_REPORT_BYTES + 1)
    tail = _read(sandbox, f"{work}/out", 65536).decode("utf-8", errors="replace")
    user = _read(sandbox, f"{work}/user", 64).decode(errors="replace").strip()
    sandbox.exec(f"rm -rf {work} {pipe}")
    exit_code = int(rc_text) if rc_text.lstrip(b"-").isdigit() else None
    timed_out = res.timed_out or exit_code in (124, 137)
    problem = report_problem(xml)
    if timed_out:
        result = GradeReport(False, exit_code=exit_code, reason=f"the tests ran past {limit:.0f} s")
    elif exit_code is None:
        result = GradeReport(False, reason="the test runner did not finish (no exit code)")
    elif problem:
        result = GradeReport(False, exit_code=exit_code, reason=problem)
    else:
        result = grade(f2p, p2p, xml or None, exit_code, absent_files=absent,
                       network_tests=spec.network_tests)
    result_code = exit_code if exit_code is not None else res.exit_code
    return TestRun(result, result_code, timed_out, res.duration_s, tail[-3000:],
                   tests_user="root" if user in ("", "root") else f"uid {user}")


def _absent_files(sandbox: Sandbox, named: list[str], test_files: list[str]) -> list[str]:
    """Files named by listed test ids that neither the pristine commit nor the test patch
    holds: ids SWE-bench's log parser read from an inner run's output (pytest's own suite
    runs pytest), which no run can collect. Judged on the commit, not the working tree,
    so an agent that deletes a test file cannot make its tests absent."""
    candidates = [f for f in dict.fromkeys(named) if f not in set(test_files)]
    if not candidates:
        return []
    res = sandbox.exec("git -c core.quotepath=off -C /testbed ls-tree -r --name-only HEAD -- "
                       + " ".join(shlex.quote(f) for f in candidates), timeout_s=60)
    if not res.ok:
        return []
    present = set(res.output.splitlines())
    return [f for f in candidates if f not in present]


def report_problem(xml: bytes) -> str | None:
    """Why the report stream is not the one document pytest writes, or None."""
    if not xml:
        return None
    if len(xml) > MAX_REPORT_BYTES:
        return f"the test report is larger than {MAX_REPORT_BYTES} bytes"
    if not xml.lstrip().startswith(b"<?xml") or xml.count(b"<?xml") != 1:
        return ("the test report stream is not one XML document from its start: something "
                "besides pytest wrote into it")
    return None


def _read(sandbox: Sandbox, path: str, limit: int) -> bytes:
    """A runner output file (written by root, bounded by the runner), or b"" if missing."""
    try:
        return sandbox.read_file(path)[:limit]
    except (FileNotFoundError, IsADirectoryError):
        return b""


def put_tests_in_place(sandbox: Sandbox, instance: SWEInstance) -> PatchResult:
    """Apply the test patch in /testbed; when the eval script applies it itself, only
    check that it would apply (the script resets the test files and applies it)."""
    log_eval = log_eval_for(instance)
    if log_eval is not None and log_eval.applies_test_patch:
        return apply_patch(sandbox, instance.test_patch, "test", check_only=True)
    return apply_patch(sandbox, instance.test_patch, "test")


def _run_eval_script(sandbox: Sandbox, log_eval: LogEval, spec: RepoSpec, f2p: list[str],
                     p2p: list[str], limit: float) -> TestRun:
    frame, work = Frame.new(), f"/tmp/envfarm-eval-{uuid.uuid4().hex}"
    sandbox.write_file(f"{work}/key", frame.key, mode=0o600)
    sandbox.write_file(f"{work}/run.sh", frame.wrap(log_eval.script, f"{work}/key",
                                                    f"{work}/log", workdir=TESTBED,
                                                    env={**spec.env,
                                                         **runner_env(spec.network)}))
    budget = limit + EVAL_SCRIPT_SETUP_S
    res = sandbox.exec(f"bash {work}/run.sh < /dev/null 2>&1", timeout_s=budget)
    if frame.key_unread(res.exit_code, res.output):
        raise SandboxError(f"the eval script's wrapper could not read its key file "
                           f"({res.output.strip()[-300:]}): the sandbox failed, not the run; "
                           "retry the episode")
    raw, problem = _read_log(sandbox, f"{work}/log")
    sandbox.exec(f"rm -rf {work}")
    log = raw.decode("utf-8", errors="replace")
    graded_by = f"log:{log_eval.parser}"
    framed = frame.cut(log)
    if res.timed_out:
        problem = (f"the eval script ran past {budget:.0f} s (the tests' {limit:.0f} s and "
                   f"{EVAL_SCRIPT_SETUP_S:.0f} s for its install steps)")
    problem = problem or frame.check(res.output, raw) or framed.problem
    if problem is not None:
        result = GradeReport(False, exit_code=framed.exit_code, reason=problem,
                             graded_by=graded_by)
    else:
        statuses = parse_log(log_eval.parser, framed.section)
        result = grade_log(f2p, p2p, statuses, framed.exit_code, eval_type=log_eval.eval_type,
                           finished=runner_finished(log_eval.parser, framed.section),
                           parser=log_eval.parser)
    exit_code = res.exit_code if framed.exit_code is None else framed.exit_code
    return TestRun(result, exit_code, res.timed_out, res.duration_s, log[-3000:])


def _read_log(sandbox: Sandbox, path: str) -> tuple[bytes, str | None]:
    """The log's bytes, or b"" and why it cannot be read (missing, or too large to)."""
    size = sandbox.exec(f"stat -c %s {path}").output.strip()
    if not size.isdigit():
        return b"", "the eval script wrote no output file"
    if int(size) > MAX_REPORT_BYTES:
        return b"", f"the test log is larger than {MAX_REPORT_BYTES} bytes"
    return sandbox.read_file(path), None
