"""The task catalogue: every task of every kind in one SQL table, indexed for sampling at scale.

The store is the SQLAlchemy URL given, else `ENVFARM_STORE`, else `sqlite:///envfarm.db` in
the working directory; a `postgresql://` URL works the same. Opening a `Catalogue` runs the
Alembic migrations in `catalogue/migrations` to head, so a fresh file is ready at once and an
old one is upgraded in place.

Invariants callers rely on:
- `upsert` writes each batch in one transaction: a batch lands whole or not at all.
- Re-importing a record with unchanged data keeps its status (a verdict or `task_error`);
  changed data resets it to the status the incoming record carries (normally
  "unvalidated"), and the change is recorded in `changes` (which fields), never silent.
- `query` and `sample` return records in a stable order (by id) for a given filter.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import Any, Self

import sqlalchemy as sa

from catalogue.changes import Change, ChangeLog, diff_fields
from catalogue.engine import JSONText, make_engine, migrate, tasks_table
from catalogue.records import STATUSES, TaskRecord, log_tail, store_url


class Catalogue:
    """The task table behind a SQLAlchemy engine. Thread-safe; a context manager."""

    def __init__(self, url: str | None = None) -> None:
        self.url = store_url(url)
        self.engine = make_engine(self.url)
        migrate(self.engine)
        self.changes = ChangeLog()
        """Every write through this instance: new, changed (and what), unchanged, repeated."""

    # -- writing ---------------------------------------------------------------------------
    def upsert(self, records: Iterable[TaskRecord], batch_size: int = 5000) -> int:
        """Insert or update records, one transaction per batch; returns how many were written.

        A failing batch raises and leaves the store exactly as it was before that batch
        (earlier batches stay committed).
        """
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        written = 0
        batch: list[dict[str, Any]] = []
        for rec in records:
            batch.append(self.row_for(rec))
            if len(batch) >= batch_size:
                written += self.write_rows(batch)
                batch = []
        if batch:
            written += self.write_rows(batch)
        return written

    @staticmethod
    def row_for(rec: TaskRecord) -> dict[str, Any]:
        """The table row of a record (picklable: importers build rows in worker processes).
        Raises TypeError if `data` is not JSON-serializable."""
        now = datetime.now(UTC)
        text = json.dumps(rec.data, separators=(",", ":"))
        return {
            "id": rec.id,
            "kind": rec.kind,
            "source": rec.source,
            "repo": rec.repo,
            "image_key": rec.image_key,
            "status": rec.status,
            "status_reason": rec.status_reason,
            "status_log": rec.status_log,
            "data": JSONText(text),
            "data_sha256": hashlib.sha256(text.encode()).hexdigest(),
            "created_at": now,
            "updated_at": now,
        }

    def write_rows(self, rows: list[dict[str, Any]]) -> int:
        """Write rows from `row_for` in one transaction (all or nothing); returns how many.
        Last one wins within a batch, as it would across batches; `changes` records what was
        new, what changed (with the changed fields) and ids that came twice."""
        for r in rows:
            self.changes.note_written(r["id"], r["data_sha256"])
        rows = list({r["id"]: r for r in rows}.values())
        self._log_changes(rows)
        dialect = self.engine.dialect.name
        if dialect == "sqlite":
            from sqlalchemy.dialects.sqlite import insert
        elif dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        else:  # pragma: no cover - other engines take the slow, portable path
            return self._write_portable(rows)
        stmt = insert(tasks_table)
        ex = stmt.excluded
        same = tasks_table.c.data_sha256 == ex.data_sha256
        stmt = stmt.on_conflict_do_update(
            index_elements=[tasks_table.c.id],
            set_={
                "kind": ex.kind,
                "source": ex.source,
                "repo": ex.repo,
                "image_key": ex.image_key,
                "data": ex.data,
                "data_sha256": ex.data_sha256,
                "status": sa.case((same, tasks_table.c.status), else_=ex.status),
                "status_reason": sa.case((same, tasks_table.c.status_reason), else_=ex.status_reason),
                "status_log": sa.case((same, tasks_table.c.status_log), else_=ex.status_log),
                "updated_at": ex.updated_at,
            },
        )
        with self.engine.begin() as conn:
            conn.execute(stmt, rows)
        return len(rows)

    def _write_portable(self, rows: list[dict[str, Any]]) -> int:  # pragma: no cover
        with self.engine.begin() as conn:
            for row in rows:
                old = conn.execute(
                    sa.select(tasks_table.c.data_sha256).where(tasks_table.c.id == row["id"])
                ).first()
                if old is None:
                    conn.execute(tasks_table.insert(), row)
                    continue
                upd = {k: v for k, v in row.items() if k not in ("id", "created_at")}
                if old.data_sha256 == row["data_sha256"]:
                    upd.pop("status"), upd.pop("status_reason"), upd.pop("status_log")
                conn.execute(tasks_table.update().where(tasks_table.c.id == row["id"]), upd)
        return len(rows)

    def _log_changes(self, rows: list[dict[str, Any]]) -> None:
        """Compare `rows` with what is stored (one indexed read per 500 ids; the old records
        are read only for the rows that changed) and add the outcome to `changes`."""
        cols = [tasks_table.c[c] for c in ("id", "data_sha256", "kind", "source", "repo",
                                            "image_key")]
        stored: dict[str, Any] = {}
        with self.engine.connect() as conn:
            for i in range(0, len(rows), 500):
                ids = [r["id"] for r in rows[i:i + 500]]
                stored.update({r.id: r for r in conn.execute(
                    sa.select(*cols).where(tasks_table.c.id.in_(ids)))})
            changed = [r for r in rows if r["id"] in stored and (
                stored[r["id"]].data_sha256 != r["data_sha256"]
                or any(getattr(stored[r["id"]], c) != r[c]
                       for c in ("kind", "source", "repo", "image_key")))]
            old_data: dict[str, Any] = {}
            for i in range(0, len(changed), 500):
                ids = [r["id"] for r in changed[i:i + 500]]
                old_data.update(dict(conn.execute(sa.select(tasks_table.c.id, tasks_table.c.data)
                                                  .where(tasks_table.c.id.in_(ids))).all()))
        updated, moved = [], 0
        for r in changed:
            old = stored[r["id"]]._asdict() | {"data": old_data.get(r["id"])}
            fields = diff_fields(old, r)
            if fields == ("source",):
                moved += 1  # the same record from another file: not a change of the task
            else:
                updated.append(Change(r["id"], fields, old.get("source"), r["source"]))
        inserted = sum(1 for r in rows if r["id"] not in stored)
        self.changes.add(inserted=inserted, unchanged=len(rows) - inserted - len(updated),
                         moved=moved, updated=updated)

    def sources(self, task_ids: Iterable[str]) -> dict[str, str]:
        """The stored `source` of each of these ids that is catalogued (the rest left out)."""
        ids, out = list(task_ids), {}
        with self.engine.connect() as conn:
            for i in range(0, len(ids), 500):
                sel = sa.select(tasks_table.c.id, tasks_table.c.source).where(
                    tasks_table.c.id.in_(ids[i:i + 500]))
                out.update(dict(conn.execute(sel).all()))
        return out

    def set_status(self, task_id: str, status: str, reason: str | None = None,
                   log: str | None = None) -> None:
        """Record a validation verdict (or `task_error` with the log's tail). Raises KeyError
        if the task is absent, ValueError for an unknown status."""
        if status not in STATUSES:
            raise ValueError(f"status must be one of {', '.join(STATUSES)}, not {status!r}")
        with self.engine.begin() as conn:
            res = conn.execute(
                tasks_table.update()
                .where(tasks_table.c.id == task_id)
                .values(status=status, status_reason=reason, status_log=log_tail(log),
                        updated_at=datetime.now(UTC))
            )
        if res.rowcount == 0:
            raise KeyError(f"task {task_id!r} is not in the catalogue at {self._safe_url()}")

    def mark_task_error(self, task_id: str, cause: str, log_tail: str | None = None) -> bool:
        """Mark a task broken (status `task_error`): its image will not build, a file of it
        is malformed. `cause` is the one-line reason, `log_tail` the end of the build log
        (kept to its last 8,000 characters). Called by validation and by the runner when an
        episode ends as `task_error`; rollouts then skip the task unless asked.

        Returns False (and writes nothing) when the id is not catalogued: tasks given by
        path or generated from their id have no row to mark.
        """
        try:
            self.set_status(task_id, "task_error", cause, log_tail)
        except KeyError:
            return False
        return True

    def delete(self, task_ids: Iterable[str]) -> int:
        """Remove tasks by id; returns how many were removed."""
        ids = list(task_ids)
        if not ids:
            return 0
        with self.engine.begin() as conn:
            return conn.execute(tasks_table.delete().where(tasks_table.c.id.in_(ids))).rowcount

    # -- reading ---------------------------------------------------------------------------
    def get(self, task_id: str) -> TaskRecord:
        """The task with this id. Raises KeyError naming the store when it is absent."""
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(tasks_table).where(tasks_table.c.id == task_id)).first()
        if row is None:
            raise KeyError(
                f"task {task_id!r} is not in the catalogue at {self._safe_url()}; "
                "import it first (envfarm tasks import FILE) or check ENVFARM_STORE"
            )
        return self._record(row)

    def _filtered(self, sel: sa.Select, exclude_status: Iterable[str] = (),
                  **filters: str | None) -> sa.Select:
        for name, value in filters.items():
            if value is not None:
                sel = sel.where(tasks_table.c[name] == value)
        excluded = list(exclude_status or ())
        if excluded:
            sel = sel.where(tasks_table.c.status.not_in(excluded))
        return sel

    def query(
        self,
        kind: str | None = None,
        repo: str | None = None,
        status: str | None = None,
        limit: int | None = None,
        offset: int = 0,
        image_key: str | None = None,
        exclude_status: Iterable[str] = (),
    ) -> list[TaskRecord]:
        """Tasks matching every given filter, ordered by id. `exclude_status` leaves out
        tasks with those statuses (a rollout passes `SKIPPED_BY_ROLLOUTS`)."""
        sel = self._filtered(
            sa.select(tasks_table), exclude_status, kind=kind, repo=repo, status=status,
            image_key=image_key,
        )
        sel = sel.order_by(tasks_table.c.id).offset(offset)
        if limit is not None:
            sel = sel.limit(limit)
        with self.engine.connect() as conn:
            return [self._record(r) for r in conn.execute(sel)]

    def ids(self, kind: str | None = None, repo: str | None = None,
            status: str | None = None, exclude_status: Iterable[str] = ()) -> list[str]:
        """Ids matching the filters, ordered; cheap (reads the indexes, not the records)."""
        sel = self._filtered(sa.select(tasks_table.c.id), exclude_status, kind=kind, repo=repo,
                             status=status)
        with self.engine.connect() as conn:
            return list(conn.execute(sel.order_by(tasks_table.c.id)).scalars())

    def sample_ids(self, n: int, *, kind: str | None = None, repo: str | None = None,
                   status: str | None = None, seed: int | None = None) -> list[str]:
        """Up to `n` ids drawn uniformly without replacement from those matching the filters.

        Reads only the indexes (no records): what a scheduler needs to plan a batch.
        Reproducible for a given seed and catalogue content.
        """
        rng = random.Random(seed)
        if self.engine.dialect.name != "sqlite":
            ids = self.ids(kind=kind, repo=repo, status=status)
            return rng.sample(ids, min(n, len(ids)))
        # SQLite: rejection-sample rowids (uniform over the rowid range, kept when they match
        # the filters): a few indexed lookups instead of listing 120K ids. Sparse filters
        # (under 5% of the rows) list their matches from the covering index instead.
        where, args = ["1"], []
        for col, value in (("kind", kind), ("repo", repo), ("status", status)):
            if value is not None:
                where.append(f"{col} = ?")
                args.append(value)
        cond = " AND ".join(where)
        with self.engine.connect() as conn:
            cur = conn.connection.driver_connection.cursor()
            try:
                top = cur.execute("SELECT max(rowid) FROM tasks").fetchone()[0] or 0
                count = cur.execute(f"SELECT count(*) FROM tasks WHERE {cond}", args).fetchone()[0]
                if count == 0:
                    return []
                if n >= count or count < 0.05 * top:
                    rowids = sorted(r[0] for r in cur.execute(
                        f"SELECT rowid FROM tasks WHERE {cond}", args).fetchall())
                    chosen = rng.sample(rowids, min(n, len(rowids)))
                    return self._ids_for_rowids(cur, chosen, "1", [])
                out: list[str] = []
                tried: set[int] = set()
                while len(out) < n and len(tried) < top:
                    want = min(top - len(tried), int((n - len(out)) * top / count * 1.2) + 16)
                    draw: list[int] = []
                    while len(draw) < want:
                        r = rng.randint(1, top)
                        if r not in tried:
                            tried.add(r)
                            draw.append(r)
                    out += self._ids_for_rowids(cur, draw, cond, args)
                return out[:n]
            finally:
                cur.close()

    @staticmethod
    def _ids_for_rowids(cur: Any, rowids: list[int], cond: str, args: list[str]) -> list[str]:
        """Ids of the given rowids that satisfy `cond`, in the order of `rowids`."""
        found: dict[int, str] = {}
        for i in range(0, len(rowids), 500):
            part = rowids[i : i + 500]
            q = (f"SELECT rowid, id FROM tasks WHERE rowid IN ({','.join('?' * len(part))}) "
                 f"AND {cond}")
            found.update(cur.execute(q, [*part, *args]).fetchall())
        return [found[r] for r in rowids if r in found]

    def sample(self, n: int, *, kind: str | None = None, repo: str | None = None,
               status: str | None = None, seed: int | None = None) -> list[TaskRecord]:
        """Like `sample_ids`, with the full records."""
        return self.get_many(self.sample_ids(n, kind=kind, repo=repo, status=status, seed=seed))

    def get_many(self, task_ids: list[str]) -> list[TaskRecord]:
        """The tasks with these ids, in the order given; absent ids are left out."""
        found: dict[str, TaskRecord] = {}
        with self.engine.connect() as conn:
            for i in range(0, len(task_ids), 500):
                chunk = task_ids[i : i + 500]
                for row in conn.execute(sa.select(tasks_table).where(tasks_table.c.id.in_(chunk))):
                    found[row.id] = self._record(row)
        return [found[t] for t in task_ids if t in found]

    def iter(self, kind: str | None = None, status: str | None = None,
             chunk: int = 2000) -> Iterator[TaskRecord]:
        """Every matching task, streamed in id order with bounded memory."""
        last = ""
        while True:
            sel = self._filtered(sa.select(tasks_table), kind=kind, status=status)
            sel = sel.where(tasks_table.c.id > last).order_by(tasks_table.c.id).limit(chunk)
            with self.engine.connect() as conn:
                rows = [self._record(r) for r in conn.execute(sel)]
            if not rows:
                return
            yield from rows
            last = rows[-1].id

    def count(self, kind: str | None = None, repo: str | None = None,
              status: str | None = None, exclude_status: Iterable[str] = ()) -> int:
        """How many tasks match the filters."""
        sel = self._filtered(
            sa.select(sa.func.count()).select_from(tasks_table), exclude_status, kind=kind,
            repo=repo, status=status,
        )
        with self.engine.connect() as conn:
            return int(conn.execute(sel).scalar_one())

    def stats(self, by: tuple[str, ...] = ("kind", "status")) -> list[tuple[Any, ...]]:
        """Counts grouped by the given columns: rows of (*values, count), largest first."""
        cols = [tasks_table.c[b] for b in by]
        sel = sa.select(*cols, sa.func.count()).group_by(*cols)
        with self.engine.connect() as conn:
            rows = [tuple(r) for r in conn.execute(sel)]
        return sorted(rows, key=lambda r: (-r[-1], [str(v) for v in r[:-1]]))

    @staticmethod
    def _record(row: sa.Row) -> TaskRecord:
        data = row.data if isinstance(row.data, dict) else json.loads(row.data)
        # Rows were validated on the way in: construct without validating again (sampling speed).
        return TaskRecord.model_construct(
            id=row.id, kind=row.kind, source=row.source, data=data, repo=row.repo,
            image_key=row.image_key, status=row.status, status_reason=row.status_reason,
            status_log=row.status_log,
        )

    def _safe_url(self) -> str:
        return sa.engine.make_url(self.url).render_as_string(hide_password=True)

    # -- lifecycle -------------------------------------------------------------------------
    def close(self) -> None:
        """Release pooled connections; idempotent."""
        self.engine.dispose()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
