"""`export` never overwrites what the user has: not the store (by any path), not a file
that is not an earlier export of the same format (unless --force), not anything for an
unknown run; a read-only --out is one line. Unknown formats list the known ones."""

from __future__ import annotations

import json
import os

import pyarrow.parquet as pq
import pytest

from orchestrator.records import CallData, EpisodeRecord
from orchestrator.store import Store
from tests.badinput.conftest import assert_one_line_error, read_only

pytestmark = pytest.mark.badinput


@pytest.fixture
def stored(cli, tmp_path):
    """A store with one run of two episodes: ok and infra_error; and a task_error one."""
    st = Store(cli.store)
    st.create_run("r1", {"env": "echo", "n": 1})
    for i, status in enumerate(("ok", "infra_error", "task_error")):
        st.save_episode(EpisodeRecord(run_id="r1", task_id=f"t{i}", sample_index=0,
                                      env_id="envfarm/echo-v0", status=status,
                                      reward=1.0 if status == "ok" else None,
                                      token_ids=[1, 2, 3], loss_mask=[0, 1, 1],
                                      token_logprobs=[None, -0.5, -0.25],
                                      calls=[CallData([1], [2, 3], [-0.5, -0.25], "stop")]))
    return st


def store_state(st: Store) -> tuple[int, list[str]]:
    path = st.url.removeprefix("sqlite:///")
    return os.path.getsize(path), [r["id"] for r in st.list_runs()]


@pytest.mark.parametrize("fmt", ["jsonl", "verl", "atif", "skyrl", "torch"])
def test_the_store_is_never_an_out(cli, stored, tmp_path, fmt):
    before = store_state(stored)
    (tmp_path / "link.db").symlink_to(tmp_path / "store.db")
    os.mkdir(tmp_path / "sub")
    for out in ("store.db", str(tmp_path / "store.db"), "link.db", "sub/../store.db",
                "store.db-journal"):
        for force in ([], ["--force"]):
            res = cli("export", "r1", "--format", fmt, "--out", out, *force)
            assert_one_line_error(res, "is the store itself")
    assert store_state(stored) == before


def test_a_users_file_is_kept_unless_force(cli, stored, tmp_path):
    notes = tmp_path / "notes.jsonl"
    notes.write_text("my own notes\n")
    assert_one_line_error(cli("export", "r1", "--out", "notes.jsonl"),
                          "not an earlier jsonl export", "--force")
    assert notes.read_text() == "my own notes\n"
    parquet = tmp_path / "run.parquet"
    assert cli("export", "r1", "--format", "skyrl", "--out", "run.parquet").code == 0
    assert_one_line_error(cli("export", "r1", "--format", "verl", "--out", "run.parquet"),
                          "not an earlier verl export")  # another format's file is kept too
    assert pq.read_schema(parquet).metadata[b"envfarm.export"] == b"skyrl"
    assert cli("export", "r1", "--out", "notes.jsonl", "--force").code == 0
    assert json.loads(notes.read_text().splitlines()[0])["task_id"] == "t0"


@pytest.mark.parametrize("fmt", ["jsonl", "verl", "atif", "skyrl", "torch"])
def test_an_earlier_export_is_replaced_and_holds_only_trainable_episodes(cli, stored, fmt):
    for _ in range(2):
        res = cli("export", "r1", "--format", fmt, "--out", f"out.{fmt}",
                  "--status", "ok", "--status", "agent_fault")
        assert res.code == 0, res.stderr
        assert "1 rows from 1 episodes" in res.stdout  # never infra_error or task_error


@pytest.mark.parametrize("status", ["infra_error", "task_error", "bogus"])
def test_unexportable_statuses_are_refused(cli, stored, tmp_path, status):
    assert_one_line_error(cli("export", "r1", "--out", "x.jsonl", "--status", status), status)
    assert not (tmp_path / "x.jsonl").exists()


def test_unknown_run_or_format_writes_nothing(cli, stored, tmp_path):
    assert_one_line_error(cli("export", "r2", "--out", "x.jsonl"), "no run 'r2'",
                          "envfarm runs list")
    line = assert_one_line_error(cli("export", "r1", "--format", "csv", "--out", "x.csv"),
                                 "unknown export format 'csv'")
    for name in ("jsonl", "verl", "skyrl", "atif", "torch"):
        assert name in line
    assert [p.name for p in tmp_path.iterdir() if not p.name.startswith("store.db")] == []


def test_a_folder_or_read_only_out_is_one_line(cli, stored, tmp_path):
    (tmp_path / "adir").mkdir()
    assert_one_line_error(cli("export", "r1", "--out", "adir"), "is a folder")
    locked = tmp_path / "locked"
    locked.mkdir()
    with read_only(locked):
        assert_one_line_error(cli("export", "r1", "--out", "locked/x.jsonl"), "locked",
                              "another --out")
    assert not (locked / "x.jsonl").exists()
