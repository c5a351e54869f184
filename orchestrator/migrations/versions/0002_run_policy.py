"""Runs record who acted (`policy`: `oracle`, `noop`, `vllm:<model>` …), so dynamic
sampling can read one policy's recent history instead of every episode ever stored.

Revision ID: 0002_run_policy
Revises: 0001_store
Create Date: 2026-12-03
"""

from __future__ import annotations

import json

import sqlalchemy as sa
from alembic import op

revision = "0002_run_policy"
down_revision = "0001_store"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("policy", sa.String(255), nullable=True))
    op.create_index("ix_runs_policy", "runs", ["policy"])
    op.create_index("ix_episodes_task_status", "episodes", ["task_id", "status"])
    from orchestrator.store import policy_label  # the one definition, also used on write

    conn = op.get_bind()
    runs = sa.table("runs", sa.column("id", sa.String()), sa.column("config", sa.JSON()),
                    sa.column("policy", sa.String()))
    for run_id, config in conn.execute(sa.select(runs.c.id, runs.c.config)).all():
        if isinstance(config, str):
            config = json.loads(config)
        label = policy_label(config or {})
        if label is not None:
            conn.execute(runs.update().where(runs.c.id == run_id).values(policy=label))


def downgrade() -> None:
    op.drop_index("ix_episodes_task_status", "episodes")
    op.drop_index("ix_runs_policy", "runs")
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("policy")
