"""The CLI's one error handler: an expected error becomes one line on stderr,
`error: <what>; <fix>`, and a non-zero exit; a traceback only with `--debug` (or
`ENVFARM_DEBUG=1`).

It sits in the top-level click group's `invoke` (`HandledGroup`), so every verb, including
verbs added later in their own modules, is covered, and `CliRunner.invoke(app, ...)` sees
exactly what a user sees. Exit codes: 2 for a usage error (bad flag or argument, as click),
1 for everything else, 130 for an interrupt.
"""

from __future__ import annotations

import json
import os
import sys
import traceback

import typer
import typer.core

try:  # typer >= 0.20 vendors click; its exceptions are not click's
    from typer._click import exceptions as _cx
except ImportError:  # pragma: no cover — an older typer on real click
    from click import exceptions as _cx

DEBUG_ENV = "ENVFARM_DEBUG"


def debug_enabled() -> bool:
    return os.environ.get(DEBUG_ENV, "").lower() not in ("", "0", "false", "no")


def _first_line(text: str, limit: int = 400) -> str:
    line = " ".join(str(text).split()).rstrip(".")
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _validation(exc: Exception) -> str:
    """A pydantic ValidationError as `invalid <model>: field: problem, ...`."""
    errors = exc.errors()  # type: ignore[attr-defined]
    parts = []
    for err in errors[:4]:
        where = ".".join(str(p) for p in err.get("loc", ())) or "value"
        parts.append(f"{where}: {err.get('msg', 'invalid')}")
    more = f" (+{len(errors) - 4} more)" if len(errors) > 4 else ""
    title = getattr(exc, "title", "input")
    return f"invalid {title}: {', '.join(parts)}{more}; fix the value and run again"


def _database(exc: Exception) -> str:
    text = str(getattr(exc, "orig", exc) or exc)
    low = text.lower()
    if "readonly" in low or "read-only" in low or "read only" in low:
        return ("the store is read-only; make the file and its folder writable or point "
                "--store / ENVFARM_STORE at a writable store")
    if "not a database" in low or "malformed" in low or "corrupt" in low:
        return ("the store is not a readable database (corrupt or another file); point "
                "--store / ENVFARM_STORE at an envfarm store, or move the file aside")
    if "unable to open" in low:
        return ("cannot open the store's file; check that its folder exists and is writable, "
                "or set --store / ENVFARM_STORE")
    if "could not connect" in low or "connection refused" in low:
        return f"cannot reach the database ({_first_line(text, 200)}); start it or fix the URL"
    return f"database error: {_first_line(text, 300)}; check --store / ENVFARM_STORE"


def _os_error(exc: OSError) -> str:
    name = exc.filename if exc.filename is not None else ""
    where = f" {name}" if name else ""
    if isinstance(exc, IsADirectoryError):
        return f"{name or 'path'} is a directory, a file was expected; give a file path"
    if isinstance(exc, NotADirectoryError):
        return f"{name or 'path'} is not a directory; give a folder path"
    if isinstance(exc, FileNotFoundError):
        return f"no such file or folder:{where}; check the path"
    if isinstance(exc, PermissionError):
        return f"permission denied:{where}; make it writable/readable or choose another path"
    if isinstance(exc, ConnectionError):
        return f"connection failed: {exc}; check that the server runs and the URL is right"
    reason = exc.strerror or str(exc)
    return f"{reason}:{where}; check the path and its permissions"


def describe(exc: BaseException) -> str | None:
    """The one-line message for an expected error, or None for a bug."""
    from pydantic import ValidationError

    from orchestrator.errors import ConfigError
    from sandbox.errors import EnvfarmError, InfraError, TaskError

    if isinstance(exc, ConfigError):
        return str(exc)
    if isinstance(exc, TaskError):
        text = _first_line(str(exc))
        return text if ";" in text else f"{text}; fix the task (envfarm tasks show ID)"
    if isinstance(exc, InfraError):
        text = _first_line(str(exc))
        return text if ";" in text else f"{text}; check the engine with `envfarm doctor`"
    if isinstance(exc, EnvfarmError):
        return _first_line(str(exc))
    if isinstance(exc, ValidationError):
        return _validation(exc)
    try:
        import sqlalchemy.exc as sa_exc

        if isinstance(exc, (sa_exc.OperationalError, sa_exc.DatabaseError)):
            return _database(exc)
        if isinstance(exc, sa_exc.ArgumentError):
            return f"bad store URL: {_first_line(str(exc), 200)}; use sqlite:///PATH or postgresql://…"
    except ImportError:  # pragma: no cover
        pass
    if isinstance(exc, json.JSONDecodeError):
        return (f"invalid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg}); "
                "fix the file or value")
    if isinstance(exc, UnicodeDecodeError):
        return f"cannot decode text as {exc.encoding}: {exc.reason}; save the file as UTF-8"
    if isinstance(exc, OSError):
        return _os_error(exc)
    if isinstance(exc, KeyError) and exc.args and isinstance(exc.args[0], str) \
            and " " in exc.args[0]:
        return _first_line(exc.args[0])  # our lookups raise KeyError with a sentence
    if isinstance(exc, (ValueError, TimeoutError)):
        text = _first_line(str(exc)) or type(exc).__name__
        return text
    try:
        import httpx

        if isinstance(exc, httpx.HTTPError):
            return f"model server: {type(exc).__name__}: {_first_line(str(exc), 200)}; " \
                   "check --vllm-url and that the server answers"
    except ImportError:  # pragma: no cover
        pass
    return None


def report(exc: BaseException) -> int:
    """Print `exc` as the CLI does; returns the exit code."""
    if isinstance(exc, _cx.UsageError):
        hint = ""
        if exc.ctx is not None:
            hint = f"; see `{exc.ctx.command_path} --help`"
        _err(f"{_first_line(exc.format_message())}{hint}")
        return exc.exit_code
    if isinstance(exc, _cx.ClickException):
        _err(_first_line(exc.format_message()))
        return exc.exit_code
    if isinstance(exc, BrokenPipeError):
        return 1  # the reader went away (`envfarm … | head`): nothing to say to it
    message = describe(exc)
    if debug_enabled():
        traceback.print_exception(exc, file=sys.stderr)
    if message is None:
        message = (f"internal error: {type(exc).__name__}: {_first_line(str(exc), 300)}; "
                   "rerun with --debug for the traceback and report it")
    _err(message)
    return 1


def _err(message: str) -> None:
    text = message if message.startswith("error:") else f"error: {message}"
    typer.echo(text, err=True)


class HandledGroup(typer.core.TyperGroup):
    """The top-level group: every verb below runs inside the one error handler."""

    def invoke(self, ctx: typer.Context) -> object:
        try:
            return super().invoke(ctx)
        except (typer.Exit, typer.Abort, SystemExit, _cx.NoArgsIsHelpError):
            raise
        except KeyboardInterrupt:
            _err("interrupted")
            raise typer.Exit(130) from None
        except Exception as exc:  # noqa: BLE001 — the one place that turns errors into lines
            raise typer.Exit(report(exc)) from None
