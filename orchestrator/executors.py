"""Where episodes run: threads in this process, or Ray actors across a cluster.

Both take an `EpisodeJob` and hand back a `concurrent.futures.Future` of an
`EpisodeRecord` dict, so the runner's dispatch loop is one piece of code. Each Ray actor
is threaded (`max_concurrency`): an episode mostly waits on a container or the model,
and a process per episode costs far more memory than a thread. Actors use their own
node's engine.

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

    def close(self, abort: bool = False) -> None: ...


class ThreadExecutor:
    """Episodes on daemon threads of this process (no Ray): tests, laptops, debugging.

    Daemon threads, unlike `ThreadPoolExecutor`'s, never hold the interpreter at exit: an
    interrupted run ends at once even while an episode waits on a silent model server."""

    def __init__(self, concurrency: int) -> None:
        self.capacity = concurrency
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

    def close(self, abort: bool = False) -> None:
        for _ in self._threads:
            self._queue.put(None)
        if not abort:
            for thread in self._threads:
                thread.join()


class EpisodeWorker:
    """A Ray actor running many episodes at once on threads."""

    def run(self, job: EpisodeJob) -> dict[str, Any]:
        return execute(job)

    def node(self) -> str:
        return socket.gethostname()

    def pid(self) -> int:
        return os.getpid()

    def node_id(self) -> str:
        """The Ray node this actor runs on (several nodes may share one host)."""
        import ray

        return ray.get_runtime_context().get_node_id()


class RayExecutor:
    """Episodes on `workers` threaded Ray actors, `per_worker` episodes each.

    Each episode goes to the actor with the fewest in flight: round robin would keep
    handing episodes to an actor whose slots are all busy (they queue inside it, unrun)
    while another actor has free slots, once episode lengths differ. An actor whose
    episode failed with a Ray error (its node died; it restarts elsewhere) gets no new
    episode until a probe call answers: with least-loaded choice it would otherwise look
    the emptiest and draw every new episode into the failure, costing each an attempt.
    Episodes that name their image go to that image's home actor while it has a free slot
    (`orchestrator.image_schedule.ImageAffinity`), so a node reuses the images it built.

    A local Ray is started when `address` is None. With `node_resource`, actors only go
    to nodes that offer that custom resource (the cluster's sandbox workers, not its
    head), spread across them. An actor that dies (its node or
    process was killed) is replaced; its in-flight episodes fail with a Ray error
    that the runner treats as an infrastructure failure and retries elsewhere."""

    def __init__(self, *, address: str | None, workers: int, per_worker: int,
                 node_resource: str | None = None) -> None:
        import ray

        self._ray = ray
        if not ray.is_initialized():
            if address:
                ray.init(address=address, log_to_driver=False)
            else:
                ray.init(num_cpus=max(os.cpu_count() or 1, workers), include_dashboard=False,
                         log_to_driver=False, configure_logging=False)
        self.capacity = workers * per_worker
        self._per_worker = per_worker
        self._resources = {node_resource: 1} if node_resource else None
        self._actor_cls = ray.remote(EpisodeWorker)
        self._actors = [self._spawn() for _ in range(workers)]
        self.load = [0] * workers
        """Episodes in flight per actor (index into the actors)."""
        from orchestrator.image_schedule import ImageAffinity

        self.affinity = ImageAffinity()
        self.probing: set[int] = set()
        """Actors given no new episode until a probe call answers (their node died)."""
        self._load_lock = threading.Lock()
        self._closed = False

    def _spawn(self) -> Any:
        return self._actor_cls.options(
            max_concurrency=self._per_worker, num_cpus=0, resources=self._resources,
            scheduling_strategy="SPREAD", max_restarts=-1, max_task_retries=0).remote()

    def submit(self, job: EpisodeJob, image_key: str | None = None) -> cf.Future:
        with self._load_lock:
            usable = [i for i in range(len(self.load)) if i not in self.probing]
            index = self.affinity.choose(image_key, self.load, self._per_worker, usable)
            self.load[index] += 1
        future = self._actors[index].run.remote(job).future()
        future.add_done_callback(lambda f, i=index: self._finished(i, f))
        return future

    def _finished(self, index: int, future: cf.Future) -> None:
        with self._load_lock:
            self.load[index] -= 1
        if not future.cancelled() and isinstance(future.exception(), self._ray.exceptions.RayError):
            self._probe(index)

    def _probe(self, index: int, delay_s: float = 0.0) -> None:
        """Hold `index` out of the choice until a call on it answers (retried each second)."""
        with self._load_lock:
            if self._closed or (index in self.probing and not delay_s):
                return
            self.probing.add(index)

        def call() -> None:
            if self._closed:
                return
            probe = self._actors[index].node_id.remote().future()
            probe.add_done_callback(lambda f: self._probed(index, f))

        if delay_s:
            timer = threading.Timer(delay_s, call)
            timer.daemon = True
            timer.start()
        else:
            call()

    def _probed(self, index: int, probe: cf.Future) -> None:
        if probe.cancelled() or probe.exception() is not None:
            self._probe(index, delay_s=1.0)
            return
        with self._load_lock:
            self.probing.discard(index)

    @property
    def actors(self) -> list[Any]:
        """The actor handles, in the order of `load`."""
        return list(self._actors)

    def close(self, abort: bool = False) -> None:
        """Kill the actors (their running episodes end with them; `abort` is the same
        here: an actor never outlives its run)."""
        self._closed = True
        for actor in self._actors:
            try:
                self._ray.kill(actor, no_restart=True)
            except Exception:  # noqa: BLE001, S110 — already gone
                pass


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
