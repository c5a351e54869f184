"""The task catalogue: tasks of every kind in one SQL table, below `envs` and `swe_tasks`.

Public face: `Catalogue` (the table: import, query, sample, statuses), `TaskRecord` (one
task), `make_engine` / `store_url` (the database the catalogue and the trajectory store
share), the statuses, what an import changed (`ChangeLog`), and the id rules
(`validate_task_id`, `safe_image_name`). Which task kinds exist is the env registry's
business (`envs.registry`): this package takes any short lowercase kind.
"""

from catalogue.catalogue import Catalogue
from catalogue.changes import Change, ChangeLog
from catalogue.engine import make_engine, migrate, tasks_table
from catalogue.ids import (
    MAX_ID_LENGTH,
    InvalidTaskId,
    id_problem,
    is_valid_image_component,
    safe_image_name,
    validate_task_id,
)
from catalogue.records import (
    DEFAULT_URL,
    SKIPPED_BY_ROLLOUTS,
    STATUSES,
    VERDICTS,
    TaskRecord,
    TaskStatus,
    store_url,
)

__all__ = [
    "DEFAULT_URL",
    "MAX_ID_LENGTH",
    "SKIPPED_BY_ROLLOUTS",
    "STATUSES",
    "VERDICTS",
    "Catalogue",
    "Change",
    "ChangeLog",
    "InvalidTaskId",
    "TaskRecord",
    "TaskStatus",
    "id_problem",
    "is_valid_image_component",
    "make_engine",
    "migrate",
    "safe_image_name",
    "store_url",
    "tasks_table",
    "validate_task_id",
]
