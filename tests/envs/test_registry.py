"""Contract test over the registry: every registered env passes Gymnasium's `check_env`.

Envs that need a task run their bundled example task (reset without a task id).
"""

from __future__ import annotations

import gymnasium
import pytest
from gymnasium.utils.env_checker import check_env

import envs
from envs import REGISTRY, lookup


def test_builtin_envs_are_registered_with_gymnasium():
    assert "envfarm/terminal-v0" in REGISTRY
    for env_id, info in REGISTRY.items():
        assert env_id in gymnasium.registry, env_id
        assert env_id == f"envfarm/{info.name}-v{info.version}"
        assert info.tools and info.verifier
    assert lookup("terminal").env_id == "envfarm/terminal-v0"
    with pytest.raises(KeyError, match="registered:"):
        lookup("nope")


def test_register_env_replaces_and_is_visible():
    info = envs.register_env("scratch-test", "tests.envs.conftest:ShellEnv", tools=("bash",),
                             verifier="file holds 42", task_kind=None)
    try:
        assert REGISTRY["envfarm/scratch-test-v0"] is info
        assert gymnasium.spec("envfarm/scratch-test-v0").entry_point == "tests.envs.conftest:ShellEnv"
    finally:
        del REGISTRY[info.env_id], gymnasium.registry[info.env_id]


@pytest.mark.docker
@pytest.mark.parametrize("env_id", sorted(REGISTRY))
def test_every_registered_env_passes_check_env(env_id, base_image):
    env = gymnasium.make(env_id).unwrapped
    try:
        check_env(env, skip_render_check=True)
    finally:
        env.close()


def test_listed_tools_are_the_tools_each_env_class_gives():
    """`envfarm envs list` prints the registry's tool names without importing the envs; they
    must be the names the class's action space accepts (run-time tools such as the general
    env's app tools are listed by a description, not a name)."""
    for env_id, info in REGISTRY.items():
        cls = envs.registry.load_callable(info.entry_point)
        named = tuple(t for t in info.tools if " " not in t)
        assert named == cls.tool_names, env_id
