"""`envfarm envs list|show NAME`: the env registry (tools, verifier, task kind and the kind's
importer and validator), with catalogue task counts by kind."""

from __future__ import annotations

import json

import typer
from rich.table import Table

from orchestrator.cli.console import console

app = typer.Typer(help="Registered environments: tools, verifier, tasks.", no_args_is_help=True)

StoreOpt = typer.Option(None, "--store", help="SQLAlchemy URL (default: $ENVFARM_STORE or ./envfarm.db).")


def _task_counts(store: str | None) -> dict[str, int] | None:
    """Tasks per kind in the catalogue; None when it cannot be opened (shown as '?')."""
    try:
        from catalogue import Catalogue

        with Catalogue(store) as cat:
            return {kind: n for kind, n in cat.stats(("kind",))}
    except Exception as exc:  # noqa: BLE001 - a missing store must not hide the registry
        console.print(f"[yellow]catalogue unavailable ({type(exc).__name__}: {exc})[/]")
        return None


def _count(counts: dict[str, int] | None, kind: str | None) -> str:
    if kind is None:
        return "-"
    return "?" if counts is None else str(counts.get(kind, 0))


@app.command("list")
def list_(store: str | None = StoreOpt) -> None:
    """Every registered env: id, tools, task kind (how its tasks are imported and
    validated), tasks in the catalogue (by kind), verifier."""
    from envs import REGISTRY

    counts = _task_counts(store)
    table = Table(title=f"{len(REGISTRY)} registered envs")
    table.add_column("env id", no_wrap=True)  # an id is copied from here: never cut it
    for col in ("tools", "task kind", "import", "validate", "tasks", "verifier"):
        table.add_column(col, overflow="fold", justify="right" if col == "tasks" else "left")
    for env_id, info in sorted(REGISTRY.items()):
        table.add_row(env_id, ", ".join(info.tools), info.task_kind or "-", _imports(info),
                      "yes" if info.validator else "-", _count(counts, info.task_kind),
                      info.verifier)
    console.print(table)


def _imports(info: object) -> str:
    """How tasks of the env's kind enter the catalogue: the verbs that take them."""
    ways = [verb for verb, hook in (("import-dir", "importer"), ("import", "file_importer"))
            if getattr(info, hook)]
    return ", ".join(ways) or "-"


@app.command("show")
def show(name: str = typer.Argument(..., help="Env id (envfarm/terminal-v0) or short name."),
         store: str | None = StoreOpt) -> None:
    """One env: its entry point, tools with their argument schemas, verifier, task count."""
    from envs import lookup

    info = lookup(name)  # an unknown name: one line from the CLI's error handler
    counts = _task_counts(store) if info.task_kind else None
    table = Table(title=info.env_id, show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value", overflow="fold")
    for field, value in (("description", info.description), ("entry point", info.entry_point),
                         ("task kind", info.task_kind or "-"),
                         ("folder importer (tasks import-dir)", info.importer or "-"),
                         ("file importer (tasks import)", info.file_importer or "-"),
                         ("validator (tasks validate)", info.validator or "-"),
                         ("tasks in catalogue", _count(counts, info.task_kind)),
                         ("verifier", info.verifier),
                         ("default kwargs", json.dumps(info.kwargs) if info.kwargs else "-")):
        table.add_row(field, value)
    console.print(table)
    schemas = _tool_schemas(info.entry_point)
    tools = Table(title="tools")
    for col in ("tool", "arguments", "description"):
        tools.add_column(col, overflow="fold")
    for name_ in info.tools:
        schema = schemas.get(name_)
        if schema is None:
            tools.add_row(name_, "-", "-")
            continue
        params = schema["parameters"]
        required = set(params.get("required", []))
        args = ", ".join(f"{k}{'' if k in required else '?'}" for k in params.get("properties", {}))
        tools.add_row(name_, args, schema["description"])
    console.print(tools)


def _tool_schemas(entry_point: str) -> dict[str, dict]:
    """Schemas of the shared tools, and of the env's own (its class's `tool_classes`)."""
    import importlib

    from envs import BashTool, FinishTool, StrReplaceEditorTool

    tool_classes: list[type] = [BashTool, FinishTool, StrReplaceEditorTool]
    module, _, cls_name = entry_point.partition(":")
    try:
        tool_classes += list(getattr(getattr(importlib.import_module(module), cls_name),
                                     "tool_classes", ()))
    except Exception as exc:  # noqa: BLE001 - show what is known rather than fail
        console.print(f"[yellow]cannot import {entry_point}: {exc}[/]")
    out = {}
    for tool_cls in tool_classes:
        schema = tool_cls().schema()["function"]
        out[schema["name"]] = schema
    return out
