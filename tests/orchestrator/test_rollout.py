"""Rollouts on real sandboxes: rewards, retries of infrastructure failures, resume after
the driver is SIGKILLed, Ray actors, an engine outage ridden out, typed jobs."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid

import pytest

from orchestrator.policy_spec import PolicySpec
from orchestrator.runner import RolloutConfig, RolloutRunner
from orchestrator.store import Store
from tests.orchestrator.tcp_proxy import TcpProxy

pytestmark = pytest.mark.docker
TASKS = ["echo-alpha", "echo-beta", "echo-gamma"]


@pytest.fixture
def store(tmp_path):
    return Store(f"sqlite:///{tmp_path / 'runs.db'}")


def rollout(store, policy="oracle", **overrides) -> RolloutRunner:
    settings = {"n": 2, "concurrency": 3, "executor": "threads", "retry_backoff_s": 0.2,
                **overrides}
    config = RolloutConfig(env="echo", task_ids=TASKS, policy=PolicySpec(type=policy), **settings)
    return RolloutRunner(config, store, show_progress=False)


def test_oracle_scores_one_and_noop_scores_zero(store, base_image):
    oracle = rollout(store).run()
    noop = rollout(store, policy="noop").run()
    assert oracle.statuses == {"ok": 6} and noop.statuses == {"ok": 6}
    assert {e.reward for e in store.episodes(oracle.run_id)} == {1.0}
    assert {e.reward for e in store.episodes(noop.run_id)} == {0.0}
    assert {(e.task_id, e.sample_index) for e in store.episodes(oracle.run_id)} == {
        (t, i) for t in TASKS for i in range(2)}


def test_containers_killed_mid_episode_are_retried_never_scored(store, base_image,
                                                                docker_client):
    label = f"killme-{uuid.uuid4().hex[:6]}"
    killed: list[str] = []

    def kill_running() -> None:
        deadline = time.monotonic() + 20
        while not killed and time.monotonic() < deadline:
            for c in docker_client.containers.list(filters={"label": f"envfarm.run={label}"}):
                c.kill()
                killed.append(c.id)
            time.sleep(0.2)

    killer = threading.Thread(target=kill_running)
    killer.start()
    summary = rollout(store, env_kwargs={"run": label, "oracle_delay_s": 2}).run()
    killer.join()
    assert killed, "the test killed no container"
    assert summary.retried >= 1
    assert summary.statuses == {"ok": 6}  # the final dataset is complete...
    episodes = list(store.episodes(summary.run_id))
    assert {e.reward for e in episodes} == {1.0}  # ...and no infra failure became a 0
    assert max(e.attempts for e in episodes) >= 2


def test_driver_sigkill_then_resume_loses_and_duplicates_nothing(tmp_path, base_image):
    url = f"sqlite:///{tmp_path / 'kill.db'}"
    tasks = [f"echo-w{i}" for i in range(6)]
    cmd = [sys.executable, "-m", "orchestrator.cli", "rollout", "--env", "echo",
           "--executor", "threads", "--concurrency", "2", "--store", url,
           "--env-arg", "oracle_delay_s=1", *[a for t in tasks for a in ("--task", t)]]
    driver = subprocess.Popen(cmd, start_new_session=True, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    store = Store(url)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            runs = store.list_runs()
            if runs and sum(store.status_counts(runs[0]["id"]).values()) >= 2:
                break
            time.sleep(0.2)
        else:
            pytest.fail("the driver stored nothing in time")
    finally:
        os.killpg(driver.pid, signal.SIGKILL)
        driver.wait()
    run_id = store.list_runs()[0]["id"]
    before = sum(store.status_counts(run_id).values())
    assert 2 <= before < 6
    subprocess.run([*cmd[:3], "rollout", "--resume", run_id, "--store", url], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=300)
    episodes = list(store.episodes(run_id, statuses=None))
    assert sorted(e.task_id for e in episodes) == sorted(tasks)  # each exactly once
    assert {e.status for e in episodes} == {"ok"} and {e.reward for e in episodes} == {1.0}
    # The killed driver's containers are leftovers that gc finds (their owner is dead).
    from sandbox import connect
    from sandbox.gc import gc_containers

    gc_containers(connect(), run=run_id)


@pytest.mark.slow
def test_rollout_on_ray_actors(store, base_image):
    import ray

    try:
        summary = rollout(store, executor="ray", workers=2, concurrency=2).run()
    finally:
        ray.shutdown()
    assert summary.statuses == {"ok": 6}
    workers = {e.worker for e in store.episodes(summary.run_id)}
    assert all(w and w.split(":")[0] for w in workers)


def test_dynamic_sampling_skips_tasks_already_solved_or_hopeless(store, base_image):
    history = rollout(store, n=2).run()  # oracle: every task solved twice
    assert history.statuses == {"ok": 6}
    again = rollout(store, n=2, skip_solved_or_hopeless=True, min_history=2)
    items, skipped = again.plan()
    assert items == [] and skipped == len(TASKS)
    fresh = RolloutRunner(RolloutConfig(env="echo", task_ids=["echo-new"], n=2,
                                        skip_solved_or_hopeless=True, min_history=2),
                          store, show_progress=False)
    assert len(fresh.plan()[0]) == 2  # no history yet: sampled


class UnixProxy(TcpProxy):
    """The proxy in front of the Docker engine's Unix socket: `stop()` is the engine gone
    for everyone who talks to it through DOCKER_HOST, `start()` is it back."""

    def __init__(self, path: str) -> None:
        super().__init__("127.0.0.1", 0)
        self.path = path

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            server = socket.socket(socket.AF_UNIX)
            try:
                server.connect(self.path)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._conns += [client, server]
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()


def test_an_engine_outage_costs_no_attempts_and_leaves_no_sandbox(store, base_image,
                                                                  docker_client, monkeypatch):
    proxy = UnixProxy("/var/run/docker.sock")
    proxy.start()
    monkeypatch.setenv("DOCKER_HOST", f"tcp://127.0.0.1:{proxy.port}")
    label = f"outage-{uuid.uuid4().hex[:6]}"
    runner = rollout(store, n=2, retry_backoff_s=1.0, stall_report_s=5,
                     env_kwargs={"run": label, "oracle_delay_s": 2})

    def outage() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not store.list_runs():
            time.sleep(0.1)
        while time.monotonic() < deadline and not docker_client.containers.list(
                filters={"label": f"envfarm.run={label}"}):
            time.sleep(0.1)
        proxy.stop()
        time.sleep(15)  # longer than every attempt of the old 2 s + 4 s backoff
        proxy.start()

    cut = threading.Thread(target=outage)
    cut.start()
    try:
        summary = runner.run()
    finally:
        cut.join()
        proxy.stop()
    assert summary.statuses == {"ok": 6}
    assert max(e.attempts for e in store.episodes(summary.run_id)) <= 2
    assert not docker_client.containers.list(all=True, filters={"label": f"envfarm.run={label}"})


def test_jobs_are_typed_and_carry_the_run(store):
    runner = rollout(store, env_kwargs={"oracle_delay_s": 1}, max_turns=3)
    from orchestrator.runner import WorkItem

    job = runner.job(WorkItem("echo-a", 1, attempt=2))
    assert job.run_id == runner.run_id and job.seed == 1 and job.attempt == 2
    assert job.env_kwargs == {"catalogue_url": store.url, "oracle_delay_s": 1}
    assert job.backend is not None and job.backend["type"]  # resolved, stored with the run
    assert job.sandbox_run == runner.run_id
    import pickle

    assert pickle.loads(pickle.dumps(job)) == job  # crosses to Ray actors as it is
