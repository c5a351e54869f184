"""Build images ahead of the queue (`envfarm rollout --prebuild-ahead N`), as a worker.

A worker (a Ray actor, or the driver's process with the thread executor) is told the
next images its queue will need; a `Prebuilder` builds them one at a time on a
background thread, by the env's `prepare_image` hook (envs.core.ToolEnv), while
episodes run. The episode that needs an image later finds it built (a cache hit), or,
when it starts while that build is still running, waits for it on the image builder's
per-tag lock instead of building it twice. Which images a node keeps within its disk
budget stays orchestrator/image_schedule.py's policy; this only builds.

A failed build is recorded, never raised: the episode will meet the same error and be
handled as the env decides (a task_error for an image that will not build).
"""

from __future__ import annotations

import importlib
import queue
import threading
import time
from typing import Any

from orchestrator.jobs import EpisodeJob


def env_class(env_id: str) -> type:
    """The env class registered under `env_id` (imported from its entry point)."""
    import envs

    module, _, name = envs.lookup(env_id).entry_point.partition(":")
    return getattr(importlib.import_module(module), name)


def prepare(job: EpisodeJob) -> str | None:
    """Build (or find) the image of `job`'s task through its env's `prepare_image`."""
    import envs  # noqa: F401 — registers the built-in envs in this process

    for module in job.imports:
        __import__(module)
    cls = env_class(job.env_id)
    hook = getattr(cls, "prepare_image", None)
    return hook(job.task_id, dict(job.env_kwargs)) if hook else None


class Prebuilder:
    """Prepares images one at a time on a daemon thread, each image key once."""

    def __init__(self) -> None:
        self.results: dict[str, tuple[str | None, float, str | None]] = {}
        """Image key -> (tag or None, seconds, error or None), as each finishes."""
        self.started: dict[str, float] = {}
        """Image key -> `time.time()` when its preparation began."""
        self.finished: dict[str, float] = {}
        """Image key -> `time.time()` when its preparation ended."""
        self._seen: set[str] = set()
        self._queue: queue.SimpleQueue[tuple[str, EpisodeJob]] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="prebuild", daemon=True)
        self._thread.start()

    def add(self, key: str, job: EpisodeJob) -> bool:
        """Queue `key`'s image (built from `job`'s task) unless already queued."""
        with self._lock:
            if key in self._seen:
                return False
            self._seen.add(key)
        self._queue.put((key, job))
        return True

    def wait(self, key: str, timeout_s: float) -> tuple[str | None, float, str | None] | None:
        """`key`'s result once it is there (None after `timeout_s`)."""
        deadline = time.monotonic() + timeout_s
        while key not in self.results and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.results.get(key)

    def _run(self) -> None:
        while True:
            key, job = self._queue.get()
            self.started[key] = time.time()
            t = time.monotonic()
            try:
                result: tuple[str | None, float, str | None] = (prepare(job), 0.0, None)
            except Exception as exc:  # noqa: BLE001 — the episode meets it and is blamed
                result = (None, 0.0, f"{type(exc).__name__}: {exc}")
            self.finished[key] = time.time()
            self.results[key] = (result[0], time.monotonic() - t, result[2])


def upcoming_images(pending: Any, limit_keys: int, scan_max: int = 5000
                    ) -> list[tuple[str, Any]]:
    """The first `limit_keys` distinct image keys of `pending` work items (in queue order),
    each with its first item; items without a key are skipped."""
    out: dict[str, Any] = {}
    for n, item in enumerate(pending):
        if n >= scan_max or len(out) >= limit_keys:
            break
        key = item.image_key
        if key and key not in out:
            out[key] = item
    return list(out.items())
