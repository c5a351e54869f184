"""What `GET /v1/envs` says of each registered env: id, tools with their JSON schemas,
verifier, task kind. Tools whose set depends on the task (the general env's app tools)
are listed by name with `"schema": null`."""

from __future__ import annotations

from typing import Any


def standard_tool_schemas() -> dict[str, dict[str, Any]]:
    from envs.tools import BashTool, FinishTool, StrReplaceEditorTool

    return {t.name: t.schema() for t in (BashTool(), StrReplaceEditorTool(), FinishTool())}


def describe_envs() -> list[dict[str, Any]]:
    from envs.registry import REGISTRY

    known = standard_tool_schemas()
    out = []
    for env_id, info in sorted(REGISTRY.items()):
        out.append({
            "id": env_id, "name": info.name, "description": info.description,
            "verifier": info.verifier, "task_kind": info.task_kind,
            "tools": [{"name": name, "schema": known.get(name)} for name in info.tools],
        })
    return out
