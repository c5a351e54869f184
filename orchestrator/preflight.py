"""Checks made before a run is created, so a run that cannot work fails in seconds with
one line naming the fix, instead of retrying every episode as `infra_error`.

`preflight(config, store_url)` checks, cheapest first:
- the env exists, and each `env_kwargs` key is a constructor argument of its class with a
  value of the annotated type (an unknown key or a wrong type names the argument);
- task ids are valid (printable, at most 255 characters: what every supported database
  takes) and, for envs whose tasks are catalogued, exist in the catalogue or the env's own
  folders; with no `--task`, the catalogue holds at least one matching task (else the
  error names the import command);
- the sandbox engine answers (`backend.healthy()`), for a local run;
- the model server answers (`GET /v1/models`) within a short timeout, for model policies.

Every failure raises `PreflightError` (a `ConfigError`: one line, `what; fix`).
Counts (`n`, `concurrency`, `max_turns`, ...) are checked by `RolloutConfig` itself.
"""

from __future__ import annotations

import inspect
import typing
from pathlib import Path
from typing import Any

from orchestrator.errors import PreflightError

MODEL_PROBE_TIMEOUT_S = 10.0
"""How long the model server may take to list its models before preflight gives up."""

BUNDLED_TASKS = {"webdev": ("envs.webdev", "TASKS_DIR"),
                 "terminal": ("envs.terminal.env", "EXAMPLE_TASKS")}
"""Task folders shipped with envfarm, by kind: named in the fix when none is catalogued."""

ENV_OWN_ARGS = frozenset({"catalogue_url", "backend", "run"})
"""Constructor arguments every env takes that the runner or the config sets itself."""


def preflight(config: Any, store_url: str, *, engine: bool = True, model: bool = True) -> None:
    """Check `config` (a RolloutConfig) against the world; raises PreflightError."""
    import envs

    for module in config.imports:
        __import__(module)
    info = envs.lookup(config.env)  # KeyError with the registered names: the CLI's one line
    env_cls = _env_class(info.entry_point)
    check_env_kwargs(info, env_cls, config.env_kwargs)
    if config.task_ids is not None:
        check_task_ids(info, env_cls, config.task_ids, store_url, config.env_kwargs)
    else:
        check_catalogue_has_tasks(info, store_url, config.task_filter)
    if engine and config.ray_address is None:
        check_engine(config.backend)
    if model:
        check_model_server(config.policy)


def _env_class(entry_point: str) -> type:
    from envs.registry import load_callable

    return load_callable(entry_point)  # type: ignore[return-value]


# -- env arguments -------------------------------------------------------------------------

def env_parameters(env_cls: type) -> tuple[dict[str, tuple[inspect.Parameter, Any]], bool]:
    """The constructor arguments of `env_cls` (walking `**kwargs` up to the base classes)
    with their type hints, and whether the chain stays open (ends in `**kwargs`)."""
    params: dict[str, tuple[inspect.Parameter, Any]] = {}
    for klass in env_cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None or klass is object:
            continue
        try:
            hints = typing.get_type_hints(init)
        except Exception:  # noqa: BLE001 — unresolvable annotations: names only
            hints = {}
        open_ended = False
        for p in list(inspect.signature(init).parameters.values())[1:]:
            if p.kind is inspect.Parameter.VAR_KEYWORD:
                open_ended = True
            elif p.kind is not inspect.Parameter.VAR_POSITIONAL:
                params.setdefault(p.name, (p, hints.get(p.name, Any)))
        if not open_ended:
            return params, False
    return params, True


def check_env_kwargs(info: Any, env_cls: type, kwargs: dict[str, Any]) -> None:
    """Each key is a constructor argument of the env, each value of its annotated type."""
    from pydantic import TypeAdapter, ValidationError

    params, open_ended = env_parameters(env_cls)
    for key, value in kwargs.items():
        if key not in params:
            if open_ended or key in ENV_OWN_ARGS:
                continue
            known = ", ".join(sorted(k for k in params if k not in ENV_OWN_ARGS))
            raise PreflightError(f"{info.env_id} takes no argument {key!r} (--env-arg)",
                                 f"use one of: {known}")
        _, hint = params[key]
        if hint is Any or key == "backend":
            continue
        try:
            TypeAdapter(hint).validate_python(value)
        except ValidationError as exc:
            reason = exc.errors()[0].get("msg", "wrong type")
            raise PreflightError(
                f"--env-arg {key}={value!r} does not fit {info.env_id}: {reason}",
                f"give a value of type {_type_name(hint)} (JSON, e.g. {key}=1.5)") from None
        except Exception:  # noqa: BLE001, S112 — a hint pydantic cannot check: the env will
            continue


def _type_name(hint: Any) -> str:
    return getattr(hint, "__name__", None) or str(hint).replace("typing.", "")


# -- tasks -----------------------------------------------------------------------------------

def check_task_ids(info: Any, env_cls: type, task_ids: list[str], store_url: str,
                   env_kwargs: dict[str, Any]) -> None:
    """Every id is valid; for catalogued kinds, every id is a task the env can find."""
    if not task_ids:
        raise PreflightError("no task ids given", "name tasks with --task ID, or leave "
                             "--task out to run the catalogue's tasks")
    for task_id in task_ids:
        problem = _id_problem(task_id)
        if problem:
            shown = task_id if len(task_id) <= 60 else task_id[:57] + "…"
            raise PreflightError(f"task id {shown!r} {problem}",
                                 "use the id as `envfarm tasks list` shows it")
    if not _catalogued_kind(info):
        return  # ids such as echo-<word> are the env's own; it checks them at reset
    missing = _missing_tasks(info, env_cls, task_ids, store_url, env_kwargs)
    if missing:
        shown = ", ".join(repr(t if len(t) <= 60 else t[:57] + "…") for t in missing[:5])
        more = f" (+{len(missing) - 5} more)" if len(missing) > 5 else ""
        raise PreflightError(
            f"no {info.task_kind} task {shown}{more} in the catalogue ({_safe(store_url)}) "
            "or the env's own folders",
            f"check the ids with `envfarm tasks list --kind {info.task_kind}`, or "
            f"{_import_fix(info.task_kind)}")


def _id_problem(task_id: str) -> str | None:
    try:
        from catalogue import id_problem
    except ImportError:  # pragma: no cover — before the catalogue package
        if not task_id or len(task_id) > 255:
            return "must be 1 to 255 characters long"
        return None
    return id_problem(task_id)


def _catalogued_kind(info: Any) -> bool:
    """Whether the env's tasks come from the catalogue (its kind has an importer)."""
    return bool(info.task_kind and (getattr(info, "importer", None)
                                    or getattr(info, "file_importer", None)))


def _missing_tasks(info: Any, env_cls: type, task_ids: list[str], store_url: str,
                   env_kwargs: dict[str, Any]) -> list[str]:
    with _catalogue(store_url) as cat:
        missing = []
        for task_id in task_ids:
            try:
                cat.get(task_id)
            except KeyError:
                missing.append(task_id)
    missing = [t for t in missing if not Path(t).is_dir()]  # a task folder given by path
    finder = getattr(env_cls, "has_task", None) or getattr(env_cls, "get_task", None)
    if not missing or finder is None:
        return missing
    try:
        env = env_cls(**{k: v for k, v in env_kwargs.items() if k != "backend"},
                      catalogue_url=store_url)
    except Exception:  # noqa: BLE001 — cannot build it here: the ids stay missing
        return missing
    still = []
    for task_id in missing:
        try:
            found = getattr(env, finder.__name__)(task_id)
        except Exception:  # noqa: BLE001 — KeyError, TaskError, OSError: not found
            found = False
        if found is False or found is None:
            still.append(task_id)
    return still


def check_catalogue_has_tasks(info: Any, store_url: str, task_filter: dict[str, Any]) -> None:
    """With no --task, the run covers the catalogue's tasks of the env's kind: there must
    be at least one."""
    if not info.task_kind:
        raise PreflightError(f"{info.env_id} has no task catalogue", "name tasks with --task ID")
    with _catalogue(store_url) as cat:
        total = cat.count(kind=info.task_kind)
        matching = cat.count(kind=info.task_kind, repo=task_filter.get("repo"),
                             status=task_filter.get("status")) if total else 0
    if matching:
        return
    if total:
        shown = " ".join(f"--{k} {v}" for k, v in task_filter.items() if k != "limit")
        raise PreflightError(f"none of the {total} {info.task_kind} tasks in the catalogue "
                             f"match {shown}", "loosen the filter (envfarm tasks list)")
    raise PreflightError(f"no {info.task_kind} tasks in the catalogue ({_safe(store_url)})",
                         _import_fix(info.task_kind))


def _catalogue(store_url: str) -> Any:
    try:
        from catalogue import Catalogue
    except ImportError:  # pragma: no cover — before the catalogue package
        from swe_tasks.catalogue import Catalogue
    return Catalogue(store_url)


def _import_fix(kind: str) -> str:
    if kind in BUNDLED_TASKS:
        import importlib

        module, attr = BUNDLED_TASKS[kind]
        folder = Path(getattr(importlib.import_module(module), attr)).resolve()
        try:
            folder = folder.relative_to(Path.cwd())
        except ValueError:
            pass
        return f"import the bundled ones: envfarm tasks import-dir {folder}"
    if kind == "swe":
        return ("import SWE-bench records (envfarm tasks import FILE.jsonl) or make some "
                "(envfarm swe synthesize PKG==VERSION --catalogue)")
    return "import some: envfarm tasks import-dir DIR (or envfarm tasks import FILE)"


def _safe(url: str) -> str:
    """The URL without a password."""
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001
        return url


# -- engine and model server -----------------------------------------------------------------

def check_engine(backend: Any = None) -> None:
    """The sandbox engine answers now."""
    from sandbox import BackendConfig, make_backend
    from sandbox.errors import SandboxError

    config = backend if isinstance(backend, BackendConfig) else (
        BackendConfig.model_validate(backend) if backend else BackendConfig())
    try:
        healthy = make_backend(config).healthy()
    except SandboxError as exc:
        raise PreflightError(f"the {config.type} engine does not answer ({_short(exc)})",
                             "start it (make setup starts dockerd) and check `envfarm doctor`") \
            from None
    if not healthy:
        raise PreflightError(f"the {config.type} engine does not answer",
                             "start it (make setup starts dockerd) and check `envfarm doctor`")


def check_model_server(policy: Any, timeout_s: float = MODEL_PROBE_TIMEOUT_S) -> None:
    """Each model server URL lists its models within `timeout_s` (vllm and chat policies)."""
    if policy.type not in ("vllm", "chat"):
        return
    if not policy.urls:
        if getattr(policy, "local_model", None):
            return  # a local server is started for the run
        raise PreflightError(f"policy {policy.type!r} needs a model server",
                             "give --vllm-url URL (or --local-model NAME)")
    if policy.type == "vllm" and policy.tokenizer and not Path(policy.tokenizer).is_dir():
        raise PreflightError(f"--tokenizer {policy.tokenizer} is not a folder",
                             "give the model folder (tokenizer.json and chat template)")
    import httpx

    timeout = min(timeout_s, float(getattr(policy, "timeout_s", None) or timeout_s))
    for url in policy.urls:
        probe = url.rstrip("/") + "/v1/models"
        try:
            answer = httpx.get(probe, timeout=httpx.Timeout(timeout, connect=min(timeout, 5.0)))
        except httpx.ReadTimeout:
            raise PreflightError(
                f"model server {url} accepted the connection but sent nothing in "
                f"{timeout:.0f} s", "check that the server is up and not stuck, or fix "
                "--vllm-url") from None
        except httpx.HTTPError as exc:
            raise PreflightError(f"model server {url} does not answer ({_short(exc)})",
                                 "start it, or fix --vllm-url") from None
        if answer.status_code != 200:
            raise PreflightError(
                f"model server {url} answered HTTP {answer.status_code} on /v1/models",
                "give the root URL of an OpenAI-compatible server (vLLM: http://HOST:8000)")


def _short(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 160 else text[:159] + "…"
