"""64 concurrent sessions driven by a separate process, then the client vanishes: every
sandbox is gone after the idle timeout, nothing leaks."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.serve.conftest import start_server

pytestmark = [pytest.mark.docker, pytest.mark.slow]
SESSIONS = 64


def running(client, run: str) -> int:
    return len(client.api.containers(all=True, filters={"label": f"envfarm.run={run}"}))


def test_abandoned_sessions_and_their_sandboxes_are_closed_after_the_idle_timeout(
        base_image, docker_client):
    for server in start_server(idle_timeout_s=15, reap_interval_s=0.5):
        started = time.monotonic()
        out = subprocess.run(
            [sys.executable, str(Path(__file__).with_name("load_client.py")), server.url,
             server.token, str(SESSIONS)], capture_output=True, text=True, timeout=600,
            cwd=Path(__file__).parents[2], check=False)
        assert out.returncode == 0, out.stderr[-2000:]
        ids = json.loads(out.stdout)
        assert len(set(ids)) == SESSIONS
        opened_s = time.monotonic() - started
        sessions = server.app.state.sessions
        assert running(docker_client, server.run) > 0  # the client left them open
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and (len(sessions) or
                                               running(docker_client, server.run)):
            time.sleep(0.5)
        assert len(sessions) == 0
        assert running(docker_client, server.run) == 0
        assert sessions.closed_idle == SESSIONS
        print(f"{SESSIONS} sessions opened and stepped in {opened_s:.1f} s; all closed "
              f"{time.monotonic() - started - opened_s:.1f} s later")
