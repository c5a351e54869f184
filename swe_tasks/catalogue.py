"""Moved: the task catalogue is its own package, `catalogue` (it holds tasks of every kind).

This module re-exports its names so `from swe_tasks.catalogue import Catalogue` keeps
working; new code imports from `catalogue`.
"""

from catalogue import (  # noqa: F401
    DEFAULT_URL,
    STATUSES,
    Catalogue,
    TaskRecord,
    TaskStatus,
    make_engine,
    migrate,
    store_url,
    tasks_table,
)

__all__ = ["DEFAULT_URL", "STATUSES", "Catalogue", "TaskRecord", "TaskStatus", "make_engine",
           "migrate", "store_url", "tasks_table"]
