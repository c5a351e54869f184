"""Turning a terminal task's test run into a reward: Harbor reward files, Terminal-Bench 1 tests.

- Harbor: `tests/test.sh` writes `/logs/verifier/reward.txt` (a float) or `reward.json`
  (name → number; the reward is its `reward` entry, else the mean).
- Terminal-Bench 1: the tests that count are the ones the verifier collected itself.
  pytest writes a JUnit report to a fresh, random path under `/logs/verifier` (the
  verifier sets `PYTEST_ADDOPTS`, which the agent never sees: its processes are gone),
  read from outside after the run. Reward 1.0 when the report holds at least one passed
  test, none failed or errored, every test function defined in the task's own test
  files that the run touched PASSED (a skip or xfail counts only where the task's own
  source marks that test skippable: one raised by the code under test is no pass),
  and the runner exited 0. Harbor rewards must be finite numbers (NaN or infinity is
  no verdict: it would poison a trainer's batch). Lines printed on stdout
  (`PASSED x::y`) count for nothing: anything the tested code prints could forge them.

`Verdict` is what a run produced; `None` from a parser means "no verdict" (no reward
file, no report), which the verifier then attributes (see `envs.terminal.verify`).
"""

from __future__ import annotations

import ast
import json
import math
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_RESULT = re.compile(r"^(PASSED|FAILED|ERROR|SKIPPED|XFAIL|XPASS)\s+(\S+)", re.MULTILINE)
_VERBOSE = re.compile(r"^(\S+::\S+)\s+(PASSED|FAILED|ERROR|SKIPPED|XFAIL|XPASS)\b", re.MULTILINE)
_SUMMARY = "short test summary info"


@dataclass
class Verdict:
    """A reward the tests produced, with what it rests on."""

    reward: float
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class NoVerdict:
    """The run produced nothing to score; `reason` says what is missing."""

    reason: str


def parse_pytest(output: str) -> dict[str, str]:
    """Test id → outcome from pytest's printed output (the last short summary, else verbose
    lines). For display only: printed lines are never trusted for the reward."""
    if _SUMMARY in output:
        section = output.rsplit(_SUMMARY, 1)[1]
        results = {name: outcome for outcome, name in _RESULT.findall(section)}
        if results:
            return results
    return {name: outcome for name, outcome in _VERBOSE.findall(output)}


def grade_pytest(results: dict[str, str]) -> float:
    """1.0 when something passed and nothing failed or errored."""
    outcomes = set(results.values())
    return 1.0 if "PASSED" in outcomes and not outcomes & {"FAILED", "ERROR"} else 0.0


# -- Harbor ----------------------------------------------------------------------------------

def harbor_verdict(reward_txt: bytes | None, reward_json: bytes | None) -> Verdict | NoVerdict:
    """The reward from the files `test.sh` wrote (None: the file is not there)."""
    text = (reward_txt or b"").decode("utf-8", "replace").strip()
    if text:
        try:
            value = float(text)
        except ValueError:
            return NoVerdict(f"reward.txt is not a number: {text[:100]!r}")
        if not math.isfinite(value):
            return NoVerdict(f"reward.txt is not a finite number: {text[:100]!r}")
        return Verdict(value)
    raw = (reward_json or b"").decode("utf-8", "replace").strip()
    if raw:
        try:
            values = {str(k): float(v) for k, v in json.loads(raw).items()}
        except (ValueError, AttributeError, TypeError):
            return NoVerdict(f"reward.json is not a name → number object: {raw[:200]!r}")
        if not all(math.isfinite(v) for v in values.values()):
            return NoVerdict(f"reward.json holds a value that is not finite: {raw[:200]!r}")
        reward = values.get("reward", sum(values.values()) / len(values) if values else 0.0)
        return Verdict(reward, {"rewards": values})
    return NoVerdict("the tests wrote no /logs/verifier/reward.txt or reward.json")


# -- Terminal-Bench 1 ------------------------------------------------------------------------

def junit_results(xml: bytes) -> dict[str, str] | None:
    """`classname::name` → PASSED / FAILED / ERROR / SKIPPED from a JUnit report; None when
    it is not one."""
    try:
        root = ET.fromstring(xml)
    except ET.ParseError:
        return None
    if root.tag not in ("testsuites", "testsuite"):
        return None
    results: dict[str, str] = {}
    for case in root.iter("testcase"):
        name = f"{case.get('classname', '')}::{case.get('name', '')}"
        tags = {child.tag for child in case}
        outcome = ("FAILED" if "failure" in tags else "ERROR" if "error" in tags
                   else "SKIPPED" if "skipped" in tags else "PASSED")
        if results.get(name) in ("FAILED", "ERROR"):
            continue  # a teardown error repeats the id: keep the worst outcome
        results[name] = outcome
    return results


class DefinedTests(dict):
    """File stem → test function names (a dict, as before), plus `may_skip`: the
    `stem::name` of tests the task's own source lets skip or xfail (a marker on the
    test, its class or the module's `pytestmark`, or a call of `pytest.skip` /
    `importorskip` / `xfail` in its body). Any other defined test must PASS: a skip or
    xfail raised from the code under test (`unittest.SkipTest`, `pytest.skip`) is not
    a pass."""

    may_skip: set[str]

    def __init__(self) -> None:
        super().__init__()
        self.may_skip = set()


_SKIPPY = re.compile(r"\b(skip|skipif|xfail|importorskip|SkipTest|skipTest|skipUnless|"
                     r"skipIf)\b")


def _skippy(node: ast.AST) -> bool:
    return bool(_SKIPPY.search(ast.unparse(node)))


def defined_tests(tests_dir: str | Path) -> dict[str, set[str]]:
    """Test functions the task's own test files define, by file stem (pytest's default
    naming: files `test_*.py` / `*_test.py`, functions `test*`, classes `Test*` without
    `__init__` or `unittest.TestCase` subclasses). Read on the host from the task folder."""
    found = DefinedTests()
    for path in sorted(Path(tests_dir).rglob("*.py")):
        if path.is_symlink() or not (path.name.startswith("test_") or path.stem.endswith("_test")):
            continue
        try:
            tree = ast.parse(path.read_text(encoding="utf-8", errors="replace"))
        except (SyntaxError, ValueError, OSError):
            continue
        names: set[str] = set()
        module_skips = any(isinstance(n, ast.Assign) and _skippy(n) and "pytestmark"
                           in ast.unparse(n) for n in tree.body)
        for node in tree.body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) \
                    and node.name.startswith("test"):
                names.add(node.name)
                if module_skips or _skippy(node):
                    found.may_skip.add(f"{path.stem}::{node.name}")
            elif isinstance(node, ast.ClassDef) and _collected_class(node):
                for n in node.body:
                    if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) \
                            and n.name.startswith("test"):
                        names.add(n.name)
                        if module_skips or _skippy(n) or any(_skippy(d)
                                                             for d in node.decorator_list):
                            found.may_skip.add(f"{path.stem}::{n.name}")
        found.setdefault(path.stem, set()).update(names)
    return found


def _collected_class(node: ast.ClassDef) -> bool:
    bases = [ast.unparse(b) for b in node.bases]
    if any("TestCase" in b for b in bases):
        return True
    has_init = any(isinstance(n, ast.FunctionDef) and n.name == "__init__" for n in node.body)
    return node.name.startswith("Test") and not has_init


def tb1_verdict(junit: bytes | None, exit_code: int | None,
                defined: dict[str, set[str]]) -> Verdict | NoVerdict:
    """Grade a Terminal-Bench 1 run from the verifier's own JUnit report (see module doc)."""
    if not junit:
        return NoVerdict("pytest wrote no JUnit report (the tests did not run under pytest)")
    results = junit_results(junit)
    if results is None:
        return NoVerdict("the JUnit report is not readable")
    details: dict[str, Any] = {"tests": dict(list(results.items())[:500]),
                               "tests_total": len(results), "exit_code": exit_code}
    seen: dict[str, set[str]] = {}
    skipped: list[str] = []
    for test_id, outcome in results.items():
        classname, _, name = test_id.partition("::")
        parts = re.split(r"[./]", classname)
        stem = next((p for p in reversed(parts) if p in defined), None)
        base = name.split("[", 1)[0]
        may_skip = f"{stem}::{base}" in getattr(defined, "may_skip", ())
        if stem is not None and (outcome == "PASSED" or outcome == "SKIPPED" and may_skip):
            seen.setdefault(stem, set()).add(base)
        elif stem is not None and outcome == "SKIPPED":
            skipped.append(f"{stem}::{base}")
    touched = {stem for test_id in results for stem in defined
               if stem in re.split(r"[./]", test_id.partition("::")[0])}
    missing = sorted(f"{stem}::{n}" for stem in touched for n in defined[stem] - seen.get(stem, set()))
    outcomes = set(results.values())
    reasons = []
    if "PASSED" not in outcomes:
        reasons.append("no test passed")
    if outcomes & {"FAILED", "ERROR"}:
        reasons.append("tests failed")
    if missing:
        reasons.append(f"tests defined by the task did not pass or did not run: {missing[:10]}")
    if skipped:
        reasons.append(f"tests the task does not mark as skippable were skipped: {skipped[:10]}")
    if exit_code != 0:
        reasons.append(f"the test runner exited {exit_code}")
    if reasons:
        details["reason"] = "; ".join(reasons)
    return Verdict(0.0 if reasons else 1.0, details)
