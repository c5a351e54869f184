"""The sandbox contract: resource limits, command results and the `Sandbox` protocol."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field


class Limits(BaseModel):
    """What one sandbox may use. Defaults suit an agent episode on a small machine."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    cpus: float = Field(1.0, gt=0, description="CPU share, in cores (fractions allowed).")
    memory_mb: int = Field(2048, ge=16, description="Memory cap; swap is not allowed beyond it.")
    pids: int = Field(512, ge=16, description="Most processes and threads alive at once.")
    disk_mb: int | None = Field(
        4096, ge=64, description=(
            "Cap of everything the sandbox writes (its writable layer, any path), in MB: "
            "writes past it fail with ENOSPC. None: uncapped. Enforced where the backend "
            "can (`Sandbox.disk_limited` says; Docker: a loop-mounted layer, or storage_opt "
            "on XFS)."))
    network: bool = Field(False, description=(
        "Give the sandbox internet access, on a network of its own with no route to the "
        "host or other sandboxes; off by default."))
    timeout_s: float = Field(60.0, gt=0, description="Default timeout of one command.")
    output_limit_bytes: int = Field(
        64_000, ge=256, description="Output kept per command: head and tail, marker in between."
    )


@dataclass(frozen=True)
class ExecResult:
    """What one command did. A timeout is a result, not an exception."""

    exit_code: int
    output: str
    truncated: bool = False
    timed_out: bool = False
    duration_s: float = 0.0
    shell_restarted: bool = False
    """The shell was lost (the command ran `exit`, or could not be interrupted) and a new
    one started: cwd and environment are back to their start values."""

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.timed_out


@runtime_checkable
class Sandbox(Protocol):
    """One isolated machine with one persistent shell.

    Contract: `exec` runs in the same shell every time (cwd and environment persist);
    a command that exceeds its timeout is killed and the shell stays usable; a dead
    container raises `SandboxError`, never returns an ordinary result. `close()` is
    idempotent. Sandboxes are context managers.
    """

    id: str

    def exec(self, command: str, timeout_s: float | None = None) -> ExecResult: ...

    def write_file(self, path: str, data: bytes | str, mode: int = 0o644) -> None: ...

    def read_file(self, path: str, max_bytes: int | None = None) -> bytes:
        """One file's bytes, streamed; over `max_bytes` (default 64 MiB) FileTooLarge,
        an AgentCaused (the agent made it). Never unbounded."""
        ...

    def upload_dir(self, src: Path | str, dest: str) -> None: ...

    def download_dir(self, src: str, dest: Path | str) -> None:
        """Copy a sandbox directory to the host, streamed under a byte cap (256 MiB)."""
        ...

    def stop_processes(self) -> None:
        """Kill every process in the sandbox except its keep-alive (the agent is done)."""
        ...

    def changes(self) -> list[FileChange]:
        """What differs from the image: paths added, changed or deleted (read by the
        engine from outside, never by a command in the sandbox)."""
        ...

    def snapshot(self) -> str:
        """An image of the sandbox's filesystem now, for a fresh verifier sandbox; the
        caller removes it with `Backend.remove_image`."""
        ...

    def close(self) -> None: ...

    def __enter__(self) -> Sandbox: ...

    def __exit__(self, *exc: object) -> None: ...


@dataclass(frozen=True)
class FileChange:
    """One path that differs from the sandbox's image."""

    kind: Literal["A", "C", "D"]
    """Added, changed or deleted (as `docker diff` says)."""
    path: str


@runtime_checkable
class Backend(Protocol):
    """Where sandboxes run: one engine (Docker, Podman, a gVisor runtime, a simulation).

    Contract: `start` returns a ready `Sandbox` (shell open unless `start_shell=False`)
    or raises `SandboxError` (retryable) / `TaskError` (the image cannot be had).
    Every sandbox carries the labels `envfarm.run` = `run` and `envfarm.owner`, so a
    crashed run's leftovers can be found. `healthy()` says whether the engine answers
    now: envs use it to tell an agent-caused failure from an infrastructure one.
    """

    name: str
    """The backend's type, as configuration names it ("docker", "podman", ...)."""
    run: str
    """The `envfarm.run` label of every sandbox started here."""

    def start(self, image: str, limits: Limits | None = None, *,
              env: dict[str, str] | None = None, workdir: str | None = None,
              cap_add: list[str] | None = None, labels: dict[str, str] | None = None,
              start_shell: bool = True, use_pool: bool = True, **options: Any) -> Sandbox: ...

    def healthy(self) -> bool: ...

    def remove_image(self, image: str) -> None: ...
