"""`envfarm serve`: envfarm envs as HTTP sessions for trainers in other processes or
languages (`app` builds the ASGI app; `client` is the Python client, importable alone).

Public face: `create_app`, `ServeConfig`, `EnvClient`, `RemoteEnv`, `ServeError`.
"""

from orchestrator.serve.client import EnvClient, RemoteEnv, ServeError
from orchestrator.serve.config import ServeConfig


def create_app(config: ServeConfig | None = None):  # noqa: ANN201 — FastAPI, imported lazily
    from orchestrator.serve.app import create_app as _create

    return _create(config)


__all__ = ["EnvClient", "RemoteEnv", "ServeConfig", "ServeError", "create_app"]
