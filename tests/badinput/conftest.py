"""Helpers of the bad-input suite: the CLI run as a user runs it (in process through
`CliRunner`, or as the `envfarm` console script when signals or users matter), a model
server that accepts connections and never answers, and the one-line error check."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

ROOT = Path(__file__).resolve().parents[2]
ENVFARM = [sys.executable, "-m", "orchestrator.cli"]


@dataclass
class Outcome:
    code: int
    stdout: str
    stderr: str

    @property
    def error_lines(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if line.strip()]


def assert_one_line_error(out: Outcome, *needles: str, code: int | None = None,
                          after_progress: bool = False) -> str:
    """Non-zero exit, exactly one line on stderr starting `error:`, no traceback; the line
    names each of `needles`. Returns the line. `after_progress`: a run's live progress
    (also on stderr) may come before the line, which is then the last."""
    assert out.code != 0, (out.stdout, out.stderr)
    if code is not None:
        assert out.code == code, (out.code, out.stderr)
    assert "Traceback" not in out.stderr + out.stdout, out.stderr
    lines = out.error_lines
    if after_progress:
        assert sum("error: " in line for line in lines) == 1, out.stderr
        lines = [lines[-1][lines[-1].index("error: "):]]
    assert len(lines) == 1 and lines[0].startswith("error: "), out.stderr
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


@pytest.fixture
def cli(tmp_path, monkeypatch):
    """Run the CLI in process against a fresh store; returns an `Outcome`."""
    store = f"sqlite:///{tmp_path / 'store.db'}"
    monkeypatch.setenv("ENVFARM_STORE", store)
    monkeypatch.delenv("ENVFARM_DEBUG", raising=False)
    monkeypatch.chdir(tmp_path)
    from orchestrator.cli import app

    def run(*args: str) -> Outcome:
        result = CliRunner().invoke(app, list(args))
        os.environ.pop("ENVFARM_DEBUG", None)  # --debug sets it for the process
        return Outcome(result.exit_code, result.stdout, result.stderr)

    run.store = store  # type: ignore[attr-defined]
    return run


def envfarm(*args: str, env: dict[str, str] | None = None, timeout: float = 300,
            cwd: Path | None = None, user: int | None = None) -> Outcome:
    """The CLI as a separate process (what a user's shell runs)."""
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    full_env.pop("ENVFARM_DEBUG", None)
    proc = subprocess.run([*ENVFARM, *args], capture_output=True, text=True, timeout=timeout,
                          env=full_env, cwd=cwd or ROOT, user=user, check=False)
    return Outcome(proc.returncode, proc.stdout, proc.stderr)


@contextmanager
def read_only(*paths: Path):
    """Make files and folders read-only even for root: `chattr +i` (root writes through
    mode bits), else mode bits (a normal user). Undone at the end."""
    done: list[tuple[Path, str]] = []
    try:
        for path in paths:
            if os.geteuid() == 0:
                proc = subprocess.run(["chattr", "+i", str(path)], capture_output=True,
                                      check=False)
                if proc.returncode != 0:
                    pytest.fail(f"cannot make {path} read-only for root (chattr: "
                                f"{proc.stderr.decode().strip()}); run the suite on ext4/xfs "
                                "or as a normal user")
                done.append((path, "chattr"))
            else:
                mode = path.stat().st_mode
                path.chmod(0o555 if path.is_dir() else 0o444)
                done.append((path, oct(mode)))
        yield
    finally:
        for path, how in reversed(done):
            if how == "chattr":
                subprocess.run(["chattr", "-i", str(path)], check=False)
            else:
                path.chmod(int(how, 8))


@pytest.fixture
def silent_server():
    """A TCP server that accepts connections, reads, and never answers: a hung model
    server. Yields its URL; closed at the end."""
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    conns: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            conns.append(conn)  # held open, never written to

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stop.set()
        thread.join()
        for conn in conns:
            conn.close()
        listener.close()
