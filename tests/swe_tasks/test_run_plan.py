"""What a test run and an environment image are planned to hold, from real SWE-bench
Verified records (the runs themselves are real in test_docker_swe.py and in
benchmarks/swebench_validation.py): the files run in the harness's order, the CPUs the
harness gives, the dependencies a fix declares, editable installs on sys.path."""

from __future__ import annotations

import json
import os

import pytest

from sandbox import Limits
from swe_tasks import testrun  # (module: its test_targets / tests_limits are not tests)
from swe_tasks.environment import SITE_DIRS, gold_install_diff, install_steps
from swe_tasks.instance import SWEInstance
from swe_tasks.repo_spec import spec_for
from tests.conftest import require_data


@pytest.fixture(scope="module")
def verified() -> dict[str, SWEInstance]:
    path = require_data("swebench", "swe-bench-verified.jsonl")
    wanted = {"sphinx-doc__sphinx-8120", "pylint-dev__pylint-4661", "pylint-dev__pylint-6528",
              "pytest-dev__pytest-7521"}
    out = {}
    for line in path.open():
        rec = json.loads(line)
        if rec["instance_id"] in wanted:
            out[rec["instance_id"]] = SWEInstance.model_validate(rec)
    return out


def test_the_files_the_ids_name_run_whole_in_the_test_patchs_order(verified):
    # Its ids list test_customize_system_message (FAIL_TO_PASS) first; run by id in that
    # order, test_text_docfields fails (sphinx's shared_result apps). The harness runs the
    # file, in the file's order.
    sphinx = verified["sphinx-doc__sphinx-8120"]
    assert testrun.test_targets(sphinx) == ["tests/test_intl.py"]
    pylint = verified["pylint-dev__pylint-6528"]
    ids = pylint.FAIL_TO_PASS + pylint.PASS_TO_PASS
    assert ids[0].startswith("tests/lint/unittest_lint.py")  # the ids' first file...
    patch_order = [p for p in pylint.test_files if p.endswith(".py")]
    assert testrun.test_targets(pylint) == [p for p in patch_order
                                    if any(i.startswith(p + "::") for i in ids)]
    # Files named only by ids that the test patch does not touch come last.
    assert testrun.test_targets(pylint, ["tests/other.py::test_x", *ids])[-1] == "tests/other.py"


def test_the_tests_get_the_cpus_the_harness_gives_as_far_as_this_machine_has_them(verified):
    spec = spec_for(verified["pylint-dev__pylint-6528"])  # pylint 2.14: cpus 2
    assert spec.cpus == 2.0
    one = Limits(cpus=1, memory_mb=4096, pids=1024, network=False, timeout_s=600)
    got = testrun.tests_limits(one, spec)
    assert got.cpus == min(2.0, float(os.cpu_count() or 1))
    assert (got.memory_mb, got.pids, got.network) == (4096, 1024, False)
    assert testrun.tests_limits(one, spec_for(verified["sphinx-doc__sphinx-8120"])) is one


def test_the_dependencies_a_fix_declares_are_installed_and_only_its_install_hunks_enter(
        verified):
    diff = gold_install_diff(verified["pylint-dev__pylint-4661"])
    assert diff.startswith("diff --git a/setup.cfg b/setup.cfg") and "+    appdirs>=1.4.0" in diff
    assert "pylint/config/__init__.py" not in diff  # the fix itself never enters a build
    assert gold_install_diff(verified["sphinx-doc__sphinx-8120"]) == ""


def test_every_installed_environment_puts_editable_installs_on_sys_path(verified):
    steps = install_steps(spec_for(verified["pylint-dev__pylint-6528"]))
    assert steps[-1] == SITE_DIRS  # last: the layers before it stay cached
