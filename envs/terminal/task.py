"""Terminal task folders, read as they are: Harbor and Terminal-Bench 1.

Harbor: `instruction.md`, `task.toml` (`[agent].timeout_sec`, `[verifier].timeout_sec`,
`[verifier.env]`, `[environment]` cpus / memory_mb / allow_internet),
`environment/Dockerfile` (its folder is the build context), `tests/test.sh`, optional
`solution/solve.sh`.

Terminal-Bench 1: `task.yaml` (`instruction`, `max_agent_timeout_sec`,
`max_test_timeout_sec`), `Dockerfile` in the task folder, `run-tests.sh`, `tests/`,
`solution.sh`.

A folder that is neither, or lacks a required file, raises `TaskFormatError` (a
`TaskError`: the task is broken, do not retry).

A task folder is a boundary (folders come from strangers): every link in it must resolve
inside it, or the folder is refused with the link named, before any file is read, so no
host file reaches the catalogue, the prompt, an image or a sandbox. Links inside are kept
as links wherever the folder is copied (build context, tests, oracle). `find_tasks`
never descends into a linked directory, so a link loop is one task, not forty.

The verifier's protected-path policy (`envs.integrity.policy`) can be extended or
relaxed per task: Harbor `[verifier] protected_paths` / `allowed_paths` in task.toml,
Terminal-Bench `protected_paths` / `allowed_paths` in task.yaml (lists of glob patterns).
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field

from sandbox.errors import TaskError


class TaskFormatError(TaskError):
    """A task folder is not a readable Harbor or Terminal-Bench 1 task."""


class TerminalTask(BaseModel):
    """One terminal task, as its folder says. Paths are absolute."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(description="Catalogue id: 'tb1/<dataset>/<name>' or 'harbor/<name>'.")
    format: Literal["harbor", "tb1"]
    path: str = Field(description="The task folder.")
    instruction: str
    agent_timeout_s: float = Field(description="Agent wall time, from the task file.")
    verifier_timeout_s: float = Field(description="Time the tests may take, from the task file.")
    context_dir: str = Field(description="Docker build context.")
    dockerfile: str = Field(description="Dockerfile path relative to context_dir.")
    tests_dir: str = Field(description="Folder copied to /tests after the agent finishes.")
    test_script: str = Field(description="Script run to verify: run-tests.sh or tests/test.sh.")
    solution: str | None = Field(None, description="Reference solution script, if any.")
    solution_dir: str | None = Field(None, description="Folder the solution script lives in.")
    cpus: float | None = Field(1.0, gt=0, description="CPU cap; None: no cap, as the task says.")
    memory_mb: int = Field(2048, ge=64)
    allow_internet: bool = False
    verifier_env: dict[str, str] = Field(default_factory=dict)
    metadata: dict[str, Any] = Field(default_factory=dict, description="difficulty, tags, …")
    protected_paths: list[str] = Field(
        default_factory=list, description="Extra paths the agent must not change (globs).")
    allowed_paths: list[str] = Field(
        default_factory=list, description="Paths the agent may change despite the policy.")

    def path_policy(self) -> Any:
        """The task's additions to the protected-path policy."""
        from envs.integrity import PathPolicy

        return PathPolicy(protected=self.protected_paths, allowed=self.allowed_paths)


def detect_format(path: Path) -> Literal["harbor", "tb1"] | None:
    if (path / "task.toml").is_file():
        return "harbor"
    if (path / "task.yaml").is_file():
        return "tb1"
    return None


def load_task(path: Path | str, task_id: str | None = None) -> TerminalTask:
    """Read one task folder. Raises TaskFormatError with what is missing."""
    path = Path(path).resolve()
    fmt = detect_format(path)
    if fmt is None:
        raise TaskFormatError(f"{path} has neither task.toml (Harbor) nor task.yaml (Terminal-Bench 1)")
    check_links(path)
    task = _load_harbor(path) if fmt == "harbor" else _load_tb1(path)
    if task_id:
        task.id = task_id
    return task


def check_links(folder: Path) -> None:
    """Refuse a folder holding a link that resolves outside it (one line, the link named).

    The walk does not follow linked directories; a link inside pointing inside is fine."""
    root = folder.resolve()
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        for name in dirnames + filenames:
            entry = Path(dirpath) / name
            if not entry.is_symlink():
                continue
            target = entry.resolve()
            if not target.is_relative_to(root):
                raise TaskFormatError(
                    f"{entry} links outside the task folder (to {os.readlink(entry)}); "
                    "copy the file into the folder instead")


def _paths(value: Any, where: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) and v.startswith("/")
                                              for v in value):
        raise TaskFormatError(f"{where} must be a list of absolute path patterns, got {value!r}")
    return list(value)


def _require(path: Path, what: str) -> Path:
    if not path.exists():
        raise TaskFormatError(f"{path.parent}: missing {what} ({path.name})")
    return path


def _load_harbor(path: Path) -> TerminalTask:
    try:
        meta = tomllib.loads(_require(path / "task.toml", "task file").read_text())
    except tomllib.TOMLDecodeError as exc:
        raise TaskFormatError(f"{path}/task.toml is not valid TOML: {exc}") from exc
    env_dir = _require(path / "environment", "environment folder")
    _require(env_dir / "Dockerfile", "Dockerfile")
    tests = _require(path / "tests", "tests folder")
    _require(tests / "test.sh", "test script")
    environment = meta.get("environment", {})
    solve = path / "solution" / "solve.sh"
    return TerminalTask(
        id=f"harbor/{path.name}", format="harbor", path=str(path),
        instruction=_require(path / "instruction.md", "instruction").read_text(),
        agent_timeout_s=float(meta.get("agent", {}).get("timeout_sec", 600.0)),
        verifier_timeout_s=float(meta.get("verifier", {}).get("timeout_sec", 600.0)),
        context_dir=str(env_dir), dockerfile="Dockerfile", tests_dir=str(tests),
        test_script=str(tests / "test.sh"),
        solution=str(solve) if solve.is_file() else None,
        solution_dir=str(solve.parent) if solve.is_file() else None,
        cpus=float(environment.get("cpus", 1)), memory_mb=int(environment.get("memory_mb", 2048)),
        allow_internet=bool(environment.get("allow_internet", False)),
        verifier_env={k: str(v) for k, v in meta.get("verifier", {}).get("env", {}).items()},
        metadata=dict(meta.get("metadata", {})),
        protected_paths=_paths(meta.get("verifier", {}).get("protected_paths"),
                               f"{path}/task.toml [verifier] protected_paths"),
        allowed_paths=_paths(meta.get("verifier", {}).get("allowed_paths"),
                             f"{path}/task.toml [verifier] allowed_paths"),
    )


def _load_tb1(path: Path) -> TerminalTask:
    try:
        meta = yaml.safe_load(_require(path / "task.yaml", "task file").read_text()) or {}
    except yaml.YAMLError as exc:
        raise TaskFormatError(f"{path}/task.yaml is not valid YAML: {exc}") from exc
    if not isinstance(meta, dict) or not meta.get("instruction"):
        raise TaskFormatError(f"{path}/task.yaml has no instruction")
    _require(path / "Dockerfile", "Dockerfile")
    tests = _require(path / "tests", "tests folder")
    run_tests = _require(path / "run-tests.sh", "test script")
    solution = path / "solution.sh"
    return TerminalTask(
        id=f"tb1/{path.parent.name}/{path.name}", format="tb1", path=str(path),
        instruction=meta["instruction"],
        agent_timeout_s=float(meta.get("max_agent_timeout_sec", 360.0)),
        verifier_timeout_s=float(meta.get("max_test_timeout_sec", 60.0)),
        context_dir=str(path), dockerfile="Dockerfile", tests_dir=str(tests),
        test_script=str(run_tests),
        solution=str(solution) if solution.is_file() else None,
        solution_dir=str(path) if solution.is_file() else None,
        cpus=_compose_cpus(path / "docker-compose.yaml"),
        metadata={k: meta[k] for k in ("difficulty", "category", "tags", "parser_name")
                  if k in meta},
        protected_paths=_paths(meta.get("protected_paths"), f"{path}/task.yaml protected_paths"),
        allowed_paths=_paths(meta.get("allowed_paths"), f"{path}/task.yaml allowed_paths"),
    )


def _compose_cpus(path: Path) -> float | None:
    """The CPU cap a TB1 task's compose file gives its client service; None when it sets none."""
    if not path.is_file():
        return None
    try:
        compose = yaml.safe_load(path.read_text()) or {}
        services = compose.get("services", {})
        service = services.get("client") or next(iter(services.values()), {})
        cpus = service.get("deploy", {}).get("resources", {}).get("limits", {}).get("cpus")
        return float(cpus) if cpus is not None else None
    except (yaml.YAMLError, AttributeError, TypeError, ValueError):
        return None


def find_tasks(root: Path | str) -> Iterator[Path]:
    """Every task folder under `root` (itself included), sorted; no descent into a task
    or into a linked directory (a link loop would otherwise repeat its tasks)."""
    root = Path(root)
    if detect_format(root):
        yield root
        return
    for child in sorted(p for p in root.iterdir() if p.is_dir() and not p.is_symlink()):
        yield from find_tasks(child)
