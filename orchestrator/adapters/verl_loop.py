"""A verl agent loop (`agent_name: envfarm`) that runs one envfarm env per sample.

Import this module inside verl's environment (it registers the loop with verl's
registry); the envs run behind `envfarm serve`, so verl's workers need only httpx:

    # verl config:  actor_rollout_ref.rollout.agent.agent_loop_config_path -> a YAML with
    #   - name: envfarm
    #     _target_: orchestrator.adapters.verl_loop.EnvfarmAgentLoop
    # and a top-level `envfarm: {server_url: http://envhost:8765, token: ...}`
    # (or ENVFARM_SERVE_URL / ENVFARM_SERVE_TOKEN). Dataset rows: `agent_name: envfarm`,
    # `extra_info: {env: swe, task_id: ..., seed: ...}`.

Per sample: open a session, render its messages and tool schemas with verl's own
Continuous Token builder, then alternate verl's server (`server_manager.generate`: token
ids in, token ids and logprobs out) and `step` on envfarm with the decoded text, which
envfarm parses into tool calls (malformed ones become error observations). Model tokens
get mask 1, observation tokens mask 0; the reward is envfarm's verifier's, set as
`reward_score`, and `extra_fields["envfarm_status"]` lets the trainer drop
`infra_error` / `task_error` samples. The session is deleted whatever happens.

What runs on a CPU-only machine: this class with verl's real `AgentLoopBase`, its
Continuous Token builder and tokenizer, against a real vLLM server speaking verl's
`generate` contract (tests/trainers). What needs GPUs: verl's `AgentLoopManager`, which
starts vLLM/SGLang replicas as Ray actors with GPU resources, and its FSDP/Megatron
trainer workers.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from typing import Any

from verl.experimental.agent_loop.agent_loop import (
    AgentLoopBase,
    AgentLoopMetrics,
    AgentLoopOutput,
    register,
)

from orchestrator.serve.client import EnvClient

NOT_TRAINABLE = ("infra_error", "task_error")


@register("envfarm")
class EnvfarmAgentLoop(AgentLoopBase):
    """One envfarm episode per sample, tokens from verl's inference server."""

    def __init__(self, *args: Any, tools: Any = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        settings = dict(self.config.get("envfarm", None) or {})
        self.server_url = settings.get("server_url") or os.environ.get("ENVFARM_SERVE_URL")
        self.token = settings.get("token") or os.environ.get("ENVFARM_SERVE_TOKEN")
        if not self.server_url:
            raise ValueError("the envfarm agent loop needs `envfarm.server_url` in the verl "
                             "config or ENVFARM_SERVE_URL (start one with `envfarm serve`)")
        self.env_kwargs = dict(settings.get("env_kwargs") or {})
        self.response_length = int(self.rollout_config.response_length)
        multi_turn = self.rollout_config.get("multi_turn", None) or {}
        self.max_assistant_turns = int(multi_turn.get("max_assistant_turns", 0) or 0) or 50

    async def run(self, sampling_params: dict[str, Any], **kwargs: Any) -> AgentLoopOutput:
        extra = dict(kwargs.get("extra_info") or {})
        env = extra.get("env") or kwargs.get("env")
        if not env:
            raise ValueError("a dataset row for the envfarm loop needs extra_info.env")
        loop = asyncio.get_running_loop()
        client = EnvClient(self.server_url, token=self.token)
        opened = await loop.run_in_executor(None, lambda: client.create(
            env, task_id=extra.get("task_id"), seed=extra.get("seed"),
            env_kwargs={**self.env_kwargs, **dict(extra.get("env_kwargs") or {})}))
        session_id = opened["session_id"]
        try:
            return await self._episode(loop, client, session_id, opened, sampling_params)
        finally:
            await loop.run_in_executor(None, lambda: _delete_quietly(client, session_id))
            client.close()

    async def _episode(self, loop: Any, client: EnvClient, session_id: str,
                       opened: dict[str, Any], sampling_params: dict[str, Any]) -> AgentLoopOutput:
        messages: list[dict[str, Any]] = list(opened["observations"])
        tools = opened["info"].get("tools") or None
        runtime = await self.ct_build_initial_tokens(messages, tools=tools)
        n_prompt = len(runtime)
        mask: list[int] = []
        logprobs: list[float] = []
        reward, status, turns = 0.0, "running", 0
        metrics: dict[str, Any] = {"generate_sequences": 0.0, "tool_calls": 0.0}
        request_id = uuid.uuid4().hex
        while True:
            t = loop.time()
            out = await self.server_manager.generate(request_id=request_id, prompt_ids=runtime,
                                                     sampling_params=sampling_params)
            metrics["generate_sequences"] += loop.time() - t
            merged, mask, new_logprobs = await self.ct_merge_assistant_token(
                runtime, out.token_ids, mask, logprobs if (logprobs or out.log_probs) else None,
                assistant_logprobs=out.log_probs or None)
            runtime, logprobs = merged.token_ids, list(new_logprobs or [])
            turns += 1
            text = self.tokenizer.decode(out.token_ids, skip_special_tokens=True)
            t = loop.time()
            step = await loop.run_in_executor(None, lambda: client.step(session_id, text))
            metrics["tool_calls"] += loop.time() - t
            status = step["info"].get("status", status)
            if step["terminated"] or step["truncated"]:
                reward = float(step["reward"])
                break
            if len(mask) >= self.response_length or turns >= self.max_assistant_turns:
                status = "response_length" if len(mask) >= self.response_length else "max_turns"
                break  # verl's limit, not the env's: the episode is unfinished, reward 0
            previous = [*messages, {"role": "assistant", "content": text}]
            messages = [*previous, *step["observations"]]
            merged, mask, new_logprobs = await self.ct_merge_context_msg(
                previous, messages, runtime, mask, logprobs or None, tools=tools)
            runtime, logprobs = merged.token_ids, list(new_logprobs or [])
        n_response = len(mask)
        limit = self.response_length
        return AgentLoopOutput(
            prompt_ids=runtime[: len(runtime) - n_response],
            response_ids=runtime[len(runtime) - n_response:][:limit],
            response_mask=mask[:limit],
            response_logprobs=logprobs[:limit] if logprobs else None,
            reward_score=reward,
            num_turns=2 * turns + 1,
            metrics=AgentLoopMetrics(generate_sequences=metrics["generate_sequences"],
                                     tool_calls=metrics["tool_calls"]),
            extra_fields={"envfarm_status": status, "envfarm_task_id": opened["info"].get(
                "task_id"), "envfarm_trainable": status not in NOT_TRAINABLE,
                "envfarm_prompt_tokens": n_prompt},
        )


def _delete_quietly(client: EnvClient, session_id: str) -> None:
    try:
        client.delete(session_id)
    except Exception:  # noqa: BLE001 — the server's idle timeout closes it anyway
        pass
