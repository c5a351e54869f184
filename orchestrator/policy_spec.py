"""Which policy a rollout uses, as typed data that travels to workers and into the run's
stored config. `build` turns it into a fresh policy object per episode."""

from __future__ import annotations

import atexit
import contextlib
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from sandbox.errors import TaskError


class PolicySpec(BaseModel):
    """A policy by kind and settings."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["oracle", "noop", "vllm", "chat", "scripted"] = Field(
        "oracle", description="oracle replays the reference solution; noop finishes at once; "
        "scripted calls `script`.")
    script: str | None = Field(
        None, description="scripted: 'module:function' called as function(env, task_id, "
        "spec) -> a policy (e.g. orchestrator.sim_agent:scripted_policy, a model's pace).")
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

    def needs_local_server(self) -> bool:
        return self.type in ("vllm", "chat") and bool(self.local_model) and not self.urls

    @contextlib.contextmanager
    def served(self, log_dir: str | Path | None = None) -> Iterator[PolicySpec]:
        """This spec with a local vLLM server for `local_model` running (when it needs one).

        Yields a copy whose `urls` (and `tokenizer`, when unset) point at the server; the
        server is stopped when the block ends and its log is kept (path printed in
        `PolicySpec.server_log`). Start it in the driver, before the run: with Ray every
        worker would otherwise start a server of its own. Specs that need no server are
        yielded unchanged.
        """
        if not self.needs_local_server():
            yield self
            return
        server, spec = start_local_server(self, log_dir)
        try:
            yield spec
        finally:
            server.stop()

    def build(self, env: Any, task_id: str) -> Any:
        """A fresh policy for one episode of `task_id` in `env` (the unwrapped env)."""
        from policies import NoopPolicy, OraclePolicy

        if self.type == "noop":
            return NoopPolicy()
        if self.type == "scripted":
            return _scripted(self, env, task_id)
        if self.type == "oracle":
            oracle = getattr(env, "oracle_actions", None)
            if oracle is None:
                raise TaskError(f"{type(env).__name__} has no reference solutions (oracle_actions)")
            return OraclePolicy(oracle(task_id))
        return _model_policy(self)


def _scripted(spec: PolicySpec, env: Any, task_id: str) -> Any:
    import importlib

    module, sep, name = (spec.script or "").partition(":")
    if not sep or not module or not name:
        raise ValueError(f"a scripted policy needs script='module:function', not {spec.script!r}")
    return getattr(importlib.import_module(module), name)(env, task_id, spec)


_shared: dict[str, Any] = {}
_shared_lock = threading.Lock()
_servers: dict[str, Any] = {}
"""Servers started lazily by `build` (no `served()` block around the run): one per
local model per process, stopped when the process exits."""


def start_local_server(spec: PolicySpec, log_dir: str | Path | None = None) -> tuple[Any, PolicySpec]:
    """Start vLLM for `spec.local_model`; return (server, spec with urls and tokenizer set).

    Raises:
        ModelNotInstalledError: the model is unknown or the setup has not installed it.
        ServerStartError: vLLM exited or did not answer (the message holds its log tail).
    """
    from policies.local_server import PLAIN_CPU_ARGS, LocalVLLMServer
    from policies.models import model_dir, model_info, models_dir

    name = spec.local_model or ""
    folder, info = model_dir(name), model_info(name)
    logs = Path(log_dir) if log_dir else models_dir().parent / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    log = logs / f"vllm-{name}-{time.strftime('%Y%m%d-%H%M%S')}.log"
    server = LocalVLLMServer(folder, served_name=name, max_model_len=info.max_model_len,
                             extra_args=[*PLAIN_CPU_ARGS, "--logprobs-mode", spec.logprobs_mode],
                             log_path=log).start()
    served = spec.model_copy(update={"urls": [server.url], "model": name,
                                     "tokenizer": spec.tokenizer or str(folder)})
    return server, served


def _model_policy(spec: PolicySpec) -> Any:
    """Model policies are thread-safe and hold a tokenizer and HTTP pools: one per process."""
    key = spec.model_dump_json()
    with _shared_lock:
        if key not in _shared:
            _shared[key] = _new_model_policy(spec)
        return _shared[key]


def _new_model_policy(spec: PolicySpec) -> Any:
    from policies import ChatPolicy, SamplingConfig, VLLMPolicy

    if spec.needs_local_server():
        spec = _lazy_server(spec)  # under _model_policy's lock: one server per process
    if not spec.urls:
        raise ValueError(f"policy {spec.type!r} needs at least one server URL (--vllm-url)")
    sampling = SamplingConfig(temperature=spec.temperature, top_p=spec.top_p,
                              max_tokens_per_call=spec.max_tokens)
    if spec.type == "chat":
        return ChatPolicy(spec.urls[0].rstrip("/") + "/v1", spec.model, sampling=sampling,
                          enable_thinking=spec.enable_thinking, timeout_s=spec.timeout_s,
                          system_prompt=spec.system_prompt, few_shot=spec.few_shot)
    if not spec.tokenizer:
        raise ValueError("the vllm policy works token-in/token-out: give --tokenizer, the model "
                         "folder with tokenizer.json and the chat template")
    return VLLMPolicy.from_dir(
        spec.tokenizer, spec.urls, sampling=sampling, enable_thinking=spec.enable_thinking,
        timeout_s=spec.timeout_s, model=spec.model,
        policy_kwargs={"guided": spec.guided, "logprobs_mode": spec.logprobs_mode,
                       "system_prompt": spec.system_prompt, "few_shot": spec.few_shot})


def _lazy_server(spec: PolicySpec) -> PolicySpec:
    """A server for a spec built without `served()` (in-process runs): started once per
    process and model, stopped at exit."""
    key = f"{spec.local_model}:{spec.logprobs_mode}"
    if key not in _servers:
        server, _ = start_local_server(spec)
        _servers[key] = server
        atexit.register(server.stop)
    server = _servers[key]
    return spec.model_copy(update={"urls": [server.url], "model": spec.local_model,
                                   "tokenizer": spec.tokenizer or str(server.model_dir)})
