"""Alembic environment for the task catalogue.

Run only programmatically by `catalogue.Catalogue`, which passes an open
connection in `config.attributes["connection"]`; there is no alembic.ini to keep in sync.
The version table is `envfarm_tasks_version` so the catalogue's migrations never collide
with other packages' migrations kept in the same database.
"""

from __future__ import annotations

from alembic import context

VERSION_TABLE = "envfarm_tasks_version"

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError(
        "the catalogue migrations run through catalogue.Catalogue(url), "
        "which opens the database and passes the connection; do not call alembic directly"
    )

context.configure(connection=connection, version_table=VERSION_TABLE, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
