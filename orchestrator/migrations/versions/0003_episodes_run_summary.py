"""An index that makes a run's summary (counts by env and status, rewards, timeline)
index-only: `envfarm view` computes it from 100K episodes in ~0.1 s instead of ~0.5 s,
and its filtered episode lists drop from ~130 ms to ~15 ms (benchmarks/results/viewer.md).

Revision ID: 0003_episodes_run_summary
Revises: 0002_run_policy
Create Date: 2026-12-03
"""

from __future__ import annotations

from alembic import op

revision = "0003_episodes_run_summary"
down_revision = "0002_run_policy"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_episodes_run_summary", "episodes",
                    ["run_id", "env_id", "status", "reward", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_episodes_run_summary", table_name="episodes")
