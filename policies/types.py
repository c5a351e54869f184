"""Plain data shared by every policy: a tool call, a parsed completion, an assistant turn.

These are the values that cross package boundaries (envs read `AssistantTurn`,
the orchestrator stores its token fields), so they are small frozen-ish
dataclasses with no behaviour beyond conversion to and from chat messages.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from typing import Any, Literal

FinishReason = Literal["stop", "length", "tool_calls", "error"]


def new_call_id() -> str:
    """A fresh tool-call id in the OpenAI style (`call_` + 24 hex digits)."""
    return "call_" + uuid.uuid4().hex[:24]


@dataclass
class ToolCall:
    """One function call the model asked for.

    `arguments` is always a dict (parsed from XML parameters or JSON); `id` is
    unique within an episode so a tool result can name the call it answers.
    """

    name: str
    arguments: dict[str, Any]
    id: str = field(default_factory=new_call_id)

    def to_openai(self) -> dict[str, Any]:
        """The OpenAI chat shape: arguments as a JSON string, as the API requires."""
        return {
            "id": self.id,
            "type": "function",
            "function": {"name": self.name, "arguments": json.dumps(self.arguments)},
        }

    @classmethod
    def from_any(cls, raw: dict[str, Any] | ToolCall) -> ToolCall:
        """Accept `ToolCall`, `{"name", "arguments"}` or OpenAI `{"function": {...}}`.

        Arguments may be a dict or a JSON string. Raises `ValueError` on a shape
        that is none of these (a bug in the caller, not something a model did).
        """
        if isinstance(raw, ToolCall):
            return raw
        fn = raw.get("function", raw)
        name = fn.get("name")
        if not isinstance(name, str) or not name:
            raise ValueError(f"tool call without a name: {raw!r}")
        args = fn.get("arguments", {})
        if isinstance(args, str):
            args = json.loads(args) if args.strip() else {}
        if not isinstance(args, dict):
            raise ValueError(f"tool call arguments must be an object: {raw!r}")  # noqa: TRY004
        return cls(name=name, arguments=args, id=raw.get("id") or new_call_id())


@dataclass
class ParsedCompletion:
    """What a completion's text says: visible content, reasoning, tool calls.

    `errors` holds one readable line per problem (unclosed tag, unknown
    function, bad parameter, tool call inside `<think>`). Parsing never raises:
    the env turns `errors` into an error observation and the episode goes on.
    """

    content: str
    reasoning: str | None
    tool_calls: list[ToolCall]
    errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors


@dataclass
class AssistantTurn:
    """One assistant turn: what it said and, for token-level policies, the exact tokens.

    `prompt_ids`, `completion_ids` and `logprobs` are exactly what the server
    saw and returned (one logprob per completion token); they are empty for
    policies without a model (oracle, noop) or behind a chat API.
    `finish_reason == "length"` means the context or token budget ran out: the
    env ends the episode with status `context_exceeded`.
    """

    content: str
    reasoning: str | None = None
    tool_calls: list[ToolCall] = field(default_factory=list)
    prompt_ids: list[int] = field(default_factory=list)
    completion_ids: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    finish_reason: FinishReason = "stop"
    errors: list[str] = field(default_factory=list)
    """Parse errors of the completion text (see `ParsedCompletion.errors`)."""
    text: str = ""
    """The raw completion text, when a model produced one."""
    timings: dict[str, float] = field(default_factory=dict)
    """Seconds spent: `http_s` (server round trip), `client_s` (render, tokenize, parse)."""
    meta: dict[str, Any] = field(default_factory=dict)
    """How the turn was generated (`guided`, `logprobs_mode`, `call`); stored with the
    assistant message under `generation` so each stored call says it."""

    def to_message(self) -> dict[str, Any]:
        """The turn as an OpenAI-style chat message (reasoning in `reasoning_content`).

        Parse errors travel as `parse_errors` (only when there are some) so the env
        can answer them with an error observation; templates ignore the key and
        `ChatPolicy` drops it before sending history to an API.
        """
        msg: dict[str, Any] = {"role": "assistant", "content": self.content}
        if self.reasoning is not None:
            msg["reasoning_content"] = self.reasoning
        if self.tool_calls:
            msg["tool_calls"] = [tc.to_openai() for tc in self.tool_calls]
        if self.errors:
            msg["parse_errors"] = list(self.errors)
        if self.meta:
            msg["generation"] = dict(self.meta)
        return msg

    @classmethod
    def from_message(cls, msg: dict[str, Any]) -> AssistantTurn:
        """Build a turn from a dict with `content` and optional `tool_calls`/`reasoning_content`."""
        return cls(
            content=msg.get("content") or "",
            reasoning=msg.get("reasoning_content", msg.get("reasoning")),
            tool_calls=[ToolCall.from_any(tc) for tc in msg.get("tool_calls") or []],
            errors=list(msg.get("parse_errors") or []),
        )
