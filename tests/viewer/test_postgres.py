"""The viewer over PostgreSQL: the dialect's own SQL (minute buckets, floor, ILIKE over
the JSON text, read-only sessions) on a throwaway server of the machine's binaries."""

from __future__ import annotations

import glob
import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from orchestrator.store import Store
from orchestrator.viewer import ViewerConfig, create_app, readonly_engine
from tests.viewer.conftest import free_port

RUN = "run-pg"


def _as_postgres(cmd: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


@pytest.fixture(scope="module")
def pg_url():
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"))
    if not found:
        msg = "PostgreSQL server binaries not found; run `make setup` (scripts/setup.d/postgres.sh)"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)
    import psycopg

    bindir = Path(found[-1]).parent
    root = Path(tempfile.mkdtemp(prefix="viewer-pg-"))
    data, sock = root / "data", root / "sock"
    sock.mkdir()
    if os.geteuid() == 0:
        for p in (root, sock):
            shutil.chown(p, "postgres")
    port = free_port()
    server = None
    try:
        subprocess.run(_as_postgres([str(bindir / "initdb"), "-D", str(data), "-U", "postgres",
                                     "--auth=trust"]), check=True, capture_output=True, timeout=120)
        server = subprocess.Popen(_as_postgres([str(bindir / "postgres"), "-D", str(data), "-k",
                                                str(sock), "-p", str(port), "-h", ""]),
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        dsn = f"postgresql://postgres@/postgres?host={sock}&port={port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                with psycopg.connect(dsn, autocommit=True) as conn:
                    conn.execute("CREATE DATABASE viewer")
                break
            except psycopg.OperationalError:
                if server.poll() is not None or time.monotonic() > deadline:
                    pytest.fail("the throwaway PostgreSQL server did not start")
                time.sleep(0.2)
        yield f"postgresql+psycopg://postgres@/viewer?host={sock}&port={port}"
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=30)
        shutil.rmtree(root, ignore_errors=True)


def test_pages_over_postgresql(pg_url):
    from orchestrator.viewer import synthetic

    store = Store(pg_url)
    synthetic.write_run(store, RUN, 240, n=8, teacher=True, one_by_one=16)
    eps = list(store.episodes(RUN, statuses=None, with_calls=False))
    client = TestClient(create_app(ViewerConfig(store=pg_url, warm_runs=0)))
    page = client.get(f"/runs/{RUN}").text
    for status, n in store.status_counts(RUN).items():
        assert re.search(rf'data-status="{status}"><a [^>]*>{n}</a>', page), status
    bars = [int(n) for n in re.findall(r'class="bar" [^>]*data-count="(\d+)"', page)]
    assert sum(bars) == sum(1 for e in eps if e.status not in ("task_error", "infra_error"))
    minutes = re.findall(r'class="bar rate"', page)
    assert minutes, "episodes per minute are plotted"
    listing = client.get(f"/runs/{RUN}/episodes?min_reward=0.2&max_reward=0.8").text
    expected = [e.id for e in eps if e.reward is not None and 0.2 <= e.reward <= 0.8]
    assert re.findall(r'<tr data-id="(\d+)"', listing) == [str(i) for i in expected[:50]]
    found = client.get(f"/runs/{RUN}/episodes?q=DEADLOCK").text
    expected = [e.id for e in eps if "deadlock" in str(e.messages)]
    assert re.findall(r'<tr data-id="(\d+)"', found) == [str(i) for i in expected[:50]]
    ep = eps[0]
    assert client.get(f"/runs/{RUN}/episodes/{ep.id}").status_code == 200
    assert client.get(f"/runs/{RUN}/episodes/{ep.id}/tokens").status_code == 200
    assert client.get(f"/runs/{RUN}/groups/{ep.task_id}").status_code == 200
    with pytest.raises(sa.exc.DBAPIError, match="read-only"), \
            readonly_engine(pg_url).begin() as conn:
        conn.execute(sa.text("DELETE FROM episodes"))
