"""`envfarm view` as a user starts it: a real uvicorn server in its own process."""

from __future__ import annotations

import subprocess
import sys
import time

import httpx
import pytest

from tests.viewer.conftest import free_port

# The `view` command as `envfarm` registers it (orchestrator/cli/__init__.py).
LAUNCH = ("import typer; from orchestrator.cli.view_cmd import view; "
          "app = typer.Typer(); app.command()(view); app()")


def test_view_serves_the_store_until_stopped(synthetic_store):
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-c", LAUNCH, "--store", synthetic_store.url,
                             "--port", str(port)], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                got = httpx.get(f"http://127.0.0.1:{port}/runs/run-synthetic", timeout=5)
                break
            except httpx.TransportError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"envfarm view did not start: {proc.communicate()[0][-2000:]}")
                time.sleep(0.2)
        assert got.status_code == 200 and "Episodes by status" in got.text
        assert got.headers["server-timing"].startswith("app;dur=")
        assert httpx.get(f"http://127.0.0.1:{port}/static/viewer.js").status_code == 200
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def test_view_without_a_store_says_how_to_give_one(tmp_path):
    proc = subprocess.run([sys.executable, "-c", LAUNCH, "--store",
                           f"sqlite:///{tmp_path / 'none.db'}"],
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode != 0
    assert "--store" in proc.stdout + proc.stderr
