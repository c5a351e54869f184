"""`envfarm serve` over real HTTP with real sandboxes: the session API, its errors, auth
and limits, and the Python client."""

from __future__ import annotations

import httpx
import pytest

from orchestrator.serve import EnvClient, ServeError

pytestmark = pytest.mark.docker

FINISH = {"content": "", "tool_calls": [{"name": "finish", "arguments": {}}]}


def write(word: str) -> dict:
    return {"content": "", "tool_calls": [
        {"name": "bash", "arguments": {"command": f"echo {word} > /tmp/answer.txt"}}]}


def test_an_episode_runs_to_its_reward_through_the_client(env_server):
    with EnvClient(env_server.url, token=env_server.token) as client:
        with client.env("echo", task_id="echo-served") as env:
            assert "served" in env.observations[-1]["content"]
            assert [t["function"]["name"] for t in env.info["tools"]] == ["bash", "finish"]
            obs, reward, terminated, truncated, _ = env.step(write("served"))
            assert (reward, terminated, truncated) == (0.0, False, False)
            assert obs[-1]["role"] == "tool"
            _, reward, terminated, _, info = env.step(FINISH)
            assert (reward, terminated, info["status"]) == (1.0, True, "ok")
            with pytest.raises(ServeError) as over:
                env.step(FINISH)
            assert over.value.status == 409 and "over" in over.value.error


def test_raw_mimo_text_is_an_action(env_server):
    raw = ("<tool_call>\n<function=bash>\n<parameter=command>\necho raw > /tmp/answer.txt\n"
           "</parameter>\n</function>\n</tool_call>")
    with EnvClient(env_server.url, token=env_server.token) as client:
        with client.env("envfarm/echo-v0", task_id="echo-raw") as env:
            env.step(raw)
            assert env.step(FINISH)[1] == 1.0


def test_envs_are_listed_with_tool_schemas(env_server):
    with EnvClient(env_server.url, token=env_server.token) as client:
        envs = {e["id"]: e for e in client.envs()}
    swe = envs["envfarm/swe-v0"]
    names = [t["name"] for t in swe["tools"]]
    assert names == ["bash", "str_replace", "finish"]
    assert swe["tools"][1]["schema"]["function"]["parameters"]["properties"]["command"]


def test_errors_say_what_to_do_and_never_carry_a_traceback(env_server):
    auth = {"Authorization": f"Bearer {env_server.token}"}
    url = env_server.url
    cases = [
        (httpx.get(url + "/v1/envs"), 401),
        (httpx.get(url + "/v1/envs", headers={"Authorization": "Bearer wrong"}), 401),
        (httpx.post(url + "/v1/sessions", json={"env": "nope"}, headers=auth), 404),
        (httpx.post(url + "/v1/sessions", json={"env": "echo", "task_id": "bad id!"},
                    headers=auth, timeout=60), 422),
        (httpx.post(url + "/v1/sessions", json={"env": "echo", "max_turns": 3},
                    headers=auth), 422),
        (httpx.post(url + "/v1/sessions/nope/step", json={"action": "hi"}, headers=auth), 404),
        (httpx.delete(url + "/v1/sessions/nope", headers=auth), 404),
        (httpx.post(url + "/v1/sessions", content=b"{" + b" " * 5_000_000 + b"}",
                    headers={**auth, "content-type": "application/json"}), 413),
    ]
    for response, status in cases:
        assert response.status_code == status, response.text
        body = response.json()
        assert set(body) == {"error", "fix"}, body
        assert "Traceback" not in response.text and body["fix"]


def test_a_malformed_action_is_a_422_and_the_session_lives_on(env_server):
    with EnvClient(env_server.url, token=env_server.token) as client:
        with client.env("echo", task_id="echo-mal") as env:
            with pytest.raises(ServeError) as bad:
                client.step(env.session_id, 42)  # type: ignore[arg-type]
            assert bad.value.status == 422 and "action" in bad.value.error
            obs, *_ = env.step({"content": "no tools here"})
            assert "No tool call" in obs[-1]["content"]


def test_openapi_spec_names_the_routes(env_server):
    spec = httpx.get(env_server.url + "/openapi.json").json()
    assert {"/v1/envs", "/v1/sessions", "/v1/sessions/{session_id}/step",
            "/v1/sessions/{session_id}"} <= set(spec["paths"])
