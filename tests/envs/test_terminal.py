"""Terminal env: task folders read unchanged, images by content, Harbor and TB1 grading.

The docker tests run the real thing: the task's Dockerfile built through the image
layer, an episode in a sandbox, the tests copied in after the agent finished.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from envs.terminal import TaskFormatError, TerminalEnv, load_task, noop_actions, oracle_actions
from envs.terminal.env import EXAMPLE_TASKS
from envs.terminal.image import _drop_ubuntu_only
from envs.terminal.verify import grade_pytest, parse_pytest
from tests.episodes import step_until_done

DATA = Path(os.environ.get("ENVFARM_DATA", Path(__file__).resolve().parents[3] / "shared" / "data")
            ) / "terminal-bench"
TB1, HARBOR = DATA / "tb1", DATA / "harbor" / "environments_harbor"
needs_data = pytest.mark.skipif(not TB1.is_dir(), reason=f"reference data not at {DATA}")

EVOEVAL_SUMMARY = """
============================= test session starts ==============================
collected 2 items
../tests/test_outputs.py .F                                              [100%]
=========================== short test summary info ============================
PASSED ../tests/test_outputs.py::test_solution_exists
FAILED ../tests/test_outputs.py::test_solution_correct - AssertionError
========================= 1 failed, 1 passed in 0.05s ==========================
"""


def test_parse_pytest_summary_and_verbose_lines():
    results = parse_pytest(EVOEVAL_SUMMARY)
    assert results == {"../tests/test_outputs.py::test_solution_exists": "PASSED",
                       "../tests/test_outputs.py::test_solution_correct": "FAILED"}
    assert grade_pytest(results) == 0.0
    verbose = "a_test.py::T::test_one PASSED [ 50%]\na_test.py::T::test_two PASSED [100%]\n"
    assert grade_pytest(parse_pytest(verbose)) == 1.0
    assert grade_pytest(parse_pytest("ERROR tests/x.py - ImportError\n" + "short test summary info\n"
                                     "ERROR tests/x.py - ImportError")) == 0.0
    assert parse_pytest("bash: pytest: command not found") == {}
    assert grade_pytest({}) == 0.0  # nothing passed is not a pass


def test_ubuntu_only_run_lines_are_dropped_with_a_note():
    notes: list[str] = []
    text = ("FROM x\nRUN apt-get update && apt-get install -y \\\n   software-properties-common \\\n"
            "   && add-apt-repository ppa:deadsnakes/ppa\nRUN echo kept\n")
    out = _drop_ubuntu_only(text, notes)
    assert out == "FROM x\nRUN echo kept\n" and len(notes) == 1


@needs_data
def test_tb1_and_harbor_folders_load_unchanged():
    tb1 = load_task(TB1 / "evoeval" / "0")
    assert (tb1.id, tb1.format, tb1.agent_timeout_s, tb1.verifier_timeout_s) == (
        "tb1/evoeval/0", "tb1", 600.0, 120.0)
    assert tb1.instruction.startswith("Solve this python programming problem")
    assert tb1.cpus is None  # its compose file sets no CPU cap; aider's set one
    assert load_task(TB1 / "aider_polyglot" / "polyglot_python_bowling").cpus == 1.0
    harbor = load_task(HARBOR / "jq_parsing_malformed_json_recovery_hard")
    assert (harbor.format, harbor.agent_timeout_s, harbor.verifier_timeout_s) == ("harbor", 900.0, 240.0)
    assert harbor.solution is None and harbor.allow_internet is True
    assert harbor.context_dir.endswith("environment")
    with pytest.raises(TaskFormatError, match="missing tests folder"):
        load_task(TB1 / "evoeval" / "5")


def test_a_folder_that_is_no_task_is_a_task_error(tmp_path):
    with pytest.raises(TaskFormatError, match="neither task.toml"):
        load_task(tmp_path)
    (tmp_path / "task.toml").write_text("not = [valid")
    with pytest.raises(TaskFormatError, match="not valid TOML"):
        load_task(tmp_path)


def _episode(env: TerminalEnv, task_id: str, actions: list[dict]) -> tuple[float, dict]:
    env.reset(options={"task_id": task_id})
    reward, info, _ = step_until_done(env, actions)
    return reward, info


@pytest.mark.docker
def test_example_task_oracle_one_noop_zero_and_tests_enter_late(docker_backend):
    task = str(EXAMPLE_TASKS / "hello-file")
    with TerminalEnv(backend=docker_backend) as env:
        env.reset(options={"task_id": task})
        obs, *_ = env.step({"tool_calls": [{"name": "bash", "arguments": {
            "command": "ls /tests /logs/verifier 2>&1 | head -3; pwd"}}]})
        assert "No such file" in obs[0]["content"] and "/app" in obs[0]["content"]
        assert env.oracle_actions(task) == oracle_actions(load_task(task))
        reward, info = _episode(env, task, oracle_actions(load_task(task)))
        assert (reward, info["status"]) == (1.0, "ok")
        assert any("FROM" in n for n in info["reward_details"]["image_notes"])
        reward, info = _episode(env, task, noop_actions())
        assert (reward, info["status"]) == (0.0, "ok")


@pytest.mark.docker
def test_missing_reward_file_is_a_task_error_and_a_planted_one_is_tampering(docker_backend,
                                                                             tmp_path):
    task_dir = tmp_path / "no-reward"
    shutil.copytree(EXAMPLE_TASKS / "hello-file", task_dir)
    (task_dir / "tests" / "test.sh").write_text("#!/bin/bash\necho 'tests ran, wrote nothing'\n")
    with TerminalEnv(backend=docker_backend) as env:
        env.reset(options={"task_id": str(task_dir)})
        # a reward the agent plants is tampering with the verifier's outputs
        env.step({"tool_calls": [{"name": "bash", "arguments": {
            "command": "mkdir -p /logs/verifier && echo 1 > /logs/verifier/reward.txt"}}]})
        _, reward, terminated, truncated, info = env.step(noop_actions()[0])
        assert (info["status"], reward) == ("tampered", 0.0)
        assert any("/logs/verifier" in p for p in info["reward_details"]["tampered"])
        # doing nothing: the tests write no verdict on the task's own image either,
        # so the task is broken (not retried, not scored), not the agent
        env.reset(options={"task_id": str(task_dir)})
        _, reward, terminated, truncated, info = env.step(noop_actions()[0])
    assert info["status"] == "task_error" and (terminated, truncated) == (False, True)
    assert reward == 0.0  # and the trainer drops it: status says the reward means nothing
    assert "wrote no /logs/verifier/reward.txt" in info["error"]
    assert "tests ran, wrote nothing" in info["error"]


@pytest.mark.docker
def test_reward_json_and_agent_timeout_from_task_file(docker_backend, tmp_path):
    task_dir = tmp_path / "json-reward"
    shutil.copytree(EXAMPLE_TASKS / "hello-file", task_dir)
    (task_dir / "tests" / "test.sh").write_text(
        "#!/bin/bash\necho '{\"reward\": 0.5, \"style\": 1}' > /logs/verifier/reward.json\n")
    toml = (task_dir / "task.toml").read_text().replace("timeout_sec = 300.0", "timeout_sec = 2.0")
    (task_dir / "task.toml").write_text(toml)
    with TerminalEnv(backend=docker_backend) as env:
        env.reset(options={"task_id": str(task_dir)})
        assert env.time_limit_s == 2.0
        _, reward, _, truncated, info = env.step({"tool_calls": [{"name": "bash", "arguments": {
            "command": "sleep 10"}}]})
    assert (info["status"], truncated, reward) == ("agent_timeout", True, 0.5), info.get("error")
    assert info["reward_details"]["rewards"] == {"reward": 0.5, "style": 1.0}


TB1_SAMPLE = ["evoeval/0", "evoeval/17", "evoeval/42", "evoeval/63", "evoeval/99",
              "aider_polyglot/polyglot_python_affine-cipher",
              "aider_polyglot/polyglot_python_bowling",
              "aider_polyglot/polyglot_python_grep",
              "aider_polyglot/polyglot_python_poker",
              "aider_polyglot/polyglot_python_zipper"]


@needs_data
@pytest.mark.docker
@pytest.mark.slow
@pytest.mark.parametrize("name", TB1_SAMPLE)
def test_tb1_oracle_scores_one_and_noop_zero(name):
    from envs.terminal.validate import check_task

    check = check_task(load_task(TB1 / name), run_label="pytest-terminal")
    assert check.error is None, check.error
    assert check.oracle_rewards == [1.0] and check.noop_reward == 0.0, check.summary()
    assert check.verdict()[0] == "valid"


# All five build here (their FROM mapped to the Ubuntu-like stand-in base) because apt and PyPI
# are reachable at build time; each needs that internet access. Two download so much that a
# cold build alone would take most of this suite's time budget: they run with
# ENVFARM_TERMINAL_HEAVY=1 (measured cold here: 239 s and 93 s; noop -> 0.0 for both).
HARBOR_SKIP: dict[str, str] = {} if os.environ.get("ENVFARM_TERMINAL_HEAVY") else {
    "R_package_dependency_missing_medium":
        "its image installs r-base and build-essential from apt at build time (~4 min cold); "
        "set ENVFARM_TERMINAL_HEAVY=1 to run it",
    "openmp_target_offload_gpu_medium":
        "its image installs gcc, g++ and libomp from apt at build time (~1.5 min cold); "
        "set ENVFARM_TERMINAL_HEAVY=1 to run it",
}


@needs_data
@pytest.mark.docker
@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(p.name for p in HARBOR.iterdir()) if HARBOR.is_dir() else [])
def test_harbor_noop_scores_zero(name):
    from envs.terminal.validate import check_task

    if name in HARBOR_SKIP:
        pytest.skip(HARBOR_SKIP[name])
    check = check_task(load_task(HARBOR / name), run_label="pytest-terminal")
    assert check.error is None, check.error
    assert (check.noop_reward, check.noop_status) == (0.0, "ok"), check.summary()
    assert check.verdict() == ("invalid", f"no reference solution to check ({check.summary()})")


@pytest.mark.docker
def test_sandboxes_carry_the_label_of_the_rollout_run_driving_them(docker_client):
    """`envfarm sandbox gc --run RUN` must find a crashed rollout's leftovers."""
    import contextvars

    from sandbox.docker_backend import current_run

    def start_under_run() -> str:
        current_run.set("run-under-test")
        with TerminalEnv() as env:
            env.reset(options={"task_id": str(EXAMPLE_TASKS / "hello-file")})
            return docker_client.containers.get(env.sandbox.id).labels["envfarm.run"]

    assert contextvars.Context().run(start_under_run) == "run-under-test"
