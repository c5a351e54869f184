"""`RolloutRunner`: plan the episodes of a run, dispatch them with back-pressure, retry
infrastructure failures, store every result as it arrives, and resume after a crash.

The plan is (task, sample index) pairs, grouped by environment image so that a worker
reuses cached images. Nothing is held beyond what is in flight: each finished episode
is handed to the store's writer thread (`StoreWriter`, so a slow commit never holds up
dispatch), and dispatch pauses while more than a slot's worth of records wait to be
written; a killed driver loses at most the episodes running and those waiting to be
written, and `resume` runs exactly what is missing. The loop learns which episodes
finished from a queue their futures fill, so its cost per episode does not grow with
the number in flight; on Ray, episodes travel to and from each actor in batches
(orchestrator/ray_executor.py), and the writer commits in batches
(benchmarks/results/scale.md). With `prebuild_ahead`, the workers are told every second
which images the queue needs next and build them while episodes run
(orchestrator/prebuild.py).

Failures, by who must act:
- before the run is created, `orchestrator.preflight` checks the env, its arguments, the
  tasks, the engine and the model server: a run that cannot work is never created;
- a `task_error` episode (a broken task or image) is stored and never retried;
- an `infra_error` episode is retried with exponential backoff (capped), long enough in
  total to ride out an engine restart; while the engine does not answer, nothing is
  dispatched and a failure costs no attempt (up to `engine_wait_s`);
- nothing finishing for `stall_report_s` is reported while it lasts (and whether the model
  server still answers).

Interruptions (SIGINT, SIGTERM): dispatching stops, running episodes get `stop_grace_s`
to finish and be stored, then the run's sandboxes are removed (Ray actors' too) and
`run()` returns a summary with `interrupted` set; the run can be resumed. A second signal
aborts at once, still removing the run's sandboxes.
"""

from __future__ import annotations

import collections
import concurrent.futures as cf
import queue
import signal
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from envs import status as st
from orchestrator.executors import ThreadExecutor, failed_record, remove_run_sandboxes
from orchestrator.jobs import EpisodeJob
from orchestrator.progress import RolloutProgress
from orchestrator.records import EpisodeRecord
from orchestrator.run_config import RolloutConfig, RunSummary, WorkItem
from orchestrator.store import Store
from orchestrator.store_writer import StoreWriter
from sandbox import BackendConfig

__all__ = ["RolloutConfig", "RolloutRunner", "RunSummary", "WorkItem", "failure_causes"]


class _Abort(BaseException):
    """Raised by the second interrupt: leave the dispatch loop at once."""


class RolloutRunner:
    """Runs a `RolloutConfig` against a store. One runner per run."""

    def __init__(self, config: RolloutConfig, store: Store | None = None,
                 run_id: str | None = None, show_progress: bool = True,
                 preflight: bool = True) -> None:
        import envs

        for module in config.imports:
            __import__(module)
        if config.backend is None:  # resolved now, so the stored config says which engine
            config = config.model_copy(update={"backend": BackendConfig()})
        self.config = config
        self.store = store or Store()
        self.env_id = envs.lookup(config.env).env_id if "/" not in config.env else config.env
        self.run_id = run_id or f"run-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"
        self.show_progress = show_progress
        self.preflight = preflight
        self._checked = False
        self._stopping: str | None = None
        self._stop_deadline = 0.0
        self._engine_down_since: float | None = None
        self._engine_checked = (0.0, True)
        self._engine_reported = 0.0
        self._probe: Any = None
        self._finished: queue.SimpleQueue[cf.Future] = queue.SimpleQueue()
        self._writer: StoreWriter | None = None

    @classmethod
    def resume(cls, run_id: str, store: Store | None = None, **kwargs: Any) -> RolloutRunner:
        """A runner for a stored run: it runs only what is not stored yet."""
        store = store or Store()
        try:
            stored = store.get_run(run_id)
        except KeyError:
            from orchestrator.errors import ConfigError

            raise ConfigError(f"no run {run_id!r} in {store.url}",
                              "list the stored runs with `envfarm runs list`") from None
        config = RolloutConfig.model_validate(stored["config"])
        return cls(config, store, run_id=run_id, **kwargs)

    @property
    def sandbox_label(self) -> str:
        """The `envfarm.run` label of this run's sandboxes."""
        return str(self.config.env_kwargs.get("run") or self.run_id)

    # -- planning --------------------------------------------------------------------------
    def plan(self) -> tuple[list[WorkItem], int]:
        """The episodes still to run, grouped by image; and how many were skipped."""
        tasks = self._tasks()
        skipped = 0
        if self.config.skip_solved_or_hopeless:
            rates = self.store.pass_rates([t for t, _, _ in tasks])
            keep = []
            for task_id, image, priority in tasks:
                seen, mean = rates.get(task_id, (0, 0.5))
                if seen >= self.config.min_history and mean in (0.0, 1.0):
                    skipped += 1
                    continue
                keep.append((task_id, image, priority))
            tasks = keep
        done = self.store.done_keys(self.run_id)
        if self.config.prebuild_ahead:  # no catalogue image key: build ahead per task
            tasks = [(t, image or t, p) for t, image, p in tasks]
        items = [WorkItem(task_id, i, image or "", priority)
                 for task_id, image, priority in tasks for i in range(self.config.n)
                 if (task_id, i) not in done]
        items.sort(key=lambda w: (-w.priority, w.image_key, w.task_id, w.sample_index))
        return items, skipped

    def _tasks(self) -> list[tuple[str, str | None, int]]:
        """(task id, image key, priority) of every task the run covers."""
        if self.config.task_ids is not None:
            return [(t, None, 0) for t in self.config.task_ids]
        from envs import lookup
        from orchestrator.preflight import _catalogue

        kind = lookup(self.env_id).task_kind
        filt = dict(self.config.task_filter)
        records = _catalogue(self.store.url).query(kind=kind, repo=filt.get("repo"),
                                                   status=filt.get("status"),
                                                   limit=filt.get("limit"))
        per_repo: collections.Counter[str] = collections.Counter()
        out = []
        for rec in records:
            if self.config.max_tasks_per_repo is not None and rec.repo:
                if per_repo[rec.repo] >= self.config.max_tasks_per_repo:
                    continue
                per_repo[rec.repo] += 1
            out.append((rec.id, rec.image_key, self.config.repo_priority.get(rec.repo or "", 0)))
        return out

    # -- running ---------------------------------------------------------------------------
    def run(self) -> RunSummary:
        """Run (or finish) the rollout; returns counts. Safe to call again after a crash.

        Raises PreflightError (nothing created) when the run cannot work."""
        resuming = self._run_exists()
        self.check()
        if not resuming:
            self.store.create_run(self.run_id, self.config.model_dump(mode="json"))
        else:
            self.store.set_run_state(self.run_id, "running")
        remove_run_sandboxes(self.sandbox_label, self._backend_data(), owner_gone_only=True)
        items, skipped = self.plan()
        summary = RunSummary(self.run_id, skipped=skipped)
        started = time.monotonic()
        progress = RolloutProgress(self.run_id, total=len(items), enabled=self.show_progress)
        pending = collections.deque(items)
        inflight: dict[cf.Future, tuple[WorkItem, EpisodeJob]] = {}
        executor = self._executor()
        self._finished = queue.SimpleQueue()
        self._writer = writer = StoreWriter(self.store)
        aborted = False
        try:
            with self._signals(progress), progress:
                self._loop(executor, pending, inflight, summary, progress)
        except _Abort:
            aborted = True
        finally:
            stopped = self._stopping is not None
            executor.close(abort=stopped)
            # Interrupted: every sandbox of the run goes. Finished: every episode closed its
            # own, so what is left of this process's (or a dead actor's) is a leftover.
            summary.sandboxes_removed = remove_run_sandboxes(
                self.sandbox_label, self._backend_data(), owner_gone_only=not stopped,
                also_mine=True)
            writer.close()  # every record handed over is written (or its error raised)
            summary.stored += writer.stored
        if stopped:
            summary.interrupted = self._stopping
            summary.unfinished = len(pending) + len(inflight)
            self.store.set_run_state(self.run_id, "interrupted")
            if aborted:
                progress.warn("aborted: running episodes were dropped (resume runs them)")
        else:
            self.store.set_run_state(self.run_id, "done")
        summary.elapsed_s = time.monotonic() - started
        summary.statuses = self.store.status_counts(self.run_id)
        return summary

    def check(self) -> None:
        """Preflight (once): raises PreflightError, before anything is stored, when the
        run cannot work. `run()` calls it; callers may call it first to fail earlier."""
        if self.preflight and not self._checked:
            from orchestrator.preflight import preflight

            preflight(self.config, self.store.url)
            self._checked = True

    def _run_exists(self) -> bool:
        try:
            self.store.get_run(self.run_id)
        except KeyError:
            return False
        return True

    def _loop(self, executor: Any, pending: collections.deque[WorkItem],
              inflight: dict[cf.Future, tuple[WorkItem, EpisodeJob]], summary: RunSummary,
              progress: RolloutProgress) -> None:
        last_done = time.monotonic()
        last_report = last_done
        last_ahead = 0.0
        while pending or inflight:
            now = time.monotonic()
            if self._stopping is not None:
                if not inflight or now >= self._stop_deadline:
                    return
            elif self._engine_down_since is None and self._writer_keeps_up(executor):
                self._dispatch(executor, pending, inflight)
                if self.config.prebuild_ahead and now - last_ahead >= 1.0:
                    last_ahead = now
                    self._look_ahead(executor, pending)
            if inflight:
                done = self._next_finished(timeout_s=0.25)
            else:
                done = []
                time.sleep(0.05)  # everything pending waits for its retry delay
            for future in done:
                entry = inflight.pop(future, None)
                if entry is None:
                    continue
                item, job = entry
                self._handle(item, self._outcome(future, job), pending, summary, progress)
                last_done = time.monotonic()
            self._watch_engine(progress)
            now = time.monotonic()
            if inflight and now - max(last_done, last_report) >= self.config.stall_report_s:
                last_report = now
                progress.warn(self._stall_message(now - last_done, len(inflight)))

    def _look_ahead(self, executor: Any, pending: collections.deque[WorkItem]) -> None:
        """Tell the workers which images the queue needs next (`prebuild_ahead`)."""
        from orchestrator.prebuild import upcoming_images

        workers = 1 if self.config.executor == "threads" else self.config.workers
        upcoming = upcoming_images(pending, 2 * self.config.prebuild_ahead * workers)
        executor.look_ahead([(key, self.job(item)) for key, item in upcoming])

    def _next_finished(self, timeout_s: float) -> list[cf.Future]:
        """The futures that finished since the last call, waiting up to `timeout_s` for
        one: O(finished), where `cf.wait` over every future in flight was O(in flight)."""
        try:
            done = [self._finished.get(timeout=timeout_s)]
        except queue.Empty:
            return []
        while True:
            try:
                done.append(self._finished.get_nowait())
            except queue.Empty:
                return done

    def _writer_keeps_up(self, executor: Any) -> bool:
        """Dispatch only while the records waiting to be written fit one more set of slots."""
        writer = self._writer
        if writer is None:
            return True
        writer.check()
        return writer.backlog < max(64, executor.capacity)

    def _handle(self, item: WorkItem, record: EpisodeRecord, pending: collections.deque[WorkItem],
                summary: RunSummary, progress: RolloutProgress) -> None:
        """Store a finished episode, or queue its retry."""
        if record.status in st.RETRYABLE:
            if self._stopping is not None:
                return  # interrupted under it: not stored, so resume runs it again
            if self._engine_is_down():
                # The engine is gone: this failure is not the episode's; it costs no attempt.
                pending.appendleft(WorkItem(item.task_id, item.sample_index, item.image_key,
                                            item.priority, item.attempt, 0.0))
                return
            if item.attempt < self.config.max_attempts:
                delay = self.config.retry_delay_s(item.attempt)
                pending.appendleft(WorkItem(item.task_id, item.sample_index, item.image_key,
                                            item.priority, item.attempt + 1,
                                            time.monotonic() + delay))
                summary.retried += 1
                progress.retried(record)
                return
        record.attempts = item.attempt
        if self._writer is not None:
            self._writer.put(record)
        elif self.store.save_episode(record):
            summary.stored += 1
        progress.finished(record)

    def _executor(self) -> Any:
        if self.config.executor == "threads":
            return ThreadExecutor(self.config.concurrency, self.config.prebuild_ahead,
                                  self._image_budget_mb())
        from orchestrator.ray_executor import RayExecutor

        return RayExecutor(address=self.config.ray_address, workers=self.config.workers,
                           per_worker=self.config.concurrency,
                           node_resource=self.config.ray_node_resource,
                           prebuild_ahead=self.config.prebuild_ahead,
                           image_budget_mb=self._image_budget_mb(),
                           batch_wait_s=self.config.batch_wait_s)

    def _image_budget_mb(self) -> float | None:
        gb = self.config.image_budget_gb
        return None if gb is None else gb * 1000

    def _backend_data(self) -> dict[str, Any] | None:
        return self.config.backend.model_dump(mode="json") if self.config.backend else None

    def job(self, item: WorkItem) -> EpisodeJob:
        """The typed job a worker runs for `item`."""
        return EpisodeJob(
            run_id=self.run_id, env_id=self.env_id, task_id=item.task_id,
            sample_index=item.sample_index, attempt=item.attempt, policy=self.config.policy,
            env_kwargs={"catalogue_url": self.store.url, **self.config.env_kwargs},
            backend=self._backend_data(), imports=self.config.imports,
            max_turns=self.config.max_turns, seed=self.config.seed + item.sample_index,
            warm_pool_size=self.config.warm_pool_size, quotas=self.config.tool_quotas,
            quota_backend=self.config.executor, context=self.config.context)

    def _dispatch(self, executor: Any, pending: collections.deque[WorkItem],
                  inflight: dict[cf.Future, tuple[WorkItem, EpisodeJob]]) -> None:
        """Fill free slots, in plan order, with items whose retry delay has passed."""
        now = time.monotonic()
        for _ in range(len(pending)):
            if len(inflight) >= executor.capacity:
                return
            item = pending.popleft()
            if item.not_before > now:
                pending.append(item)
                continue
            job = self.job(item)
            future = executor.submit(job, item.image_key or None)
            inflight[future] = (item, job)
            future.add_done_callback(self._finished.put)

    @staticmethod
    def _outcome(future: cf.Future, job: EpisodeJob) -> EpisodeRecord:
        try:
            return EpisodeRecord.from_dict(future.result())
        except Exception as exc:  # noqa: BLE001 — a worker that died is an infra failure
            return failed_record(job, exc)

    # -- the engine and stalls -------------------------------------------------------------
    def _checks_engine(self) -> bool:
        """Engine checks are for engines this driver can reach: local runs only."""
        return self.config.ray_address is None and self.config.engine_wait_s > 0

    def _engine_healthy(self) -> bool:
        """Whether the engine answers (asked at most every 2 s)."""
        checked_at, healthy = self._engine_checked
        if time.monotonic() - checked_at < 2.0:
            return healthy
        from sandbox import make_backend

        try:
            if self._probe is None:
                self._probe = make_backend(self.config.backend, run=self.sandbox_label)
            healthy = bool(self._probe.healthy())
        except Exception:  # noqa: BLE001 — an engine that cannot even be reached
            healthy = False
        self._engine_checked = (time.monotonic(), healthy)
        return healthy

    def _engine_is_down(self) -> bool:
        """Whether failures now are the engine's (it does not answer, within the wait)."""
        if not self._checks_engine():
            return False
        if self._engine_down_since is not None:
            return True
        if self._engine_healthy():
            return False
        self._engine_down_since = time.monotonic()
        self._engine_reported = 0.0
        return True

    def _watch_engine(self, progress: RolloutProgress) -> None:
        """While the engine is down: hold dispatch, report every `stall_report_s`, and
        resume when it answers (or give up waiting after `engine_wait_s`)."""
        if self._engine_down_since is None:
            return
        down_s = time.monotonic() - self._engine_down_since
        if self._engine_healthy():
            progress.warn(f"the {self._engine_name()} engine answers again after {down_s:.0f} s; "
                          "dispatching")
            self._engine_down_since = None
        elif down_s > self.config.engine_wait_s:
            progress.warn(f"the {self._engine_name()} engine has not answered for "
                          f"{down_s:.0f} s; retrying episodes anyway (each failure now costs "
                          "an attempt)")
            self._engine_down_since = None
            self.config = self.config.model_copy(update={"engine_wait_s": 0.0})
        elif down_s - self._engine_reported >= self.config.stall_report_s or \
                not self._engine_reported:
            self._engine_reported = max(down_s, 1e-3)
            progress.warn(f"the {self._engine_name()} engine does not answer ({down_s:.0f} s); "
                          f"waiting up to {self.config.engine_wait_s:.0f} s before retrying")

    def _engine_name(self) -> str:
        return self.config.backend.type if self.config.backend else "sandbox"

    def _stall_message(self, quiet_s: float, running: int) -> str:
        text = f"no episode finished for {quiet_s:.0f} s; {running} running"
        policy = self.config.policy
        if policy.type in ("vllm", "chat") and policy.urls:
            import httpx

            silent = []
            for url in policy.urls:
                try:
                    httpx.get(url.rstrip("/") + "/v1/models", timeout=3.0).raise_for_status()
                except httpx.HTTPError as exc:
                    silent.append(f"{url} ({type(exc).__name__})")
            text += (f"; model server silent: {', '.join(silent)}" if silent
                     else "; the model server answers (episodes are slow)")
        return text

    # -- interruptions ---------------------------------------------------------------------
    @contextmanager
    def _signals(self, progress: RolloutProgress) -> Iterator[None]:
        """SIGINT/SIGTERM handlers for the run (main thread only; elsewhere, none)."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return

        def on_signal(signum: int, _frame: Any) -> None:
            name = signal.Signals(signum).name
            if self._stopping is not None:
                raise _Abort(name)
            self._stopping = name
            self._stop_deadline = time.monotonic() + self.config.stop_grace_s
            progress.warn(f"{name}: no new episodes; running ones may finish for up to "
                          f"{self.config.stop_grace_s:.0f} s, then their sandboxes are "
                          "removed (press Ctrl-C again to stop now)")

        saved = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for s, handler in saved.items():
                signal.signal(s, handler)


def failure_causes(store: Store, run_id: str, limit: int = 3) -> str:
    """The most common causes of a run's failed episodes, as one line."""
    causes: collections.Counter[str] = collections.Counter()
    for e in store.episodes(run_id, statuses=st.NOT_SCORED, with_calls=False):
        first = (e.error or "no error recorded").strip().splitlines()[0][:240]
        causes[f"{e.status}: {first}"] += 1
    return "; ".join(f"{n}× {cause}" for cause, n in causes.most_common(limit))
