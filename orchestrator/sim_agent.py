"""`envfarm/sim-agent-v0`: a scripted agent of realistic pace, for scale runs and runner tests.

The echo env's task (write a word into /tmp/answer.txt), done the way an agent works: the
oracle takes `turns` bash turns (write a step file, read the previous one back) before it
writes the answer and finishes, and before each turn the model "thinks" for a latency
drawn from the measured model-call distribution (the vLLM client's `act()` on CPU,
benchmarks/results/policy_client.md: p50 0.58 s, p95 2.08 s; log-normal through those two
points), times `think_scale`. With the simulated engine (`--backend sim`, profile
benchmarks/results/sim_profile.json) an episode then lasts what one on this machine would:
start, turns × (model + command), verify, close, with no container or model behind it.

Where the model's wait is booked: with the policy `PolicySpec(type="scripted",
script="orchestrator.sim_agent:scripted_policy")` the oracle's turns come from a policy
whose `act()` waits the model's latency, so it counts under `policy_s` as a real model's
would; with any other policy (oracle) the env's step waits it (under `env_s`). The
driver sees the same episode either way.

Import this module (RolloutConfig.imports=["orchestrator.sim_agent"]) to register it; it
runs on any backend (its image name is only a label for the simulated engine; on Docker
it uses the base image).
"""

from __future__ import annotations

import math
import random
import time
import zlib
from typing import Any

from envs import register_env
from envs.echo import EchoEnv
from envs.tools import BashTool, FinishTool, Tool
from policies import OraclePolicy
from sandbox import Limits

MODEL_CALL_P50_S = 0.58072
MODEL_CALL_P95_S = 2.08303
"""The vLLM client's whole act() call on CPU (benchmarks/results/policy_client.md)."""

SIM_IMAGE = "envfarm/sim:agent"


def think_latency_s(rng: random.Random, scale: float = 1.0) -> float:
    """One model call's latency: log-normal through the measured p50 and p95."""
    if scale <= 0:
        return 0.0
    sigma = math.log(MODEL_CALL_P95_S / MODEL_CALL_P50_S) / 1.6449
    return scale * rng.lognormvariate(math.log(MODEL_CALL_P50_S), sigma)


class SimAgentEnv(EchoEnv):
    """Echo's task in `turns` tool turns at a model's pace. Task ids: `sim-<word>` or
    `echo-<word>` (alphanumeric word)."""

    def __init__(self, *, turns: int = 8, think_scale: float = 1.0, image: str | None = None,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if turns < 0:
            raise ValueError("turns must be 0 or more")
        self.turns = turns
        self.think_scale = think_scale
        self.image = image
        self._rng = random.Random(0)
        self.policy_thinks = False
        """Set by `scripted_policy`: its act() waits the model's latency, not step()."""

    def _begin(self, task_id: str | None, seed: int | None) -> tuple[list[dict], list[Tool]]:
        task_id = task_id or "sim-hello"
        prefix, _, word = task_id.partition("-")
        if prefix not in ("sim", "echo") or not word.isalnum():
            raise ValueError(f"sim-agent tasks are named sim-<alphanumeric word>, not {task_id!r}")
        self.task_id, self.word = task_id, word
        self._rng = random.Random(zlib.crc32(task_id.encode()) ^ (seed or 0))
        image = self.image or (SIM_IMAGE if getattr(self.backend, "name", "") == "sim"
                               else _base_image())
        self.sandbox = self.backend.start(image, Limits(timeout_s=30))
        messages = [{"role": "user", "content": f"Write the word {word} into /tmp/answer.txt "
                     f"in {self.turns} steps, then call finish."}]
        return messages, [BashTool(), FinishTool()]

    def step(self, action: Any) -> tuple[list[dict], Any, bool, bool, dict[str, Any]]:
        if not self.policy_thinks:
            time.sleep(think_latency_s(self._rng, self.think_scale))  # the model's turn
        return super().step(action)

    def oracle_actions(self, task_id: str) -> list[dict[str, Any]]:
        word = task_id.partition("-")[2]
        actions = []
        for i in range(self.turns):
            command = (f"echo step{i} > /tmp/step{i}" if i % 2 == 0
                       else f"cat /tmp/step{i - 1}")
            actions.append({"content": "", "tool_calls": [
                {"name": "bash", "arguments": {"command": command}}]})
        actions.append({"content": "", "tool_calls": [
            {"name": "bash", "arguments": {"command": f"echo {word} > /tmp/answer.txt"}}]})
        return actions


class ThinkingOracle(OraclePolicy):
    """The oracle's turns, each after a model call's latency (booked under policy_s)."""

    def __init__(self, actions: list[dict[str, Any]], rng: random.Random, scale: float) -> None:
        super().__init__(actions)
        self._rng, self._scale = rng, scale

    def act(self, conversation: Any, tools: list[dict[str, Any]]) -> Any:
        time.sleep(think_latency_s(self._rng, self._scale))
        return super().act(conversation, tools)


def scripted_policy(env: SimAgentEnv, task_id: str, spec: Any = None) -> ThinkingOracle:
    """`PolicySpec(type="scripted", script="orchestrator.sim_agent:scripted_policy")`: the
    sim agent's turns at the model's pace, the wait inside the policy."""
    env.policy_thinks = True
    rng = random.Random(zlib.crc32(task_id.encode()) ^ 0x5EED)
    return ThinkingOracle(env.oracle_actions(task_id), rng, env.think_scale)


def _base_image() -> str:
    from sandbox import base_image

    return base_image()


register_env("sim-agent", "orchestrator.sim_agent:SimAgentEnv", tools=("bash", "finish"),
             verifier="/tmp/answer.txt holds the word named by the task id (sim-<word>)",
             description="A scripted agent at a measured model's pace (scale runs, tests).")
