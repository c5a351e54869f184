"""`envfarm tasks import-dir PATH`: catalogue task folders of every folder-based kind.

Which folders are tasks, and of which kind, is the env registry's business: every task
kind with an `importer` (`envs.registry`) is asked about each folder of the walk, and the
one that claims it makes its record (today Harbor and Terminal-Bench 1 folders become
`terminal` tasks, web-dev folders `webdev` tasks). The walk:

- goes into every folder that no kind claims, at any depth, and never into a task folder;
- does not follow a symlinked folder (it is listed as skipped: a dataset from a stranger
  must not pull in the rest of the disk, and a link loop must not import a task 41 times);
- lists every bad folder with its reason and imports all the good ones: a malformed task
  file, a file that is not UTF-8, an invalid id, a folder with no task file anywhere
  inside, a folder claimed by two kinds;
- refuses ids that two folders share, naming both folders (two Harbor folders with one
  name under different parents), and an id already catalogued from another folder unless
  `--replace` (it would silently lose that task);
- re-importing a changed folder updates its record and prints what changed.

Exit code: 0 when at least one task was imported (bad folders are listed, not fatal),
1 when nothing was, or with `--strict` when any folder was bad.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from orchestrator.cli.tasks import StoreOpt, console, print_changes
from orchestrator.cli.tasks import app as tasks_app

Importer = Callable[[Path], Any]


@dataclass
class Found:
    """One folder of the walk: a record, or the reason it was skipped."""

    folder: Path
    record: Any = None
    problem: str | None = None


@tasks_app.command("import-dir")
def import_dir(
    path: Annotated[Path, typer.Argument(
        exists=True, file_okay=False,
        help="A task folder, or a folder of task folders (any depth).")],
    store: str | None = StoreOpt,
    replace: bool = typer.Option(False, help="Replace tasks of the same id catalogued from "
                                 "another folder (default: refuse them, naming both)."),
    strict: bool = typer.Option(False, help="Exit non-zero when any folder was skipped."),
    show_problems: int = typer.Option(50, help="How many skipped folders to list."),
) -> None:
    """Import terminal (Harbor, Terminal-Bench 1) and web-dev task folders, and those of any
    other registered kind with a folder importer."""
    from catalogue import Catalogue

    importers = folder_importers()
    found = list(walk(path, importers))
    good = _refuse_shared_ids([f for f in found if f.record is not None])
    with Catalogue(store) as cat:
        _refuse_taken_ids(cat, good, replace)
        records = [f.record for f in good if f.problem is None]
        n = cat.upsert(records) if records else 0
        changes = cat.changes
    problems = [f for f in found if f.problem is not None]
    by_kind: dict[str, int] = {}
    for r in records:
        name = r.data.get("format", r.kind) if r.kind == "terminal" else r.kind
        by_kind[name] = by_kind.get(name, 0) + 1
    console.print(f"[green]imported {n}[/] tasks from {escape(str(path))} "
                  f"({', '.join(f'{k}: {v}' for k, v in sorted(by_kind.items())) or 'none'}); "
                  f"skipped {len(problems)}")
    if n:
        print_changes(changes)
    if problems:
        table = Table(title=f"skipped folders ({min(show_problems, len(problems))} of "
                      f"{len(problems)})")
        table.add_column("folder", overflow="fold")
        table.add_column("why", overflow="fold")
        for f in problems[:show_problems]:
            table.add_row(escape(str(f.folder)), escape(f.problem or ""))
        console.print(table)
    if not found:
        console.print(f"[red]no task folders under {escape(str(path))}[/]: none of "
                      f"{', '.join(sorted(importers)) or 'no kinds'} claims a folder there; "
                      "give the folder that holds task.toml / task.yaml folders")
    if n == 0 or (strict and problems):
        raise typer.Exit(1)


def folder_importers() -> dict[str, Importer]:
    """Kind -> folder importer, for every registered kind that has one."""
    import envs  # noqa: F401  (registers the built-in envs)
    from envs.registry import load_callable, task_kinds

    return {kind: load_callable(hooks["importer"])
            for kind, hooks in sorted(task_kinds().items()) if hooks["importer"]}


NO_TASK_FILE = "no task file (task.toml or task.yaml) in this folder or below it"


def walk(root: Path, importers: dict[str, Importer]) -> Iterator[Found]:
    """Task folders and bad folders under `root` (itself included), in sorted order.

    A folder no kind claims is descended into; one with no task folder anywhere below it is
    yielded as a problem (only the topmost such folder). Symlinked folders below `root` are
    yielded as problems, never followed; hidden folders (`.git`) are passed over."""
    found = _claim(root, importers)
    if found is not None:
        yield found
        return
    for child in _subfolders(root):
        if child.is_symlink():
            yield Found(child, problem=f"a symlink to a folder ({_link_target(child)}); "
                        "links are not followed: copy the folder in instead")
            continue
        below = list(walk(child, importers))
        if all(f.problem == NO_TASK_FILE for f in below):
            below = [Found(child, problem=NO_TASK_FILE)]
        yield from below


def _subfolders(folder: Path) -> list[Path]:
    try:
        children = sorted(folder.iterdir())
    except OSError:
        return []
    return [c for c in children if not c.name.startswith(".") and (c.is_dir() or (
        c.is_symlink() and c.resolve().is_dir()))]


def _link_target(path: Path) -> str:
    try:
        return f"-> {path.readlink()}"
    except OSError:
        return "unreadable link"


def _claim(folder: Path, importers: dict[str, Importer]) -> Found | None:
    """What the kinds make of one folder: None when no kind claims it."""
    results: dict[str, Found] = {}
    for kind, importer in importers.items():
        try:
            record = importer(folder)
        except Exception as exc:  # noqa: BLE001 - one bad folder must not stop the import
            results[kind] = Found(folder, problem=_reason(exc))
            continue
        if record is None:
            continue
        if record.kind != kind:
            results[kind] = Found(folder, problem=f"the {kind} importer made a {record.kind!r} "
                                  "record; fix the importer")
        else:
            results[kind] = Found(folder, record=record)
    if len(results) > 1:
        return Found(folder, problem=f"claimed by several task kinds ({', '.join(results)}); "
                     "remove the other kind's task file")
    return next(iter(results.values()), None)


def _reason(exc: Exception) -> str:
    """One line on why a folder could not be read."""
    from pydantic import ValidationError

    if isinstance(exc, ValidationError):
        return "; ".join(f"{'.'.join(map(str, e['loc'])) or 'task'}: "
                         f"{e['msg'].removeprefix('Value error, ')}" for e in exc.errors()[:3])
    if isinstance(exc, UnicodeDecodeError):
        return (f"a task file is not UTF-8 text ({exc.reason} at byte {exc.start}); "
                "save it as UTF-8")
    text = " ".join(str(exc).split())
    return text if type(exc).__name__ in ("TaskError", "TaskFormatError") \
        else f"{type(exc).__name__}: {text}"


def _folder_of(found: Found) -> str:
    return str(found.folder)


def _refuse_shared_ids(good: list[Found]) -> list[Found]:
    """Mark every folder whose id another folder of this import also has."""
    by_id: dict[str, list[Found]] = {}
    for f in good:
        by_id.setdefault(f.record.id, []).append(f)
    for task_id, same in by_id.items():
        if len(same) < 2:
            continue
        for f in same:
            others = ", ".join(_folder_of(o) for o in same if o is not f)
            f.problem = (f"id {task_id} is also the id of {others}; rename one of the folders "
                         "(ids come from folder names) and import again")
            f.record = None
    return good


def _refuse_taken_ids(cat: Any, good: list[Found], replace: bool) -> None:
    """Mark folders whose id is catalogued from another folder, unless `replace`."""
    if replace:
        return
    pending = [f for f in good if f.problem is None]
    stored = cat.sources([f.record.id for f in pending])
    for f in pending:
        old = stored.get(f.record.id)
        if old is None or _same_origin(old, f.record.source):
            continue
        f.problem = (f"id {f.record.id} is already catalogued from {old}; rename this folder, "
                     "or pass --replace to replace that task with this one")
        f.record = None


def _same_origin(old: str, new: str) -> bool:
    """Whether a stored source and a new one are the same folder (older imports stored the
    import's root folder as the source of terminal tasks)."""
    if old == new:
        return True
    try:
        return Path(new).is_relative_to(Path(old)) and Path(old).is_dir()
    except (OSError, ValueError):
        return False
