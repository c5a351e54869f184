"""Task folders are a boundary (issue 19): a link that leaves a terminal or web-dev task
folder refuses the folder, naming the link, before any byte of its target is read; a
link loop is walked once. Each kind of link is planted to a secret host file."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from envs.terminal import TaskFormatError, find_tasks, load_task
from envs.terminal.env import EXAMPLE_TASKS
from envs.webdev.tasks import TASKS_DIR, load_tasks
from envs.webdev.tasks import load_task as load_webdev
from sandbox.errors import TaskError
from tests.integrity.terminal_tasks import tb1_task

SECRET = "envfarm-secret-do-not-leak"


@pytest.fixture
def secret(tmp_path) -> Path:
    path = tmp_path / "host-secret.txt"
    path.write_text(SECRET)
    return path


def harbor(tmp_path: Path) -> Path:
    folder = tmp_path / "tasks" / "hello"
    shutil.copytree(EXAMPLE_TASKS / "hello-file", folder)
    return folder


@pytest.mark.parametrize("rel", ["instruction.md", "tests/test.sh", "tests/data.txt",
                                 "environment/Dockerfile", "environment/payload.txt",
                                 "solution/solve.sh"])
def test_harbor_links_out_of_the_folder_are_refused(tmp_path, secret, rel):
    folder = harbor(tmp_path)
    (folder / rel).unlink(missing_ok=True)
    (folder / rel).symlink_to(secret)
    with pytest.raises(TaskFormatError, match="links outside the task folder") as caught:
        load_task(folder)
    assert rel.split("/")[-1] in str(caught.value) and SECRET not in str(caught.value)


@pytest.mark.parametrize("rel", ["run-tests.sh", "task.yaml", "tests/helper.py", "solution.sh"])
def test_tb1_links_out_of_the_folder_are_refused(tmp_path, secret, rel):
    folder = tb1_task(tmp_path)
    if rel == "task.yaml":  # the task file itself: the folder is no task it can read
        (folder / rel).unlink()
    (folder / rel).unlink(missing_ok=True)
    (folder / rel).symlink_to(secret)
    with pytest.raises(TaskFormatError, match="links outside the task folder"):
        load_task(folder)


def test_a_linked_directory_out_of_the_folder_is_refused_and_links_inside_are_fine(tmp_path,
                                                                                  secret):
    folder = harbor(tmp_path)
    (folder / "tests" / "same.sh").symlink_to("test.sh")  # inside: fine
    assert load_task(folder).id == "harbor/hello"
    (folder / "environment" / "host").symlink_to(secret.parent)
    with pytest.raises(TaskFormatError, match="environment/host links outside"):
        load_task(folder)


def test_a_link_loop_is_one_task_not_forty(tmp_path):
    folder = harbor(tmp_path)
    (folder.parent / "loop").symlink_to(folder.parent)
    (folder / "environment" / "self").symlink_to(".")
    assert [p.name for p in find_tasks(folder.parent)] == ["hello"]
    assert load_task(folder).id == "harbor/hello"


def test_webdev_links_out_of_the_folder_are_refused(tmp_path, secret):
    root = tmp_path / "webdev"
    shutil.copytree(TASKS_DIR / "counter", root / "counter")
    (root / "counter" / "oracle" / "index.html").unlink()
    (root / "counter" / "oracle" / "index.html").symlink_to(secret)
    with pytest.raises(TaskError, match="links outside the task folder"):
        load_webdev(root / "counter")
    (root / "counter" / "oracle" / "index.html").unlink()
    shutil.copy(TASKS_DIR / "counter" / "oracle" / "index.html", root / "counter" / "oracle")
    (root / "again").symlink_to(root)  # a linked task directory is not entered
    assert list(load_tasks(root)) == ["counter"]
