"""`envfarm envs list|show` and `envfarm tasks import-dir` against a real SQLite catalogue."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from envs.terminal.env import EXAMPLE_TASKS
from orchestrator.cli import app
from orchestrator.cli.console import console


@pytest.fixture(autouse=True)
def console_width():
    """Sets the CLI console's width (rich reads COLUMNS once, when the console is made)."""
    saved = console._width

    def set_width(columns: int) -> None:
        console.width = columns

    set_width(200)
    yield set_width
    console._width = saved


def test_envs_list_and_show_count_catalogued_tasks(tmp_path, console_width):
    store = f"sqlite:///{tmp_path / 'cat.db'}"
    runner = CliRunner()
    console_width(40)  # a narrow terminal must not break a message mid-line
    imported = runner.invoke(app, ["tasks", "import-dir", str(EXAMPLE_TASKS), "--store", store])
    assert imported.exit_code == 0, imported.output
    summary = imported.output.splitlines()[0]
    assert "imported 1" in summary and "harbor: 1" in summary and "skipped 0" in summary
    console_width(200)
    listed = runner.invoke(app, ["envs", "list", "--store", store])
    assert listed.exit_code == 0, listed.output
    row = next(line for line in listed.output.splitlines() if "envfarm/terminal-v0" in line)
    assert "bash, finish" in row and " 1 " in row
    shown = runner.invoke(app, ["envs", "show", "terminal", "--store", store])
    assert shown.exit_code == 0 and "command, timeout?" in shown.output
    missing = runner.invoke(app, ["envs", "show", "nope"])
    assert missing.exit_code == 1 and "no env named 'nope'" in missing.output


def test_import_dir_lists_unreadable_folders(tmp_path):
    bad = tmp_path / "tasks" / "broken"
    bad.mkdir(parents=True)
    (bad / "task.yaml").write_text("instruction: do it\n")
    result = CliRunner().invoke(app, ["tasks", "import-dir", str(tmp_path / "tasks"),
                                      "--store", f"sqlite:///{tmp_path / 'c.db'}"])
    assert result.exit_code == 1, result.output  # nothing imported: a failure, each reason listed
    assert "imported 0" in result.output and "missing Dockerfile" in result.output


def test_import_dir_catalogues_web_dev_and_terminal_folders_side_by_side(tmp_path):
    import shutil

    from envs.webdev import TASKS_DIR, WebDevEnv

    root = tmp_path / "tasks"
    shutil.copytree(TASKS_DIR / "counter", root / "web" / "counter")
    shutil.copytree(EXAMPLE_TASKS / "hello-file", root / "term" / "hello-file")
    (root / "web" / "broken").mkdir()
    (root / "web" / "broken" / "task.toml").write_text('id = "other"\nprompt = "x"\n')
    store = f"sqlite:///{tmp_path / 'c.db'}"
    result = CliRunner().invoke(app, ["tasks", "import-dir", str(root), "--store", store])
    assert result.exit_code == 0, result.output
    assert "imported 2" in result.output and "harbor: 1, webdev: 1" in result.output
    assert "skipped 1" in result.output and "title: Field required" in result.output
    listed = CliRunner().invoke(app, ["envs", "list", "--store", store])
    row = next(line for line in listed.output.splitlines() if "envfarm/webdev-v0" in line)
    assert " 1 " in row
    (tmp_path / "empty").mkdir()
    env = WebDevEnv(catalogue_url=store, tasks_dir=tmp_path / "empty")
    task = env.get_task("counter")  # found through the catalogue, not the folders
    assert task.folder == (root / "web" / "counter").resolve() and task.checks


@pytest.mark.docker
def test_tasks_validate_terminal_marks_the_example_valid(tmp_path, base_image):
    store = f"sqlite:///{tmp_path / 'cat.db'}"
    runner = CliRunner()
    assert runner.invoke(app, ["tasks", "import-dir", str(EXAMPLE_TASKS), "--store", store]).exit_code == 0
    result = runner.invoke(app, ["tasks", "validate", "--kind", "terminal", "--runs", "1",
                                 "--store", store])
    assert result.exit_code == 0, result.output
    from swe_tasks.catalogue import Catalogue

    with Catalogue(store) as cat:
        record = cat.get("harbor/hello-file")
    assert record.status == "valid", record.status_reason
    assert record.status_reason.startswith("oracle 1, noop 0, build")


def test_doctor_reports_the_local_model_and_its_fix(tmp_path, monkeypatch):
    """The model `--local-model smollm2` serves is one of doctor's checks: where it is when
    installed, the setup step that installs it when not (and doctor then exits 1)."""
    monkeypatch.setenv("ENVFARM_MODELS", str(tmp_path))
    missing = CliRunner().invoke(app, ["doctor"])
    row = next(line for line in missing.output.splitlines() if "Model smollm2" in line)
    assert "missing" in row and "make setup" in row and missing.exit_code == 1
    weights = tmp_path / "smollm2" / "model.safetensors"
    weights.parent.mkdir()
    weights.write_bytes(b"\0" * 1_500_000)
    found = CliRunner().invoke(app, ["doctor"])
    row = next(line for line in found.output.splitlines() if "Model smollm2" in line)
    assert "ready" in row and "1.5 MB" in row, found.output
