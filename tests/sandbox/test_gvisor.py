"""The gVisor backend (`runsc`) keeps the sandbox contract: one persistent shell,
timeouts that leave it usable, files in and out, a keep-alive the agent cannot kill,
and the agent's processes stopped from outside; networked sandboxes fall back to runc."""

from __future__ import annotations

import uuid

import pytest

from sandbox import Limits, make_backend
from sandbox.gc import gc_containers

pytestmark = [pytest.mark.gvisor, pytest.mark.docker]


@pytest.fixture(scope="module")
def gvisor(docker_client):
    from tests.conftest import missing

    if "runsc" not in (docker_client.info().get("Runtimes") or {}):
        missing("the Docker engine has no runsc runtime; run `make setup` "
                "(scripts/setup.d/gvisor.sh)")
    backend = make_backend("gvisor", run=f"pytest-gvisor-{uuid.uuid4().hex[:8]}")
    try:
        yield backend
    finally:
        gc_containers(docker_client, run=backend.run)


def test_a_gvisor_sandbox_keeps_the_contract(gvisor, base_image, docker_client):
    with gvisor.start(base_image, Limits(timeout_s=20)) as box:
        assert docker_client.api.inspect_container(box.id)["HostConfig"]["Runtime"] == "runsc"
        assert "gVisor" in box.exec("dmesg 2>/dev/null | head -3").output
        box.exec("cd /tmp && export X=7")
        assert box.exec("pwd; echo $X").output.split() == ["/tmp", "7"]
        slow = box.exec("sleep 30", timeout_s=1)
        assert slow.timed_out and box.exec("echo alive").output.strip() == "alive"
        box.write_file("/tmp/a.txt", "hi\n")
        assert box.read_file("/tmp/a.txt") == b"hi\n"
        box.exec("kill -9 -1")
        assert box.exec("echo still").output.strip() == "still"
        box.exec("setsid sh -c 'while :; do sleep 1; done' >/dev/null 2>&1 < /dev/null &")
        box.stop_processes()
        assert "sleep 1" not in box.exec("ps -eo args 2>/dev/null || true").output


def test_the_host_sees_the_sandboxs_files_as_the_sandbox_does(gvisor, base_image):
    """Verifiers read from outside (archive API, `docker diff`): under gVisor that view must
    be the sandbox's own, /tmp included (gVisor's private tmpfs would hide it), and the
    disk cap must hold."""
    with gvisor.start(base_image, Limits(timeout_s=60, disk_mb=200)) as box:
        assert box.disk_limited
        box.exec("echo inside > /tmp/answer.txt && echo deep > /root/r.txt")
        assert box.read_file("/tmp/answer.txt") == b"inside\n"
        assert box.read_file("/root/r.txt") == b"deep\n"
        box.write_file("/tmp/from-host.py", "print('ran')\n")
        assert box.exec("python3 /tmp/from-host.py").output.strip() == "ran"
        changed = {c.path for c in box.changes()}
        assert {"/tmp/answer.txt", "/root/r.txt", "/tmp/from-host.py"} <= changed
        out = box.exec("dd if=/dev/zero of=/root/big bs=1M count=400 2>&1 | tail -1").output
        assert "No space left" in out or "400+0" not in out, out


def test_networked_sandboxes_run_on_runc(gvisor, base_image, docker_client):
    with gvisor.start(base_image, Limits(network=True)) as box:
        runtime = docker_client.api.inspect_container(box.id)["HostConfig"]["Runtime"]
        assert runtime == "runc" and gvisor.network_fallbacks >= 1


def test_killing_pid_1_under_gvisor_is_the_agents_doing(gvisor, base_image):
    """gVisor's kernel lets `kill -9 1` end the keep-alive (runc's does not): the episode
    ends as agent_fault, reward 0, never an infra_error the runner would retry."""
    from envs.echo import EchoEnv
    from tests.episodes import step_until_done

    def bash(command: str) -> dict:
        return {"content": "", "tool_calls": [{"name": "bash", "arguments": {
            "command": command}}]}

    finish = {"content": "", "tool_calls": [{"name": "finish", "arguments": {}}]}
    with EchoEnv(backend=gvisor) as env:
        env.reset(options={"task_id": "echo-gone"})
        reward, info, _ = step_until_done(env, [bash("kill -9 1"), bash("echo gone"), finish])
    assert (reward, info["status"]) == (0.0, "agent_fault")
