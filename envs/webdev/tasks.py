"""Web-dev tasks as plain data folders: a request, a check script, an oracle page.

A task folder (`envs/webdev_tasks/<id>/`) holds:

- `task.toml`: `id`, `category`, `title`, `prompt` (the request the agent gets),
  optional `rubric` (for the VLM judge), `viewport` (`width`, `height` in CSS px),
  `layout_in_viewport` (selectors that must lie inside the viewport) and
  `builtin_weights` (override the weight of `loads`, `no_uncaught_errors`,
  `no_console_errors`, `fits_viewport`).
- `checks.toml`: `[[checks]]` with `name`, optional `weight` (default 1), `group`
  (default "function"), `reload` (start from a fresh page load) and `steps`: a list of
  one-action tables run in order in one browser session (see `STEP_KEYS`).
- `oracle/`: a reference solution, the files to put under `/workspace`.

Loading validates everything (unknown keys, unknown steps), so a typo in a task is a
`TaskError` at load time, not a silently failing check at verification time.

A task folder is a boundary: a link in it that resolves outside it refuses the folder
(one line naming the link), before any file is read, so no host file reaches the
catalogue, the prompt or a sandbox (the oracle's files are sent into the sandbox).
`load_tasks` does not enter linked directories.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from sandbox.errors import TaskError

TASKS_DIR = Path(__file__).resolve().parents[1] / "webdev_tasks"
"""The tasks shipped with envfarm."""

STEP_KEYS = {
    # actions
    "click", "dblclick", "fill", "type", "press", "select", "check", "hover", "keyboard",
    "wait_ms", "reload", "remember",
    # expectations (retried until `timeout_ms`, like Playwright's `expect`)
    "expect_visible", "expect_hidden", "expect_count", "expect_text", "expect_value",
    "expect_attr", "expect_class", "expect_js", "expect_in_viewport", "expect_changed",
}
"""The first key of a step names what it does; the runner implements each one."""

INTERACTIONS = {"click", "dblclick", "fill", "type", "press", "select", "check", "hover",
                "keyboard"}
"""Steps that act on the page: a check with one of them, then an expectation, tests behaviour."""

STEP_ARGS = {"value", "key", "equals", "contains", "not_contains", "matches", "min", "name",
             "of", "timeout_ms"}
BUILTIN_CHECKS = ("loads", "no_uncaught_errors", "no_console_errors", "fits_viewport")


class Viewport(BaseModel):
    """The browser window the page is checked in."""

    model_config = ConfigDict(extra="forbid")

    width: int = Field(1024, ge=200, le=4000, description="CSS pixels.")
    height: int = Field(768, ge=200, le=4000, description="CSS pixels.")


class Check(BaseModel):
    """One weighted check: steps run in order; the first failing step fails the check."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="Shown in reward details; unique within the task.")
    weight: float = Field(1.0, gt=0, description="Share of the reward when it passes.")
    group: str = Field("function", description="function | executability | layout | ...")
    reload: bool = Field(False, description="Load the page afresh before the steps.")
    steps: list[dict[str, Any]] = Field(description="One action or expectation per table.")

    @property
    def exercises_behaviour(self) -> bool:
        """Whether the check interacts with the page before it expects something: what
        a page that only shows its initial state cannot pass."""
        acted = False
        for step in self.steps:
            if any(k in INTERACTIONS for k in step):
                acted = True
            elif acted and any(k.startswith("expect_") for k in step):
                return True
        return False

    @field_validator("steps")
    @classmethod
    def _known_steps(cls, steps: list[dict[str, Any]]) -> list[dict[str, Any]]:
        for i, step in enumerate(steps):
            actions = [k for k in step if k in STEP_KEYS]
            unknown = [k for k in step if k not in STEP_KEYS and k not in STEP_ARGS]
            if len(actions) != 1 or unknown:
                raise ValueError(
                    f"step {i + 1} {step}: needs exactly one of {sorted(STEP_KEYS)}"
                    + (f"; unknown keys {unknown}" if unknown else ""))
        return steps


class WebDevTask(BaseModel):
    """A web-dev task: what to build, how the browser checks it, and where its oracle is."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(description="Task id (the folder name).")
    category: str = Field(description="Kind of app: todo app, counter, form validation, ...")
    title: str = Field(description="One line.")
    prompt: str = Field(description="The request the agent gets.")
    rubric: str | None = Field(None, description="What a visual judge should look for.")
    entry: str = Field("index.html", description="Page opened, relative to /workspace.")
    viewport: Viewport = Field(default_factory=Viewport)
    layout_in_viewport: list[str] = Field(
        default_factory=list, description="Selectors that must lie inside the viewport.")
    builtin_weights: dict[str, float] = Field(
        default_factory=dict, description="Weights of the built-in checks (default 1 each).")
    checks: list[Check] = Field(default_factory=list, description="From checks.toml.")
    folder: Path | None = Field(None, description="Where the task was loaded from.")

    @field_validator("builtin_weights")
    @classmethod
    def _builtin_names(cls, weights: dict[str, float]) -> dict[str, float]:
        unknown = set(weights) - set(BUILTIN_CHECKS)
        if unknown:
            raise ValueError(f"unknown built-in checks {sorted(unknown)}; known: {BUILTIN_CHECKS}")
        return weights

    @property
    def oracle_dir(self) -> Path | None:
        if self.folder is None or not (self.folder / "oracle").is_dir():
            return None
        return self.folder / "oracle"

    def runner_spec(self) -> dict[str, Any]:
        """The JSON the in-sandbox runner reads (no prompt, no oracle: only what it checks)."""
        return {
            "entry": self.entry,
            "viewport": self.viewport.model_dump(),
            "layout_in_viewport": self.layout_in_viewport,
            "builtin_weights": self.builtin_weights,
            "checks": [c.model_dump() for c in self.checks],
        }


def load_task(folder: Path | str) -> WebDevTask:
    """Read one task folder. Raises TaskError (not retryable) when it is malformed."""
    folder = Path(folder)
    _check_links(folder)
    try:
        meta = tomllib.loads((folder / "task.toml").read_text())
        checks_file = folder / "checks.toml"
        checks = tomllib.loads(checks_file.read_text()).get("checks", []) \
            if checks_file.is_file() else []
        task = WebDevTask(**meta, checks=checks, folder=folder)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'task'}: {e['msg']}"
                             for e in exc.errors())
        raise TaskError(f"web-dev task {folder} is malformed: {problems}") from exc
    except (OSError, tomllib.TOMLDecodeError, TypeError) as exc:
        raise TaskError(f"web-dev task {folder} is malformed: {exc}") from exc
    if task.id != folder.name:
        raise TaskError(f"web-dev task {folder}: id {task.id!r} must equal the folder name")
    names = [c.name for c in task.checks]
    if len(set(names)) != len(names) or set(names) & set(BUILTIN_CHECKS):
        raise TaskError(f"web-dev task {task.id}: check names must be unique and not built-in")
    return task


def _check_links(folder: Path) -> None:
    """Refuse a folder holding a link that resolves outside it (the walk follows none)."""
    root = folder.resolve()
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        for name in dirnames + filenames:
            entry = Path(dirpath) / name
            if entry.is_symlink() and not entry.resolve().is_relative_to(root):
                raise TaskError(f"web-dev task {folder}: {entry} links outside the task folder "
                                f"(to {os.readlink(entry)}); copy the file into the folder")


def is_task_folder(folder: Path) -> bool:
    """A web-dev task folder: `task.toml` with a `prompt`, and no Harbor `instruction.md`."""
    meta = folder / "task.toml"
    if not meta.is_file() or (folder / "instruction.md").exists():
        return False
    try:
        return "prompt" in tomllib.loads(meta.read_text())
    except (OSError, tomllib.TOMLDecodeError):
        return False


def task_record(task: WebDevTask) -> Any:
    """The catalogue record (`kind="webdev"`) of a task; the env finds its folder in
    `data["folder"]`."""
    from swe_tasks.catalogue import TaskRecord

    data = task.model_dump(mode="json", exclude={"folder"})
    data["folder"] = str(task.folder)
    return TaskRecord(id=task.id, kind="webdev", source=str(task.folder),
                      image_key="webdev-browser", data=data)


def load_tasks(root: Path | str | None = None) -> dict[str, WebDevTask]:
    """Every task folder under `root` (default: the shipped tasks), by id, sorted."""
    root = Path(root) if root is not None else TASKS_DIR
    if not root.is_dir():
        raise TaskError(f"no web-dev task folder at {root}")
    return {p.name: load_task(p) for p in sorted(root.iterdir())
            if not p.is_symlink() and (p / "task.toml").is_file()}


def task_records(root: Path | str | None = None) -> list[Any]:
    """Catalogue records for the task folders under `root` (default: the shipped tasks)."""
    return [task_record(task) for task in load_tasks(root).values()]
