"""Isolated, bounded, fast command execution in Docker containers; images built by content.

Public face: `Limits`, `ExecResult`, `Sandbox`, `Backend` (built by `make_backend`),
`DockerBackend`, `ImageSpec`, `WarmPool`, and the error tree in `sandbox.errors`.
"""

from sandbox.backends import BackendConfig, make_backend, register_backend
from sandbox.docker_backend import DockerBackend, DockerSandbox, connect
from sandbox.errors import (
    AgentCaused,
    ContainerDied,
    EnvfarmError,
    ImageBuildError,
    InfraError,
    SandboxError,
    TaskError,
)
from sandbox.images import ImageBuilder, ImageSpec, base_image
from sandbox.pool import WarmPool
from sandbox.run_context import current_run
from sandbox.types import Backend, ExecResult, FileChange, Limits, Sandbox

__all__ = [
    "AgentCaused",
    "Backend",
    "BackendConfig",
    "ContainerDied",
    "DockerBackend",
    "DockerSandbox",
    "EnvfarmError",
    "ExecResult",
    "FileChange",
    "ImageBuildError",
    "ImageBuilder",
    "ImageSpec",
    "InfraError",
    "Limits",
    "Sandbox",
    "SandboxError",
    "TaskError",
    "WarmPool",
    "base_image",
    "connect",
    "current_run",
    "make_backend",
    "register_backend",
]
