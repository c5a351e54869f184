"""A real PostgreSQL for the catalogue and store tests: a throwaway server (initdb in a
temporary folder, a Unix socket only, no TCP), started once per session and removed after.
The server binaries come from `scripts/setup.d/postgres.sh`; without them the tests skip
with that fix on a workstation and fail under CI."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import missing


def _pg_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"))
    return Path(found[-1]).parent if found else None


def _as_owner(cmd: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: run it as the `postgres` user then."""
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """The base URL (`postgresql+psycopg://postgres@/DB?host=SOCKETDIR`) of a private
    server; `postgres_url` makes a fresh database per test."""
    bindir = _pg_bin()
    if bindir is None:
        missing("PostgreSQL server binaries not found; run `make setup` "
                "(scripts/setup.d/postgres.sh installs them)")
    try:
        import psycopg  # noqa: F401
    except ImportError:
        missing("psycopg is not installed; run `make setup` (pip install -e '.[postgres]')")
    root = Path(tempfile.mkdtemp(prefix="envfarm-pg-"))
    data, sock = root / "data", root / "sock"
    sock.mkdir()
    if os.geteuid() == 0:
        shutil.chown(root, "postgres")
        shutil.chown(sock, "postgres")
    server = None
    try:
        subprocess.run(_as_owner([str(bindir / "initdb"), "-D", str(data), "-U", "postgres",
                                  "--auth=trust", "--no-sync", "-E", "UTF8"]),
                       check=True, capture_output=True)
        server = subprocess.Popen(
            _as_owner([str(bindir / "postgres"), "-D", str(data), "-k", str(sock), "-p", "5433",
                       "-c", "listen_addresses=", "-c", "fsync=off"]),
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        url = f"postgresql+psycopg://postgres@/{{db}}?host={sock}&port=5433"
        _wait_ready(server, url.format(db="postgres"))
        yield url
    finally:
        if server is not None:
            server.terminate()
            try:
                server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
        shutil.rmtree(root, ignore_errors=True)


def _wait_ready(server: subprocess.Popen, url: str, timeout_s: float = 30) -> None:
    import psycopg

    deadline = time.monotonic() + timeout_s
    while True:
        try:
            psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://")).close()
            return
        except psycopg.OperationalError:
            if server.poll() is not None or time.monotonic() > deadline:
                pytest.fail("the throwaway PostgreSQL server did not start", pytrace=False)
            time.sleep(0.1)


@pytest.fixture()
def postgres_url(postgres_server: str) -> str:
    """A fresh, empty database on the session's PostgreSQL server."""
    import psycopg

    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = postgres_server.format(db="postgres").replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return postgres_server.format(db=name)
