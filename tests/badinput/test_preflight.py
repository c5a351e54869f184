"""A rollout that cannot work fails before its run exists, in seconds, with one line:
no engine, a refused or silent model server, unknown or unbuildable tasks, no tasks at
all. A run in which every episode failed exits non-zero with the causes; a task whose
image cannot build is a task_error, never retried."""

from __future__ import annotations

import shutil
import time

import pytest

from envs.terminal.env import EXAMPLE_TASKS
from orchestrator.runner import RolloutConfig
from orchestrator.store import Store
from tests.badinput.conftest import assert_one_line_error, envfarm

pytestmark = pytest.mark.badinput


def no_runs(store: str) -> bool:
    return Store(store).list_runs() == []


def test_no_engine_is_one_line(tmp_path):
    store = f"sqlite:///{tmp_path / 's.db'}"
    out = envfarm("rollout", "--env", "echo", "--task", "echo-a", "--executor", "threads",
                  "--store", store, env={"DOCKER_HOST": f"unix://{tmp_path}/no-docker.sock"},
                  timeout=120)
    assert_one_line_error(out, "engine does not answer", "envfarm doctor")
    assert no_runs(store)


def test_refused_and_silent_model_servers_fail_fast(cli, silent_server):
    refused = cli("rollout", "--env", "echo", "--task", "echo-a", "--policy", "chat",
                  "--vllm-url", "http://127.0.0.1:9")
    assert_one_line_error(refused, "http://127.0.0.1:9", "does not answer", "--vllm-url")
    started = time.monotonic()
    silent = cli("rollout", "--env", "echo", "--task", "echo-a", "--policy", "chat",
                 "--vllm-url", silent_server)
    assert_one_line_error(silent, silent_server, "sent nothing")
    assert time.monotonic() - started < 60  # not 600 s × retries × attempts
    assert no_runs(cli.store)


def test_no_catalogued_tasks_names_the_import(cli):
    line = assert_one_line_error(cli("rollout", "--env", "webdev", "--executor", "threads"),
                                 "no webdev tasks")
    assert "envfarm tasks import-dir" in line and "webdev_tasks" in line
    line = assert_one_line_error(cli("rollout", "--env", "terminal", "--task", "harbor/nope",
                                     "--executor", "threads"), "'harbor/nope'")
    assert "envfarm tasks list" in line
    assert no_runs(cli.store)


def test_the_bundled_swe_example_passes_preflight_and_unknown_ids_are_named(cli):
    """`--task envfarm__wordstats-1` (SWEEnv's bundled example) needs no catalogue; beside
    it, only the id that is nowhere is named."""
    line = assert_one_line_error(
        cli("rollout", "--env", "swe", "--task", "envfarm__wordstats-1", "--task", "nope-1",
            "--executor", "threads"), "'nope-1'")
    assert "wordstats" not in line and "envfarm tasks import" in line
    assert no_runs(cli.store)


def test_retries_ride_out_an_engine_restart():
    config = RolloutConfig(env="echo")
    waited = sum(config.retry_delay_s(a) for a in range(1, config.max_attempts))
    assert 60 <= waited <= 180, waited
    assert max(config.retry_delay_s(a) for a in range(1, 12)) == config.retry_backoff_max_s


@pytest.mark.docker
def test_every_episode_failed_exits_non_zero_with_the_cause(cli, base_image):
    out = cli("rollout", "--env", "echo", "--task", "echo-not!valid", "--executor", "threads",
              "--max-attempts", "1")
    assert_one_line_error(out, "every episode failed (1)", "echo-not!valid", "--resume",
                          after_progress=True)


@pytest.mark.docker
def test_an_image_that_cannot_build_is_one_task_error(cli, tmp_path, base_image):
    task = tmp_path / "tasks" / "broken-build"
    shutil.copytree(EXAMPLE_TASKS / "hello-file", task)
    (task / "environment" / "Dockerfile").write_text("FRM debian:bookworm\nRUN true\n")
    imported = cli("tasks", "import-dir", str(tmp_path / "tasks"))
    assert imported.code == 0, imported.stdout + imported.stderr
    from catalogue import Catalogue

    (record,) = Catalogue(cli.store).query(kind="terminal")
    started = time.monotonic()
    out = cli("rollout", "--env", "terminal", "--task", record.id, "--executor", "threads")
    assert time.monotonic() - started < 120  # no retries with backoff
    assert_one_line_error(out, "every episode failed (1)", "task_error", after_progress=True)
    (episode,) = Store(cli.store).episodes(Store(cli.store).list_runs()[0]["id"], statuses=None)
    assert episode.status == "task_error" and episode.attempts == 1
    assert "FRM" in (episode.error or "") + str(episode.reward_details)


@pytest.mark.docker
def test_a_dataset_folder_of_any_name_builds_and_runs(cli, tmp_path, base_image):
    root = tmp_path / "jeu de données ü"
    shutil.copytree(EXAMPLE_TASKS / "hello-file", root / "tâche ü")
    imported = cli("tasks", "import-dir", str(root))
    assert imported.code == 0, imported.stdout + imported.stderr
    from catalogue import Catalogue

    (record,) = Catalogue(cli.store).query(kind="terminal")
    out = cli("rollout", "--env", "terminal", "--task", record.id, "--executor", "threads")
    assert out.code == 0, out.stdout + out.stderr
    assert Store(cli.store).status_counts(Store(cli.store).list_runs()[0]["id"]) == {"ok": 1}
