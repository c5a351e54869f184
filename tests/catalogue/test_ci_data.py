"""Tests that need the project's data skip on a workstation and fail under CI=true (the
conftest helpers and the safety net for plain skipifs), run in a child pytest."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run_probe(tmp_path: Path, ci: str | None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    env["ENVFARM_DATA"] = str(tmp_path / "no-data-here")
    if ci is not None:
        env["CI"] = ci
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rA",
         "tests/catalogue/data_probe.py"], cwd=ROOT, env=env, capture_output=True, text=True,
        timeout=300, check=False)


def test_missing_data_skips_on_a_workstation_and_fails_under_ci(tmp_path):
    local = run_probe(tmp_path, None)
    assert local.returncode == 0, local.stdout + local.stderr
    assert "4 skipped" in local.stdout
    ci = run_probe(tmp_path, "true")
    assert ci.returncode == 1, ci.stdout + ci.stderr
    out = ci.stdout
    for name in ("test_require_data", "test_needs_data_marker",
                 "test_plain_skipif_on_the_data_folder"):
        assert f"data_probe.py::{name}" in out and (f"FAILED tests/catalogue/data_probe.py::{name}"
                                                    in out or f"ERROR tests/catalogue/"
                                                    f"data_probe.py::{name}" in out), name
    assert "SKIPPED" in out and "unrelated platform skip" in out
    assert "put the data folder at" in out or "put the data at" in out
