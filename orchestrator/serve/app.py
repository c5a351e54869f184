"""The env server's HTTP API (FastAPI): envfarm envs as sessions any trainer can drive.

    GET    /v1/envs                       env ids, tools (JSON schemas), verifier
    POST   /v1/sessions                   {"env", "task_id"?, "seed"?, "env_kwargs"?}
                                          → {"session_id", "observations", "info"}
    POST   /v1/sessions/{id}/step         {"action": {"content", "tool_calls"} | "raw text"}
                                          → {"observations", "reward", "terminated",
                                             "truncated", "info"}
    DELETE /v1/sessions/{id}              close it and its sandboxes
    GET    /v1/health                     {"ok", "sessions"}

Every error is JSON `{"error": what went wrong, "fix": what to do}` with a status code
that says who must act: 4xx the client (unknown env or session 404, malformed action 422,
episode over 409, too many sessions 429, body too large 413, bad token 401), 503 an
infrastructure fault worth retrying. Never a traceback.
"""

from __future__ import annotations

import hmac
import json
import time
import uuid
from contextlib import asynccontextmanager
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from orchestrator.serve.config import ServeConfig
from orchestrator.serve.sessions import SessionManager, SessionNotFound, TooManySessions

API_VERSION = "v1"


class CreateSession(BaseModel):
    model_config = ConfigDict(extra="forbid")

    env: str = Field(description="Env id (`envfarm/echo-v0`) or short name (`echo`).")
    task_id: str | None = Field(None, description="Task to run; None: the env picks one.")
    seed: int | None = Field(None, description="Seed for the env's reset.")
    env_kwargs: dict[str, Any] = Field(
        default_factory=dict, description="Constructor arguments of the env (max_turns, ...).")


class StepRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    action: dict[str, Any] | str = Field(
        description="One assistant turn: {'content': str, 'tool_calls': [{'name', "
        "'arguments'}]} or raw text in the MiMo / Qwen3-Coder XML tool-call format.")


class ApiError(Exception):
    """An error the API reports as JSON with a status code."""

    def __init__(self, status: int, error: str, fix: str, headers: dict | None = None) -> None:
        super().__init__(error)
        self.status, self.error, self.fix, self.headers = status, error, fix, headers


def create_app(config: ServeConfig | None = None) -> FastAPI:
    """The ASGI app. Sessions live in `app.state.sessions`; all close at shutdown."""
    import envs  # noqa: F401  (registers the envs with Gymnasium)

    config = config or ServeConfig()
    run = config.run or f"serve-{uuid.uuid4().hex[:8]}"

    @asynccontextmanager
    async def lifespan(app: FastAPI):  # noqa: ANN202
        yield
        app.state.sessions.close_all()

    app = FastAPI(title="envfarm env server", version=API_VERSION, lifespan=lifespan,
                  description=__doc__)
    app.state.config = config
    app.state.sessions = SessionManager(
        run=run, idle_timeout_s=config.idle_timeout_s, max_sessions=config.max_sessions,
        reap_interval_s=config.reap_interval_s, env_defaults=config.env_defaults)
    app.add_middleware(BodyLimit, max_bytes=config.max_request_bytes)
    _add_error_handlers(app)
    auth = _auth_dependency(config.token)

    @app.get("/v1/health")
    def health() -> dict[str, Any]:
        return {"ok": True, "sessions": len(app.state.sessions), "run": run}

    @app.get("/v1/envs", dependencies=[Depends(auth)])
    def list_envs() -> dict[str, Any]:
        from orchestrator.serve.describe import describe_envs

        return {"envs": describe_envs()}

    @app.post("/v1/sessions", dependencies=[Depends(auth)])
    def create_session(body: CreateSession) -> dict[str, Any]:
        env_id = _env_id(body.env)
        try:
            session, observations, info = app.state.sessions.open(
                env_id, task_id=body.task_id, seed=body.seed, env_kwargs=body.env_kwargs)
        except TooManySessions as exc:
            raise ApiError(429, str(exc), "DELETE finished sessions, or retry later",
                           {"Retry-After": "5"}) from None
        except BaseException as exc:  # noqa: BLE001 — mapped to a status, never a traceback
            raise _env_failure(exc, f"cannot start {env_id}") from None
        return {"session_id": session.id, "observations": jsonable(observations),
                "info": jsonable(info)}

    @app.post("/v1/sessions/{session_id}/step", dependencies=[Depends(auth)])
    async def step(session_id: str, body: StepRequest) -> dict[str, Any]:
        # The session is marked busy on arrival, in the event loop: a step waiting for a
        # worker thread (all busy opening other sessions) is not idle and is never reaped.
        session = _session(app, session_id)
        session.inflight += 1
        try:
            return await run_in_threadpool(_step, session, body)
        finally:
            session.inflight -= 1
            session.last_used = time.monotonic()

    def _step(session: Any, body: StepRequest) -> dict[str, Any]:
        with session.lock:
            if session.done:
                raise ApiError(409, "the episode of this session is over",
                               "DELETE the session and POST /v1/sessions for a new episode")
            try:
                observations, reward, terminated, truncated, info = session.env.step(body.action)
            except BaseException as exc:  # noqa: BLE001
                raise _env_failure(exc, "the step failed") from None
            session.steps += 1
            session.done = bool(terminated or truncated)
        return {"observations": jsonable(observations), "reward": float(reward),
                "terminated": bool(terminated), "truncated": bool(truncated),
                "info": jsonable(info)}

    @app.delete("/v1/sessions/{session_id}", dependencies=[Depends(auth)])
    def delete_session(session_id: str) -> dict[str, Any]:
        try:
            app.state.sessions.close(session_id)
        except SessionNotFound:
            raise _unknown_session(session_id) from None
        return {"closed": session_id}

    return app


# -- helpers -------------------------------------------------------------------------------

def _env_id(name: str) -> str:
    from envs.registry import lookup

    try:
        return lookup(name).env_id
    except KeyError as exc:
        raise ApiError(404, str(exc).strip("'\""), "GET /v1/envs lists the env ids") from None


def _session(app: FastAPI, session_id: str) -> Any:
    try:
        return app.state.sessions.get(session_id)
    except SessionNotFound:
        raise _unknown_session(session_id) from None


def _unknown_session(session_id: str) -> ApiError:
    return ApiError(404, f"no open session {session_id!r} (never opened, deleted, or closed "
                    "after its idle timeout)", "POST /v1/sessions to start a new one")


def _env_failure(exc: BaseException, what: str) -> ApiError:
    """Map an env's exception to who must act."""
    from sandbox.errors import InfraError, TaskError

    message = f"{what}: {type(exc).__name__}: {exc}".splitlines()[0][:500]
    if isinstance(exc, InfraError):
        return ApiError(503, message, "an infrastructure fault (engine, host): retry the "
                        "session later", {"Retry-After": "10"})
    if isinstance(exc, TaskError):
        return ApiError(422, message, "the task is broken or unknown: pick another task_id")
    if isinstance(exc, KeyError):
        return ApiError(404, message, "check task_id against `envfarm tasks list`")
    if isinstance(exc, (ValueError, TypeError)):
        return ApiError(422, message, "check env_kwargs, task_id and the action's shape "
                        "against GET /v1/envs")
    if isinstance(exc, RuntimeError) and "reset()" in str(exc):
        return ApiError(409, message, "DELETE the session and start a new one")
    return ApiError(500, message, "a bug in envfarm: report it with the server's log")


def _auth_dependency(token: str | None):  # noqa: ANN202
    async def check(request: Request) -> None:  # in the event loop: no worker thread needed
        if token is None:
            return
        header = request.headers.get("authorization", "")
        given = header[7:] if header.lower().startswith("bearer ") else ""
        if not hmac.compare_digest(given.encode(), token.encode()):
            raise ApiError(401, "missing or wrong bearer token",
                           "send the header 'Authorization: Bearer <token>'",
                           {"WWW-Authenticate": "Bearer"})
    return check


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(_: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse({"error": exc.error, "fix": exc.fix}, exc.status, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def bad_request(_: Request, exc: RequestValidationError) -> JSONResponse:
        problems = "; ".join(f"{'.'.join(str(p) for p in e.get('loc', ())[1:]) or 'body'}: "
                             f"{e.get('msg')}" for e in exc.errors())
        return JSONResponse({"error": f"malformed request: {problems}",
                             "fix": "see the schema at /openapi.json"}, 422)

    @app.exception_handler(Exception)
    async def internal(_: Request, exc: Exception) -> JSONResponse:
        message = f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
        return JSONResponse({"error": f"internal error: {message}",
                             "fix": "a bug in envfarm: report it with the server's log"}, 500)


class BodyLimit:
    """ASGI middleware: refuse bodies over `max_bytes` (declared or streamed) with 413."""

    def __init__(self, app: Any, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._refuse(send)
            return
        seen = 0

        async def counted() -> dict:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.max_bytes:
                raise _TooLarge
            return message

        try:
            await self.app(scope, counted, send)
        except _TooLarge:
            await self._refuse(send)

    async def _refuse(self, send: Any) -> None:
        body = json.dumps({"error": f"request body over {self.max_bytes} bytes",
                           "fix": "send smaller actions (the server's --max-request-bytes)"})
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": body.encode()})


class _TooLarge(Exception):
    pass


def jsonable(value: Any) -> Any:
    """Deep copy into JSON types (numpy scalars and unknown objects become str/float)."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if hasattr(value, "item"):
        return value.item()
    return str(value)
