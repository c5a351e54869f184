"""What every exporter shares: the filter, the report, the `Exporter` class and its registry.

An exporter is a small class: its `name` (the `--format` value), a one-line `help` (the
CLI builds its help text from the registry), what it `needs` from the store, the file
`suffix` it writes, `write` (stream the run's selected episodes into a path) and
`recognizes` (is an existing file an earlier export of this format, so that writing over
it loses nothing the user made). A new format is one class with `@register_exporter`.

Exports hold only trainable episodes (`envs.status.TRAINABLE`): `infra_error` and
`task_error` episodes are never exported, whatever `--status` asks for.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from itertools import groupby
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from envs.status import STATUSES, TRAINABLE
from orchestrator.errors import ConfigError
from orchestrator.records import EpisodeRecord

if TYPE_CHECKING:
    from orchestrator.store import Store

MARK_KEY = b"envfarm.export"
"""Parquet schema metadata key naming the format of an envfarm export."""


@dataclass
class ExportFilter:
    """Which episodes to export. Defaults: status `ok` only, any reward, partial groups kept."""

    statuses: tuple[str, ...] = ("ok",)
    min_reward: float | None = None
    max_reward: float | None = None
    group_complete: bool = False
    """Only tasks whose every sample (the run's `n`) passed the other filters."""


@dataclass
class ExportReport:
    path: Path
    rows: int = 0
    episodes: int = 0
    skipped: Counter = field(default_factory=Counter)


class Exporter(ABC):
    """One export format. Stateless: `write` may be called for many runs."""

    name: ClassVar[str]
    """The `--format` value."""
    help: ClassVar[str]
    """One line: what one row is, and for whom."""
    suffix: ClassVar[str]
    """The file suffix its files usually have (".parquet", ".jsonl", ".pt")."""
    needs: ClassVar[Literal["records", "records+calls", "token_rows"]] = "records"
    """What it reads from the store: episode records (with their model calls or without),
    or the raw token rows (no `EpisodeRecord` per episode)."""

    @abstractmethod
    def write(self, store: Store, run_id: str, filt: ExportFilter, path: Path,
              report: ExportReport) -> None:
        """Write the run's episodes that pass `filt` to `path` (a fresh temporary file),
        counting rows, episodes and skips in `report`. May raise; the caller removes
        `path` then."""

    @abstractmethod
    def recognizes(self, path: Path) -> bool:
        """Whether the existing file `path` is an earlier export of this format."""

    def records(self, store: Store, run_id: str, filt: ExportFilter) -> Iterator[EpisodeRecord]:
        return select(store, run_id, filt, with_calls=self.needs == "records+calls")


EXPORTERS: dict[str, Exporter] = {}
"""The registered formats by name, in registration order."""


def register_exporter(cls: type[Exporter]) -> type[Exporter]:
    """Class decorator: make `cls` a `--format` (re-registering a name replaces it)."""
    EXPORTERS[cls.name] = cls()
    return cls


def get_exporter(name: str) -> Exporter:
    """The exporter called `name`. Raises ConfigError listing the known formats."""
    try:
        return EXPORTERS[name]
    except KeyError:
        raise ConfigError(f"unknown export format {name!r}",
                          f"choose one of {', '.join(EXPORTERS)}") from None


def formats_help() -> str:
    """One line per format, for the CLI's help."""
    return "\n".join(f"{e.name}: {e.help}" for e in EXPORTERS.values())


def exported_statuses(filt: ExportFilter) -> tuple[str, ...]:
    """`filt`'s statuses that may be exported. Raises ConfigError for an unknown status or
    one that is never exported (infra_error, task_error)."""
    for status in filt.statuses:
        if status not in STATUSES:
            raise ConfigError(f"unknown status {status!r}",
                              f"choose among {', '.join(TRAINABLE)}")
        if status not in TRAINABLE:
            raise ConfigError(f"{status} episodes are never exported (they have no reward)",
                              f"choose among {', '.join(TRAINABLE)}")
    return tuple(filt.statuses)


def select(store: Store, run_id: str, filt: ExportFilter,
           with_calls: bool = True) -> Iterator[EpisodeRecord]:
    """The run's episodes that pass `filt`, in (task, sample) order."""
    return passing(store.episodes(run_id, statuses=exported_statuses(filt),
                                  with_calls=with_calls), store, run_id, filt)


def passing(items: Iterable[Any], store: Store, run_id: str, filt: ExportFilter) -> Iterator[Any]:
    """`items` (records or store rows, in task order) whose reward and group pass `filt`."""
    items = (e for e in items
             if (filt.min_reward is None or (e.reward is not None and e.reward >= filt.min_reward))
             and (filt.max_reward is None or (e.reward is not None and e.reward <= filt.max_reward)))
    if not filt.group_complete:
        yield from items
        return
    n = int(store.get_run(run_id)["config"].get("n", 1))
    for _, group in groupby(items, key=lambda e: e.task_id):  # a task's items are adjacent
        group = list(group)
        if len(group) == n:
            yield from group


def parquet_mark(path: Path, name: str, columns: tuple[str, ...]) -> bool:
    """Whether `path` is a Parquet file written as format `name`: its schema metadata says
    so, or (exports made before the mark) it has the format's key columns."""
    try:
        import pyarrow.parquet as pq

        schema = pq.read_schema(path)
    except Exception:  # noqa: BLE001 — not Parquet at all
        return False
    meta = schema.metadata or {}
    if MARK_KEY in meta:
        return meta[MARK_KEY].decode() == name
    return set(columns) <= set(schema.names)
