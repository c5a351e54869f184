"""Grading: `resolved` only when every FAIL_TO_PASS and PASS_TO_PASS test passes.

Two sources of per-test outcomes, one rule:
- `grade`: a JUnit XML report (pytest `--junitxml`) written to a fresh path, the default.
  `resolved` needs the runner to have exited normally (0 or 1: tests ran) and every listed
  test in the report as passed (an expected failure counts as passed, as in SWE-bench).
  Printing "PASSED" changes nothing; a missing test counts as failed.
- `grade_log`: statuses a named log parser read from the framed output of the dataset's
  own eval script (`swe_tasks.eval_script`). `resolved` also needs the runner's exit code
  from the frame, proof in the log that the runner ran to its end (its closing summary,
  `log_parsers.runner_finished`: a runner killed at import prints nothing and may exit 0),
  and a non-zero exit must come with a failure in the log: a runner that failed while its
  log reports nothing failing is not described by that log.
  `eval_type` says what absence means: `pass_and_fail` (the default) needs each listed
  test in the log as passed; `fail_only` (runners that print only failures) passes a
  listed test unless the log shows it failed or errored, and only after a run that ended
  normally (exit 0 or 1: pytest's 2-5 mean interrupted or nothing collected). A skipped
  test never passes.

SWE-bench test ids are pytest node ids (`tests/test_x.py::TestC::test_f[a-1]`); pytest
writes each as classname `tests.test_x.TestC` and name `test_f[a-1]`; `junit_key` does that
same mapping, parametrized ids included. Where SWE-bench's log parser rewrote an id, the
report's id is matched the same way: a parameter that is an absolute path was cut to its
last part (`test_f[/test_utils.py]` stands for `test_f[/testbed/tests/test_utils.py]`).

Not every listed id is a test. SWE-bench read its lists from console logs, and lines the
tests themselves print (pytest's own suite runs inner pytests) became ids: the progress
marker `[100%]`, or `test_hello.py::test_x` of a file that exists only in an inner run's
temporary folder. No runner can report such an id; grading leaves them out and says so
(`GradeReport.not_tests`): `not_a_test` (the marker, by its form) and ids whose file the
caller found absent from the tree (`absent_files`).

Where envfarm deliberately differs from the harness: tests run with no internet, and
PASS_TO_PASS tests the spec names as needing it (`RepoSpec.network_tests`, id prefixes)
fail here whatever the patch, so they are not graded (`GradeReport.needs_internet`). A
FAIL_TO_PASS test is always graded: an instance whose fix shows only online stays invalid.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Callable, Collection
from dataclasses import dataclass, field

PASSED, FAILED, ERROR, SKIPPED, XFAIL, MISSING = (
    "passed", "failed", "error", "skipped", "xfail", "missing")
PASSING = frozenset({PASSED, XFAIL})
FAILING = frozenset({FAILED, ERROR})  # a test the runner ran and saw fail
PASS_AND_FAIL, FAIL_ONLY = "pass_and_fail", "fail_only"
EVAL_TYPES = (PASS_AND_FAIL, FAIL_ONLY)
_RANK = {PASSED: 0, XFAIL: 1, SKIPPED: 2, FAILED: 3, ERROR: 4}
MAX_REPORT_BYTES = 64 * 1024 * 1024
_PROGRESS = re.compile(r"^\[\s*\d+%\]$")


def not_a_test(test_id: str) -> bool:
    """Whether `test_id` is a console line's progress marker (`[100%]`), not a test."""
    return bool(_PROGRESS.match(test_id.strip()))


def gradable(test_ids: list[str], absent_files: Collection[str] = ()) -> tuple[list[str],
                                                                               list[str]]:
    """(ids to grade, ids that name no test: see the module docstring)."""
    absent = set(absent_files)
    keep, dropped = [], []
    for tid in test_ids:
        phantom = "::" in tid and tid.split("::", 1)[0] in absent
        (dropped if phantom or not_a_test(tid) else keep).append(tid)
    return keep, dropped


def offline(test_ids: list[str], network_tests: Collection[str]) -> tuple[list[str],
                                                                          list[str]]:
    """(ids to grade, ids that need the internet): `network_tests` are id prefixes."""
    prefixes = tuple(network_tests)
    keep = [t for t in test_ids if not (prefixes and t.startswith(prefixes))]
    return keep, [t for t in test_ids if prefixes and t.startswith(prefixes)]


def junit_key(test_id: str) -> tuple[str, str]:
    """(classname, name) under which pytest's JUnit report lists the node id `test_id`."""
    path, bracket, params = test_id.partition("[")
    names = path.split("::")
    names[0] = re.sub(r"\.py$", "", names[0].replace("/", "."))
    names[-1] += bracket + params
    if len(names) == 1:  # a bare name: no module known
        return ("", names[0])
    return (".".join(names[:-1]), names[-1])


def parse_junit(xml_text: str | bytes) -> dict[tuple[str, str], str]:
    """Per-test outcomes from a JUnit XML report. Raises ValueError if it is not one."""
    if len(xml_text) > MAX_REPORT_BYTES:
        raise ValueError(f"test report larger than {MAX_REPORT_BYTES} bytes")
    try:
        root = ET.fromstring(xml_text)
    except ET.ParseError as e:
        raise ValueError(f"test report is not XML: {e}") from None
    if root.tag not in ("testsuites", "testsuite"):
        raise ValueError(f"test report root is <{root.tag}>, not a JUnit <testsuite(s)>")
    out: dict[tuple[str, str], str] = {}
    for case in root.iter("testcase"):
        key = (case.get("classname", ""), case.get("name", ""))
        outcome = PASSED
        for child in case:
            if child.tag == "failure":
                outcome = worse(outcome, FAILED)
            elif child.tag == "error":
                outcome = worse(outcome, ERROR)
            elif child.tag == "skipped":
                kind = f"{child.get('type', '')} {child.get('message', '')}".lower()
                outcome = worse(outcome, XFAIL if "xfail" in kind else SKIPPED)
        # pytest may list one test twice (call failed, teardown errored): the worst wins.
        out[key] = worse(out[key], outcome) if key in out else outcome
    return out


def worse(a: str, b: str) -> str:
    """The worse of two outcomes (passed < xfail < skipped < failed < error)."""
    return a if _RANK[a] >= _RANK[b] else b


def outcomes_for(test_ids: list[str], report: dict[tuple[str, str], str]) -> dict[str, str]:
    """The outcome of each SWE-bench test id in `report`; `missing` when it is not there."""
    by_name: dict[str, list[str]] = {}
    for (_cls, name), outcome in report.items():
        by_name.setdefault(name, []).append(outcome)
    result = {}
    for tid in test_ids:
        key = junit_key(tid)
        if key in report:
            result[tid] = report[key]
        elif key[0] == "" and len(by_name.get(key[1], [])) == 1:
            result[tid] = by_name[key[1]][0]  # a bare test name, unique in the report
        elif _PATH_PARAM.match(key[1]):
            # SWE-bench's parser cut an absolute-path parameter to its last part.
            name, last = _PATH_PARAM.match(key[1]).groups()  # type: ignore[union-attr]
            found = [o for (c, n), o in report.items() if c == key[0]
                     and n.startswith(name + "[/") and n.endswith("/" + last + "]")]
            result[tid] = max(found, key=_RANK.__getitem__) if found else MISSING
        elif "[" in key[1] and not key[1].endswith("]"):
            # SWE-bench cut ids at the first space of a parameter ("test_x[a-Missing"):
            # every test it may stand for must pass, so the worst outcome counts.
            found = [o for (c, n), o in report.items() if c == key[0] and _cut_from(n, key[1])]
            result[tid] = max(found, key=_RANK.__getitem__) if found else MISSING
        else:
            result[tid] = MISSING
    return result


_PATH_PARAM = re.compile(r"^(.*?)\[/([^/\]]+)\]$")


def log_outcomes_for(test_ids: list[str], statuses: dict[str, str]) -> dict[str, str]:
    """The status of each dataset test id among a log parser's `statuses`; `missing` when
    the log does not name it. Ids cut inside a parameter (`test_x[a b]` became `test_x[a`
    in SWE-bench's data) stand for every test they were cut from: the worst status counts."""
    result = {}
    for tid in test_ids:
        if tid in statuses:
            result[tid] = statuses[tid]
        elif tid.count("[") > tid.count("]"):
            found = [s for t, s in statuses.items() if _cut_from(t, tid)]
            result[tid] = max(found, key=_RANK.__getitem__) if found else MISSING
        else:
            result[tid] = MISSING
    return result


def _cut_from(name: str, cut: str) -> bool:
    """Whether SWE-bench, cutting `name` at its first space, would have made `cut`: the
    cut ends where a space was (`p[a` from `p[a b-1]`, never from `p[ab-2]`)."""
    return name.startswith(cut + " ")


@dataclass
class GradeReport:
    """The verdict and its evidence, per test; `graded_by` names the source (`junit`, or
    `log:<parser>`)."""

    resolved: bool
    fail_to_pass: dict[str, str] = field(default_factory=dict)
    pass_to_pass: dict[str, str] = field(default_factory=dict)
    exit_code: int | None = None
    reason: str | None = None
    graded_by: str = "junit"
    not_tests: list[str] = field(default_factory=list)
    """Listed ids that name no test (module docstring): not graded."""
    needs_internet: list[str] = field(default_factory=list)
    """PASS_TO_PASS ids the spec says need the internet (module docstring): not graded."""

    def as_dict(self) -> dict[str, object]:
        return {"resolved": self.resolved, "FAIL_TO_PASS": self.fail_to_pass,
                "PASS_TO_PASS": self.pass_to_pass, "exit_code": self.exit_code,
                "reason": self.reason, "graded_by": self.graded_by,
                "not_tests": self.not_tests, "needs_internet": self.needs_internet}


def grade(fail_to_pass: list[str], pass_to_pass: list[str], report_xml: str | bytes | None,
          exit_code: int | None, absent_files: Collection[str] = (),
          network_tests: Collection[str] = ()) -> GradeReport:
    """Decide `resolved` from the JUnit report and the runner's exit code (module
    docstring); ids that name no test are left out (`absent_files`: test files the tree
    does not have), and PASS_TO_PASS ids under `network_tests`."""
    fail_to_pass, dropped_f = gradable(fail_to_pass, absent_files)
    pass_to_pass, dropped_p = gradable(pass_to_pass, absent_files)
    pass_to_pass, online = offline(pass_to_pass, network_tests)
    if not fail_to_pass and dropped_f:
        return GradeReport(False, exit_code=exit_code, not_tests=dropped_f + dropped_p,
                           reason="no FAIL_TO_PASS id names a test: nothing shows the fix")
    if report_xml is None:
        return GradeReport(False, exit_code=exit_code,
                           reason=f"the test run wrote no report (exit code {exit_code})")
    try:
        report = parse_junit(report_xml)
    except ValueError as e:
        return GradeReport(False, exit_code=exit_code, reason=str(e))
    f2p, p2p = outcomes_for(fail_to_pass, report), outcomes_for(pass_to_pass, report)
    problem = None
    if exit_code not in (0, 1):
        problem = f"the test runner exited {exit_code} (interrupted, or no tests ran)"
    verdict = _verdict(f2p, p2p, exit_code, problem, PASSING.__contains__, "junit")
    verdict.not_tests, verdict.needs_internet = dropped_f + dropped_p, online
    return verdict


def grade_log(fail_to_pass: list[str], pass_to_pass: list[str], statuses: dict[str, str],
              exit_code: int | None, *, finished: bool, eval_type: str | None = None,
              parser: str = "pytest") -> GradeReport:
    """Decide `resolved` from a log parser's per-test `statuses`, the runner's exit code
    read from the frame (None: the frame had none) and whether the log shows the runner
    ran to its end (`finished`). See the module docstring."""
    kind = eval_type or PASS_AND_FAIL
    if kind not in EVAL_TYPES:
        raise ValueError(f"eval_type {eval_type!r} is not one of {', '.join(EVAL_TYPES)}")
    f2p = log_outcomes_for(fail_to_pass, statuses)
    p2p = log_outcomes_for(pass_to_pass, statuses)
    problem = None
    if exit_code is None:
        problem = "the test runner's exit code is missing from its log (it did not finish)"
    elif not finished:
        problem = (f"the test runner's closing summary is missing from its log (exit code "
                   f"{exit_code}): it did not run to its end, or printed no summary")
    elif exit_code != 0 and not FAILING & set(statuses.values()):
        problem = (f"the test runner exited {exit_code} but its log reports no failing "
                   "test: the log does not describe the run")
    elif kind == FAIL_ONLY and exit_code not in (0, 1):
        problem = (f"the test runner exited {exit_code}: under fail_only only a run that "
                   "ended normally (0 or 1) vouches for the tests its log does not name")
    passes = PASSING.__contains__ if kind == PASS_AND_FAIL else _not_failed
    return _verdict(f2p, p2p, exit_code, problem, passes, f"log:{parser}")


def _not_failed(outcome: str) -> bool:
    return outcome not in FAILING and outcome != SKIPPED


def _verdict(f2p: dict[str, str], p2p: dict[str, str], exit_code: int | None,
             problem: str | None, passes: Callable[[str], bool], graded_by: str) -> GradeReport:
    """The one rule: no problem with the run, and every listed test passes."""
    failing = [t for t, o in {**f2p, **p2p}.items() if not passes(o)]
    reason = problem
    if reason is None and failing:
        shown = ", ".join(f"{t}: {(f2p | p2p)[t]}" for t in failing[:5])
        reason = f"{len(failing)} required test(s) not passing: {shown}"
    return GradeReport(reason is None, f2p, p2p, exit_code, reason, graded_by)
