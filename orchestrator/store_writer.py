"""`StoreWriter`: the runner's episode writes, on a thread of their own.

Why: at 1,000 episodes in flight a write that waits on the disk (SQLite commits with an
fsync; 5 to 20 ms on a busy machine) in the dispatch loop holds up every other finished
episode and every free slot. The dispatch loop hands each finished record over and goes
on; one thread writes them in order, in batches: whatever waits when the thread is free
(up to `batch_max` records) goes in one transaction (`Store.save_episodes`), so the commit's
fsync is paid once per batch, not once per episode. What a killed driver can lose grows from "the
episodes running" to "the episodes running plus those handed over and not yet written"
(bounded: the runner stops dispatching while `backlog` is at its limit); none is ever
stored twice, and `resume` runs exactly what is missing, as before.

A write that raises (the database went away) is re-raised in the runner's thread by the
next `check()` or by `close()`, so a run never ends as if its episodes were stored.
"""

from __future__ import annotations

import queue
import threading

from orchestrator.records import EpisodeRecord
from orchestrator.store import Store


class StoreWriter:
    """Writes records to `store` on one thread, in the order they were handed over."""

    def __init__(self, store: Store, batch_max: int = 256) -> None:
        self.store = store
        self.batch_max = batch_max
        self.batches = 0
        """Transactions committed (for the benchmark's records-per-commit figure)."""
        self.stored = 0
        """Records written (the store said new); read it after `close()`."""
        self._queue: queue.SimpleQueue[EpisodeRecord | None] = queue.SimpleQueue()
        self._backlog = 0
        self._lock = threading.Lock()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="store-writer", daemon=True)
        self._thread.start()

    @property
    def backlog(self) -> int:
        """Records handed over and not written yet."""
        return self._backlog

    def put(self, record: EpisodeRecord) -> None:
        self.check()
        with self._lock:
            self._backlog += 1
        self._queue.put(record)

    def check(self) -> None:
        """Raise the error of a failed write, if one failed."""
        if self._error is not None:
            raise self._error

    def close(self) -> None:
        """Write everything handed over, stop the thread; raise a write's error."""
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()
        self.check()

    def _run(self) -> None:
        stopping = False
        while not stopping:
            batch: list[EpisodeRecord] = []
            record = self._queue.get()
            while record is not None:
                batch.append(record)
                if len(batch) >= self.batch_max:
                    break
                try:
                    record = self._queue.get_nowait()
                except queue.Empty:
                    break
            stopping = record is None
            if not batch:
                continue
            try:
                if self._error is None:
                    self.stored += self.store.save_episodes(batch)
                    self.batches += 1
            except BaseException as exc:  # noqa: BLE001 — handed to the runner's thread
                self._error = exc
            finally:
                with self._lock:
                    self._backlog -= len(batch)
