"""The runner on the simulated engine: fast, no Docker, real runner, real store.

The simulated backend (sandbox/sim_backend.py) and the scripted agent
(orchestrator/sim_agent.py) are real implementations of their protocols, so these tests
exercise dispatch, retries, the store writer and the Ray executor's choice of actor at
concurrency no Docker test can afford. The Ray test starts a local Ray (marker `scale`).
"""

from __future__ import annotations

import json
import os
import random
import signal
import threading
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from orchestrator.policy_spec import PolicySpec
from orchestrator.records import EpisodeRecord
from orchestrator.runner import RolloutConfig, RolloutRunner
from orchestrator.store import Store
from sandbox import BackendConfig, SandboxError
from sandbox.sim_backend import Empirical, SimBackend

PROFILE = Path(__file__).parents[2] / "benchmarks" / "results" / "sim_profile.json"


def sim_rollout(store: Store, tasks: int, *, concurrency: int = 50, time_scale: float = 0.0,
                think_scale: float = 0.0, policy: PolicySpec | None = None,
                **backend: object) -> RolloutRunner:
    config = RolloutConfig(
        env="sim-agent", imports=["orchestrator.sim_agent"], policy=policy or PolicySpec(),
        task_ids=[f"sim-w{i}" for i in range(tasks)], executor="threads",
        concurrency=concurrency, retry_backoff_s=0.05, retry_backoff_max_s=0.1,
        env_kwargs={"turns": 4, "think_scale": think_scale},
        backend=BackendConfig(type="sim", options={"time_scale": time_scale, "seed": 7,
                                                   **backend}))
    return RolloutRunner(config, store, show_progress=False)


@pytest.fixture()
def store(tmp_path: Path) -> Store:
    return Store(f"sqlite:///{tmp_path / 'store.db'}")


def keys(store: Store, run_id: str) -> list[tuple[str, int]]:
    with store.engine.connect() as conn:
        return [(r.task_id, r.sample_index) for r in conn.execute(sa.text(
            "SELECT task_id, sample_index FROM episodes WHERE run_id = :r"), {"r": run_id})]


def test_the_profile_is_measured_docker_and_draws_stay_in_its_range() -> None:
    profile = json.loads(PROFILE.read_text())
    assert profile["backend"] == "docker" and profile["summary"]["start_s"]["n"] >= 20
    backend = SimBackend(profile=str(PROFILE), seed=1)
    start = backend.start_latency
    assert isinstance(start, Empirical)
    rng = random.Random(3)
    draws = [start.draw(rng) for _ in range(2000)]
    lo, hi = min(profile["samples"]["start_s"]), max(profile["samples"]["start_s"])
    assert lo <= min(draws) and max(draws) <= hi
    median = sorted(draws)[1000]
    assert abs(median - profile["summary"]["start_s"]["p50"]) < 0.25 * median
    measured = profile["failures"]["start"] / profile["attempts"]["start"]
    assert backend.start_failure_rate == measured  # the profile's rate unless one is given
    assert SimBackend(profile=str(PROFILE), start_failure_rate=0.5).start_failure_rate == 0.5


def test_sim_backend_waits_what_the_profile_says() -> None:
    backend = SimBackend(start=Empirical((0.05, 0.05)), time_scale=1.0)
    t = time.monotonic()
    box = backend.start("img")
    assert 0.04 < time.monotonic() - t < 1.0
    assert box.exec("echo hi > /tmp/a && cat /tmp/a").output == "hi\n"
    with pytest.raises(SandboxError):
        SimBackend(start_failure_rate=1.0, time_scale=0).start("img")


def test_400_sim_episodes_at_100_running_each_stored_once_with_reward(store: Store) -> None:
    summary = sim_rollout(store, 400, concurrency=100, time_scale=0.002).run()
    assert summary.statuses == {"ok": 400} and summary.stored == 400
    assert {e.reward for e in store.episodes(summary.run_id, with_calls=False)} == {1.0}
    assert sorted(keys(store, summary.run_id)) == sorted((f"sim-w{i}", 0) for i in range(400))


def test_engine_failures_are_retried_and_never_stored_twice(store: Store) -> None:
    runner = sim_rollout(store, 150, start_failure_rate=0.2)
    runner.config = runner.config.model_copy(update={"max_attempts": 10, "engine_wait_s": 0})
    summary = runner.run()
    assert summary.statuses == {"ok": 150}
    assert summary.retried > 5  # about 20% of first attempts failed
    got = keys(store, summary.run_id)
    assert len(got) == len(set(got)) == 150
    attempts = [e.attempts for e in store.episodes(summary.run_id, with_calls=False)]
    assert max(attempts) >= 2 and sum(a - 1 for a in attempts) == summary.retried


def test_the_scripted_policy_books_the_models_wait_under_policy_time(store: Store) -> None:
    scripted = PolicySpec(type="scripted", script="orchestrator.sim_agent:scripted_policy")
    runs = {name: sim_rollout(store, 6, concurrency=6, think_scale=0.1, policy=policy).run()
            for name, policy in (("scripted", scripted), ("oracle", None))}
    for name, summary in runs.items():
        assert summary.statuses == {"ok": 6}, name
        episodes = list(store.episodes(summary.run_id, with_calls=False))
        waits = [(e.timings["policy_s"], e.timings["env_s"]) for e in episodes]
        if name == "scripted":  # 5 model calls of ~0.06 s each, in act()
            assert all(p > 0.1 and p > e for p, e in waits), waits
        else:  # the same wait, in the env's step
            assert all(p < 0.05 and e > 0.1 for p, e in waits), waits
    with pytest.raises(ValueError, match="module:function"):
        PolicySpec(type="scripted").build(None, "sim-x")


class FailingStore(Store):
    """A real store whose writes start failing after `ok` episodes (the database left)."""

    def __init__(self, url: str, ok: int) -> None:
        super().__init__(url)
        self.ok = ok
        self.lock = threading.Lock()

    def save_episodes(self, records: list[EpisodeRecord]) -> int:
        with self.lock:
            self.ok -= len(records)
            if self.ok < 0:
                raise sa.exc.OperationalError("INSERT", {}, Exception("database is gone"))
        return super().save_episodes(records)


def test_a_failing_store_write_stops_the_run_with_its_error(tmp_path: Path) -> None:
    store = FailingStore(f"sqlite:///{tmp_path / 'fail.db'}", ok=20)
    with pytest.raises(sa.exc.OperationalError, match="database is gone"):
        sim_rollout(store, 200, concurrency=20).run()
    stored = len(list(store.episodes(store.list_runs()[0]["id"], with_calls=False)))
    assert 0 < stored <= 20  # what was written before the failure stays; nothing after


@pytest.mark.scale
def test_ray_actor_killed_mid_run_its_episodes_retried_once_none_lost(store: Store) -> None:
    """Two threaded actors on a local Ray; one's process is SIGKILLed (the actor restarts)
    with episodes on it:
    each of those is retried once, the new episodes avoid it while it restarts, and the
    store holds every episode exactly once."""
    import ray

    from orchestrator.ray_executor import RayExecutor

    config = RolloutConfig(
        env="sim-agent", imports=["orchestrator.sim_agent"],
        task_ids=[f"sim-r{i}" for i in range(240)], executor="ray", workers=2,
        concurrency=30, retry_backoff_s=0.2, retry_backoff_max_s=0.5, max_attempts=3,
        env_kwargs={"turns": 3, "think_scale": 0.3},
        backend=BackendConfig(type="sim", options={"time_scale": 0.3, "seed": 3}))
    seen: dict[str, int] = {}
    made: list[RayExecutor] = []

    class KillingRunner(RolloutRunner):
        def _executor(self) -> RayExecutor:
            executor = super()._executor()
            made.append(executor)
            pid = ray.get(executor.actors[0].pid.remote(), timeout=120)

            def kill() -> None:  # the actor's process dies (its node went away)
                while sum(executor.load) < 55:
                    time.sleep(0.05)
                seen["on_actor"] = executor.load[0]
                os.kill(pid, signal.SIGKILL)

            threading.Thread(target=kill, daemon=True).start()
            return executor

    try:
        summary = KillingRunner(config, store, show_progress=False).run()
    finally:
        ray.shutdown()
    assert summary.statuses == {"ok": 240}
    got = keys(store, summary.run_id)
    assert len(got) == len(set(got)) == 240
    attempts = [e.attempts for e in store.episodes(summary.run_id, with_calls=False)]
    assert max(attempts) == 2
    assert summary.retried == sum(a - 1 for a in attempts)
    assert seen["on_actor"] - 3 <= summary.retried <= seen["on_actor"]
    # Episodes travel in batches: fewer actor calls than episodes run (240 + retries).
    assert made[0].exchanges < 240


def test_image_affinity_keeps_an_image_on_its_home_while_it_has_room() -> None:
    from orchestrator.image_schedule import ImageAffinity

    affinity = ImageAffinity()
    load = [0, 0, 0]
    first = affinity.choose("repo-1.0", load, 2, [0, 1, 2])
    load[first] += 1
    other = affinity.choose("repo-2.0", load, 2, [0, 1, 2])
    assert other != first  # a new image goes to the least loaded
    load[other] += 1
    assert affinity.choose("repo-1.0", load, 2, [0, 1, 2]) == first  # home has room
    load[first] = 2
    assert affinity.choose("repo-1.0", load, 2, [0, 1, 2]) not in (first,)  # home full
    assert affinity.choose("repo-1.0", [0, 0, 0], 2, [1, 2]) in (1, 2)  # home unusable


def test_affinity_and_build_ahead_beat_fifo_on_a_simulated_schedule() -> None:
    from orchestrator.image_schedule import DiskCache, make_catalogue, simulate

    catalogue, schedule = make_catalogue(60, 1500, [(30.0, 20.0), (60.0, 40.0)], seed=3)
    runs = {(p, a): simulate(catalogue, schedule, policy=p, nodes=4, slots=4, budget_mb=300,
                             episode_s=[100.0] * len(schedule), prebuild_ahead=a)
            for p, a in [("fifo", 0), ("affinity", 0), ("affinity", 4)]}
    fifo, aff, ahead = runs["fifo", 0], runs["affinity", 0], runs["affinity", 4]
    assert aff.hit_rate > fifo.hit_rate and aff.build_s < fifo.build_s
    assert ahead.waited_s < aff.waited_s and ahead.hit_rate >= aff.hit_rate
    cache = DiskCache(budget_mb=50)
    cache.add("a", 30, 0.0, set())
    cache.add("b", 30, 1.0, {"a"})  # a is pinned (its queue needs it): over budget, kept
    assert "a" in cache and "b" in cache
    cache.add("c", 10, 2.0, set())  # a is the least recently used unpinned image
    assert "a" not in cache and cache.used_mb == 40 and cache.evictions == 1


@pytest.mark.scale
def test_ray_actors_prepare_the_next_images_of_their_own_queue(store: Store) -> None:
    """With prebuild_ahead, each image is prepared once, by the actor that is its home,
    and the episodes of that image then run there while it has room."""
    import ray

    prepared: list[dict[str, tuple]] = []
    homes: dict[str, int] = {}

    class Runner(RolloutRunner):
        def _loop(self, executor: object, *args: object) -> None:
            super()._loop(executor, *args)
            prepared.extend(executor.prepared())  # type: ignore[attr-defined]
            homes.update(executor.affinity.home)  # type: ignore[attr-defined]

    config = RolloutConfig(
        env="sim-agent", imports=["orchestrator.sim_agent"],
        task_ids=[f"sim-p{i}" for i in range(30)], executor="ray", workers=2,
        concurrency=3, prebuild_ahead=2, env_kwargs={"turns": 2, "think_scale": 0.1},
        backend=BackendConfig(type="sim", options={"time_scale": 0.2, "seed": 5}))
    try:
        summary = Runner(config, store, show_progress=False).run()
    finally:
        ray.shutdown()
    assert summary.statuses == {"ok": 30}
    # Images were prepared ahead (the sim env has no per-task image: the default hook
    # answers None), each once, by the actor that is its home, never the first ones
    # (they were running already).
    assert sum(map(len, prepared)) >= 4
    for actor, results in enumerate(prepared):
        assert all(homes[key] == actor for key in results)
        assert all(tag is None and error is None for tag, _, error in results.values())
    assert not set(prepared[0]) & set(prepared[1])
    assert not {"sim-p0", "sim-p1"} & (set(prepared[0]) | set(prepared[1]))
