"""A small Python client of `envfarm serve` (httpx only: import it without Docker or torch).

    client = EnvClient("http://127.0.0.1:8765", token="...")
    with client.env("echo", task_id="echo-hi") as env:          # a RemoteEnv
        obs, info = env.observations, env.info
        obs, reward, terminated, truncated, info = env.step(
            {"content": "", "tool_calls": [{"name": "finish", "arguments": {}}]})

Errors come back as `ServeError` with the server's `error` and `fix`; `retryable` is true
for 503 (an infrastructure fault) and 429 (too many sessions).
"""

from __future__ import annotations

from typing import Any

import httpx


class ServeError(RuntimeError):
    """The server refused a call; `error` and `fix` are its words."""

    def __init__(self, status: int, error: str, fix: str) -> None:
        super().__init__(f"HTTP {status}: {error} ({fix})")
        self.status, self.error, self.fix = status, error, fix

    @property
    def retryable(self) -> bool:
        return self.status in (429, 503)


class EnvClient:
    """Calls one env server. Thread-safe (one httpx client, pooled connections)."""

    def __init__(self, url: str, *, token: str | None = None, timeout_s: float = 600.0) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.url = url.rstrip("/")
        self._http = httpx.Client(base_url=self.url, headers=headers,
                                  timeout=httpx.Timeout(timeout_s, connect=10.0))

    def envs(self) -> list[dict[str, Any]]:
        return self._call("GET", "/v1/envs")["envs"]

    def create(self, env: str, *, task_id: str | None = None, seed: int | None = None,
               env_kwargs: dict[str, Any] | None = None) -> dict[str, Any]:
        body = {"env": env, "task_id": task_id, "seed": seed, "env_kwargs": env_kwargs or {}}
        return self._call("POST", "/v1/sessions", json=body)

    def step(self, session_id: str, action: dict[str, Any] | str) -> dict[str, Any]:
        return self._call("POST", f"/v1/sessions/{session_id}/step", json={"action": action})

    def delete(self, session_id: str) -> None:
        self._call("DELETE", f"/v1/sessions/{session_id}")

    def env(self, env: str, **kwargs: Any) -> RemoteEnv:
        """Start a session and wrap it as a Gymnasium-like env."""
        return RemoteEnv(self, env, **kwargs)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> EnvClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        response = self._http.request(method, path, **kwargs)
        try:
            body = response.json()
        except ValueError:
            body = {"error": response.text[:300], "fix": "is this an envfarm server?"}
        if response.status_code >= 400:
            raise ServeError(response.status_code, body.get("error", "?"), body.get("fix", ""))
        return body


class RemoteEnv:
    """One session as an env: `step` returns Gymnasium's five-tuple; `close` deletes it."""

    def __init__(self, client: EnvClient, env: str, **create: Any) -> None:
        self.client = client
        opened = client.create(env, **create)
        self.session_id: str = opened["session_id"]
        self.observations: list[dict[str, Any]] = opened["observations"]
        self.info: dict[str, Any] = opened["info"]
        self._closed = False

    def step(self, action: dict[str, Any] | str) -> tuple[list, float, bool, bool, dict]:
        r = self.client.step(self.session_id, action)
        return r["observations"], r["reward"], r["terminated"], r["truncated"], r["info"]

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self.client.delete(self.session_id)
        except ServeError as exc:
            if exc.status != 404:  # already closed for idleness: fine
                raise

    def __enter__(self) -> RemoteEnv:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
