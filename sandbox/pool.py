"""Pre-started sandboxes per image, so an episode starts in milliseconds, not a second.

Each pooled sandbox already runs its shell. `acquire()` hands one out and removes it
from the pool for good (a used container is never handed out again); a background
thread starts its replacement. Closing the pool removes the idle ones.
"""

from __future__ import annotations

import atexit
import collections
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from sandbox.docker_backend import DockerBackend, DockerSandbox
from sandbox.errors import SandboxError
from sandbox.types import Limits


class WarmPool:
    """A pool of ready sandboxes of one image under one set of limits.

    Args:
        backend: where sandboxes start.
        image: image tag of every sandbox in the pool.
        size: how many idle sandboxes to keep ready.
        limits, env, workdir: as for `DockerBackend.start`.
        max_starting: how many replacements start at once.
    """

    def __init__(self, backend: DockerBackend, image: str, size: int, limits: Limits | None = None,
                 *, env: dict[str, str] | None = None, workdir: str | None = None,
                 max_starting: int = 4) -> None:
        self.backend, self.image, self.size = backend, image, size
        self.limits, self.env, self.workdir = limits or Limits(), env, workdir
        self._idle: collections.deque[DockerSandbox] = collections.deque()
        self._cond = threading.Condition()
        self._starting = 0
        self._closed = False
        self._errors: list[BaseException] = []
        self._executor = ThreadPoolExecutor(max_starting, thread_name_prefix="warm-pool")
        self._refill()

    @property
    def idle(self) -> int:
        with self._cond:
            return len(self._idle)

    def wait_ready(self, timeout_s: float = 120.0) -> None:
        """Block until the pool is full (or raise the first start error)."""
        with self._cond:
            ok = self._cond.wait_for(lambda: len(self._idle) >= self.size or self._errors, timeout_s)
            if self._errors:
                raise SandboxError(f"warm pool cannot start sandboxes: {self._errors[0]}")
            if not ok:
                raise SandboxError(f"warm pool not ready after {timeout_s}s")

    def acquire(self) -> DockerSandbox:
        """A ready sandbox, never handed out before; starts one inline if none is idle."""
        with self._cond:
            if self._closed:
                raise SandboxError("warm pool is closed")
            sandbox = self._idle.popleft() if self._idle else None
        self._refill()
        if sandbox is None:
            return self._start()
        return sandbox

    def close(self) -> None:
        """Remove the idle sandboxes. Calling it twice has no effect."""
        with self._cond:
            if self._closed:
                return
            self._closed = True
        self._executor.shutdown(wait=True, cancel_futures=True)
        with self._cond:
            idle, self._idle = list(self._idle), collections.deque()
        for sandbox in idle:
            sandbox.close()

    def __enter__(self) -> WarmPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- internals -------------------------------------------------------------
    def _start(self) -> DockerSandbox:
        return self.backend.start(self.image, self.limits, env=self.env, workdir=self.workdir,
                                  use_pool=False)

    def _refill(self) -> None:
        with self._cond:
            missing = self.size - len(self._idle) - self._starting
            if self._closed or missing <= 0:
                return
            self._starting += missing
        for _ in range(missing):
            self._executor.submit(self._start_one)

    def _start_one(self) -> None:
        try:
            sandbox = self._start()
        except BaseException as exc:  # noqa: BLE001 — reported through wait_ready
            with self._cond:
                self._starting -= 1
                self._errors.append(exc)
                self._cond.notify_all()
            return
        with self._cond:
            self._starting -= 1
            if self._closed:
                sandbox.close()
                return
            self._idle.append(sandbox)
            self._cond.notify_all()


class PoolRegistry:
    """Process-wide warm pools, one per start configuration, created on first demand.

    When enabled (`enable_prewarm`), `DockerBackend.start` takes its sandbox from the
    pool of the same (image, limits, env, workdir, capabilities) if one is ready, and
    the first start of a configuration creates that pool, so the following episodes of
    the same image (the scheduler groups them) start warm. Pools unused for
    `idle_timeout_s` are closed, so finished images hold no containers."""

    def __init__(self) -> None:
        self.size = 0
        self.idle_timeout_s = 120.0
        self._pools: dict[str, tuple[WarmPool, list[float]]] = {}
        self._lock = threading.Lock()
        self._janitor: threading.Thread | None = None

    def enable(self, size: int, idle_timeout_s: float = 120.0) -> None:
        self.size, self.idle_timeout_s = size, idle_timeout_s
        if size > 0 and self._janitor is None:
            self._janitor = threading.Thread(target=self._sweep, daemon=True, name="pool-janitor")
            self._janitor.start()

    def take(self, backend: DockerBackend, key: str, image: str, limits: Limits,
             env: dict[str, str] | None, workdir: str | None) -> DockerSandbox | None:
        """A warm sandbox for `key`, or None (and the pool is created for next time)."""
        if self.size <= 0:
            return None
        with self._lock:
            entry = self._pools.get(key)
            if entry is None:
                pool = WarmPool(backend, image, self.size, limits, env=env, workdir=workdir,
                                max_starting=2)
                self._pools[key] = (pool, [time.monotonic()])
                return None
            pool, last_used = entry
            last_used[0] = time.monotonic()
        if pool.idle == 0:
            return None
        try:
            return pool.acquire()
        except SandboxError:
            return None

    def close_all(self) -> None:
        with self._lock:
            pools, self._pools = [p for p, _ in self._pools.values()], {}
        for pool in pools:
            pool.close()

    def _sweep(self) -> None:
        while True:
            time.sleep(5)
            now = time.monotonic()
            with self._lock:
                stale = [k for k, (_, used) in self._pools.items()
                         if now - used[0] > self.idle_timeout_s]
                pools = [self._pools.pop(k)[0] for k in stale]
            for pool in pools:
                pool.close()


REGISTRY = PoolRegistry()


def enable_prewarm(size: int, idle_timeout_s: float = 120.0) -> None:
    """Keep `size` warm sandboxes per start configuration in this process."""
    REGISTRY.enable(size, idle_timeout_s)
    atexit.register(REGISTRY.close_all)


class PooledBackend:
    """Any backend, with starts served from the process's warm pools when prewarming is on.

    `make_backend` returns every backend wrapped in one; with prewarming off
    (`REGISTRY.size == 0`) a start goes straight to the wrapped backend. A start is pooled
    only when its configuration can be shared (a shell, no extra labels or capabilities,
    no engine options); the pool key includes the backend's name and run, so sandboxes of
    two engines or runs never mix. Everything else is the wrapped backend's."""

    def __init__(self, inner: object) -> None:
        self.inner = inner

    def start(self, image: str, limits: Limits | None = None, *,
              env: dict[str, str] | None = None, workdir: str | None = None,
              cap_add: list[str] | None = None, labels: dict[str, str] | None = None,
              start_shell: bool = True, use_pool: bool = True, **options: object) -> object:
        limits = limits or Limits()
        if (use_pool and REGISTRY.size > 0 and start_shell and labels is None
                and not cap_add and not options):
            key = repr((getattr(self.inner, "name", type(self.inner).__name__),
                        getattr(self.inner, "run", None), image, limits,
                        sorted((env or {}).items()), workdir))
            warm = REGISTRY.take(self.inner, key, image, limits, env, workdir)
            if warm is not None:
                return warm
        return self.inner.start(image, limits, env=env, workdir=workdir,  # type: ignore[attr-defined]
                                cap_add=cap_add, labels=labels, start_shell=start_shell,
                                use_pool=False, **options)

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)

    def __repr__(self) -> str:
        return f"PooledBackend({self.inner!r})"
