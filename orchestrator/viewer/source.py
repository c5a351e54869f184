"""Open the trajectory store read-only: the viewer must never write to it.

SQLite is opened through a `file:…?mode=ro` URI with `PRAGMA query_only`, so even a bug
in a query cannot change the file (and no WAL pragma is sent, unlike the writers'
engine). PostgreSQL sessions start with `default_transaction_read_only=on`. Nothing
here runs migrations: a store written by an older envfarm is shown as it is.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import quote

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from catalogue import store_url
from orchestrator.errors import ConfigError
from orchestrator.store import Store


class StoreNotFoundError(ConfigError):
    """The store URL names no envfarm store (the user must give the right --store)."""


def readonly_engine(url: str | None = None) -> Engine:
    """An engine on the store at `url` (else `$ENVFARM_STORE`, else ./envfarm.db) that
    cannot write. Raises StoreNotFoundError when the file or the tables are missing."""
    url = store_url(url)
    parsed = sa.engine.make_url(url)
    if parsed.get_backend_name() == "sqlite":
        engine = _sqlite_readonly(parsed.database or "")
    else:
        engine = sa.create_engine(
            url, future=True, pool_pre_ping=True,
            connect_args={"options": "-c default_transaction_read_only=on"})
    tables = set(sa.inspect(engine).get_table_names())
    if not {"runs", "episodes", "calls"} <= tables:
        engine.dispose()
        raise StoreNotFoundError(f"{url} holds no trajectory store (no runs/episodes tables); "
                                 "give the store your rollouts wrote with --store URL")
    return engine


def _sqlite_readonly(database: str) -> Engine:
    if not database or database == ":memory:" or database.startswith("file:"):
        raise StoreNotFoundError(f"cannot view {database or 'an in-memory'} SQLite store; "
                                 "give a file: --store sqlite:///path/to/envfarm.db")
    path = Path(database).expanduser().resolve()
    if not path.is_file():
        raise StoreNotFoundError(f"no store file at {path}; give --store sqlite:///PATH "
                                 "(or set ENVFARM_STORE)")
    engine = sa.create_engine(f"sqlite:///file:{quote(str(path))}?mode=ro&uri=true",
                              future=True, connect_args={"check_same_thread": False})

    @sa.event.listens_for(engine, "connect")
    def _readonly(dbapi_conn: Any, _record: Any) -> None:
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA query_only=1")
        cur.execute("PRAGMA busy_timeout=5000")  # a writer's checkpoint: wait, do not fail
        cur.close()

    return engine


def has_table(engine: Engine, name: str) -> bool:
    return name in sa.inspect(engine).get_table_names()


class ReadOnlyStore(Store):
    """A `Store` over a read-only engine, for the exporters: it skips the migrations
    (which would write) and fails on any write the store's API attempts."""

    def __init__(self, engine: Engine, url: str) -> None:
        self.url = url
        self.engine = engine
