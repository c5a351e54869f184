"""Quotas for expensive tools and verifiers (a browser, an LLM judge, a paid API).

A quota caps how many holders run at once and how many start per second. Tools name
their quota (`Tool.quota`), envs name their verifier's (`ToolEnv.verifier_quota`); the
env core holds the quota around each call. Unconfigured names cost nothing. The
default backend is this process; the orchestrator installs a cluster-wide one (a named
Ray actor, `orchestrator.quotas`) so that a cap holds across every worker of a run.

A backend's `acquire` returns a token that `release` takes back: the cluster backend's
token is a lease that expires unless its process renews it, so a worker that dies
holding a slot gives it back within seconds instead of keeping it forever.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol

from pydantic import BaseModel, ConfigDict, Field


class QuotaSpec(BaseModel):
    """Limits of one named quota."""

    model_config = ConfigDict(extra="forbid")

    concurrency: int | None = Field(None, ge=1, description="Holders at once.")
    per_second: float | None = Field(None, gt=0, description="Starts per second.")


class QuotaBackend(Protocol):
    """Where quota state lives. `acquire` blocks until a slot (and a start) is free and
    returns a token; `release(name, token)` gives that slot back (at most once)."""

    def acquire(self, name: str, spec: QuotaSpec) -> object: ...

    def release(self, name: str, token: object = None) -> None: ...


class LocalQuotaBackend:
    """Semaphores and start schedules in this process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._semaphores: dict[str, threading.Semaphore] = {}
        self._next_start: dict[str, float] = {}

    def acquire(self, name: str, spec: QuotaSpec) -> None:
        """Block for a slot and a start; the token is None (a process cannot outlive itself)."""
        if spec.concurrency:
            with self._lock:
                sem = self._semaphores.setdefault(name, threading.Semaphore(spec.concurrency))
            sem.acquire()
        if spec.per_second:
            with self._lock:  # reserve the next free start slot, then wait for it
                now = time.monotonic()
                start = max(now, self._next_start.get(name, now))
                self._next_start[name] = start + 1.0 / spec.per_second
            time.sleep(max(0.0, start - now))

    def release(self, name: str, token: object = None) -> None:
        with self._lock:
            sem = self._semaphores.get(name)
        if sem is not None:
            sem.release()


class Quotas:
    """The process's quota table: `configure` once, `hold(name)` around each use."""

    def __init__(self) -> None:
        self.specs: dict[str, QuotaSpec] = {}
        self.backend: QuotaBackend = LocalQuotaBackend()

    def configure(self, specs: dict[str, QuotaSpec | dict], backend: QuotaBackend | None = None
                  ) -> None:
        self.specs = {k: v if isinstance(v, QuotaSpec) else QuotaSpec.model_validate(v)
                      for k, v in specs.items()}
        if backend is not None:
            self.backend = backend

    @contextmanager
    def hold(self, name: str | None) -> Iterator[None]:
        spec = self.specs.get(name) if name else None
        if spec is None:
            yield
            return
        token = self.backend.acquire(name, spec)
        try:
            yield
        finally:
            self.backend.release(name, token)


QUOTAS = Quotas()
