"""Where the trainers' packages live (scripts/setup.d/trainers.sh) and how tests reach
them: missing packages fail under CI (a skip would hide a broken install), skip locally."""

from __future__ import annotations

import importlib
import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TRAINERS_PY = Path(os.environ.get("ENVFARM_TRAINERS_VENV", ROOT / ".venv-trainers")) / "bin" / "python"
HARBOR_PY = Path(os.environ.get("ENVFARM_HARBOR_VENV", ROOT / ".venv-harbor")) / "bin" / "python"
FIX = "run `make setup` (scripts/setup.d/trainers.sh)"


def _missing(what: str) -> None:
    message = f"{what} is missing; {FIX}"
    if os.environ.get("CI"):
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def require_module(name: str):
    try:
        return importlib.import_module(name)
    except ImportError:
        _missing(f"the Python package {name!r}")


def require_python(python: Path) -> Path:
    if not python.exists():
        _missing(str(python))
    return python


def run_in(python: Path, script: str, *args: str, timeout_s: float = 600) -> str:
    """Run a Python script in a trainer's venv; its last stdout line is the result."""
    out = subprocess.run([str(require_python(python)), "-c", script, *args],
                         capture_output=True, text=True, timeout=timeout_s, cwd=ROOT,
                         env={**os.environ, "PYTHONPATH": str(ROOT)}, check=False)
    if out.returncode != 0:
        raise AssertionError(f"{python.parent.parent.name} script failed:\n{out.stderr[-4000:]}")
    return out.stdout
