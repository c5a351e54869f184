"""`envfarm tasks import|list|show|stats|validate`: the task catalogue.

The verbs read the env registry (`envs.registry`): `import FILE --kind K` runs kind K's
`file_importer`, `validate --kind K` its `validator` (contracts in `envs.registry`), so a
new task kind needs no change here. This module writes the verdicts to the catalogue and
draws the progress bar; a `task_error` verdict is stored with its cause and log tail.

Re-importing a record whose id is catalogued updates it and prints what changed (which
fields), so a replacement is never silent; a file that holds one id twice is reported.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from catalogue import STATUSES, VERDICTS, Catalogue, ChangeLog
from orchestrator.cli.console import console

app = typer.Typer(help="The task catalogue: import, browse, validate.", no_args_is_help=True)

StoreOpt = typer.Option(None, "--store", help="SQLAlchemy URL (default: $ENVFARM_STORE or ./envfarm.db).")


@app.command("import")
def import_(
    source: str = typer.Argument(..., help="A .json/.jsonl/.parquet file of SWE-bench-format "
                                 "records, or hf:DATASET[:SPLIT]."),
    kind: str = typer.Option("swe", help="Task kind whose file importer reads SOURCE."),
    store: str | None = StoreOpt,
    batch_size: int = typer.Option(5000, help="Records per transaction."),
    show_problems: int = typer.Option(20, help="How many skipped records to list."),
) -> None:
    """Import SWE instances; invalid records are listed with the reason and skipped.
    A record whose id is catalogued already is updated and what changed is printed."""
    import_file = _hook(kind, "file_importer", "tasks import-dir DIR for folder-based kinds")
    with Catalogue(store) as cat, console.status(f"importing {source}") as status:
        report = import_file(cat, source, batch_size=batch_size,
                             on_progress=lambda n: status.update(f"importing {source}: {n} read")
                             if n % 1000 == 0 else None)
        changes = cat.changes
    console.print(f"[green]imported {report.imported}[/] of {report.read} records from {source} "
                  f"in {report.duration_s:.1f} s; skipped {report.skipped}")
    print_changes(changes)
    if report.problems:
        table = Table(title=f"skipped records (first {show_problems})")
        for col in ("where", "instance_id", "why"):
            table.add_column(col, overflow="fold")
        for p in report.problems[:show_problems]:
            table.add_row(escape(p.where), escape(p.instance_id or "-"), escape(p.reason))
        console.print(table)


@app.command("list")
def list_(
    kind: str | None = typer.Option(None, help="Task kind (envfarm envs list shows them)."),
    repo: str | None = typer.Option(None),
    status: str | None = typer.Option(None, help=" | ".join(STATUSES)),
    limit: int = typer.Option(50),
    offset: int = typer.Option(0),
    store: str | None = StoreOpt,
) -> None:
    """Tasks matching the filters, by id."""
    with Catalogue(store) as cat:
        rows = cat.query(kind=kind, repo=repo, status=status, limit=limit, offset=offset)
        total = cat.count(kind=kind, repo=repo, status=status)
    table = Table(title=f"tasks {offset + 1 if rows else 0}-{offset + len(rows)} of {total}")
    for col in ("id", "kind", "repo", "image key", "status", "reason"):
        table.add_column(col, overflow="fold")
    for t in rows:
        table.add_row(escape(t.id), t.kind, escape(t.repo or "-"), escape(t.image_key or "-"),
                      _status(t.status), escape((t.status_reason or "")[:80]))
    console.print(table)
    if status is None and (broken := cat_count(store, "task_error")):
        console.print(f"[red]{broken} task(s) have status task_error[/] (rollouts skip them): "
                      "envfarm tasks list --status task_error; fix the task and import it again")


@app.command("show")
def show(task_id: str, store: str | None = StoreOpt,
         full: bool = typer.Option(False, help="Print long fields whole.")) -> None:
    """One task: its catalogue row and its record."""
    with Catalogue(store) as cat:
        try:
            t = cat.get(task_id)
        except KeyError as e:
            console.print(f"[red]{escape(e.args[0])}[/]")
            raise typer.Exit(1) from None
    table = Table(title=f"task {t.id}", show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value", overflow="fold")
    for name, value in (("kind", t.kind), ("source", t.source), ("repo", t.repo),
                        ("image key", t.image_key), ("status", None), ("reason", t.status_reason)):
        if name == "status":
            table.add_row(name, _status(t.status))
            continue
        table.add_row(name, escape(str(value)) if value is not None else "-")
    for key, value in t.data.items():
        table.add_row(escape(key), escape(_short(value, full)))
    console.print(table)
    if t.status_log:
        console.print(f"[bold]log tail[/] (why it is {t.status}):")
        console.print(escape(t.status_log if full else t.status_log[-3000:]), highlight=False)
    if t.status == "task_error":
        console.print("rollouts skip this task; fix it and import it again (that resets the "
                      "status), or run it anyway with rollout --include-task-errors")


@app.command("stats")
def stats(store: str | None = StoreOpt, top: int = typer.Option(15, help="Repos to list.")) -> None:
    """Counts by kind and validation status, and the largest repos."""
    with Catalogue(store) as cat:
        by_status = cat.stats(("kind", "status"))
        by_repo = cat.stats(("repo",))
        images = len(cat.stats(("image_key",)))
        total = cat.count()
    table = Table(title=f"{total} tasks, {images} environment images")
    for col in ("kind", "status", "tasks"):
        table.add_column(col, justify="right" if col == "tasks" else "left")
    for kind, status, n in by_status:
        table.add_row(kind, _status(status), str(n))
    console.print(table)
    repos = Table(title=f"top {min(top, len(by_repo))} of {len(by_repo)} repos")
    repos.add_column("repo")
    repos.add_column("tasks", justify="right")
    for repo, n in by_repo[:top]:
        repos.add_row(escape(repo or "-"), str(n))
    console.print(repos)


@app.command("validate")
def validate(
    task_ids: Annotated[list[str] | None, typer.Argument(
        help="Task ids (default: all matching the filters).")] = None,
    kind: str = typer.Option("swe", help="Task kind whose validator runs (envfarm envs list)."),
    repo: str | None = typer.Option(None),
    status: str | None = typer.Option("unvalidated", help="Only tasks with this status ('' = any)."),
    limit: int | None = typer.Option(None),
    concurrency: int = typer.Option(2, help="Tasks checked at once (one sandbox each)."),
    runs: int = typer.Option(2, help="Runs per task; differing verdicts mark it flaky."),
    store: str | None = StoreOpt,
) -> None:
    """Check reference solutions: mark tasks valid, invalid (with why) or flaky."""
    validator = _hook(kind, "validator", "")
    with Catalogue(store) as cat:
        if task_ids:
            tasks = [t for t in cat.get_many(list(task_ids)) if t.kind == kind]
        else:
            tasks = cat.query(kind=kind, repo=repo, status=status or None, limit=limit)
        if not tasks:
            console.print("nothing to validate")
            return
        counts: dict[str, int] = {}
        lock = threading.Lock()
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                   TimeElapsedColumn(), TextColumn("{task.fields[last]}"))
        with Progress(*columns, console=console) as bar:
            job = bar.add_task(f"validating {len(tasks)} {kind} tasks", total=len(tasks), last="")

            def on_result(task_id: str, verdict: str, reason: str | None,
                          log_tail: str | None = None) -> None:
                if verdict not in (*VERDICTS, "unvalidated"):
                    reason, verdict = f"validator reported {verdict!r}: {reason}", "unvalidated"
                with lock:
                    cat.set_status(task_id, verdict, reason, log_tail)
                    counts[verdict] = counts.get(verdict, 0) + 1
                    bar.update(job, advance=1, last=escape(f"{task_id}: {verdict}"))

            validator(tasks, concurrency=concurrency, runs=runs, on_result=on_result)
        table = Table(title="validation")
        for col in ("id", "status", "why"):
            table.add_column(col, overflow="fold")
        for t in cat.get_many([t.id for t in tasks]):
            table.add_row(escape(t.id), _status(t.status), escape(t.status_reason or ""))
        console.print(table)
        console.print(", ".join(f"{k}: {v}" for k, v in sorted(counts.items())))


def _hook(kind: str, hook: str, hint: str) -> Callable[..., Any]:
    """Kind `kind`'s importer or validator from the registry; exit 2 naming the kinds that
    have one when it has none."""
    import envs  # noqa: F401  (registers the built-in envs)
    from envs.registry import kind_hook, task_kinds

    try:
        fn = kind_hook(kind, hook)
    except KeyError as exc:
        fn, why = None, exc.args[0]
    else:
        why = f"task kind {kind!r} has no {hook.replace('_', ' ')}"
    if fn is None:
        having = [k for k, hooks in sorted(task_kinds().items()) if hooks[hook]]
        console.print(f"[red]{escape(why)}[/]; kinds with one: {', '.join(having) or 'none'}"
                      + (f"; {hint}" if hint else ""))
        raise typer.Exit(2)
    return fn


def print_changes(changes: ChangeLog, limit: int = 10) -> None:
    """What an import did to tasks already catalogued: counts, then what changed."""
    lines = changes.summary_lines(limit)
    console.print(lines[0])
    for line in lines[1:]:
        console.print(f"  [yellow]{escape(line)}[/]")


def cat_count(store: str | None, status: str) -> int:
    with Catalogue(store) as cat:
        return cat.count(status=status)


def _status(status: str) -> str:
    color = {"valid": "green", "invalid": "red", "flaky": "yellow",
             "task_error": "bold red"}.get(status, "dim")
    return f"[{color}]{status}[/]"


def _short(value: Any, full: bool) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    if full or len(text) <= 400:
        return text
    return text[:400] + f" … ({len(text)} chars; --full shows all)"
