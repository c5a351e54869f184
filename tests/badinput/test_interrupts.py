"""Interrupted rollouts end cleanly: SIGINT/SIGTERM stop dispatching, keep what finished,
remove every sandbox of the run and print the resume command; a second Ctrl-C aborts at
once and still removes them; resume removes leftovers whose owner is gone and finishes."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import uuid

import pytest

from orchestrator.store import Store
from tests.badinput.conftest import ENVFARM, ROOT

pytestmark = [pytest.mark.badinput, pytest.mark.docker]


def start(store: str, label: str, *args: str) -> subprocess.Popen:
    tasks = [arg for i in range(6) for arg in ("--task", f"echo-w{i}")]
    return subprocess.Popen(
        [*ENVFARM, "rollout", "--env", "echo", "--store", store, "--env-arg", f"run={label}",
         *tasks, *args], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)})


def wait_for(check, timeout: float = 180.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    pytest.fail(f"timed out waiting for {what}")


def sandboxes(client, label: str) -> list:
    return client.containers.list(all=True, filters={"label": f"envfarm.run={label}"})


def stored(store: str) -> int:
    st = Store(store)
    runs = st.list_runs()
    return sum(st.status_counts(runs[0]["id"]).values()) if runs else 0


def test_sigint_keeps_finished_episodes_removes_sandboxes_and_resume_finishes(
        tmp_path, docker_client, base_image):
    store, label = f"sqlite:///{tmp_path / 's.db'}", f"int-{uuid.uuid4().hex[:8]}"
    proc = start(store, label, "--executor", "threads", "--concurrency", "2",
                 "--env-arg", "oracle_delay_s=2", "--stop-grace", "0")
    try:
        wait_for(lambda: stored(store) >= 2 and sandboxes(docker_client, label),
                 what="two stored episodes and a running sandbox")
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    run_id = Store(store).list_runs()[0]["id"]
    assert proc.returncode == 130, err
    assert "interrupted (SIGINT)" in out and f"envfarm rollout --resume {run_id}" in out
    assert "Traceback" not in err
    assert not sandboxes(docker_client, label)
    kept = stored(store)
    assert 2 <= kept < 6 and Store(store).get_run(run_id)["state"] == "interrupted"

    # Leftovers of the run: one whose owner is gone (removed by resume), one whose owner
    # lives (kept: another driver may be using it).
    host = socket.gethostname()
    dead = docker_client.containers.run(base_image, "sleep 600", detach=True, labels={
        "envfarm.run": label, "envfarm.owner": f"{host}:{2**22 + 12345}"})
    live = docker_client.containers.run(base_image, "sleep 600", detach=True, labels={
        "envfarm.run": label, "envfarm.owner": f"{host}:{os.getpid()}"})
    try:
        done = subprocess.run([*ENVFARM, "rollout", "--resume", run_id, "--store", store],
                              cwd=ROOT, capture_output=True, text=True, timeout=300,
                              check=False)
        assert done.returncode == 0, done.stderr
        left = {c.id for c in sandboxes(docker_client, label)}
        assert dead.id not in left and live.id in left
    finally:
        for c in (dead, live):
            try:
                c.remove(force=True)
            except Exception:  # noqa: BLE001, S110 — already removed by the resume
                pass
    episodes = list(Store(store).episodes(run_id, statuses=None))
    assert sorted(e.task_id for e in episodes) == [f"echo-w{i}" for i in range(6)]
    assert {e.status for e in episodes} == {"ok"}


def test_second_ctrl_c_aborts_at_once_and_removes_sandboxes(tmp_path, docker_client,
                                                             base_image):
    store, label = f"sqlite:///{tmp_path / 's.db'}", f"abort-{uuid.uuid4().hex[:8]}"
    proc = start(store, label, "--executor", "threads", "--concurrency", "2",
                 "--env-arg", "oracle_delay_s=60", "--stop-grace", "120")
    try:
        wait_for(lambda: len(sandboxes(docker_client, label)) >= 2, what="two sandboxes")
        proc.send_signal(signal.SIGINT)
        time.sleep(1.0)
        proc.send_signal(signal.SIGINT)
        started = time.monotonic()
        out, err = proc.communicate(timeout=60)
        assert time.monotonic() - started < 20
    finally:
        proc.kill()
    assert proc.returncode == 130 and "--resume" in out, err
    assert not sandboxes(docker_client, label)


def test_sigterm_under_ray_removes_the_actors_sandboxes(tmp_path, docker_client, base_image):
    store, label = f"sqlite:///{tmp_path / 's.db'}", f"term-{uuid.uuid4().hex[:8]}"
    proc = start(store, label, "--executor", "ray", "--workers", "1", "--concurrency", "2",
                 "--env-arg", "oracle_delay_s=60", "--stop-grace", "1")
    try:
        wait_for(lambda: len(sandboxes(docker_client, label)) >= 2, timeout=300,
                 what="two sandboxes of the Ray actor")
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 143 and "interrupted (SIGTERM)" in out, err
    assert not sandboxes(docker_client, label)
