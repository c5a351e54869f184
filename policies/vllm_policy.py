"""`VLLMPolicy`: token-in/token-out acting through vLLM's `/v1/completions`.

Per call: extend the episode's running token sequence with the observation
delta (`ChatFormat.next_prompt`), send it as token ids, keep the returned ids
and logprobs unchanged, stop on the template's end-of-turn token, and parse the
text. RL trainers get exactly the tokens the server produced; nothing is ever
re-tokenized (re-tokenizing drifts and silently corrupts training).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from policies.base import as_conversation
from policies.chat_format import ChatFormat
from policies.conversation import Conversation
from policies.guided import structured_outputs
from policies.types import AssistantTurn
from policies.vllm_client import ClientConfig, Completion, VLLMClient


class SamplingConfig(BaseModel):
    """Sampling parameters of one call (MiMo's advice for agentic work: 0.3 / 0.95)."""

    model_config = ConfigDict(extra="forbid")

    temperature: float = 0.3
    top_p: float = 0.95
    top_k: int | None = None
    max_tokens_per_call: int = 8192
    """Upper bound on completion tokens per call; lowered to what fits the context."""
    seed: int | None = None
    extra: dict[str, Any] = {}
    """Other vLLM sampling fields, passed through (e.g. `repetition_penalty`)."""

    def body(self) -> dict[str, Any]:
        out: dict[str, Any] = {"temperature": self.temperature, "top_p": self.top_p}
        if self.top_k is not None:
            out["top_k"] = self.top_k
        if self.seed is not None:
            out["seed"] = self.seed
        return {**out, **self.extra}


class VLLMPolicy:
    """A model served by vLLM, acting token-in/token-out; thread-safe (one thread per episode).

    Args:
        chat_format: the model's tokenizer and template.
        client: a `VLLMClient`, a `ClientConfig`, or base URL(s).
        sampling: default sampling; `act(..., sampling=...)` overrides per call.
        guided: constrain every turn to one well-formed tool call (`policies.guided`).
        free_text: with `guided`, a short line of prose may precede the call.
        logprobs_mode: what the server's logprobs are (its `--logprobs-mode`). The
            default `raw_logprobs` is the model's own distribution before temperature
            and top-p: for unguided turns the quantity a trainer recomputes from the
            weights (tests/realmodel: mean mismatch below 1e-3). vLLM applies the guidance mask
            to the logits first, so for guided turns they are renormalised over the
            tokens the grammar allows (a forced token has logprob 0): take PPO ratios
            against logprobs the trainer recomputes. Recorded with every call.
        system_prompt, few_shot: prompt configuration applied before the first call
            (`Conversation.configure_prompt`).

    Pass a `Conversation` to `act` to keep token continuity across turns; its
    `calls`, `token_ids`, `loss_mask` and `token_logprobs` are the training record.
    """

    def __init__(
        self,
        chat_format: ChatFormat,
        client: VLLMClient | ClientConfig | str | list[str],
        sampling: SamplingConfig | None = None,
        *,
        guided: bool = False,
        free_text: bool = False,
        logprobs_mode: str = "raw_logprobs",
        system_prompt: str | None = None,
        few_shot: list[dict[str, Any]] | None = None,
    ) -> None:
        self.format = chat_format
        if isinstance(client, str):
            client = [client]
        if isinstance(client, list):
            client = ClientConfig(base_urls=client)
        self.client = client if isinstance(client, VLLMClient) else VLLMClient(client)
        self.sampling = sampling or SamplingConfig()
        self.guided = guided
        self.free_text = free_text
        self.logprobs_mode = logprobs_mode
        self.system_prompt = system_prompt
        self.few_shot = list(few_shot or [])
        self.server = None
        """A `LocalVLLMServer` this policy owns (started for `local_model`), stopped by close()."""

    @classmethod
    def from_dir(
        cls,
        model_dir: str | Path,
        base_urls: str | list[str],
        *,
        sampling: SamplingConfig | None = None,
        enable_thinking: bool = True,
        policy_kwargs: dict[str, Any] | None = None,
        **client_kwargs: Any,
    ) -> VLLMPolicy:
        """Tokenizer and template from a Hugging Face model folder, servers from URLs."""
        urls = [base_urls] if isinstance(base_urls, str) else list(base_urls)
        fmt = ChatFormat.from_dir(model_dir, enable_thinking=enable_thinking)
        return cls(
            fmt, ClientConfig(base_urls=urls, **client_kwargs), sampling, **(policy_kwargs or {})
        )

    def close(self) -> None:
        self.client.close()
        if self.server is not None:
            self.server.stop()
            self.server = None

    def act(
        self,
        conversation: Conversation | list[dict[str, Any]],
        tools: list[dict[str, Any]] | None = None,
        *,
        sampling: SamplingConfig | None = None,
    ) -> AssistantTurn:
        """Sample the next assistant turn and record it in the conversation.

        Returns `finish_reason="length"` (and no tool calls) when the context is
        full or the completion was cut; the env ends the episode as
        `context_exceeded`. Malformed tool calls come back in `turn.errors`.

        Raises:
            PolicyUnavailableError: no server answered (retry the episode later).
            PolicyRequestError: the request was rejected (a config problem).
        """
        t0 = time.perf_counter()
        conv, _ = as_conversation(conversation, tools)
        tools = tools if tools is not None else conv.tools
        if not conv.token_ids:
            conv.configure_prompt(self.system_prompt, self.few_shot)
        prompt = self.format.next_prompt(conv)
        params = sampling or self.sampling
        body = params.body()
        guided = bool(self.guided and tools)
        if guided:
            body["structured_outputs"] = structured_outputs(tools or [], free_text=self.free_text)
        meta = {"guided": guided, "logprobs_mode": self.logprobs_mode, "call": len(conv.calls)}
        if conv.prefix_reason:
            meta["prefix_reason"] = conv.prefix_reason
        t1 = time.perf_counter()
        done: Completion = self.client.complete(
            prompt,
            max_tokens=params.max_tokens_per_call,
            stop_token_ids=[self.format.eot_id],
            sampling=body,
            episode=conv.id,
        )
        t2 = time.perf_counter()
        if not done.token_ids:
            turn = AssistantTurn(
                content="",
                prompt_ids=prompt,
                finish_reason="length",
                errors=[done.error or "no tokens generated"],
                meta=meta,
                timings={"http_s": t2 - t1, "client_s": (t1 - t0) + (time.perf_counter() - t2)},
            )
            return turn
        text, ends_turn = self.format.split_completion(done.token_ids)
        parsed = self.format.parse(text, tools)
        if done.finish_reason == "length" and not ends_turn:
            finish = "length"
        else:
            finish = "tool_calls" if parsed.tool_calls else "stop"
        turn = AssistantTurn(
            content=parsed.content,
            reasoning=parsed.reasoning,
            tool_calls=parsed.tool_calls,
            prompt_ids=prompt,
            completion_ids=done.token_ids,
            logprobs=done.logprobs,
            finish_reason=finish,
            errors=parsed.errors,
            text=text,
            meta=meta,
        )
        turn.timings = {"http_s": t2 - t1, "client_s": (t1 - t0) + (time.perf_counter() - t2)}
        conv.record_call(turn, ends_turn=ends_turn)
        return turn
