"""Ending the agent's turn before anything is verified: stop, look, blame.

Every env that verifies inside or from the agent's sandbox calls `stop_agent` first, so
no agent process (a `setsid` daemon, a double fork, a fork bomb) is alive while the
verifier reads or copies anything. What the agent changed is read by the engine
(`agent_changes`), and files by the archive API (`read_capped`), never by a command the
agent could have shimmed.

A sandbox failure here is blamed by `blame`: the engine answers and the container
stopped on its own (its memory cap, a keep-alive the agent starved) → `AgentCaused`
(status agent_fault, reward 0, kept for training); the engine does not answer, or the
container was removed or killed from outside (a `kill` in the engine's event log) → the
`InfraError` stands (retried).
"""

from __future__ import annotations

import inspect
from typing import Any

from sandbox.errors import AgentCaused, FileTooLarge, SandboxError

READ_CAP_BYTES = 256 << 10
"""Default cap of one file read back for a verdict or a policy check."""


def blame(exc: SandboxError, sandbox: Any, backend: Any) -> Exception:
    """The exception that says who caused `exc`: an `AgentCaused`, or `exc` itself."""
    try:
        if not backend.healthy():
            return exc
        state = sandbox.state() if hasattr(sandbox, "state") else {}
    except SandboxError:
        return exc
    if state.get("KilledFromOutside"):
        return exc  # the engine was asked to kill it: not the agent's doing
    if getattr(exc, "oom_killed", False) or state.get("OOMKilled"):
        return AgentCaused(f"the agent's sandbox was killed by its memory cap ({exc})")
    if state and not state.get("Removed") and not state.get("Running", True):
        return AgentCaused(f"the agent's sandbox stopped during the episode (exit code "
                           f"{state.get('ExitCode')}): {exc}")
    return exc


def stop_agent(sandbox: Any, backend: Any) -> None:
    """Kill every agent process (the keep-alive stays). Raises AgentCaused or InfraError."""
    try:
        sandbox.stop_processes()
    except SandboxError as exc:
        raise blame(exc, sandbox, backend) from exc


def agent_changes(sandbox: Any, backend: Any) -> list[tuple[str, str]]:
    """(kind, path) of every change against the image, from the engine."""
    try:
        return [(c.kind, c.path) for c in sandbox.changes()]
    except SandboxError as exc:
        raise blame(exc, sandbox, backend) from exc


def read_capped(sandbox: Any, path: str, cap_bytes: int = READ_CAP_BYTES) -> bytes | None:
    """A regular file's bytes through the archive API, at most `cap_bytes`; None when it is
    missing, not a regular file (a link is not followed), or larger than the cap."""
    try:
        data = sandbox.read_file(path, max_bytes=cap_bytes)
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError, FileTooLarge):
        return None
    return None if len(data) > cap_bytes else data


def download_capped(sandbox: Any, src: str, dest: Any, cap_bytes: int) -> None:
    """Copy the sandbox folder `src` to the host folder `dest` through the archive API, at
    most `cap_bytes` of archive (over it: the sandbox's FileTooLarge, an AgentCaused).
    Links stay links; the extraction refuses links out of `dest` and special files
    (`tarfile.FilterError`)."""
    if "max_bytes" in inspect.signature(sandbox.download_dir).parameters:
        sandbox.download_dir(src, dest, max_bytes=cap_bytes)
    else:  # an engine without capped reads: the caller checks the size it got
        sandbox.download_dir(src, dest)


def too_large(exc: BaseException) -> bool:
    """Whether `exc` is a read that passed its byte cap."""
    return isinstance(exc, FileTooLarge)
