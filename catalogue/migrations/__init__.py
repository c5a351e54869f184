"""Alembic migrations of the task catalogue (run by `Catalogue` on open)."""
