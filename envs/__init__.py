"""Gymnasium multi-turn environments, their tools and verifiers, and the registry.

Public face: `ToolEnv` (the base every env extends), `Tool`, `ToolResult`,
`ToolArgumentError`, the shared tools, `VerifierResult`, `register_env` and `REGISTRY`,
and the task kinds the envs declare (`task_kinds`, `kind_hook`).
Importing this package registers the built-in envs with Gymnasium as
`envfarm/<name>-v0`.
"""

from envs.core import STATUSES, ToolEnv, ToolEnvConfig, VerifierResult, truncate_middle
from envs.registry import (
    REGISTRY,
    EnvInfo,
    kind_hook,
    lookup,
    register_builtin,
    register_env,
    task_kinds,
    unregister_env,
)
from envs.spaces import AssistantActionSpace, MessageSpace
from envs.tools import (
    BashTool,
    FinishTool,
    StrReplaceEditorTool,
    Tool,
    ToolArgumentError,
    ToolResult,
)

register_builtin()

__all__ = [
    "REGISTRY",
    "STATUSES",
    "AssistantActionSpace",
    "BashTool",
    "EnvInfo",
    "FinishTool",
    "MessageSpace",
    "StrReplaceEditorTool",
    "Tool",
    "ToolArgumentError",
    "ToolEnv",
    "ToolEnvConfig",
    "ToolResult",
    "VerifierResult",
    "kind_hook",
    "lookup",
    "register_env",
    "task_kinds",
    "truncate_middle",
    "unregister_env",
]
