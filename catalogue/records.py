"""What one catalogued task is: `TaskRecord`, its kinds and its catalogue statuses.

Kinds are open: any short lowercase name. Which kinds exist is the env registry's business
(`envs.registry`: each env declares its `task_kind`, importer and validator), checked by the
code that knows the registry (the CLI, the runner), so a new env kind needs no change here.

Statuses (the catalogue's, not an episode's):
- `unvalidated`: imported, reference solution not checked yet;
- `valid` / `invalid` / `flaky`: the gold-validation verdict (`status_reason` says why);
- `task_error`: the task itself is broken (its image will not build, a file is malformed):
  set by validation or by a rollout whose episode ended as `task_error`; `status_reason`
  holds the cause and `status_log` the build log's tail. Rollouts skip these tasks unless
  asked; re-importing the task with changed data clears it.
"""

from __future__ import annotations

import os
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from catalogue.ids import MAX_ID_LENGTH, validate_task_id

TaskStatus = Literal["unvalidated", "valid", "invalid", "flaky", "task_error"]
STATUSES: tuple[str, ...] = ("unvalidated", "valid", "invalid", "flaky", "task_error")
"""Every catalogue status, in the order tables list them."""
VERDICTS: tuple[str, ...] = ("valid", "invalid", "flaky", "task_error")
"""What a validator may report for one task."""
SKIPPED_BY_ROLLOUTS: tuple[str, ...] = ("task_error",)
"""Statuses a rollout leaves out unless asked (`Catalogue.query(exclude_status=...)`)."""
KIND_PATTERN = r"^[a-z][a-z0-9_-]{0,31}$"
LOG_TAIL_CHARS = 8000
"""How much of a build log `mark_task_error` keeps (the tail: where the error is)."""
DEFAULT_URL = "sqlite:///envfarm.db"


class TaskRecord(BaseModel):
    """One catalogued task. `data` is the full record in its kind's own format."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1, max_length=MAX_ID_LENGTH,
                    description="Unique task id (checked by `catalogue.ids.validate_task_id`).")
    kind: str = Field(pattern=KIND_PATTERN,
                      description="The `task_kind` of the env family that runs it.")
    source: str = Field(description="File, folder or dataset the task was imported from.")
    data: dict[str, Any] = Field(description="The full task record (JSON-serializable).")
    repo: str | None = Field(None, description="Repository the task belongs to, if any.")
    image_key: str | None = Field(None, description="Environment image key, for cache locality.")
    status: TaskStatus = Field("unvalidated", description="Validation verdict or task_error.")
    status_reason: str | None = Field(None, description="Why it is invalid, flaky or broken.")
    status_log: str | None = Field(None, description="Tail of the build/validation log "
                                   "(task_error only).")

    @field_validator("id")
    @classmethod
    def _valid_id(cls, value: str) -> str:
        return validate_task_id(value)


def store_url(url: str | None = None) -> str:
    """The catalogue URL: `url`, else `$ENVFARM_STORE`, else a SQLite file in the cwd."""
    return url or os.environ.get("ENVFARM_STORE") or DEFAULT_URL


def log_tail(text: str | None, limit: int = LOG_TAIL_CHARS) -> str | None:
    """The last `limit` characters of a log, marked when cut (the end holds the error)."""
    if text is None or len(text) <= limit:
        return text
    return f"[… {len(text) - limit} earlier characters cut]\n" + text[-limit:]
