"""Where episodes run: threads in this process, or Ray actors across a cluster
(orchestrator/ray_executor.py).

Both take an `EpisodeJob` and hand back a `concurrent.futures.Future` of an
`EpisodeRecord` dict, so the runner's dispatch loop is one piece of code. Each Ray actor
runs its episodes on threads: an episode mostly waits on a container or the model, and
a process per episode costs far more memory than a thread. Actors use their own node's
engine.

`close(abort=...)`: a normal close waits for the running episodes; an aborting close
returns at once (worker threads are daemons, Ray actors are killed), and the caller
removes the run's sandboxes (`remove_run_sandboxes`), which ends any episode still
blocked on one.
"""

from __future__ import annotations

import concurrent.futures as cf
import os
import queue
import socket
import threading
from typing import Any, Protocol

from orchestrator.episode import run_episode
from orchestrator.jobs import EpisodeJob
from orchestrator.records import EpisodeRecord


def execute(job: EpisodeJob) -> dict[str, Any]:
    """Run one episode (in whatever process the job landed in); its record as a dict."""
    import envs  # noqa: F401 — registers the built-in envs in this process
    from sandbox import current_run

    for module in job.imports:
        __import__(module)
    if job.warm_pool_size:
        from sandbox.pool import REGISTRY, enable_prewarm

        if REGISTRY.size != job.warm_pool_size:
            enable_prewarm(job.warm_pool_size)
    _configure_quotas(job)
    current_run.set(job.run_id)  # this thread's sandboxes carry the run's label
    env_kwargs = dict(job.env_kwargs)
    if job.backend is not None:
        from sandbox import BackendConfig, make_backend

        env_kwargs["backend"] = make_backend(BackendConfig.model_validate(job.backend),
                                             run=job.sandbox_run)
    record = run_episode(
        run_id=job.run_id, env_id=job.env_id, task_id=job.task_id,
        sample_index=job.sample_index, make_policy=job.policy.build, env_kwargs=env_kwargs,
        seed=job.seed, max_turns=job.max_turns, context=job.context,
        tool_schemas=job.policy.tool_schemas)
    record.attempts = job.attempt
    return record.to_dict()


_quota_config: str | None = None


def _configure_quotas(job: EpisodeJob) -> None:
    """Install the run's quotas in this process once (cluster-wide on Ray)."""
    global _quota_config
    key = repr((sorted((k, v.model_dump()) for k, v in job.quotas.items()), job.quota_backend))
    if not job.quotas or key == _quota_config:
        return
    from envs.quotas import QUOTAS

    backend = None
    if job.quota_backend == "ray":
        from orchestrator.quotas import RayQuotaBackend

        backend = RayQuotaBackend()
    QUOTAS.configure(dict(job.quotas), backend)
    _quota_config = key


class Executor(Protocol):
    capacity: int

    def submit(self, job: EpisodeJob, image_key: str | None = None) -> cf.Future: ...

    def look_ahead(self, upcoming: list[tuple[str, EpisodeJob]]) -> int: ...

    def close(self, abort: bool = False) -> None: ...


class ThreadExecutor:
    """Episodes on daemon threads of this process (no Ray): tests, laptops, debugging.

    Daemon threads, unlike `ThreadPoolExecutor`'s, never hold the interpreter at exit: an
    interrupted run ends at once even while an episode waits on a silent model server."""

    def __init__(self, concurrency: int, prebuild_ahead: int = 0,
                 image_budget_mb: float | None = None) -> None:
        self.capacity = concurrency
        self.prebuild_ahead = prebuild_ahead
        self.image_budget_mb = image_budget_mb
        self.prebuilder: Any = None
        """The image builder of `look_ahead` (this process is the only worker)."""
        self._queue: queue.SimpleQueue[tuple[cf.Future, EpisodeJob] | None] = queue.SimpleQueue()
        self._threads = [threading.Thread(target=self._work, name=f"episode_{i}", daemon=True)
                         for i in range(concurrency)]
        for thread in self._threads:
            thread.start()

    def _work(self) -> None:
        while (item := self._queue.get()) is not None:
            future, job = item
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(execute(job))
            except BaseException as exc:  # noqa: BLE001 — handed to the runner as a failure
                future.set_exception(exc)

    def submit(self, job: EpisodeJob, image_key: str | None = None) -> cf.Future:
        future: cf.Future = cf.Future()
        self._queue.put((future, job))
        return future

    def look_ahead(self, upcoming: list[tuple[str, EpisodeJob]]) -> int:
        """Build the first `prebuild_ahead` images of `upcoming` (image key, a job of that
        image) in the background; returns how many were queued now."""
        if self.prebuild_ahead <= 0:
            return 0
        if self.prebuilder is None:
            from orchestrator.prebuild import Prebuilder

            self.prebuilder = Prebuilder(self.image_budget_mb, keep_recent=self.prebuild_ahead)
        return sum(self.prebuilder.add(key, job) for key, job in upcoming[:self.prebuild_ahead])

    def close(self, abort: bool = False) -> None:
        for _ in self._threads:
            self._queue.put(None)
        if not abort:
            for thread in self._threads:
                thread.join()


def failed_record(job: EpisodeJob, error: BaseException) -> EpisodeRecord:
    """The record of an episode whose worker itself failed (actor died, lost node)."""
    return EpisodeRecord(run_id=job.run_id, task_id=job.task_id,
                         sample_index=job.sample_index, env_id=job.env_id,
                         status="infra_error", reward=None,
                         error=f"worker failed: {type(error).__name__}: {error}",
                         attempts=job.attempt)


def remove_run_sandboxes(run: str, backend: dict[str, Any] | None = None, *,
                         owner_gone_only: bool = False, also_mine: bool = False) -> int:
    """Remove the sandboxes labelled `envfarm.run=<run>` on this host's engine: all of them
    (an interrupted run: Ray actors' included), or with `owner_gone_only` those whose owner
    process is gone (leftovers of a killed driver or actor; live runs sharing the label
    keep theirs), plus with `also_mine` those this process owns (a finished run: a sandbox
    whose close failed while the engine was away). Returns how many were removed; never
    raises (an engine that does not answer has nothing to remove that this run could reach).

    Backends that hold a Docker-API client (docker, gvisor, podman's compatible API) are
    cleaned through it; others are left to their own `gc`."""
    try:
        from sandbox import BackendConfig, make_backend
        from sandbox.run_context import LABEL_OWNER, LABEL_RUN

        engine = make_backend(BackendConfig.model_validate(backend) if backend else None,
                              run=run)
        client = getattr(engine, "client", None)
        if client is None or not hasattr(client, "api"):
            return 0
        from sandbox.run_context import owner_id

        removed, me = 0, owner_id()
        listed = client.api.containers(all=True, filters={"label": f"{LABEL_RUN}={run}"})
        for container in listed:
            owner = (container.get("Labels") or {}).get(LABEL_OWNER, "")
            if owner_gone_only and _owner_alive(owner) and not (also_mine and owner == me):
                continue
            try:
                client.api.remove_container(container["Id"], force=True)
                removed += 1
            except Exception:  # noqa: BLE001, S110 — removed meanwhile, or in progress
                pass
        return removed
    except Exception:  # noqa: BLE001 — cleanup must not hide why the run stopped
        return 0


def _owner_alive(owner: str) -> bool:
    """Whether the `host:pid` owner of a sandbox may still use it (another host: assume so)."""
    host, _, pid = owner.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return True
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
