"""Folder importers of the built-in task kinds, named by their registry entries
(`importer="envs.task_kinds:terminal_folder"`); see `envs.registry` for the contract.

Each returns the catalogue record of one task folder, or None when the folder is not in
its format, so `envfarm tasks import-dir` can ask every kind and import what exactly one
claims. A web-dev folder has a `task.toml` too (with a `prompt`, and no Harbor
`instruction.md`), so the terminal importer leaves such folders to the web-dev one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def terminal_folder(folder: Path) -> Any:
    """A Harbor (`task.toml`) or Terminal-Bench 1 (`task.yaml`) folder as a `terminal`
    record whose `source` is the folder. Raises TaskError when it is one but broken."""
    from catalogue import TaskRecord
    from envs.terminal.env import image_key
    from envs.terminal.task import detect_format, load_task
    from envs.webdev.tasks import is_task_folder

    if detect_format(folder) is None or is_task_folder(folder):
        return None
    task = load_task(folder)
    return TaskRecord(id=task.id, kind="terminal", source=str(Path(task.path)),
                      data=task.model_dump(mode="json"), image_key=image_key(task), repo=None)


def webdev_folder(folder: Path) -> Any:
    """A web-dev task folder (`task.toml` with a `prompt`, `checks.toml`) as a `webdev`
    record. Raises TaskError when it is one but broken."""
    from envs.webdev import tasks as webdev

    if not webdev.is_task_folder(folder):
        return None
    return webdev.task_record(webdev.load_task(folder.resolve()))
