"""The exception tree of envfarm, rooted here because every package above uses it.

    EnvfarmError
    ├── InfraError            retry: the machinery failed, not the agent
    │   └── SandboxError      Docker unreachable, container died, shell lost
    │       └── ContainerDied
    ├── TaskError             do not retry: the task or its image is broken
    │   └── ImageBuildError
    └── AgentCaused           score 0 (status agent_fault): the agent broke its own
                              sandbox or what the verifier needs from it

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
    """The container stopped under a running call (killed, OOM of PID 1, engine restart)."""


class ImageBuildError(TaskError):
    """An image failed to build; the message carries the tail of the build log."""

    def __init__(self, message: str, log: str = "") -> None:
        super().__init__(message)
        self.log = log


class AgentCaused(EnvfarmError):
    """The agent's own doing made the episode unverifiable (it killed its sandbox, ran it
    out of memory, removed what the verifier reads): scored 0, never retried."""
