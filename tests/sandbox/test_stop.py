"""Stopping the agent: every process but the keep-alive is gone, or the agent is blamed."""

from __future__ import annotations

import pytest

from sandbox import Limits
from sandbox.errors import AgentCaused

pytestmark = pytest.mark.docker

DAEMON = "setsid sh -c 'while :; do sleep 1; done' >/dev/null 2>&1 < /dev/null &"


def test_daemons_and_double_forks_are_gone_and_the_keepalive_stays(docker_backend, base_image,
                                                                   docker_client):
    with docker_backend.start(base_image, Limits(timeout_s=30)) as box:
        box.exec(DAEMON)
        box.exec("(nohup sh -c 'sleep 300' >/dev/null 2>&1 &) ; true")
        box.stop_processes()
        rows = docker_client.api.top(box.id)["Processes"]
        commands = " | ".join(row[-1] for row in rows)
        assert "sleep 1" not in commands and "sleep 300" not in commands
        assert box.exec("echo alive").output.strip() == "alive"


def test_a_replaced_sh_cannot_fake_the_stop(docker_backend, base_image):
    """The kill loop runs the sandbox's own `sh`; a no-op `sh` that exits 0 leaves the
    daemon alive, which the engine's process list shows: the agent's doing."""
    with docker_backend.start(base_image, Limits(timeout_s=30)) as box:
        box.exec(DAEMON)
        box.exec("cp /bin/true /tmp/true && ln -sf /tmp/true /bin/sh && "
                 "ln -sf /tmp/true /usr/bin/sh; ls -l /bin/sh")
        with pytest.raises(AgentCaused, match="could not be stopped"):
            box.stop_processes()


def test_a_container_killed_through_the_engine_is_not_blamed_on_the_agent(docker_backend,
                                                                          base_image,
                                                                          docker_client):
    """`docker kill` (an operator, a node drain) leaves a `kill` in the engine's event log;
    a container that stops by the agent's doing has none: only the first is infra."""
    from envs.integrity import blame
    from sandbox.errors import ContainerDied

    with docker_backend.start(base_image, Limits(timeout_s=30)) as box:
        docker_client.containers.get(box.id).kill()
        state = box.state()
        assert not state["Running"] and state["KilledFromOutside"] is True
        died = ContainerDied("gone")
        assert blame(died, box, docker_backend) is died
