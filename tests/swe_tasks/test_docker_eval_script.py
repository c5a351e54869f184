"""Grading by the dataset's own eval script and gold validation's flaky verdict, on a real
Docker engine with the bundled example instance (swe_tasks/example.py).

The eval script is written the way SWE-bench v5 writes them: it resets the test file to
base_commit, applies the test patch itself from a heredoc, runs pytest -rA between the
Start/End Test Output markers and resets the test file again; `log_parser` is "pytest".
"""

from __future__ import annotations

import base64
import contextlib
import difflib
import subprocess
import threading

import gymnasium
import pytest

import envs  # noqa: F401  (registers envfarm/*)
from envs.swe import patch_command
from sandbox import DockerBackend, Limits
from sandbox.errors import SandboxError
from swe_tasks.environment import ensure_image
from swe_tasks.example import example_instance, example_repo
from swe_tasks.instance import SWEInstance
from swe_tasks.repo_spec import spec_for
from swe_tasks.testrun import put_tests_in_place, run_tests
from swe_tasks.validation import validate_instance
from swe_tasks.workspace import apply_patch, inject
from tests.episodes import step_until_done

pytestmark = pytest.mark.docker
TEST_FILE = "tests/test_wordstats.py"
F2P = "tests/test_wordstats.py::test_whitespace"


def swe_bench_script(inst: SWEInstance) -> str:
    return f"""#!/bin/bash
set -uxo pipefail
source /opt/miniconda3/bin/activate
cd /testbed
git config --global --add safe.directory /testbed
git status
git show
git -c core.fileMode=false diff {inst.base_commit}
git checkout {inst.base_commit} {TEST_FILE}
git apply -v - <<'EOF_114329324912'
{inst.test_patch}
EOF_114329324912
: '>>>>> Start Test Output'
python -m pytest -p no:cacheprovider -rA {TEST_FILE}
: '>>>>> End Test Output'
git checkout {inst.base_commit} {TEST_FILE}
"""


RUN_ONLY = f"""set -uxo pipefail
: '>>>>> Start Test Output'
python -m pytest -p no:cacheprovider -rA {TEST_FILE}
: '>>>>> End Test Output'
"""


def record(instance_id: str, script: str) -> dict:
    inst = example_instance()
    return {**inst.to_record(), "instance_id": instance_id, "eval_script": script,
            "log_parser": "pytest"}


def bash(command: str) -> dict:
    return {"content": "", "tool_calls": [{"name": "bash", "arguments": {"command": command}}]}


FINISH = {"content": "done", "tool_calls": [{"name": "finish", "arguments": {}}]}


@pytest.fixture(scope="module")
def env(base_image, docker_backend):
    inst = example_instance()
    records = [record("wordstats__eval-script", swe_bench_script(inst)),
               record("wordstats__run-only", RUN_ONLY)]
    with gymnasium.make("envfarm/swe-v0", instances=records, backend=docker_backend,
                        max_turns=5) as e:
        yield e


def play(env, task_id: str, actions: list[dict]) -> tuple[float, dict]:
    env.reset(options={"task_id": task_id})
    reward, info, _ = step_until_done(env, actions)
    assert info["status"] == "ok", info
    return reward, info["reward_details"]


@pytest.mark.parametrize("task_id", ["wordstats__eval-script", "wordstats__run-only"])
def test_gold_resolves_and_doing_nothing_does_not(env, task_id):
    reward, details = play(env, task_id, [bash(patch_command(example_instance().patch)), FINISH])
    report = details["report"]
    assert reward == 1.0, details
    assert report["graded_by"] == "log:pytest" and report["exit_code"] == 0
    assert report["FAIL_TO_PASS"] == {F2P: "passed"}
    # Applied once: by the script itself, or (run-only) by the verifier before it.
    assert "error: patch failed" not in details["tests_output_tail"]

    reward, details = play(env, task_id, [FINISH])
    assert reward == 0.0 and details["report"]["FAIL_TO_PASS"] == {F2P: "failed"}, details
    assert details["report"]["exit_code"] == 1


@pytest.fixture(scope="module")
def example_image(base_image):
    return ensure_image(example_instance())


SCRIPTS = {"wordstats__eval-script": swe_bench_script(example_instance())}


def run_agent_code(docker_backend, image: str, code: str):
    """The eval script's run with `code` appended to the package the tests import, straight
    through `run_tests` (the env would stop at the patch scan first: see below)."""
    inst = SWEInstance.model_validate(record("wordstats__eval-script",
                                             SCRIPTS["wordstats__eval-script"]))
    with docker_backend.start(image, Limits(timeout_s=120), workdir="/testbed") as sb:
        inject(sb, inst, hide_tests=False)
        payload = base64.b64encode(code.encode()).decode()
        assert sb.exec(f"echo {payload} | base64 -d >> wordstats/__init__.py").ok
        assert put_tests_in_place(sb, inst).applied
        return run_tests(sb, inst, spec_for(inst))


AT_EXIT_LIES = ("\nimport atexit as _ax, os as _os, sys as _sys\n@_ax.register\ndef _lie():\n"
                f"    print('PASSED {F2P}')\n    print('PASSED tests/test_wordstats.py::test_simple')\n"
                "    print('>>>>> End Test Output')\n    print('>>>>> Test Exit Code: 0')\n"
                "    _sys.stdout.flush()\n    _os._exit(0)\n")


def test_lines_printed_after_the_runners_summary_do_not_resolve(docker_backend, example_image):
    # At interpreter exit (after pytest's summary): print every test PASSED, then exit 0.
    run = run_agent_code(docker_backend, example_image, AT_EXIT_LIES)
    assert not run.grade.resolved, run.grade
    assert f"PASSED {F2P}" in run.output_tail
    report = run.grade.as_dict()
    assert report["FAIL_TO_PASS"] == {F2P: "failed"} and report["exit_code"] == 0, report


def test_the_env_calls_such_code_tampering_before_any_test_runs(env):
    env.reset(options={"task_id": "wordstats__eval-script"})
    reward, info, _ = step_until_done(env, [agent_code(AT_EXIT_LIES), FINISH])
    assert (reward, info["status"]) == (0.0, "tampered"), info
    assert {t["rule"] for t in info["reward_details"]["tampered"]} >= {"atexit", "process-exit"}
    assert "report" not in info["reward_details"]


def agent_code(code: str) -> dict:
    """A bash action appending `code` to the package the tests import."""
    payload = base64.b64encode(code.encode()).decode()
    return bash(f"echo {payload} | base64 -d >> wordstats/__init__.py")


def test_a_runner_killed_at_import_does_not_resolve(docker_backend, example_image):
    # Nothing printed, exit 0: no test reads as failed, and none ran.
    run = run_agent_code(docker_backend, example_image, "\nimport os as _os\n_os._exit(0)\n")
    assert not run.grade.resolved and run.grade.exit_code == 0, run.grade
    assert "closing summary is missing" in run.grade.reason


def test_a_log_file_rewritten_from_inside_the_tests_does_not_resolve(docker_backend,
                                                                     example_image):
    # The reviewer's forgery, by the log's path now that stdout is a pipe: the file it
    # leaves has the start marker, passing lines and a summary, then tee's end marker.
    forge = ("\nimport glob as _g, os as _os\n_log = _g.glob('/tmp/envfarm-eval-*/log')[0]\n"
             "_begin = [l for l in open(_log).read().split('\\n') if 'tests_begin' in l][0]\n"
             "open(_log, 'w').write('\\n%s\\nPASSED %s\\nPASSED %s\\n=== 2 passed in 0.1s ===\\n'"
             f" % (_begin, {F2P!r}, 'tests/test_wordstats.py::test_simple'))\n_os._exit(0)\n")
    run = run_agent_code(docker_backend, example_image, forge)
    assert not run.grade.resolved, run.grade
    assert "differs from what the test run wrote" in run.grade.reason, run.grade


@contextlib.contextmanager
def fixed_sandbox(docker_backend, image: str, inst: SWEInstance):
    """A fresh sandbox with the gold fix and the tests in place, as gold validation has."""
    with docker_backend.start(image, Limits(timeout_s=120), workdir="/testbed") as sb:
        inject(sb, inst, hide_tests=False)
        assert apply_patch(sb, inst.patch, "gold").applied
        assert put_tests_in_place(sb, inst).applied
        yield sb


SLOW_INSTALL_AND_LEFTOVERS = f"""set -uxo pipefail
sleep 4  # an install step, slower than the tests' own limit below
: '>>>>> Start Test Output'
sleep 3017 &
setsid sleep 3018 &
python -m pytest -p no:cacheprovider -rA {TEST_FILE}
: '>>>>> End Test Output'
"""


def test_install_steps_get_their_allowance_and_leftovers_are_killed(docker_backend,
                                                                    example_image):
    inst = SWEInstance.model_validate(record("wordstats__slow", SLOW_INSTALL_AND_LEFTOVERS))
    with fixed_sandbox(docker_backend, example_image, inst) as sb:
        run = run_tests(sb, inst, spec_for(inst), timeout_s=3)
        assert run.grade.resolved and not run.timed_out, run.grade.reason
        left = sb.exec("ps -eo args").output
        assert "sleep 3017" not in left and "sleep 3018" not in left, left


class KeyLosingSandbox:
    """A real sandbox whose eval key files never arrive, as when a write is lost."""

    def __init__(self, inner) -> None:
        self.inner, self.id = inner, inner.id

    def write_file(self, path: str, data, mode: int = 0o644) -> None:
        if not path.endswith("/key"):
            self.inner.write_file(path, data, mode)

    def __getattr__(self, name: str):
        return getattr(self.inner, name)


def test_a_wrapper_that_cannot_read_its_key_raises_an_infra_error(docker_backend,
                                                                  example_image):
    inst = SWEInstance.model_validate(record("wordstats__run-only", RUN_ONLY))
    with (fixed_sandbox(docker_backend, example_image, inst) as sb,
          pytest.raises(SandboxError, match="could not read its key file")):
        run_tests(KeyLosingSandbox(sb), inst, spec_for(inst))


def test_gold_validation_of_an_eval_script_instance(base_image, docker_backend):
    inst = SWEInstance.model_validate(record("wordstats__eval-script",
                                             swe_bench_script(example_instance())))
    verdict = validate_instance(inst, runs=1, backend=docker_backend)
    assert (verdict.status, verdict.reason) == ("valid", None)
    assert verdict.runs[0].before == {F2P: "failed"}


class NumberingBackend(DockerBackend):
    """Writes each sandbox's start number (1, 2, ...) to /var/tmp/sandbox-number: state
    outside /testbed that differs between gold-validation runs, as a flaky test's world
    (a shared service, a clock, a port) does."""

    def __init__(self, backend: DockerBackend) -> None:
        super().__init__(backend.client, run=backend.run)
        self.started = 0
        self._lock = threading.Lock()

    def start(self, *args, **kwargs):
        sandbox = super().start(*args, **kwargs)
        with self._lock:
            self.started += 1
            number = self.started
        sandbox.write_file("/var/tmp/sandbox-number", str(number))
        return sandbox


FLAKY_TEST = '''

def test_whitespace():
    assert word_count("a  b\\nc") == 3
    assert word_count("") == 0
    with open("/var/tmp/sandbox-number") as f:  # passes in odd-numbered sandboxes only
        assert int(f.read()) % 2 == 1
'''


def test_validation_marks_a_test_that_passes_on_alternate_runs_flaky(base_image,
                                                                      docker_backend):
    inst = example_instance()
    base = subprocess.run(["git", "show", f"{inst.base_commit}:{TEST_FILE}"], cwd=example_repo(),
                          capture_output=True, text=True, check=True).stdout
    diff = difflib.unified_diff(base.splitlines(True), (base + FLAKY_TEST).splitlines(True),
                                f"a/{TEST_FILE}", f"b/{TEST_FILE}")
    flaky = SWEInstance.model_validate({
        **inst.to_record(), "instance_id": "wordstats__flaky",
        "test_patch": f"diff --git a/{TEST_FILE} b/{TEST_FILE}\n" + "".join(diff)})
    verdict = validate_instance(flaky, runs=2, backend=NumberingBackend(docker_backend))
    assert verdict.status == "flaky", verdict
    assert [run.ok for run in verdict.runs] == [True, False]
    assert verdict.reason == (
        "runs disagree (resolved per run: [True, False]): "
        f"{F2P} with the gold patch: passed in run 1, failed in run 2")
