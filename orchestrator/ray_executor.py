"""Episodes on threaded Ray actors, fed and drained in batches.

Why batches: a Ray actor call costs the driver ~0.5-0.8 ms of CPU (submit, `.future()`,
the result's transfer), and one call per episode was most of the driver's 2 ms per
episode at 1,000 running (benchmarks/results/scale.md). Here each actor has one
*exchange* call in flight at a time: it carries every episode chosen for that actor
since the last one, and comes back with every episode that finished meanwhile (it
returns `batch_wait_s` after its first finished episode, or after `poll_s` with
nothing: an idle poll is a call per `poll_s` per actor, a fixed cost per second that
weighs per episode at low rates, so it is long; an episode chosen for an actor waits for
that actor's reply at most that long, and in practice rides along at once, since a slot
is refilled right after the reply that freed it). One pump thread per actor runs that loop; the runner still gets one
`concurrent.futures.Future` per episode, resolved when its record arrives, and learns
of it from its completion queue.

Guarantees kept from one-call-per-episode:
- an actor that dies (its node or process was killed) fails every episode it held
  (sent, or chosen for it and not sent) with a `WorkerLost` error, which the runner
  retries as an infrastructure failure; the actor restarts (`max_restarts=-1`) and gets
  no new episode until an exchange with it answers again;
- an actor that restarted between two exchanges is seen by its incarnation id changing:
  the episodes the old one accepted are failed the same way;
- a record that arrives for an episode already failed is dropped (never resolved twice);
  the store would refuse it anyway.
"""

from __future__ import annotations

import concurrent.futures as cf
import itertools
import os
import queue
import socket
import threading
import time
import uuid
from typing import Any

from orchestrator.executors import execute
from orchestrator.jobs import EpisodeJob
from orchestrator.prebuild import Prebuilder


class WorkerLost(RuntimeError):
    """The actor that held an episode died or restarted before returning it."""


class EpisodeFailed(RuntimeError):
    """`execute` raised inside the actor (its message and type travel as text)."""


class EpisodeWorker:
    """A Ray actor: runs up to `slots` episodes at once on its own threads; episodes come
    in and records go out through `exchange`, several per call."""

    def __init__(self, slots: int = 1, image_budget_mb: float | None = None,
                 prebuild_ahead: int = 8) -> None:
        self.incarnation = uuid.uuid4().hex
        self._image_budget_mb = image_budget_mb
        self._prebuild_ahead = prebuild_ahead
        self._jobs: queue.SimpleQueue[tuple[int, EpisodeJob]] = queue.SimpleQueue()
        self._done: queue.SimpleQueue[tuple[int, bool, Any]] = queue.SimpleQueue()
        self._prebuilder: Prebuilder | None = None
        for i in range(max(1, slots)):
            threading.Thread(target=self._work, name=f"episode_{i}", daemon=True).start()

    def _work(self) -> None:
        while True:
            key, job = self._jobs.get()
            try:
                self._done.put((key, True, execute(job)))
            except BaseException as exc:  # noqa: BLE001 — handed back as a failed episode
                self._done.put((key, False, f"{type(exc).__name__}: {exc}"))

    def exchange(self, jobs: list[tuple[int, EpisodeJob]], poll_s: float = 0.5,
                 batch_wait_s: float = 0.1, prepare: list[tuple[str, EpisodeJob]] = ()
                 ) -> tuple[str, list[tuple[int, bool, Any]]]:
        """Start `jobs`; queue `prepare` (image key, job) for the image builder; return
        (this incarnation, the episodes finished since the last call): waits up to
        `poll_s` for a first one, then `batch_wait_s` for more to join it."""
        for item in jobs:
            self._jobs.put(item)
        if prepare:
            if self._prebuilder is None:
                self._prebuilder = Prebuilder(self._image_budget_mb,
                                              keep_recent=self._prebuild_ahead)
            for key, job in prepare:
                self._prebuilder.add(key, job)
        done: list[tuple[int, bool, Any]] = []
        try:
            done.append(self._done.get(timeout=poll_s))
        except queue.Empty:
            return self.incarnation, done
        deadline = time.monotonic() + batch_wait_s
        while (left := deadline - time.monotonic()) > 0:
            try:
                done.append(self._done.get(timeout=left))
            except queue.Empty:
                break
        return self.incarnation, done

    def run(self, job: EpisodeJob) -> dict[str, Any]:
        """One episode, one call (kept for callers outside the runner)."""
        return execute(job)

    def prepared(self) -> dict[str, Any]:
        """What this actor's image builder did: key -> (tag, seconds, error)."""
        return dict(self._prebuilder.results) if self._prebuilder else {}

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

    Each episode goes to the actor with the fewest in flight (round robin would queue
    episodes inside a busy actor while another has free slots), or to its image's home
    actor while that has a free slot (`orchestrator.image_schedule.ImageAffinity`), so a
    node reuses the images it built. An actor that lost its episodes (see the module
    docstring) gets none until an exchange with it answers again: with least-loaded
    choice it would otherwise look the emptiest and draw every new episode into the
    failure. With `prebuild_ahead` > 0, `look_ahead` sends each actor the next images its
    queue will need, which it builds on one background thread while episodes run.

    A local Ray is started when `address` is None. With `node_resource`, actors only go
    to nodes that offer that custom resource (the cluster's sandbox workers, not its
    head), spread across them."""

    def __init__(self, *, address: str | None, workers: int, per_worker: int,
                 node_resource: str | None = None, batch_wait_s: float = 0.1,
                 poll_s: float = 2.0, prebuild_ahead: int = 0,
                 image_budget_mb: float | None = None) -> None:
        import ray

        self._ray = ray
        if not ray.is_initialized():
            if address:
                ray.init(address=address, log_to_driver=False)
            else:
                ray.init(num_cpus=max(os.cpu_count() or 1, workers), include_dashboard=False,
                         log_to_driver=False, configure_logging=False)
        self.capacity = workers * per_worker
        self.prebuild_ahead = prebuild_ahead
        self._image_budget_mb = image_budget_mb
        self._per_worker = per_worker
        self._resources = {node_resource: 1} if node_resource else None
        self._batch_wait_s, self._poll_s = batch_wait_s, poll_s
        self._actor_cls = ray.remote(EpisodeWorker)
        self._actors = [self._spawn() for _ in range(workers)]
        self.load = [0] * workers
        """Episodes in flight per actor (index into the actors)."""
        from orchestrator.image_schedule import ImageAffinity

        self.affinity = ImageAffinity()
        self.probing: set[int] = set()
        """Actors given no new episode until an exchange with them answers."""
        self.exchanges = 0
        """Actor calls made (the benchmark's calls-per-episode figure)."""
        self.pump_cpu_s = [0.0] * workers
        """CPU time of each pump thread (the benchmark's breakdown)."""
        self._lock = threading.Condition()
        self._keys = itertools.count()
        self._outbox: list[list[tuple[int, EpisodeJob, cf.Future]]] = [[] for _ in range(workers)]
        self._held: list[dict[int, tuple[EpisodeJob, cf.Future]]] = [{} for _ in range(workers)]
        self._prepare: list[list[tuple[str, EpisodeJob]]] = [[] for _ in range(workers)]
        self._prepared: set[str] = set()
        self._incarnation: list[str | None] = [None] * workers
        self._closed = False
        self._pumps = [threading.Thread(target=self._pump, args=(i,), name=f"ray-pump-{i}",
                                        daemon=True) for i in range(workers)]
        for pump in self._pumps:
            pump.start()

    def _spawn(self) -> Any:
        # Threads for exchange + a probe (node_id, pid) beside it; episodes run on the
        # actor's own threads.
        return self._actor_cls.options(
            max_concurrency=4, num_cpus=0, resources=self._resources,
            scheduling_strategy="SPREAD", max_restarts=-1, max_task_retries=0
        ).remote(self._per_worker, self._image_budget_mb, max(1, self.prebuild_ahead))

    @property
    def actors(self) -> list[Any]:
        """The actor handles, in the order of `load`."""
        return list(self._actors)

    def submit(self, job: EpisodeJob, image_key: str | None = None) -> cf.Future:
        future: cf.Future = cf.Future()
        with self._lock:
            usable = [i for i in range(len(self.load)) if i not in self.probing]
            index = self.affinity.choose(image_key, self.load, self._per_worker, usable)
            self.load[index] += 1
            self._outbox[index].append((next(self._keys), job, future))
            self._lock.notify_all()
        return future

    def look_ahead(self, upcoming: list[tuple[str, EpisodeJob]]) -> int:
        """Send each actor the images of `upcoming` (image key, a job of that image; in
        queue order) that will be its own, up to `prebuild_ahead` per actor beyond those
        already sent; an image with no home gets one (the actor with the fewest images
        planned). Returns how many were sent now."""
        if self.prebuild_ahead <= 0:
            return 0
        sent = 0
        with self._lock:
            usable = [i for i in range(len(self.load)) if i not in self.probing]
            if not usable:
                return 0
            window = dict.fromkeys(usable, 0)
            for key, job in upcoming:
                home = self.affinity.assign(key, lambda: min(usable, key=window.__getitem__))
                if home not in window or window[home] >= self.prebuild_ahead:
                    continue
                window[home] += 1
                if key not in self._prepared:
                    self._prepared.add(key)
                    self._prepare[home].append((key, job))
                    sent += 1
            if sent:
                self._lock.notify_all()
        return sent

    # -- the pump: one thread per actor ----------------------------------------------------
    def _pump(self, index: int) -> None:
        try:
            self._pump_loop(index)
        finally:
            self.pump_cpu_s[index] = time.thread_time()

    def _pump_loop(self, index: int) -> None:
        while True:
            self.pump_cpu_s[index] = time.thread_time()
            with self._lock:
                while not (self._closed or self._outbox[index] or self._held[index]
                           or self._prepare[index] or index in self.probing):
                    self._lock.wait(1.0)
                if self._closed:
                    return
                sent, self._outbox[index] = self._outbox[index], []
                prepare, self._prepare[index] = self._prepare[index], []
                for key, job, future in sent:
                    self._held[index][key] = (job, future)
                self.exchanges += 1
            actor = self._actors[index]
            try:
                incarnation, done = self._ray.get(actor.exchange.remote(
                    [(key, job) for key, job, _ in sent], self._poll_s, self._batch_wait_s,
                    prepare))
            except Exception as exc:  # noqa: BLE001 — a Ray error: the actor or its node died
                if self._closed:
                    return
                self._lose(index, None, f"{type(exc).__name__}: {exc}")
                time.sleep(1.0)  # it restarts (elsewhere); ask again in a second
                continue
            self._receive(index, incarnation, {key for key, _, _ in sent}, done)
            if done:
                time.sleep(0.005)  # let the runner refill the freed slots: they ride along

    def _receive(self, index: int, incarnation: str, sent: set[int],
                 done: list[tuple[int, bool, Any]]) -> None:
        with self._lock:
            before = self._incarnation[index]
            self._incarnation[index] = incarnation
            self.probing.discard(index)
        if before is not None and before != incarnation:
            self._lose(index, sent, "the actor restarted", probe=False)
        resolved = []
        with self._lock:
            for key, ok, payload in done:
                entry = self._held[index].pop(key, None)
                if entry is not None:
                    self.load[index] -= 1
                    resolved.append((entry[1], ok, payload))
        for future, ok, payload in resolved:
            if ok:
                future.set_result(payload)
            else:
                future.set_exception(EpisodeFailed(payload))

    def _lose(self, index: int, keep: set[int] | None, why: str, probe: bool = True) -> None:
        """Fail every episode actor `index` held (but those in `keep`: accepted by its new
        incarnation) and those chosen for it; with `probe`, hold it out of the choice."""
        with self._lock:
            lost = [(k, v) for k, v in self._held[index].items() if not keep or k not in keep]
            for key, _ in lost:
                del self._held[index][key]
            unsent = [(job, future) for _, job, future in self._outbox[index]]
            self._outbox[index] = []
            failed = [v for _, v in lost] + unsent
            self.load[index] -= len(failed)
            self._prepared.difference_update(key for key, _ in self._prepare[index])
            self._prepare[index] = []
            if probe:
                self.probing.add(index)
                self._incarnation[index] = None
        error = WorkerLost(f"Ray actor {index} lost its episodes: {why}")
        for _, future in failed:
            if not future.done():
                future.set_exception(error)

    def prepared(self) -> list[dict[str, Any]]:
        """Each actor's image-builder results (key -> (tag, seconds, error)), in the order
        of `actors`."""
        return self._ray.get([a.prepared.remote() for a in self._actors], timeout=60)

    def close(self, abort: bool = False) -> None:
        """Kill the actors (their running episodes end with them; `abort` is the same
        here: an actor never outlives its run)."""
        with self._lock:
            self._closed = True
            self._lock.notify_all()
        for actor in self._actors:
            try:
                self._ray.kill(actor, no_restart=True)
            except Exception:  # noqa: BLE001, S110 — already gone
                pass
