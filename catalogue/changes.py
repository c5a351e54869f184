"""What an import changed: new tasks, tasks whose record changed (and which fields), and
ids that came twice in one import. A `Catalogue` keeps one `ChangeLog` per instance and adds
every write to it, so any importer's caller can say what happened without the importer's
help: re-importing a changed record never replaces it silently.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from typing import Any

COLUMNS = ("kind", "source", "repo", "image_key")
"""Catalogue columns compared besides the record itself."""


@dataclass(frozen=True)
class Change:
    """One task whose stored record was replaced by a different one."""

    task_id: str
    fields: tuple[str, ...]
    """What differs: column names (`source`, `kind`, …) and `data.<key>` for the record's keys."""
    old_source: str | None = None
    new_source: str | None = None


@dataclass
class ChangeLog:
    """Counts and details of every write through one `Catalogue`. Thread-safe."""

    inserted: int = 0
    unchanged: int = 0
    """Same record as stored (`moved` of them now recorded from another source)."""
    moved: int = 0
    """Unchanged records that came from another file or folder than before (the stored
    `source` is updated): re-importing a dataset from its Parquet after its JSONL."""
    updated: list[Change] = field(default_factory=list)
    repeated: dict[str, int] = field(default_factory=dict)
    """Ids written more than once through this catalogue with different records
    (the last one stays): a file or folder tree that holds one id twice."""
    _seen: dict[str, str] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def note_written(self, task_id: str, sha: str) -> None:
        with self._lock:
            before = self._seen.get(task_id)
            if before is not None and before != sha:
                self.repeated[task_id] = self.repeated.get(task_id, 1) + 1
            self._seen[task_id] = sha

    def add(self, *, inserted: int = 0, unchanged: int = 0, moved: int = 0,
            updated: list[Change] | None = None) -> None:
        with self._lock:
            self.inserted += inserted
            self.unchanged += unchanged
            self.moved += moved
            self.updated += updated or []

    def summary_lines(self, limit: int = 10) -> list[str]:
        """Human lines: counts, then up to `limit` changed tasks with what changed."""
        lines = [f"{self.inserted} new, {len(self.updated)} changed, {self.unchanged} unchanged"
                 + (f" ({self.moved} of them now from a new source)" if self.moved else "")]
        for change in self.updated[:limit]:
            what = ", ".join(change.fields) or "record"
            line = f"changed {change.task_id}: {what}"
            if "source" in change.fields:
                line += f" (was from {change.old_source})"
            lines.append(line)
        if len(self.updated) > limit:
            lines.append(f"… and {len(self.updated) - limit} more changed")
        for task_id, times in list(self.repeated.items())[:limit]:
            lines.append(f"id {task_id} came {times} times with different records; the last one "
                         "is kept")
        return lines


def diff_fields(old: dict[str, Any], new: dict[str, Any]) -> tuple[str, ...]:
    """Names of what differs between two stored rows: columns, then `data.<key>`."""
    out = [c for c in COLUMNS if old.get(c) != new.get(c)]
    old_data, new_data = _as_dict(old.get("data")), _as_dict(new.get("data"))
    keys = sorted(set(old_data) | set(new_data))
    out += [f"data.{k}" for k in keys if old_data.get(k) != new_data.get(k)]
    return tuple(out)


def _as_dict(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    return value if isinstance(value, dict) else json.loads(value)
