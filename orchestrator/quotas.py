"""Cluster-wide quotas: one named Ray actor holds every quota of a run, so a cap on
browser verifications holds across all workers, not per process.

A slot is a lease: it expires `lease_ttl_s` after its last renewal, and each worker
process renews the leases it holds from a heartbeat thread every third of that. A worker
that dies (killed, out of memory, its node gone) stops renewing, and its slots come back
to the others within `lease_ttl_s` seconds; a slow holder that is alive keeps its slot
however long it needs it. The actor is detached (it outlives a driver, so a resumed run
shares it), which is why a slot must never depend on its holder saying goodbye.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from typing import Any

from envs.quotas import QuotaSpec

ACTOR_NAME = "envfarm-quotas"
DEFAULT_LEASE_TTL_S = 6.0
"""Seconds a slot outlives its holder's last heartbeat."""

log = logging.getLogger(__name__)


class QuotaKeeper:
    """The actor's state: live leases per quota and the next free start time."""

    def __init__(self) -> None:
        self.leases: dict[str, dict[str, float]] = {}
        """quota -> lease id -> expiry (this actor's monotonic clock)."""
        self.next_start: dict[str, float] = {}

    def _live(self, name: str, now: float) -> dict[str, float]:
        held = self.leases.setdefault(name, {})
        for lease_id in [k for k, expiry in held.items() if expiry <= now]:
            del held[lease_id]  # its holder stopped renewing: dead or cut off
        return held

    def try_acquire(self, name: str, concurrency: int | None, per_second: float | None,
                    ttl_s: float = DEFAULT_LEASE_TTL_S) -> tuple[str | None, float]:
        """(lease id, 0.0) when acquired; otherwise (None, seconds to wait before asking
        again)."""
        now = time.monotonic()
        held = self._live(name, now)
        if concurrency and len(held) >= concurrency:
            soonest = min(held.values()) - now
            return None, max(0.02, min(0.05, soonest))
        if per_second:
            start = self.next_start.get(name, now)
            if start > now:
                return None, start - now
            self.next_start[name] = now + 1.0 / per_second
        lease_id = uuid.uuid4().hex
        held[lease_id] = now + ttl_s
        return lease_id, 0.0

    def renew(self, leases: list[tuple[str, str]], ttl_s: float = DEFAULT_LEASE_TTL_S
              ) -> list[str]:
        """Extend the given (quota, lease id) pairs; returns the ids already expired (their
        slot may have been given to someone else)."""
        now, lost = time.monotonic(), []
        for name, lease_id in leases:
            held = self._live(name, now)
            if lease_id in held:
                held[lease_id] = now + ttl_s
            else:
                lost.append(lease_id)
        return lost

    def release(self, name: str, lease_id: str | None = None) -> None:
        """Give a slot back; an expired or unknown lease is a no-op."""
        if lease_id is not None:
            self.leases.get(name, {}).pop(lease_id, None)

    def held(self, name: str) -> int:
        """Live leases of `name` now."""
        return len(self._live(name, time.monotonic()))


class RayQuotaBackend:
    """`envs.quotas` backend that asks the run's QuotaKeeper actor, holding leases that a
    heartbeat thread of this process renews."""

    def __init__(self, namespace: str = "envfarm", *,
                 lease_ttl_s: float = DEFAULT_LEASE_TTL_S) -> None:
        import ray

        if lease_ttl_s <= 0:
            raise ValueError("lease_ttl_s must be positive")
        self._ray = ray
        self.lease_ttl_s = lease_ttl_s
        self._actor: Any = ray.remote(QuotaKeeper).options(
            name=ACTOR_NAME, namespace=namespace, get_if_exists=True, lifetime="detached",
            num_cpus=0).remote()
        self._held: dict[str, str] = {}  # lease id -> quota name
        self._lock = threading.Lock()
        self._heartbeat: threading.Thread | None = None
        self._stop = threading.Event()

    def acquire(self, name: str, spec: QuotaSpec) -> str:
        while True:
            lease_id, wait = self._ray.get(self._actor.try_acquire.remote(
                name, spec.concurrency, spec.per_second, self.lease_ttl_s))
            if lease_id is not None:
                break
            time.sleep(wait)
        with self._lock:
            self._held[lease_id] = name
            self._start_heartbeat()
        return lease_id

    def release(self, name: str, token: object = None) -> None:
        with self._lock:
            self._held.pop(str(token), None)
        self._actor.release.remote(name, token)

    def close(self) -> None:
        """Stop renewing (the leases then lapse unless released); idempotent."""
        self._stop.set()

    def _start_heartbeat(self) -> None:
        if self._heartbeat is None or not self._heartbeat.is_alive():
            self._heartbeat = threading.Thread(target=self._renew_loop, daemon=True,
                                               name="envfarm-quota-heartbeat")
            self._heartbeat.start()

    def _renew_loop(self) -> None:
        while not self._stop.wait(self.lease_ttl_s / 3):
            with self._lock:
                leases = [(name, lease_id) for lease_id, name in self._held.items()]
            if not leases:
                continue
            try:
                lost = self._ray.get(self._actor.renew.remote(leases, self.lease_ttl_s),
                                     timeout=self.lease_ttl_s)
            except Exception as exc:  # noqa: BLE001 - keep beating; the actor may come back
                log.warning("quota heartbeat failed (%s); retrying", exc)
                continue
            with self._lock:
                lost = [lease_id for lease_id in lost if lease_id in self._held]
            if lost:
                log.warning("%d quota lease(s) expired before renewal (this process was "
                            "stalled for over %.0f s); their slots may be shared now",
                            len(lost), self.lease_ttl_s)
