"""The database engine shared by the catalogue and the trajectory store, and the catalogue's
schema: its table mirror and its Alembic migrations (`catalogue/migrations`).

`make_engine(url)` tunes SQLite for many writers (busy timeout, WAL); `migrate(engine)`
upgrades the catalogue's tables to head (version table `envfarm_tasks_version`, apart from
the trajectory store's), a no-op when already there.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Engine

from catalogue.ids import MAX_ID_LENGTH

VERSION_TABLE = "envfarm_tasks_version"
_MIGRATIONS = Path(__file__).parent / "migrations"

_metadata = sa.MetaData()
tasks_table = sa.Table(
    "tasks",
    _metadata,
    sa.Column("id", sa.String(MAX_ID_LENGTH), primary_key=True),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("source", sa.Text(), nullable=False),
    sa.Column("repo", sa.String(255)),
    sa.Column("image_key", sa.String(255)),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("status_reason", sa.Text()),
    sa.Column("status_log", sa.Text()),
    sa.Column("data", sa.JSON().with_variant(postgresql.JSONB(), "postgresql"), nullable=False),
    sa.Column("data_sha256", sa.String(64), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)
"""Mirror of the schema at the head migration; the migrations, not this, create the table."""


class JSONText(str):
    """A record already serialized to JSON: stored as is (serializing 120K records once,
    not twice, is a third of the import time)."""


def _serialize(value: Any) -> str:
    return value if isinstance(value, JSONText) else json.dumps(value)


def make_engine(url: str) -> Engine:
    """An engine for the envfarm database (catalogue and trajectory store share it):
    SQLite waits for concurrent writers and uses WAL; stale pooled connections to a
    server database are replaced."""
    engine = sa.create_engine(url, future=True, json_serializer=_serialize, pool_pre_ping=True)
    if engine.dialect.name == "sqlite":

        @sa.event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA busy_timeout=30000")  # concurrent writers wait, not fail
            if ":memory:" not in url and url.rstrip("/") != "sqlite:":
                cur.execute("PRAGMA journal_mode=WAL")  # readers never block the importer
            cur.close()

    return engine


def migrate(engine: Engine) -> None:
    """Upgrade the catalogue schema to head; a no-op when it is already there."""
    from alembic import command
    from alembic.config import Config
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    cfg = Config()
    cfg.set_main_option("script_location", str(_MIGRATIONS))
    head = ScriptDirectory.from_config(cfg).get_current_head()
    with engine.connect() as conn:
        current = MigrationContext.configure(
            conn, opts={"version_table": VERSION_TABLE}).get_current_revision()
    if current == head:
        return
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")
