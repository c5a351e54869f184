"""Guided tool calls: a regex, built from the env's tool schemas, that vLLM's
`structured_outputs` uses to constrain a turn to one well-formed tool call.

The shape is the Qwen3-Coder XML the parser reads (and `template.tool_call_text`
writes), byte for byte::

    <tool_call>\n<function=NAME>\n<parameter=KEY>\nVALUE\n</parameter>\n</function>\n</tool_call>

Required parameters come in schema order, optional ones may be left out. A value
matches its declared type (integer, number, boolean, enum); a string value may
hold anything but `<` (so the closing tag cannot be forged; a shell command that
needs `<` is out of reach of a guided turn). With `free_text=True` a short line
of prose may precede the call. The regex never matches an unknown function or
parameter, so a guided turn can only fail on a value the env rejects or on the
token budget running out mid-call (`finish_reason="length"`).
"""

from __future__ import annotations

import re
from typing import Any

_STRING = r"[^<]*"
_BY_TYPE = {
    "integer": r"-?[0-9]{1,18}",
    "number": r"-?[0-9]{1,18}(\.[0-9]{1,12})?",
    "boolean": r"(true|false)",
}


def _value(prop: dict[str, Any]) -> str:
    if isinstance(prop.get("enum"), list) and prop["enum"]:
        return "(" + "|".join(re.escape(str(v)) for v in prop["enum"]) + ")"
    kind = prop.get("type")
    return _BY_TYPE.get(kind, _STRING) if isinstance(kind, str) else _STRING


def _param(name: str, prop: dict[str, Any]) -> str:
    return f"<parameter={re.escape(name)}>\\n{_value(prop)}\\n</parameter>\\n"


def function_regex(tool: dict[str, Any]) -> str:
    """The regex of one `<function=...>` block of `tool` (OpenAI or flat schema)."""
    fn = tool.get("function", tool)
    params = fn.get("parameters") or {}
    props: dict[str, Any] = params.get("properties") or {}
    required = [p for p in params.get("required") or [] if p in props]
    parts = [_param(p, props[p]) for p in required]
    parts += [f"({_param(p, prop)})?" for p, prop in props.items() if p not in required]
    return f"<function={re.escape(fn['name'])}>\\n" + "".join(parts) + "</function>\\n"


def tool_call_regex(tools: list[dict[str, Any]], *, free_text: bool = False) -> str:
    """The regex of a whole guided turn: optional prose line, then exactly one call."""
    if not tools:
        raise ValueError("guided decoding needs at least one tool schema")
    body = "(" + "|".join(function_regex(t) for t in tools) + ")"
    prefix = r"([^<\n]{1,200}\n)?" if free_text else ""
    return f"{prefix}<tool_call>\\n{body}</tool_call>"


def structured_outputs(tools: list[dict[str, Any]], *, free_text: bool = False) -> dict[str, Any]:
    """The `structured_outputs` field of a vLLM `/v1/completions` request body."""
    return {"regex": tool_call_regex(tools, free_text=free_text)}
