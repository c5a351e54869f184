"""Open env sessions of the HTTP server: one Gymnasium env each, closed when the client
deletes it, when it has been idle past the timeout, or when the server stops.

Every env is made with the server's run label, so its sandboxes can be found (and are
removed by `close_all`) whatever the clients do. A session's calls are serialized by its
own lock; different sessions step in parallel on the server's thread pool.
"""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import gymnasium


class SessionNotFound(KeyError):
    """No open session with that id (never opened, deleted, or closed for idleness)."""


class TooManySessions(RuntimeError):
    """The server holds `max_sessions` already."""


@dataclass
class Session:
    id: str
    env_id: str
    env: Any
    created: float
    last_used: float
    lock: threading.Lock = field(default_factory=threading.Lock)
    done: bool = False
    steps: int = 0
    inflight: int = 0
    """Requests that arrived for this session and have not finished (never idle then)."""


class SessionManager:
    """Creates, finds and closes sessions; a reaper thread closes idle ones."""

    def __init__(self, *, run: str, idle_timeout_s: float, max_sessions: int,
                 reap_interval_s: float = 1.0,
                 env_defaults: dict[str, dict] | None = None) -> None:
        self.run = run
        self.idle_timeout_s = idle_timeout_s
        self.max_sessions = max_sessions
        self.env_defaults = env_defaults or {}
        self._sessions: dict[str, Session] = {}
        self._lock = threading.Lock()
        self._pending = 0
        self._stop = threading.Event()
        self.closed_idle = 0
        self._reaper = threading.Thread(target=self._reap_loop, args=(reap_interval_s,),
                                        name="serve-reaper", daemon=True)
        self._reaper.start()

    # -- lifecycle of one session ------------------------------------------------------------

    def open(self, env_id: str, *, task_id: str | None, seed: int | None,
             env_kwargs: dict[str, Any]) -> tuple[Session, list[dict], dict[str, Any]]:
        """Make the env and reset it. Raises TooManySessions, and whatever `gymnasium.make`
        or `reset` raise (the caller maps them to HTTP errors)."""
        with self._lock:
            if len(self._sessions) + self._pending >= self.max_sessions:
                raise TooManySessions(f"the server holds {self.max_sessions} sessions")
            self._pending += 1
        env = None
        try:
            kwargs = {**self.env_defaults.get(env_id, {}), **env_kwargs, "run": self.run}
            env = gymnasium.make(env_id, disable_env_checker=True, **kwargs)
            options = {"task_id": task_id} if task_id is not None else None
            observations, info = env.reset(seed=seed, options=options)
        except BaseException:
            if env is not None:
                _close_quietly(env)
            with self._lock:
                self._pending -= 1
            raise
        now = time.monotonic()
        session = Session(uuid.uuid4().hex, env_id, env, now, now)
        with self._lock:
            self._pending -= 1
            self._sessions[session.id] = session
        return session, observations, info

    def get(self, session_id: str) -> Session:
        with self._lock:
            session = self._sessions.get(session_id)
        if session is None:
            raise SessionNotFound(session_id)
        session.last_used = time.monotonic()
        return session

    def close(self, session_id: str) -> None:
        with self._lock:
            session = self._sessions.pop(session_id, None)
        if session is None:
            raise SessionNotFound(session_id)
        with session.lock:
            _close_quietly(session.env)

    def close_all(self) -> None:
        """Stop the reaper and close every session (server shutdown)."""
        self._stop.set()
        with self._lock:
            sessions, self._sessions = list(self._sessions.values()), {}
        for session in sessions:
            _close_quietly(session.env)

    def __len__(self) -> int:
        with self._lock:
            return len(self._sessions)

    # -- idle sessions ----------------------------------------------------------------------

    def _reap_loop(self, interval_s: float) -> None:
        while not self._stop.wait(interval_s):
            self.reap_idle()

    def reap_idle(self) -> int:
        """Close sessions idle past the timeout (a session mid-step is never idle)."""
        cutoff = time.monotonic() - self.idle_timeout_s
        with self._lock:
            idle = [s for s in self._sessions.values()
                    if s.last_used < cutoff and not s.inflight and not s.lock.locked()]
            for s in idle:
                del self._sessions[s.id]
        for s in idle:
            _close_quietly(s.env)
        self.closed_idle += len(idle)
        return len(idle)


def _close_quietly(env: Any) -> None:
    try:
        env.close()
    except Exception:  # noqa: BLE001 — a failed close must not stop the others; gc catches it
        pass
