"""One episode's messages plus the exact token sequence a token-level policy built for it.

The orchestrator reads the training data back from here: per model call the
prompt ids, completion ids and logprobs (`calls`), and per episode the merged
sequence `token_ids` with `loss_mask` (1 = a token the model sampled, 0 = a
prompt, template or environment token) and `token_logprobs` aligned to it.
Because every prompt is built as previous prompt + completion + observation
delta, each call's prompt is a prefix of the merged sequence by construction;
`prefix_consistent` stays True unless the history was rewritten.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from policies.types import AssistantTurn


@dataclass
class CallRecord:
    """The tokens of one model call, exactly as the server saw and returned them."""

    prompt_ids: list[int]
    completion_ids: list[int]
    logprobs: list[float]
    finish_reason: str
    timings: dict[str, float] = field(default_factory=dict)
    guided: bool = False
    """The completion was constrained by structured outputs (see policies.guided)."""
    logprobs_mode: str = "raw_logprobs"
    """What `logprobs` are: vLLM's `--logprobs-mode` of the server that sampled them."""


@dataclass
class Conversation:
    """Messages of one episode and, once a token-level policy acted, its token state.

    Contract: `Policy.act` appends the assistant message it produced; the caller
    appends everything else (tool results, user turns) with `extend`. Messages
    must only be appended: rewriting earlier ones breaks the token record, so
    call `reset_tokens()` after such a rewrite (the next call re-renders from
    scratch and `prefix_consistent` becomes False).
    """

    messages: list[dict[str, Any]] = field(default_factory=list)
    tools: list[dict[str, Any]] | None = None
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    """Episode id; the vLLM client keeps an episode on one server for its prefix cache."""
    calls: list[CallRecord] = field(default_factory=list)
    token_ids: list[int] = field(default_factory=list)
    loss_mask: list[int] = field(default_factory=list)
    token_logprobs: list[float | None] = field(default_factory=list)
    tokenized_upto: int = 0
    """Messages `[:tokenized_upto]` are already part of `token_ids`."""
    prefix_consistent: bool = True
    prefix_reason: str | None = None
    """Why `prefix_consistent` became False (the training rows are then per call)."""
    prompt_configured: bool = False
    """The policy's system prompt and few-shot examples were applied (first call)."""
    needs_eot: bool = False
    """The last completion ended without the end-of-turn token (length cut)."""

    def extend(self, messages: list[dict[str, Any]]) -> None:
        """Append observation messages (tool results, user turns) from the env."""
        self.messages.extend(messages)

    def append(self, message: dict[str, Any]) -> None:
        self.messages.append(message)

    def pending(self) -> list[dict[str, Any]]:
        """Messages not yet in the token sequence (what the next delta must render)."""
        return self.messages[self.tokenized_upto :]

    def add_prompt_tokens(self, ids: list[int]) -> None:
        """Append non-model tokens (prompt, template, observation delta): mask 0."""
        self.token_ids.extend(ids)
        self.loss_mask.extend([0] * len(ids))
        self.token_logprobs.extend([None] * len(ids))

    def record_call(self, turn: AssistantTurn, *, ends_turn: bool) -> None:
        """Append the model's tokens (mask 1) and its assistant message.

        `ends_turn` is False when the completion stopped without the end-of-turn
        token; the next delta then starts with that token (mask 0).
        """
        if turn.completion_ids:
            self.calls.append(
                CallRecord(
                    prompt_ids=list(turn.prompt_ids),
                    completion_ids=list(turn.completion_ids),
                    logprobs=list(turn.logprobs),
                    finish_reason=turn.finish_reason,
                    timings=dict(turn.timings),
                    guided=bool(turn.meta.get("guided", False)),
                    logprobs_mode=str(turn.meta.get("logprobs_mode", "raw_logprobs")),
                )
            )
            self.token_ids.extend(turn.completion_ids)
            self.loss_mask.extend([1] * len(turn.completion_ids))
            self.token_logprobs.extend(turn.logprobs)
            self.needs_eot = not ends_turn
        self.messages.append(turn.to_message())
        if turn.completion_ids:
            self.tokenized_upto = len(self.messages)

    def reset_tokens(self, reason: str = "history rewritten") -> None:
        """Forget the running sequence (after a history rewrite); calls stay recorded."""
        self.token_ids, self.loss_mask, self.token_logprobs = [], [], []
        self.tokenized_upto = 0
        self.needs_eot = False
        self.prefix_consistent = False
        self.prefix_reason = self.prefix_reason or reason

    def configure_prompt(
        self, system_prompt: str | None = None, few_shot: list[dict[str, Any]] | None = None
    ) -> None:
        """Apply a policy's prompt configuration once, before the first model call.

        `system_prompt` replaces the env's system message (or comes first when there is
        none); `few_shot` messages go right after it, before the task. Both become part
        of the stored transcript, so what the model saw is what the record shows.
        """
        if self.prompt_configured:
            return
        self.prompt_configured = True
        if system_prompt is None and not few_shot:
            return
        has_system = bool(self.messages) and self.messages[0].get("role") == "system"
        if system_prompt is not None:
            if has_system:
                self.messages[0] = {**self.messages[0], "content": system_prompt}
            else:
                self.messages.insert(0, {"role": "system", "content": system_prompt})
                has_system = True
        at = 1 if has_system else 0
        self.messages[at:at] = [dict(m) for m in few_shot or []]

    @property
    def completion_token_count(self) -> int:
        return sum(self.loss_mask)

    def token_record(self) -> dict[str, Any]:
        """The episode's tokens in the shape trainers take (verl-style), plain lists.

        `prompt_ids` is the first call's prompt; `response_ids` everything after
        it (completions, end-of-turn fixes, observation deltas) with
        `response_mask` (1 = model token) and `response_logprobs` (0.0 where the
        mask is 0). Empty when no token-level call was made.
        """
        if not self.calls:
            return {"prompt_ids": [], "response_ids": [], "response_mask": [],
                    "response_logprobs": [], "prefix_consistent": self.prefix_consistent}  # fmt: skip
        n = len(self.calls[0].prompt_ids)
        return {
            "prompt_ids": self.token_ids[:n],
            "response_ids": self.token_ids[n:],
            "response_mask": self.loss_mask[n:],
            "response_logprobs": [lp or 0.0 for lp in self.token_logprobs[n:]],
            "prefix_consistent": self.prefix_consistent,
        }
