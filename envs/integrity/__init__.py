"""Reward integrity shared by the envs: the protected-path policy and the end of the
agent's turn (stop its processes, read its changes from outside, blame failures)."""

from envs.integrity.freeze import (
    agent_changes,
    blame,
    download_capped,
    read_capped,
    stop_agent,
    too_large,
)
from envs.integrity.policy import PathPolicy, ProtectedPaths, Violation

__all__ = ["PathPolicy", "ProtectedPaths", "Violation", "agent_changes", "blame",
           "download_capped", "read_capped", "stop_agent", "too_large"]
