"""Build ahead of the queue (`--prebuild-ahead`) with real terminal tasks on real Docker:
`TerminalEnv.prepare_image` builds a task's image without an episode (a second call finds
it), and a run with prebuild-ahead builds the next task's image while the first task's
episode runs, so that image exists before its own episode starts."""

from __future__ import annotations

import concurrent.futures as cf
import shutil
import time
import uuid
from pathlib import Path

import pytest

from envs.terminal.env import EXAMPLE_TASKS, TerminalEnv
from envs.terminal.task import load_task
from orchestrator.executors import ThreadExecutor
from orchestrator.jobs import EpisodeJob
from orchestrator.runner import RolloutConfig, RolloutRunner
from orchestrator.store import Store

pytestmark = pytest.mark.docker


def make_task(root: Path, name: str, solve_sleep_s: int = 0) -> str:
    """A copy of the example task whose image is its own (a unique layer) and whose
    reference solution first sleeps `solve_sleep_s`; returns its task id."""
    folder = root / name
    shutil.copytree(EXAMPLE_TASKS / "hello-file", folder)
    dockerfile = folder / "environment" / "Dockerfile"
    dockerfile.write_text(dockerfile.read_text() + f"RUN echo {name} > /prebuild-marker\n")
    solve = folder / "solution" / "solve.sh"
    solve.write_text(f"#!/bin/bash\nsleep {solve_sleep_s}\n" + solve.read_text())
    return load_task(folder).id


@pytest.fixture
def tasks_root(tmp_path: Path, docker_client, base_image):
    """A folder for the test's tasks; the images they got are removed afterwards."""
    root = tmp_path / "tasks"
    root.mkdir()
    made: list[str] = []
    yield root, made
    for tag in made:
        try:
            docker_client.images.remove(tag, force=True)
        except Exception:  # noqa: BLE001, S110 — never built, or removed already
            pass


def test_prepare_image_builds_without_an_episode_and_then_hits_the_cache(tasks_root):
    root, made = tasks_root
    task_id = make_task(root, f"pf-{uuid.uuid4().hex[:8]}")
    options = {"task_dirs": [str(root)]}
    tag = TerminalEnv.prepare_image(task_id, options)
    assert tag is not None
    made.append(tag)
    from sandbox import ImageBuilder

    assert ImageBuilder().exists(tag)
    t = time.monotonic()
    assert TerminalEnv.prepare_image(task_id, options) == tag  # by content: the same image
    assert time.monotonic() - t < 5.0  # found, not built again


class LoggedThreads(ThreadExecutor):
    """The thread executor, noting when each task's episode was handed to a worker."""

    dispatched: dict[str, float] = {}

    def submit(self, job: EpisodeJob, image_key: str | None = None) -> cf.Future:
        self.dispatched.setdefault(job.task_id, time.time())
        return super().submit(job, image_key)


def test_a_run_builds_the_next_tasks_image_while_the_first_episode_runs(tmp_path, tasks_root):
    root, made = tasks_root
    tag = uuid.uuid4().hex[:8]
    first = make_task(root, f"pf-a-{tag}", solve_sleep_s=12)
    second = make_task(root, f"pf-b-{tag}")
    executors: list[LoggedThreads] = []

    class Runner(RolloutRunner):
        def _executor(self) -> LoggedThreads:
            executor = LoggedThreads(self.config.concurrency, self.config.prebuild_ahead)
            executors.append(executor)
            return executor

    store = Store(f"sqlite:///{tmp_path / 'runs.db'}")
    from catalogue import Catalogue
    from orchestrator.cli.tasks_dir import folder_importers

    importer = folder_importers()["terminal"]
    with Catalogue(store.url) as cat:  # the workers find the tasks there, as in a real run
        cat.upsert([importer(root / Path(t).name) for t in (first, second)])
    config = RolloutConfig(env="terminal", task_ids=[first, second], executor="threads",
                           concurrency=1, prebuild_ahead=1)
    summary = Runner(config, store, show_progress=False).run()
    prebuilder = executors[0].prebuilder
    made.extend(r[0] for r in prebuilder.results.values() if r[0])
    episodes = {e.task_id: e for e in store.episodes(summary.run_id, statuses=None)}
    # The first task's image was built by its own episode: asking for it is a cache hit.
    made.append(TerminalEnv.prepare_image(first, {"catalogue_url": store.url}))
    assert summary.statuses == {"ok": 2}, [e.error for e in episodes.values()]
    built, seconds, error = prebuilder.results[second]
    assert error is None and built is not None
    # Built ahead: started while the first episode ran, done before the second began.
    assert prebuilder.started[second] < executors[0].dispatched[second]
    assert prebuilder.finished[second] <= executors[0].dispatched[second]
    assert first not in prebuilder.results  # it was running already: nothing to build ahead
    second_env = TerminalEnv(task_dirs=[str(root)])
    try:
        second_env.reset(options={"task_id": second})
        assert second_env.image == built  # the episode starts from the image built ahead
    finally:
        second_env.close()


def test_a_disk_budget_evicts_the_least_recently_used_image_built_ahead(tasks_root,
                                                                      docker_client):
    """With a budget below two images, building the second removes the first (the least
    recently used), keeps the one just built, and never touches images it did not build."""
    from orchestrator.policy_spec import PolicySpec
    from orchestrator.prebuild import Prebuilder
    from sandbox import ImageBuilder

    root, made = tasks_root
    tag = uuid.uuid4().hex[:8]
    older, newer = make_task(root, f"pf-old-{tag}"), make_task(root, f"pf-new-{tag}")
    options = {"task_dirs": [str(root)]}
    others = {t for i in docker_client.images.list() for t in i.tags}
    builder = Prebuilder(budget_mb=1.0, keep_recent=1)

    def job(task_id: str) -> EpisodeJob:
        return EpisodeJob(run_id=f"pf-{tag}", env_id="envfarm/terminal-v0", task_id=task_id,
                          sample_index=0, env_kwargs=options, policy=PolicySpec(type="noop"))

    for task_id in (older, newer):
        builder.add(task_id, job(task_id))
        result = builder.wait(task_id, timeout_s=600)
        assert result is not None and result[0], result
        made.append(result[0])
    old_tag, new_tag = (builder.results[t][0] for t in (older, newer))
    deadline = time.monotonic() + 60  # eviction follows the build on the builder's thread
    while not builder.evicted and not builder.evict_errors and time.monotonic() < deadline:
        time.sleep(0.1)
    assert builder.evicted == [old_tag], builder.evict_errors
    assert not ImageBuilder().exists(old_tag) and ImageBuilder().exists(new_tag)
    still = {t for i in docker_client.images.list() for t in i.tags}
    assert others <= still | {old_tag}
