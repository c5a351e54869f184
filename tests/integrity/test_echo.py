"""Red team, echo env: its verifier once ran `cat` in the agent's shell. A function, a
shim or a daemon must not forge the word; the honest answer still scores 1.0."""

from __future__ import annotations

import pytest

from envs.echo import EchoEnv
from tests.episodes import step_until_done
from tests.integrity.terminal_tasks import FINISH, bash

pytestmark = [pytest.mark.integrity, pytest.mark.docker]


@pytest.fixture(scope="module")
def echo(docker_backend):
    with EchoEnv(backend=docker_backend) as env:
        yield env


def episode(env: EchoEnv, *commands: str) -> tuple[float, dict]:
    env.reset(options={"task_id": "echo-hello"})
    reward, info, _ = step_until_done(env, [bash(c) for c in commands] + [FINISH])
    return reward, info


ATTACKS = {
    "cat function": "cat() { echo hello; }; echo nope > /tmp/answer.txt",
    "cat shim": ("printf '#!/bin/sh\\necho hello\\n' > /usr/local/bin/cat && "
                 "chmod +x /usr/local/bin/cat && echo nope > /tmp/answer.txt"),
    "daemon writing after finish": ("setsid sh -c 'sleep 2; echo hello > /tmp/answer.txt' "
                                    ">/dev/null 2>&1 < /dev/null &"),
    "link to another file": "ln -sf /etc/hostname /tmp/answer.txt",
    "word buried in a large file": "(echo hello; head -c 100000 /dev/zero) > /tmp/answer.txt",
}


@pytest.mark.parametrize("attack", list(ATTACKS))
def test_forged_answers_score_zero(echo, attack):
    reward, info = episode(echo, ATTACKS[attack])
    assert (reward, info["status"]) == (0.0, "ok"), info


def test_the_honest_answer_scores_one(echo):
    assert episode(echo, "echo hello > /tmp/answer.txt")[0] == 1.0
