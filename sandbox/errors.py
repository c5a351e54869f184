"""The exception tree of envfarm, rooted here because every package above uses it.

    EnvfarmError
    ├── InfraError            retry: the machinery failed, not the agent
    │   └── SandboxError      Docker unreachable, container died, shell lost
    │       └── ContainerDied (.oom_killed: what the engine said)
    ├── TaskError             do not retry: the task or its image is broken
    │   └── ImageBuildError
    └── AgentCaused           score 0 (status agent_fault): the agent broke its own
        │                     sandbox or what the verifier needs from it
        ├── ContainerOOMKilled  the container died of its own memory cap
        └── FileTooLarge        a read from the sandbox exceeded its byte cap

What an agent causes (a hung command, a bad patch, a malformed tool call) is
never an exception: it is an observation, a reward and a status. `AgentCaused`
carries such an outcome out of deep code to the env, which scores it. Retry logic
is `except InfraError`.
"""

from __future__ import annotations


class EnvfarmError(Exception):
    """Root of every error envfarm raises on purpose."""


class InfraError(EnvfarmError):
    """An infrastructure failure: retry the episode, never score it."""


class TaskError(EnvfarmError):
    """The task itself is broken (bad file, image will not build): do not retry."""


class SandboxError(InfraError):
    """The sandbox cannot do its job: engine unreachable, container gone, shell lost."""


class ContainerDied(SandboxError):
    """The container stopped under a running call (killed or removed from outside, engine
    restart). `oom_killed` is the engine's `State.OOMKilled`; a death by the container's
    own memory cap is raised as `ContainerOOMKilled` (agent_fault) instead."""

    def __init__(self, message: str, *, oom_killed: bool = False) -> None:
        super().__init__(message)
        self.oom_killed = oom_killed


class ImageBuildError(TaskError):
    """An image failed to build; the message carries the tail of the build log."""

    def __init__(self, message: str, log: str = "") -> None:
        super().__init__(message)
        self.log = log


class AgentCaused(EnvfarmError):
    """The agent's own doing made the episode unverifiable (it killed its sandbox, ran it
    out of memory, removed what the verifier reads): scored 0, never retried."""


class ContainerOOMKilled(AgentCaused):
    """The container died and the engine says its memory cap killed it: the agent's own
    commands used the memory (score 0). Deaths from outside stay `ContainerDied`."""

    oom_killed = True


class FileTooLarge(AgentCaused):
    """A file or archive read from a sandbox is larger than the read's byte cap. The agent
    made it (a 500 MB log, a 150 MB patch): reading it whole would hurt the host."""

    def __init__(self, path: str, limit: int, size: int | None = None) -> None:
        what = f"{size} bytes" if size is not None else "more"
        super().__init__(f"{path} is too large to read from the sandbox: {what} over the "
                         f"{limit}-byte cap")
        self.path, self.limit, self.size = path, limit, size
