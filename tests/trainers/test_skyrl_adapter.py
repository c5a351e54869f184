"""The SkyRL-Gym adapter driven by the real `skyrl_gym` package: a multi-turn episode to
its reward, in process and through `envfarm serve`."""

from __future__ import annotations

import pytest

from tests.serve.conftest import start_server

pytestmark = [pytest.mark.trainers, pytest.mark.docker]

WRITE = ("I'll write it.\n<tool_call>\n<function=bash>\n<parameter=command>\n"
         "echo {word} > /tmp/answer.txt\n</parameter>\n</function>\n</tool_call>")
FINISH = "<tool_call>\n<function=finish>\n</function>\n</tool_call>"


@pytest.fixture(scope="module")
def skyrl_gym():
    from tests.trainers.venvs import require_module

    module = require_module("skyrl_gym")
    from orchestrator.adapters.skyrl import register_skyrl_envs

    assert "envfarm/echo-v0" in register_skyrl_envs()
    return module


def play(env, word: str) -> list[dict]:
    prompt, meta = env.init([{"role": "user", "content": "ignored"}])
    assert word in prompt[-1]["content"]
    assert [t["function"]["name"] for t in meta["tools"]] == ["bash", "finish"]
    outs = [env.step(WRITE.format(word=word)), env.step("no tool call, just chatter"),
            env.step(FINISH)]
    return outs


def test_an_envfarm_env_runs_as_a_skyrl_gym_env_in_process(skyrl_gym, base_image):
    env = skyrl_gym.make("envfarm/echo-v0", env_config={}, extras={"task_id": "echo-skyrl"})
    first, chatter, last = play(env, "skyrl")
    assert (first["reward"], first["done"]) == (0.0, False)
    assert first["observations"][0]["content"].startswith("<tool_response>")
    assert "No tool call" in chatter["observations"][0]["content"]
    assert (last["reward"], last["done"], last["metadata"]["status"]) == (1.0, True, "ok")
    assert last["metadata"]["trainable"] is True
    assert env.get_metrics()["turns"] == 3


def test_a_wrong_answer_scores_zero_and_tool_role_can_be_kept(skyrl_gym, base_image):
    env = skyrl_gym.make("envfarm/echo-v0", env_config={"observation_role": "tool"},
                         extras={"task_id": "echo-right"})
    env.init([])
    out = env.step(WRITE.format(word="wrong"))
    assert out["observations"][0]["role"] == "tool"
    last = env.step(FINISH)
    assert (last["reward"], last["done"]) == (0.0, True)
    assert last["metadata"]["reward_details"]["got"] == "wrong"


def test_the_same_env_runs_through_envfarm_serve(skyrl_gym, base_image, docker_client):
    for server in start_server(idle_timeout_s=120):
        env = skyrl_gym.make("envfarm/echo-v0",
                             env_config={"server_url": server.url, "token": server.token},
                             extras={"task_id": "echo-remote"})
        *_, last = play(env, "remote")
        assert (last["reward"], last["metadata"]["status"]) == (1.0, "ok")
        assert len(server.app.state.sessions) == 0  # the finished episode closed its session
