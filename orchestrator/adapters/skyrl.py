"""envfarm envs as SkyRL-Gym envs: `BaseTextEnv` with `init(prompt)` and `step(text)`.

    from orchestrator.adapters.skyrl import register_skyrl_envs
    register_skyrl_envs()                                   # envfarm/<name>-v0 ids
    env = skyrl_gym.make("envfarm/echo-v0", env_config={}, extras={"task_id": "echo-hi"})
    prompt, meta = env.init([])                             # the task's messages, tools
    out = env.step(model_text)                              # observations, reward, done

The model's text is parsed by envfarm (MiMo / Qwen3-Coder XML tool calls); a malformed
call becomes an error observation, as in every envfarm env. `env_config` may name an
env server (`server_url`, `token`) to run the episode there instead of in process: the
trainer's machine then needs neither Docker nor envfarm's dependencies (only httpx).

SkyRL treats `done` as the end of the trajectory and `reward` as its score: the reward
is 0 until the episode ends, then the verifier's (envfarm's contract). `metadata`
carries envfarm's info (status, reward details) so a trainer can drop `infra_error` and
`task_error` episodes instead of training on them.
"""

from __future__ import annotations

import functools
from typing import Any

from skyrl_gym.envs.base_text_env import BaseTextEnv, BaseTextEnvStepOutput

NOT_TRAINABLE = ("infra_error", "task_error")


class EnvfarmTextEnv(BaseTextEnv):
    """One envfarm episode per instance.

    Args:
        env_id: the envfarm env (`envfarm/echo-v0` or a short name).
        env_config: SkyRL's env config (dict-like): `server_url`, `token` (remote episodes),
            `env_kwargs` (constructor arguments), `observation_role` ("tool" keeps envfarm's
            tool messages; "user", the default, wraps them in <tool_response> for chat
            templates without a tool role).
        extras: the dataset row's extras: `task_id`, `seed` (or inside `extra_info`, as
            envfarm's `prompts` export writes them).
    """

    def __init__(self, env_id: str, env_config: Any = None,
                 extras: dict[str, Any] | None = None) -> None:
        super().__init__()
        config = dict(env_config or {})
        extras = dict(extras or {})
        self.env_id = env_id
        nested = dict(extras.get("extra_info") or {})  # rows of the `prompts` export
        self.task_id = extras.get("task_id") or nested.get("task_id")
        self.seed = extras.get("seed", nested.get("seed"))
        self.env_kwargs = dict(config.get("env_kwargs") or {})
        self.observation_role = config.get("observation_role", "user")
        self.server_url = config.get("server_url")
        self.token = config.get("token")
        self.max_turns = int(self.env_kwargs.get("max_turns", 50))
        self._env: Any = None
        self._client: Any = None
        self.last_info: dict[str, Any] = {}

    def init(self, prompt: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        """Start the episode; the prompt is the task's own (the dataset's is ignored
        unless the env has none)."""
        if self.server_url:
            from orchestrator.serve.client import EnvClient

            self._client = EnvClient(self.server_url, token=self.token)
            self._env = self._client.env(self.env_id, task_id=self.task_id, seed=self.seed,
                                         env_kwargs=self.env_kwargs)
            messages, info = self._env.observations, self._env.info
        else:
            import gymnasium

            import envs  # noqa: F401  (registers the envs)

            self._env = gymnasium.make(_gym_id(self.env_id), disable_env_checker=True,
                                       **self.env_kwargs)
            options = {"task_id": self.task_id} if self.task_id else None
            messages, info = self._env.reset(seed=self.seed, options=options)
        self.last_info = dict(info)
        return list(messages) or list(prompt), {"tools": info.get("tools", []),
                                               "task_id": info.get("task_id")}

    def step(self, action: str) -> BaseTextEnvStepOutput:
        if self._env is None:
            raise RuntimeError("call init() before step()")
        self.turns += 1
        observations, reward, terminated, truncated, info = self._env.step(action)
        self.last_info = dict(info)
        done = bool(terminated or truncated)
        metadata = {"status": info.get("status"), "task_id": info.get("task_id"),
                    "terminated": bool(terminated), "truncated": bool(truncated),
                    "trainable": info.get("status") not in NOT_TRAINABLE}
        if done:
            metadata["reward_details"] = info.get("reward_details", {})
            if info.get("error"):
                metadata["error"] = info["error"]
            self.close()
        return BaseTextEnvStepOutput(observations=self._observations(observations),
                                     reward=float(reward), done=done, metadata=metadata,
                                     postprocessed_action=None)

    def close(self) -> None:
        env, self._env = self._env, None
        if env is not None:
            env.close()
        if self._client is not None:
            self._client.close()
            self._client = None

    def get_metrics(self) -> dict[str, Any]:
        return {"turns": self.turns, "solved": float(self.last_info.get("status") == "ok")}

    def _observations(self, messages: list[dict[str, Any]]) -> list[dict[str, str]]:
        out = []
        for m in messages:
            content = str(m.get("content") or "")
            if m.get("role") == "tool" and self.observation_role != "tool":
                out.append({"role": "user",
                            "content": f"<tool_response>\n{content}\n</tool_response>"})
            else:
                out.append({"role": str(m.get("role", "user")), "content": content})
        return out


def _gym_id(name: str) -> str:
    from envs.registry import lookup

    return lookup(name).env_id


def register_skyrl_envs() -> list[str]:
    """Register every envfarm env with skyrl_gym under its envfarm id; returns the ids."""
    import skyrl_gym

    from envs.registry import REGISTRY

    ids = []
    for env_id in sorted(REGISTRY):
        if env_id in skyrl_gym.registry:
            del skyrl_gym.registry[env_id]
        skyrl_gym.register(id=env_id, entry_point=functools.partial(EnvfarmTextEnv, env_id))
        ids.append(env_id)
    return ids
