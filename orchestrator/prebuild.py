"""Build images ahead of the queue (`envfarm rollout --prebuild-ahead N`), as a worker.

A worker (a Ray actor, or the driver's process with the thread executor) is told the
next images its queue will need; a `Prebuilder` builds them one at a time on a
background thread, by the env's `prepare_image` hook (envs.core.ToolEnv), while
episodes run. The episode that needs an image later finds it built (a cache hit), or,
when it starts while that build is still running, waits for it on the image builder's
per-tag lock instead of building it twice.

With a disk budget (`--image-budget-gb`), each build is followed by least-recently-used
eviction among the images this builder prepared, down to the budget (the policy
orchestrator/image_schedule.py simulates): never an image a container uses or one of the
last images prepared (those its queue needs next), and never an image the run did not
build ahead (other runs', the user's: `envfarm images gc` is the node-wide tool).

A failed build is recorded, never raised: the episode will meet the same error and be
handled as the env decides (a task_error for an image that will not build).
"""

from __future__ import annotations

import importlib
import queue
import threading
import time
from collections import deque
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

    def __init__(self, budget_mb: float | None = None, keep_recent: int = 8) -> None:
        self.budget_mb = budget_mb
        self.evicted: list[str] = []
        """Tags this builder removed to keep its images within `budget_mb`, in order."""
        self.evict_errors: list[str] = []
        """Why an eviction pass stopped early (the engine did not answer), if one did."""
        self._recent: deque[str] = deque(maxlen=max(1, keep_recent))
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
            if result[0]:
                self._recent.append(result[0])
                self._evict()

    def _evict(self) -> None:
        """Least recently used prepared images out until they fit `budget_mb` (a failure
        to ask the engine is left for the next build: eviction only saves disk)."""
        if self.budget_mb is None:
            return
        import docker.errors

        from sandbox import connect
        from sandbox.images import read_usage

        try:
            client = connect()
            usage = read_usage()
            sizes: dict[str, float] = {}
            for tag in {t for t, _, _ in self.results.values() if t}:
                try:
                    sizes[tag] = client.images.get(tag).attrs.get("Size", 0) / 1e6
                except docker.errors.ImageNotFound:
                    continue
            total = sum(sizes.values())
            for tag in sorted(sizes, key=lambda t: usage.get(t) or self._built_at(t)):
                if total <= self.budget_mb:
                    break
                if tag in self._recent:
                    continue
                try:
                    client.images.remove(tag)
                except docker.errors.APIError:  # in use by a container
                    continue
                self.evicted.append(tag)
                total -= sizes[tag]
        except Exception as exc:  # noqa: BLE001 — the next build tries again
            self.evict_errors.append(f"{type(exc).__name__}: {exc}")

    def _built_at(self, tag: str) -> float:
        return next((self.finished[k] for k, r in self.results.items() if r[0] == tag), 0.0)


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
