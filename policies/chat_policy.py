"""`ChatPolicy`: any OpenAI-compatible `/v1/chat/completions` endpoint, without token ids.

For evaluation and hosted APIs (MiMo's own API, other providers, a vLLM server
started with a tool-call parser). Tool calls come from the API's `tool_calls`;
when a server has no tool parser and returns the raw XML/JSON in the content,
the content is parsed with `parse_completion` instead.
"""

from __future__ import annotations

from typing import Any

import openai

from policies.base import as_conversation
from policies.conversation import Conversation
from policies.errors import PolicyRequestError, PolicyUnavailableError
from policies.parsing import parse_completion, tool_schemas
from policies.template import normalize_messages
from policies.types import AssistantTurn, ToolCall
from policies.vllm_policy import SamplingConfig

_CONTEXT_MARKERS = ("maximum context length", "context length", "context_length_exceeded")


class ChatPolicy:
    """Acts through the chat API; returns turns without token ids.

    Args:
        base_url: the API root, e.g. `http://127.0.0.1:8000/v1`.
        model: model name; None takes the first one the server lists.
        api_key: bearer token ("EMPTY" for a local vLLM).
        sampling: temperature, top_p, max tokens.
        enable_thinking: sent as `chat_template_kwargs` (vLLM) for thinking models.
        max_retries: the `openai` client's own retries on connection errors and 5xx.
    """

    def __init__(
        self,
        base_url: str,
        model: str | None = None,
        *,
        api_key: str = "EMPTY",
        sampling: SamplingConfig | None = None,
        enable_thinking: bool | None = None,
        max_retries: int = 3,
        timeout_s: float = 600.0,
        extra_body: dict[str, Any] | None = None,
        system_prompt: str | None = None,
        few_shot: list[dict[str, Any]] | None = None,
    ) -> None:
        self.system_prompt = system_prompt
        self.few_shot = list(few_shot or [])
        self.client = openai.OpenAI(
            base_url=base_url, api_key=api_key, max_retries=max_retries, timeout=timeout_s
        )
        self._model = model
        self.sampling = sampling or SamplingConfig(max_tokens_per_call=4096)
        self.extra_body = dict(extra_body or {})
        if enable_thinking is not None:
            self.extra_body.setdefault("chat_template_kwargs", {})["enable_thinking"] = (
                enable_thinking
            )

    @property
    def model(self) -> str:
        if self._model is None:
            self._model = self._call(lambda: self.client.models.list().data[0].id)
        return self._model

    def close(self) -> None:
        self.client.close()

    def act(
        self,
        conversation: Conversation | list[dict[str, Any]],
        tools: list[dict[str, Any]] | None = None,
    ) -> AssistantTurn:
        """Send the whole history; a context overflow becomes `finish_reason="length"`.

        Raises:
            PolicyUnavailableError: the endpoint could not be reached after retries.
            PolicyRequestError: the endpoint rejected the request (not context length).
        """
        conv, owned = as_conversation(conversation, tools)
        tools = tools if tools is not None else conv.tools
        conv.configure_prompt(self.system_prompt, self.few_shot)
        messages = [_to_openai(m) for m in normalize_messages(conv.messages)]
        body: dict[str, Any] = {
            "model": self.model,
            "messages": messages,
            "temperature": self.sampling.temperature,
            "top_p": self.sampling.top_p,
            "max_tokens": self.sampling.max_tokens_per_call,
        }
        if tools:
            body["tools"] = [_openai_tool(t) for t in tools]
        extra = {**self.extra_body, **self.sampling.extra}
        if self.sampling.seed is not None:
            body["seed"] = self.sampling.seed
        try:
            resp = self._call(lambda: self.client.chat.completions.create(**body, extra_body=extra))
        except PolicyRequestError as e:
            if any(m in str(e).lower() for m in _CONTEXT_MARKERS):
                return AssistantTurn(content="", finish_reason="length", errors=[str(e)])
            raise
        choice = resp.choices[0]
        msg = choice.message
        extra_fields = msg.model_extra or {}
        reasoning = extra_fields.get("reasoning_content") or extra_fields.get("reasoning")
        content = msg.content or ""
        calls, errors = [], []
        for tc in msg.tool_calls or []:
            try:
                calls.append(ToolCall.from_any({"id": tc.id, "function": tc.function.model_dump()}))
            except ValueError as e:
                errors.append(f"tool call {tc.id}: {e}")
        if not calls and (
            "<tool_call>" in content or "<think>" in content or "</think>" in content
        ):
            parsed = parse_completion(content, tools)
            content, calls, errors = parsed.content, parsed.tool_calls, errors + parsed.errors
            reasoning = reasoning or parsed.reasoning
        elif tools and calls:
            errors += _validate(calls, tools)
        # Servers' reasoning parsers keep the newlines around the think block; the
        # template writes them itself, so stripped values re-render what the model saw.
        content = content.strip()
        reasoning = reasoning.strip() if reasoning is not None else None
        finish = (
            "length" if choice.finish_reason == "length" else ("tool_calls" if calls else "stop")
        )
        turn = AssistantTurn(
            content=content,
            reasoning=reasoning,
            tool_calls=calls,
            finish_reason=finish,
            errors=errors,
            text=content,
        )
        if owned:
            conv.record_call(turn, ends_turn=True)
        return turn

    def _call(self, fn: Any) -> Any:
        try:
            return fn()
        except (
            openai.APIConnectionError,
            openai.APITimeoutError,
            openai.InternalServerError,
            openai.RateLimitError,
        ) as e:
            raise PolicyUnavailableError(f"chat endpoint unreachable: {e}") from e
        except openai.APIStatusError as e:
            raise PolicyRequestError(f"chat endpoint rejected the request: {e}") from e


def _validate(calls: list[ToolCall], tools: list[dict[str, Any]]) -> list[str]:
    names = tool_schemas(tools)
    return [f"unknown function {c.name!r}" for c in calls if c.name not in names]


def _openai_tool(tool: dict[str, Any]) -> dict[str, Any]:
    return tool if "function" in tool else {"type": "function", "function": tool}


def _to_openai(m: dict[str, Any]) -> dict[str, Any]:
    """OpenAI wire shape: tool-call arguments as JSON strings, reasoning under both names."""
    m = dict(m)
    m.pop("parse_errors", None)
    m.pop("generation", None)
    if m.get("reasoning_content") is not None:
        m["reasoning"] = m[
            "reasoning_content"
        ]  # vLLM reads `reasoning`, others `reasoning_content`
    if m.get("tool_calls"):
        out = []
        for tc in m["tool_calls"]:
            call = ToolCall.from_any(tc)
            out.append(call.to_openai())
        m["tool_calls"] = out
    return m
