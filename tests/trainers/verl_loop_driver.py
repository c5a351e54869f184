"""Runs inside .venv-trainers: envfarm's verl agent loop on verl's real AgentLoopBase,
Continuous Token builder and tokenizer, against a real vLLM server and a real envfarm
server. Prints one JSON line with what the test checks.

verl's own `LLMServerClient` needs its Ray load balancer and GPU replicas; in its place
`VLLMTokenServer` makes the same `generate(request_id, prompt_ids, sampling_params)` call
against vLLM's `/v1/completions` (token ids in, token ids and logprobs out), the call
verl's vLLM replica makes on a GPU node.
"""

from __future__ import annotations

import asyncio
import json
import sys

import httpx
from omegaconf import OmegaConf
from transformers import AutoTokenizer
from verl.experimental.agent_loop.agent_loop import DictConfigWrap, _agent_loop_registry
from verl.utils.dataset.rl_dataset import RLHFDataset
from verl.workers.rollout.replica import TokenOutput

from orchestrator.adapters.verl_loop import EnvfarmAgentLoop


class VLLMTokenServer:
    """verl's `generate` contract over a vLLM server's completions endpoint."""

    def __init__(self, url: str, model: str) -> None:
        self.url, self.model = url.rstrip("/"), model
        self.calls: list[dict] = []

    async def generate(self, request_id: str, *, prompt_ids: list[int],
                       sampling_params: dict, **_: object) -> TokenOutput:
        body = {"model": self.model, "prompt": prompt_ids, "logprobs": 0,
                "return_tokens_as_token_ids": True, "return_token_ids": True,
                "max_tokens": sampling_params.get("max_tokens", 200),
                "temperature": sampling_params.get("temperature", 0.0)}
        async with httpx.AsyncClient(timeout=300) as http:
            r = await http.post(self.url + "/v1/completions", json=body)
        r.raise_for_status()
        choice = r.json()["choices"][0]
        ids = [int(t.split(":", 1)[1]) for t in choice["logprobs"]["tokens"]]
        logprobs = [float(x) for x in choice["logprobs"]["token_logprobs"]]
        self.calls.append({"prompt_ids": list(prompt_ids), "ids": ids, "logprobs": logprobs})
        return TokenOutput(token_ids=ids, log_probs=logprobs, stop_reason="completed")


def main(vllm_url: str, model: str, model_dir: str, serve_url: str, token: str,
         env_kwargs: str) -> None:
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    config = OmegaConf.create({
        "actor_rollout_ref": {"rollout": {
            "prompt_length": 1536, "response_length": 1024, "full_determinism": False,
            "multi_turn": {"max_assistant_turns": 4}}},
        "data": {"apply_chat_template_kwargs": {}},
        "envfarm": {"server_url": serve_url, "token": token,
                    "env_kwargs": json.loads(env_kwargs)},
    })
    server = VLLMTokenServer(vllm_url, model)
    loop_cls_target = _agent_loop_registry["envfarm"]["_target_"]

    async def episode():  # verl builds its agent loops inside the worker's event loop
        agent = EnvfarmAgentLoop(trainer_config=DictConfigWrap(config), server_manager=server,
                                 tokenizer=tokenizer, processor=None, dataset_cls=RLHFDataset,
                                 data_config=DictConfigWrap(config.data), hf_model_type="qwen2")
        return await agent.run({"temperature": 0.0, "max_tokens": 200},
                               extra_info={"env": "echo", "task_id": "echo-verl"}, raw_prompt=[])

    out = asyncio.run(episode())
    tensors = out.as_dict()
    print(json.dumps({
        "registered": loop_cls_target, "prompt_ids": out.prompt_ids,
        "response_ids": out.response_ids, "response_mask": out.response_mask,
        "response_logprobs": out.response_logprobs, "reward": out.reward_score,
        "extra": out.extra_fields, "num_turns": out.num_turns, "calls": server.calls,
        "tensor_shapes": {k: list(v.shape) for k, v in tensors.items() if hasattr(v, "shape")},
    }))


if __name__ == "__main__":
    main(*sys.argv[1:])
