"""Grading from real pytest JUnit reports (pytest runs here, on the host, on real tests)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from swe_tasks.grading import grade, junit_key, outcomes_for, parse_junit

TESTS = '''
import pytest

def test_ok():
    pass

def test_bad():
    assert 1 == 2

@pytest.mark.parametrize("x,y", [(1, 1), (2, 3), ("a/b", "a/b"), ("sp ace", "sp ace")])
def test_param(x, y):
    assert x == y

@pytest.mark.skip(reason="not here")
def test_skipped():
    pass

@pytest.mark.xfail(reason="known")
def test_xfail():
    assert False

@pytest.fixture
def broken():
    raise RuntimeError("setup fails")

def test_setup_error(broken):
    pass

class TestGroup:
    def test_in_class(self):
        print("tests/test_sample.py::test_bad PASSED")  # printed lies change nothing

    @pytest.mark.parametrize("n", [0, 1])
    def test_p(self, n):
        assert n == 0
'''


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    root = tmp_path_factory.mktemp("proj")
    (root / "tests").mkdir()
    (root / "tests" / "test_sample.py").write_text(TESTS)
    xml = root / "report.xml"
    proc = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q",
                           f"--junitxml={xml}", "--rootdir", str(root), "tests"],
                          cwd=root, capture_output=True, text=True, check=False)
    assert proc.returncode == 1, proc.stdout[-2000:]
    return xml.read_bytes()


def test_junit_key_mirrors_pytest_mangling():
    assert junit_key("tests/test_x.py::TestC::test_f[a-1]") == ("tests.test_x.TestC", "test_f[a-1]")
    assert junit_key("tests/test_x.py::test_f[a/b::c]") == ("tests.test_x", "test_f[a/b::c]")
    assert junit_key("test_f") == ("", "test_f")


def test_outcomes_by_swe_bench_ids(report):
    ids = {
        "tests/test_sample.py::test_ok": "passed",
        "tests/test_sample.py::test_bad": "failed",
        "tests/test_sample.py::test_param[1-1]": "passed",
        "tests/test_sample.py::test_param[2-3]": "failed",
        "tests/test_sample.py::test_param[a/b-a/b]": "passed",
        "tests/test_sample.py::test_param[sp ace-sp ace]": "passed",
        "tests/test_sample.py::test_skipped": "skipped",
        "tests/test_sample.py::test_xfail": "xfail",
        "tests/test_sample.py::test_setup_error": "error",
        "tests/test_sample.py::TestGroup::test_in_class": "passed",
        "tests/test_sample.py::TestGroup::test_p[0]": "passed",
        "tests/test_sample.py::TestGroup::test_p[1]": "failed",
        "tests/test_sample.py::test_not_there": "missing",
        # SWE-bench cuts ids at a space inside the parameters: matched by prefix.
        "tests/test_sample.py::test_param[sp": "passed",
        "tests/test_sample.py::test_param[sp ace-nothing": "missing",
        # ... cut at a space only: `test_param[2` was not cut from `test_param[2-3]`.
        "tests/test_sample.py::test_param[2": "missing",
        "tests/test_sample.py::test_param[a": "missing",
    }
    assert outcomes_for(list(ids), parse_junit(report)) == ids


def test_resolved_needs_every_listed_test_passing(report):
    ok = grade(["tests/test_sample.py::test_ok", "tests/test_sample.py::test_xfail"],
               ["tests/test_sample.py::TestGroup::test_p[0]"], report, 1)
    assert ok.resolved and ok.reason is None
    # test_bad "PASSED" was printed to stdout by another test: the report still says failed.
    bad = grade(["tests/test_sample.py::test_bad"], ["tests/test_sample.py::test_ok"], report, 1)
    assert not bad.resolved and "test_bad: failed" in bad.reason
    skipped = grade(["tests/test_sample.py::test_skipped"], [], report, 0)
    assert not skipped.resolved
    missing = grade(["tests/test_sample.py::test_ok"], ["tests/test_sample.py::nope"], report, 0)
    assert not missing.resolved and "missing" in missing.reason


def test_no_report_or_abnormal_exit_is_never_resolved(report):
    assert not grade(["tests/test_sample.py::test_ok"], [], None, 0).resolved
    assert not grade(["tests/test_sample.py::test_ok"], [], report, 2).resolved
    assert not grade(["tests/test_sample.py::test_ok"], [], b"PASSED all good", 0).resolved
    assert not grade(["tests/test_sample.py::test_ok"], [], b"<html/>", 0).resolved


def test_the_report_stream_must_be_pytests_one_document(report):
    from swe_tasks.testrun import report_problem

    raw = report if isinstance(report, bytes) else report.encode()
    assert report_problem(raw) is None and report_problem(b"") is None
    forged = (b'<?xml version="1.0"?><testsuites><testsuite><testcase classname="tests.'
              b'test_sample" name="test_bad"/><x><![CDATA[')
    # a forged prefix that would swallow pytest's report, or text appended after it
    assert "not one XML document" in report_problem(forged + raw + b"]]></x></testsuite>"
                                                     b"</testsuites>")
    assert "not one XML document" in report_problem(b"PASSED\n" + raw)


PATHS = '''
import pytest

@pytest.mark.parametrize("path", ["/", __file__, "/etc/invalid/location"])
def test_unchanged(path):
    assert path

def test_inner_run_prints(capsys):
    print("PASSED [100%]")  # what SWE-bench's parser read as the test id `[100%]`
'''


def test_swe_bench_rewritten_ids_and_ids_that_name_no_test(tmp_path):
    """psf__requests-6028 lists `test_x[/test_utils.py]` for `test_x[/testbed/.../test_utils
    .py]` (SWE-bench cut absolute-path parameters); pytest-dev__pytest-5262/7521 list the
    printed `[100%]` and an inner run's `test_capsysbinary.py::test_hello`."""
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_paths.py").write_text(PATHS)
    xml = tmp_path / "report.xml"
    subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q",
                    f"--junitxml={xml}", "--rootdir", str(tmp_path), "tests"], cwd=tmp_path,
                   capture_output=True, check=True)
    report = xml.read_bytes()
    f2p = ["tests/test_paths.py::test_unchanged[/test_paths.py]",
           "tests/test_paths.py::test_unchanged[/location]"]
    p2p = ["tests/test_paths.py::test_unchanged[/]", "[100%]",
           "test_capsysbinary.py::test_hello", "tests/test_paths.py::test_inner_run_prints"]
    verdict = grade(f2p, p2p, report, 0, absent_files=["test_capsysbinary.py"])
    assert verdict.resolved, verdict.reason
    assert verdict.fail_to_pass == dict.fromkeys(f2p, "passed")
    assert verdict.not_tests == ["[100%]", "test_capsysbinary.py::test_hello"]
    # a file that does exist is graded: its test missing is a failure
    missing = grade(f2p, p2p, report, 0)
    assert not missing.resolved and "test_capsysbinary.py::test_hello: missing" in missing.reason
    # a cut parameter never stands for another test's: no `[/other.py]` here
    other = grade(["tests/test_paths.py::test_unchanged[/other.py]"], [], report, 0)
    assert other.fail_to_pass == {"tests/test_paths.py::test_unchanged[/other.py]": "missing"}
    # ids that name no test cannot be all that shows the fix
    assert "nothing shows the fix" in grade(["[100%]"], [], report, 0).reason


def test_tests_the_spec_says_need_the_internet_are_not_graded_in_pass_to_pass(report):
    bad = "tests/test_sample.py::test_bad"
    verdict = grade(["tests/test_sample.py::test_ok"], [bad], report, 1, network_tests=[bad])
    assert verdict.resolved and verdict.needs_internet == [bad] and verdict.pass_to_pass == {}
    # a FAIL_TO_PASS test is always graded, online or not
    assert not grade([bad], [], report, 1, network_tests=[bad]).resolved
