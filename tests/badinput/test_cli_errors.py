"""Every verb turns a user's mistake into one line with the fix and a non-zero exit; the
traceback only with --debug. Inputs are made here: broken files, a corrupt store, counts
of zero, unknown names."""

from __future__ import annotations

import json
import os

import pytest

from tests.badinput.conftest import assert_one_line_error, envfarm, read_only

pytestmark = pytest.mark.badinput


@pytest.mark.parametrize(("args", "needle"), [
    (["rollout", "--env", "echo", "--task", "echo-a", "--n", "0"], "--n"),
    (["rollout", "--env", "echo", "--task", "echo-a", "--max-turns", "0"], "--max-turns"),
    (["rollout", "--env", "echo", "--task", "echo-a", "--concurrency", "0"], "--concurrency"),
    (["rollout", "--env", "echo", "--task", "echo-a", "--n", "many"], "--n"),
    (["rollout", "--env", "echo", "--task", "echo-a", "--env-arg", "no-equals"], "KEY=VALUE"),
    (["export", "some-run"], "--out"),
    (["no-such-verb"], "no-such-verb"),
])
def test_usage_errors_are_one_line_exit_2(cli, args, needle):
    assert_one_line_error(cli(*args), needle, code=2)


@pytest.mark.parametrize(("args", "needles"), [
    (["rollout", "--env", "nope", "--task", "x"], ["no env named 'nope'", "envfarm/echo-v0"]),
    (["envs", "show", "nope"], ["no env named 'nope'"]),
    (["rollout", "--env", "echo", "--task", "echo-a", "--env-arg", "colour=1"],
     ["'colour'", "oracle_delay_s"]),
    (["rollout", "--env", "echo", "--task", "echo-a", "--env-arg", "oracle_delay_s=\"slow\""],
     ["oracle_delay_s", "float"]),
    (["rollout", "--env", "echo", "--task", "x" * 10_000], ["10000 characters", "255"]),
    (["rollout", "--env", "echo", "--task", "echo-a", "--policy", "vllm"], ["--vllm-url"]),
    (["rollout", "--resume", "run-that-never-was"], ["run-that-never-was", "envfarm runs list"]),
])
def test_config_errors_are_one_line_and_create_no_run(cli, args, needles):
    assert_one_line_error(cli(*args), *needles, code=1)
    from orchestrator.store import Store

    assert Store(cli.store).list_runs() == []  # failed before the run existed


def test_broken_files_are_one_line(cli, tmp_path):
    (tmp_path / "empty.json").write_text("")
    (tmp_path / "bad.json").write_text('{"base": ')
    (tmp_path / "wrong.json").write_text(json.dumps({"base": 3, "nonsense": True}))
    (tmp_path / "folder.json").mkdir()
    assert_one_line_error(cli("images", "build", "empty.json"), "JSON")
    assert_one_line_error(cli("images", "build", "bad.json"), "JSON", "line 1")
    assert_one_line_error(cli("images", "build", "wrong.json"), "invalid")
    assert_one_line_error(cli("images", "build", "folder.json"), "folder.json", "directory")
    assert_one_line_error(cli("images", "build", "missing.json"), "missing.json")


def test_a_corrupt_store_is_one_line(cli, tmp_path):
    (tmp_path / "corrupt.db").write_bytes(os.urandom(4096))
    store = f"sqlite:///{tmp_path / 'corrupt.db'}"
    for args in (["runs", "list", "--store", store], ["export", "r", "--out", "x.jsonl",
                                                      "--store", store]):
        assert_one_line_error(cli(*args), "not a readable database", "--store")
    assert not (tmp_path / "x.jsonl").exists()


def test_a_read_only_store_is_one_line(cli, tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    store = f"sqlite:///{folder / 'store.db'}"
    from orchestrator.store import Store

    Store(store).create_run("r1", {"env": "echo", "n": 1})
    with read_only(folder / "store.db", folder):
        out = cli("rollout", "--env", "echo", "--task", "echo-a", "--store", store,
                  "--executor", "threads")
    assert_one_line_error(out, "read-only", "--store")


def test_debug_shows_the_traceback(cli):
    out = cli("--debug", "envs", "show", "nope")
    assert out.code == 1 and "Traceback" in out.stderr and "error: no env named" in out.stderr
    out = envfarm("envs", "show", "nope", "--debug")  # anywhere on the command line
    assert out.code == 1 and "Traceback" in out.stderr


def test_broken_pipe_is_quiet(tmp_path):
    import subprocess
    import sys

    proc = subprocess.run(f"{sys.executable} -m orchestrator.cli envs list | head -c 10",
                          shell=True, capture_output=True, text=True, timeout=120, check=False)
    assert "Traceback" not in proc.stderr and "error" not in proc.stderr
