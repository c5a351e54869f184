"""The env registry: Gymnasium ids `envfarm/<name>-v<N>` plus what each env offers.

`register_env` records an `EnvInfo` (tools, verifier, task kind) in `REGISTRY` and
registers the id with Gymnasium through a lazy entry point (the module is imported
by `gymnasium.make`, not here). `import envs` registers the built-in envs; an env
whose module is not in this checkout is skipped rather than registered broken.
Bump the version when reward, observation or tool semantics change.

Task kinds. An env whose tasks live in the catalogue names its `task_kind` and, as
`"module:function"` strings imported only when used, how its tasks get there and how they
are checked, so a new kind is one folder plus one `register_env` call:

- `importer(folder: Path) -> TaskRecord | None` (for `envfarm tasks import-dir`): the
  record of one task folder, None when the folder is not in this kind's format (never
  claim another kind's folder); raises `TaskError` (or OSError, ValueError) with the
  reason when it is this kind's folder but broken.
- `file_importer(catalogue, source, *, batch_size, on_progress) -> report` (for
  `envfarm tasks import FILE`): the report has `read`, `imported`, `skipped`,
  `duration_s` and `problems` (each with `where`, `instance_id`, `reason`).
- `validator(tasks, *, concurrency, runs, on_result) -> None` (for `envfarm tasks
  validate`): checks each task's reference solution and calls `on_result(task_id,
  verdict, reason)` once per task (from any thread), verdict one of
  `catalogue.VERDICTS` (`valid`, `invalid`, `flaky`, `task_error`); a `task_error` may
  pass the build log's tail as a fourth argument, `log_tail=...`.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable
from typing import Any

import gymnasium
from pydantic import BaseModel, ConfigDict, Field

NAMESPACE = "envfarm"


class EnvInfo(BaseModel):
    """What `envfarm envs list/show` prints about one env."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(description="Short name, e.g. 'terminal'.")
    version: int = Field(0, ge=0, description="Bumped when semantics change.")
    entry_point: str = Field(description="'module:Class' imported by gymnasium.make.")
    tools: tuple[str, ...] = Field(description="Names of the tools the agent gets.")
    verifier: str = Field(description="How the reward is decided, in one sentence.")
    task_kind: str | None = Field(None, pattern=r"^[a-z][a-z0-9_-]{0,31}$",
                                  description="Catalogue `kind` of its tasks, if any.")
    importer: str | None = Field(None, description="'module:function' reading one task "
                                 "folder of this kind (tasks import-dir).")
    file_importer: str | None = Field(None, description="'module:function' importing a "
                                      "file of records of this kind (tasks import).")
    validator: str | None = Field(None, description="'module:function' checking reference "
                                  "solutions of this kind (tasks validate).")
    description: str = Field("", description="One line on what the env is for.")
    kwargs: dict[str, Any] = Field(default_factory=dict, description="Default constructor args.")

    @property
    def env_id(self) -> str:
        return f"{NAMESPACE}/{self.name}-v{self.version}"


REGISTRY: dict[str, EnvInfo] = {}
"""Registered envs by Gymnasium id."""


def register_env(name: str, entry_point: str, *, tools: tuple[str, ...] | list[str],
                 verifier: str, task_kind: str | None = None, description: str = "",
                 version: int = 0, kwargs: dict[str, Any] | None = None,
                 max_episode_steps: int | None = None, importer: str | None = None,
                 file_importer: str | None = None, validator: str | None = None) -> EnvInfo:
    """Register an env with Gymnasium and in `REGISTRY`; re-registering replaces it.

    `importer`, `file_importer` and `validator` need a `task_kind`; two envs of one kind
    (versions of one env) must not name different ones."""
    info = EnvInfo(name=name, version=version, entry_point=entry_point, tools=tuple(tools),
                   verifier=verifier, task_kind=task_kind, description=description,
                   kwargs=dict(kwargs or {}), importer=importer,
                   file_importer=file_importer, validator=validator)
    hooks = {k: v for k, v in (("importer", importer), ("file_importer", file_importer),
                               ("validator", validator)) if v is not None}
    if hooks and task_kind is None:
        raise ValueError(f"env {name}: {', '.join(hooks)} need a task_kind")
    for other in REGISTRY.values():
        if other.task_kind != task_kind or task_kind is None or other.env_id == info.env_id:
            continue
        for hook, spec in hooks.items():
            theirs = getattr(other, hook)
            if theirs is not None and theirs != spec:
                raise ValueError(f"task kind {task_kind!r}: {other.env_id} already has {hook} "
                                 f"{theirs}; {info.env_id} names {spec}. Use one per kind")
    if info.env_id in gymnasium.registry:
        del gymnasium.registry[info.env_id]
    gymnasium.register(id=info.env_id, entry_point=entry_point, kwargs=dict(info.kwargs),
                       max_episode_steps=max_episode_steps)
    REGISTRY[info.env_id] = info
    return info


def unregister_env(env_id: str) -> None:
    """Remove an env from `REGISTRY` and Gymnasium (tests, plug-ins being reloaded);
    an unknown id is a no-op."""
    REGISTRY.pop(env_id, None)
    if env_id in gymnasium.registry:
        del gymnasium.registry[env_id]


def lookup(name: str) -> EnvInfo:
    """Find an env by id (`envfarm/terminal-v0`) or short name (`terminal`)."""
    if name in REGISTRY:
        return REGISTRY[name]
    matches = [i for i in REGISTRY.values() if i.name == name]
    if not matches:
        known = ", ".join(sorted(REGISTRY)) or "none"
        raise KeyError(f"no env named {name!r}; registered: {known}")
    return max(matches, key=lambda i: i.version)


def task_kinds() -> dict[str, dict[str, str | None]]:
    """Every task kind the registered envs declare: kind -> its `importer`,
    `file_importer` and `validator` (the first env of the kind that names each)."""
    kinds: dict[str, dict[str, str | None]] = {}
    for info in sorted(REGISTRY.values(), key=lambda i: (i.name, -i.version)):
        if info.task_kind is None:
            continue
        entry = kinds.setdefault(info.task_kind,
                                 {"importer": None, "file_importer": None, "validator": None})
        for hook in entry:
            entry[hook] = entry[hook] or getattr(info, hook)
    return kinds


def kind_hook(kind: str, hook: str) -> Callable[..., Any] | None:
    """The `importer`, `file_importer` or `validator` of a task kind, imported now; None when
    the kind has none. Raises KeyError naming the known kinds for an unknown kind, and
    ImportError naming the env when its hook cannot be imported."""
    kinds = task_kinds()
    if kind not in kinds:
        raise KeyError(f"no env declares task kind {kind!r}; known kinds: "
                       f"{', '.join(sorted(kinds)) or 'none'}")
    spec = kinds[kind][hook]
    return None if spec is None else load_callable(spec)


def load_callable(spec: str) -> Callable[..., Any]:
    """Import `'module:function'` (dots after the colon walk attributes)."""
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise ValueError(f"{spec!r} is not 'module:function'")
    try:
        obj: Any = importlib.import_module(module_name)
        for part in attr.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as exc:
        raise ImportError(f"cannot import {spec}: {exc}") from exc
    if not callable(obj):
        raise TypeError(f"{spec} is not callable")
    return obj


_BUILTIN: list[dict[str, Any]] = [
    {"name": "echo", "entry_point": "envs.echo:EchoEnv", "tools": ("bash", "finish"),
     "verifier": "/tmp/answer.txt holds the word named by the task id (echo-<word>)",
     "description": "The smallest real env: exercises rollouts, retries and exports."},
    {"name": "swe", "entry_point": "envs.swe:SWEEnv", "tools": ("bash", "str_replace", "finish"),
     "verifier": "FAIL_TO_PASS and PASS_TO_PASS tests pass in a fresh container with the "
              "agent's diff applied", "task_kind": "swe",
     "file_importer": "swe_tasks.importer:import_file",
     "validator": "swe_tasks.validation:validate_tasks",
     "description": "Fix a real repository issue (SWE-bench format)."},
    {"name": "terminal", "entry_point": "envs.terminal:TerminalEnv", "tools": ("bash", "finish"),
     "verifier": "the task's tests run after the agent finishes: Harbor reward file, or "
              "Terminal-Bench 1 pytest results (all must pass)", "task_kind": "terminal",
     "importer": "envs.task_kinds:terminal_folder",
     "validator": "envs.terminal.validate:validate_tasks",
     "description": "Harbor and Terminal-Bench task folders in their own image."},
    {"name": "general", "entry_point": "envs.general:GeneralEnv",
     "tools": ("search", "open", "find", "app tools", "finish"),
     "verifier": "answer match (exact / normalized / numeric tolerance) and final app "
              "state checks; optional LLM judge", "task_kind": "general",
     "description": "Multi-hop search over a local corpus and stateful app function calling."},
    {"name": "webdev", "entry_point": "envs.webdev:WebDevEnv",
     "tools": ("bash", "str_replace", "finish"),
     "verifier": "weighted Playwright checks in Debian Chromium in a fresh offline sandbox "
              "(loads, no console errors, fits the viewport, the task's steps; 0 if no "
              "functional check passes); optional VLM judge by weight", "task_kind": "webdev",
     "importer": "envs.task_kinds:webdev_folder",
     "description": "Build a web page; a browser checks it."},
]


def _module_present(entry_point: str) -> bool:
    return importlib.util.find_spec(entry_point.split(":")[0]) is not None


def register_builtin() -> None:
    """Register every built-in env whose module exists in this checkout."""
    for spec in _BUILTIN:
        if _module_present(spec["entry_point"]):
            register_env(**spec)
