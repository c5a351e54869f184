"""envfarm's verl agent loop, run by the real verl package (in .venv-trainers) against the
real vLLM server (tiny model) and a real `envfarm serve`: the tokens verl would train on
are exactly the server's, masks separate model from environment tokens, and the reward
is envfarm's verifier's."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.serve.conftest import start_server
from tests.trainers.venvs import TRAINERS_PY, run_in

pytestmark = [pytest.mark.trainers, pytest.mark.vllm, pytest.mark.docker]
DRIVER = Path(__file__).with_name("verl_loop_driver.py")


def test_the_verl_agent_loop_runs_an_envfarm_episode(vllm_server, base_image):
    trained = json.loads((vllm_server.model_dir / "tools.json").read_text())
    env_kwargs = {"system_prompt": trained["system"], "max_turns": 3,
                  "prompt": "Inspect the repository and run the tests."}
    for server in start_server(idle_timeout_s=120):
        out = run_in(TRAINERS_PY, DRIVER.read_text(), vllm_server.url, vllm_server.model,
                     str(vllm_server.model_dir), server.url, server.token,
                     json.dumps(env_kwargs))
        sessions_left = len(server.app.state.sessions)
    result = json.loads(out.strip().splitlines()[-1])
    assert result["registered"] == "orchestrator.adapters.verl_loop.EnvfarmAgentLoop"
    response, mask = result["response_ids"], result["response_mask"]
    assert len(response) == len(mask) == len(result["response_logprobs"])
    calls = result["calls"]
    assert calls and len(calls) <= 3
    # every model token is in the response with mask 1, in order, with the server's logprob
    sampled = [(t, lp) for c in calls for t, lp in zip(c["ids"], c["logprobs"])]
    kept = [(t, lp) for t, m, lp in zip(response, mask, result["response_logprobs"]) if m]
    assert [t for t, _ in kept] == [t for t, _ in sampled]
    assert [round(lp, 5) for _, lp in kept] == [round(lp, 5) for _, lp in sampled]
    # each call's prompt is the prompt so far: a prefix of prompt + response
    full = result["prompt_ids"] + response
    for c in calls:
        assert full[: len(c["prompt_ids"])] == c["prompt_ids"]
    if len(calls) > 1:
        assert 0 in mask, "observation tokens are masked out"
    assert result["extra"]["envfarm_status"] in ("ok", "max_turns", "agent_timeout")
    assert result["reward"] in (0.0, 1.0)
    assert result["tensor_shapes"]["responses"] == [len(response)]
    assert sessions_left == 0
