"""Which policy a rollout uses, as typed data that travels to workers and into the run's
stored config. `build` turns it into a fresh policy object per episode."""

from __future__ import annotations

import threading
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from sandbox.errors import TaskError


class PolicySpec(BaseModel):
    """A policy by kind and settings."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["oracle", "noop", "vllm", "chat"] = Field(
        "oracle", description="oracle replays the reference solution; noop finishes at once.")
    urls: list[str] = Field(default_factory=list, description="Model server base URLs.")
    model: str | None = Field(None, description="Served model name (default: the server's).")
    tokenizer: str | None = Field(None, description="Tokenizer/template dir for token-in/out.")
    temperature: float = Field(0.3, ge=0, description="Sampling temperature (MiMo: 0.3).")
    top_p: float = Field(0.95, gt=0, le=1, description="Nucleus sampling.")
    max_tokens: int = Field(2048, ge=1, description="Completion tokens per call.")
    enable_thinking: bool = Field(True, description="MiMo thinking mode.")
    tool_schemas: list[dict[str, Any]] | None = Field(
        None, description="Tool schemas shown to the model instead of the env's (e.g. the "
        "descriptions it was trained with); the env still validates every call.")
    local_model: str | None = Field(
        None, description="Installed model name (e.g. smollm2): with no urls, a local vLLM "
        "server is started for it and stopped at the end of the run (log kept).")
    guided: bool = Field(
        False, description="Constrain each turn to well-formed tool calls (vLLM "
        "structured_outputs built from the env's tool schemas).")
    timeout_s: float = Field(120.0, gt=0, description="Model server read timeout per call.")
    logprobs_mode: Literal["raw_logprobs", "processed_logprobs"] = Field(
        "raw_logprobs", description="Which logprobs the server returns (vLLM --logprobs-mode): "
        "the model's own distribution, or the one after temperature/top-p/guidance.")
    system_prompt: str | None = Field(
        None, description="Replaces the env's system prompt (stored with the run).")
    few_shot: list[dict[str, Any]] = Field(
        default_factory=list, description="Example messages inserted after the system "
        "prompt, before the task (stored with the run).")

    def build(self, env: Any, task_id: str) -> Any:
        """A fresh policy for one episode of `task_id` in `env` (the unwrapped env)."""
        from policies import NoopPolicy, OraclePolicy

        if self.type == "noop":
            return NoopPolicy()
        if self.type == "oracle":
            oracle = getattr(env, "oracle_actions", None)
            if oracle is None:
                raise TaskError(f"{type(env).__name__} has no reference solutions (oracle_actions)")
            return OraclePolicy(oracle(task_id))
        return _model_policy(self)


_shared: dict[str, Any] = {}
_shared_lock = threading.Lock()


def _model_policy(spec: PolicySpec) -> Any:
    """Model policies are thread-safe and hold a tokenizer and HTTP pools: one per process."""
    key = spec.model_dump_json()
    with _shared_lock:
        if key not in _shared:
            _shared[key] = _new_model_policy(spec)
        return _shared[key]


def _new_model_policy(spec: PolicySpec) -> Any:
    from policies import ChatPolicy, SamplingConfig, VLLMPolicy

    if not spec.urls:
        raise ValueError(f"policy {spec.type!r} needs at least one server URL (--vllm-url)")
    sampling = SamplingConfig(temperature=spec.temperature, top_p=spec.top_p,
                              max_tokens_per_call=spec.max_tokens)
    if spec.type == "chat":
        return ChatPolicy(spec.urls[0].rstrip("/") + "/v1", spec.model, sampling=sampling,
                          enable_thinking=spec.enable_thinking)
    if not spec.tokenizer:
        raise ValueError("the vllm policy works token-in/token-out: give --tokenizer, the model "
                         "folder with tokenizer.json and the chat template")
    return VLLMPolicy.from_dir(spec.tokenizer, spec.urls, sampling=sampling,
                               enable_thinking=spec.enable_thinking)
