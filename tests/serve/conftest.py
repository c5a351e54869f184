"""A real env server (uvicorn on a free loopback port, in a thread) for the serve tests."""

from __future__ import annotations

import socket
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest


@dataclass
class Server:
    url: str
    token: str
    run: str
    app: object


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(**config) -> Iterator[Server]:
    import uvicorn

    from orchestrator.serve import ServeConfig, create_app

    run = f"pytest-serve-{uuid.uuid4().hex[:8]}"
    token = uuid.uuid4().hex
    app = create_app(ServeConfig(token=token, run=run, **config))
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                           log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/v1/health", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.1)
    try:
        yield Server(url, token, run, app)
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        from sandbox import connect
        from sandbox.gc import gc_containers

        gc_containers(connect(), run=run)


@pytest.fixture(scope="module")
def env_server(base_image) -> Iterator[Server]:
    yield from start_server(idle_timeout_s=600)
