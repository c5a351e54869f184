"""Which rollout run and which process own a sandbox: the labels every backend puts on
its sandboxes, so `envfarm sandbox gc` can find a crashed run's leftovers. Backend-neutral:
executors set `current_run` without knowing which engine runs the sandboxes."""

from __future__ import annotations

import contextvars
import os
import socket

LABEL_RUN = "envfarm.run"
LABEL_OWNER = "envfarm.owner"
LABEL_CREATED = "envfarm.created"
LABEL_IMAGE = "envfarm.image"

current_run: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "envfarm_current_run", default=None)
"""The rollout run this thread works for; backends created without `run=` label with it."""


def owner_id() -> str:
    """Who owns a sandbox: host and process, so gc can tell leftovers from live ones."""
    return f"{socket.gethostname()}:{os.getpid()}"


def run_label(run: str | None = None) -> str:
    """The run label to use: the explicit one, else this thread's run, else
    `$ENVFARM_RUN`, else "adhoc"."""
    return run or current_run.get() or os.environ.get("ENVFARM_RUN") or "adhoc"
