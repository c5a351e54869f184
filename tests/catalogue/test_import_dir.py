"""`envfarm tasks import-dir` on broken and hostile folder trees (made here): every good
folder is imported, every bad one listed with its reason, nothing is lost or replaced by
surprise. A real SQLite catalogue; no Docker needed (importing does not build)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from catalogue import Catalogue
from orchestrator.cli import app
from orchestrator.cli.console import console

pytestmark = pytest.mark.badinput


@pytest.fixture(autouse=True)
def wide_console():
    saved = console._width
    console.width = 400  # whole paths and reasons on one line each
    yield
    console._width = saved


def harbor(folder: Path, instruction: bytes | str = "Write hello.", toml: str = "") -> Path:
    """A minimal, readable Harbor task folder."""
    (folder / "environment").mkdir(parents=True)
    (folder / "tests").mkdir()
    (folder / "environment" / "Dockerfile").write_text("FROM debian:bookworm-slim\n")
    (folder / "tests" / "test.sh").write_text("#!/bin/sh\necho 1 > /logs/verifier/reward.txt\n")
    (folder / "task.toml").write_text(toml or "[agent]\ntimeout_sec = 60\n")
    data = instruction.encode() if isinstance(instruction, str) else instruction
    (folder / "instruction.md").write_bytes(data)
    return folder


def import_dir(path: Path, store: str, *args: str):
    return CliRunner().invoke(app, ["tasks", "import-dir", str(path), "--store", store, *args])


@pytest.fixture()
def store(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'cat.db'}"


def test_bad_folders_are_listed_and_good_siblings_imported(tmp_path, store):
    root = tmp_path / "ds"
    harbor(root / "good")
    harbor(root / "wrong-type", toml='[agent]\ntimeout_sec = "soon"\n')
    harbor(root / "not-a-table", toml="agent = 5\n")
    harbor(root / "latin1", instruction="Écris « bonjour ».".encode("latin-1"))
    (root / "no-task-file" / "sub").mkdir(parents=True)
    (root / "no-task-file" / "instruction.md").write_text("orphan")
    (root / ".git" / "objects").mkdir(parents=True)  # hidden folders are passed over
    result = import_dir(root, store)
    assert result.exit_code == 0, result.output
    out = result.output
    assert "imported 1" in out and "skipped 4" in out
    for name in ("wrong-type", "not-a-table", "latin1", "no-task-file"):
        assert f"ds/{name} " in out, name
    assert "not UTF-8" in out and "no task file" in out and "soon" in out
    assert ".git" not in out and "no-task-file/sub" not in out  # only the topmost empty folder
    with Catalogue(store) as cat:
        assert cat.ids() == ["harbor/good"]
        assert cat.get("harbor/good").source == str((root / "good").resolve())


def test_exit_code_is_nonzero_when_nothing_imported_or_strict(tmp_path, store):
    only_bad = tmp_path / "bad"
    harbor(only_bad / "x", toml="not toml [")
    result = import_dir(only_bad, store)
    assert result.exit_code == 1 and "imported 0" in result.output and "TOML" in result.output
    empty = tmp_path / "empty"
    empty.mkdir()
    result = import_dir(empty, store)
    assert result.exit_code == 1 and "no task folders under" in result.output
    mixed = tmp_path / "mixed"
    harbor(mixed / "ok")
    (mixed / "stray").mkdir()
    assert import_dir(mixed, store).exit_code == 0
    result = import_dir(mixed, store, "--strict")
    assert result.exit_code == 1 and "no task file" in result.output


def test_symlinked_folders_are_not_followed_and_loops_end(tmp_path, store):
    outside = harbor(tmp_path / "outside" / "secret-task")
    root = tmp_path / "ds"
    harbor(root / "real")
    (root / "link-to-outside").symlink_to(outside.parent, target_is_directory=True)
    (root / "real-sub").mkdir()
    (root / "real-sub" / "loop").symlink_to(root, target_is_directory=True)
    result = import_dir(root, store)
    assert result.exit_code == 0, result.output
    assert "imported 1" in result.output and "skipped 2" in result.output
    assert result.output.count("links are not followed") == 2
    with Catalogue(store) as cat:
        assert cat.ids() == ["harbor/real"]


def test_two_folders_with_one_id_are_both_refused_naming_both(tmp_path, store):
    root = tmp_path / "ds"
    a, b = harbor(root / "a" / "same"), harbor(root / "b" / "same")
    harbor(root / "c" / "other")
    result = import_dir(root, store)
    assert result.exit_code == 0, result.output
    assert "imported 1" in result.output and "skipped 2" in result.output
    lines = [line for line in result.output.splitlines() if "is also the id of" in line]
    assert len(lines) == 2
    assert str(b.resolve()) in lines[0] and str(a.resolve()) in lines[1]
    with Catalogue(store) as cat:
        assert cat.ids() == ["harbor/other"]


def test_an_id_taken_by_another_folder_needs_replace(tmp_path, store):
    first = harbor(tmp_path / "one" / "task")
    second = harbor(tmp_path / "two" / "task", instruction="A different task.")
    assert import_dir(first.parent, store).exit_code == 0
    refused = import_dir(second.parent, store)
    assert refused.exit_code == 1
    assert f"already catalogued from {first.resolve()}" in refused.output
    assert "--replace" in refused.output
    with Catalogue(store) as cat:
        assert cat.get("harbor/task").data["instruction"] == "Write hello."
    replaced = import_dir(second.parent, store, "--replace")
    assert replaced.exit_code == 0, replaced.output
    assert "changed harbor/task:" in replaced.output and "data.instruction" in replaced.output
    assert f"was from {first.resolve()}" in replaced.output
    with Catalogue(store) as cat:
        assert cat.get("harbor/task").data["instruction"] == "A different task."


def test_reimporting_a_changed_folder_says_what_changed(tmp_path, store):
    task = harbor(tmp_path / "ds" / "t")
    assert "1 new, 0 changed, 0 unchanged" in import_dir(task.parent, store).output
    again = import_dir(task.parent, store)
    assert "0 new, 0 changed, 1 unchanged" in again.output
    (task / "instruction.md").write_text("Write goodbye.")
    changed = import_dir(task.parent, store)
    assert "0 new, 1 changed, 0 unchanged" in changed.output
    assert "changed harbor/t: data.instruction" in changed.output


def tb1(folder: Path) -> Path:
    """A minimal Terminal-Bench 1 task folder (id tb1/<parent name>/<name>)."""
    folder.mkdir(parents=True)
    (folder / "task.yaml").write_text("instruction: do it\n")
    (folder / "Dockerfile").write_text("FROM debian:bookworm-slim\n")
    (folder / "tests").mkdir()
    (folder / "run-tests.sh").write_text("#!/bin/sh\n")
    return folder


def test_ids_that_a_database_would_refuse_are_listed(tmp_path, store):
    root = tmp_path / "ds"
    tb1(root / ("x" * 200) / ("y" * 80))  # a 287-character id: PostgreSQL's VARCHAR(255) fails
    tb1(root / "short" / "tab\tname")
    tb1(root / "short" / "ok")
    tb1(root / "jeu de données ü" / "tâche")  # any script, spaces inside: fine
    result = import_dir(root, store)
    assert result.exit_code == 0, result.output
    assert "imported 2" in result.output and "skipped 2" in result.output
    assert "at most 255" in result.output and "control characters" in result.output
    with Catalogue(store) as cat:
        assert cat.ids() == ["tb1/jeu de données ü/tâche", "tb1/short/ok"]
