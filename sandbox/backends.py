"""Backends by name: configuration says `type`, this registry builds the backend.

A new engine is a small module with a class implementing `sandbox.types.Backend` and a
`register_backend("name", factory)` line here (or in its own package, at import). Code
above `sandbox` never constructs a concrete backend: it asks `make_backend`.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from sandbox.errors import SandboxError
from sandbox.types import Backend

BackendFactory = Callable[..., Backend]
_FACTORIES: dict[str, BackendFactory] = {}


class BackendConfig(BaseModel):
    """Which engine runs sandboxes, as typed configuration (stored with each run)."""

    model_config = ConfigDict(extra="forbid")

    type: str = Field(
        default_factory=lambda: os.environ.get("ENVFARM_BACKEND", "docker"),
        description="Registered backend name: docker, gvisor, podman, sim, ...")
    options: dict[str, Any] = Field(
        default_factory=dict, description="Keyword arguments for the backend's constructor.")


def register_backend(name: str, factory: BackendFactory) -> None:
    """Make `name` available to `make_backend` (re-registering replaces it)."""
    _FACTORIES[name] = factory


def backend_names() -> list[str]:
    _register_builtin()
    return sorted(_FACTORIES)


def make_backend(config: BackendConfig | str | None = None, *, run: str | None = None,
                 **options: Any) -> Backend:
    """Build the configured backend (default: `$ENVFARM_BACKEND`, else docker).

    Raises SandboxError naming the registered backends when the type is unknown."""
    _register_builtin()
    if config is None:
        config = BackendConfig()
    elif isinstance(config, str):
        config = BackendConfig(type=config)
    factory = _FACTORIES.get(config.type)
    if factory is None:
        raise SandboxError(f"unknown sandbox backend {config.type!r}; registered: "
                           f"{', '.join(sorted(_FACTORIES))} (set ENVFARM_BACKEND or --backend)")
    from sandbox.pool import PooledBackend

    return PooledBackend(factory(run=run, **{**config.options, **options}))  # type: ignore[return-value]


def _docker(**kwargs: Any) -> Backend:
    from sandbox.docker_backend import DockerBackend

    return DockerBackend(**kwargs)


def _sim(**kwargs: Any) -> Backend:
    from sandbox.sim_backend import SimBackend

    return SimBackend(**kwargs)


def _gvisor(**kwargs: Any) -> Backend:
    from sandbox.gvisor_backend import GVisorBackend

    return GVisorBackend(**kwargs)


def _podman(**kwargs: Any) -> Backend:
    from sandbox.podman_backend import PodmanBackend

    return PodmanBackend(**kwargs)


def _register_builtin() -> None:
    _FACTORIES.setdefault("docker", _docker)
    _FACTORIES.setdefault("gvisor", _gvisor)
    _FACTORIES.setdefault("podman", _podman)
    _FACTORIES.setdefault("sim", _sim)
