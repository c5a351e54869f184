"""Resource limits hold: processes, memory, network."""

from __future__ import annotations

import threading

import pytest

from sandbox import Limits

pytestmark = pytest.mark.docker


def test_fork_bomb_is_stopped_by_the_pids_limit_and_cleared(docker_backend, base_image,
                                                            docker_client):
    with docker_backend.start(base_image, Limits(pids=64, timeout_s=30)) as box:
        box.exec("cd /tmp && export STATE=kept")
        peak, done = [0], threading.Event()

        def sample() -> None:  # the pids cgroup, read from the host while the bomb runs
            while not done.is_set():
                stats = docker_client.api.stats(box.id, stream=False, one_shot=True)
                peak[0] = max(peak[0], stats.get("pids_stats", {}).get("current", 0))

        sampler = threading.Thread(target=sample)
        sampler.start()
        try:
            result = box.exec("bomb() { bomb | bomb; }; bomb", timeout_s=4)
        finally:
            done.set()
            sampler.join()
        assert result.timed_out
        # It really multiplied, and forks stopped at the limit. Processes the engine
        # attaches with `docker exec` (our killer) are migrated into the cgroup, which
        # pids.max does not refuse, so a handful may sit above it.
        assert 32 < peak[0] <= 64 + 8
        after = box.exec('echo "$STATE"; ls /proc | grep -c "^[0-9]"')
        lines = after.output.split()
        if not result.shell_restarted:
            assert lines[0] == "kept"
        assert int(lines[-1]) < 10  # the bomb is gone


def test_memory_bomb_is_killed_by_the_memory_limit(docker_backend, base_image):
    with docker_backend.start(base_image, Limits(memory_mb=128)) as box:
        result = box.exec("python3 -c 'x = bytearray(1 << 30); print(len(x))'", timeout_s=30)
        assert result.exit_code == 137 and not result.timed_out
        assert box.exec("echo alive").output == "alive\n"


def test_no_network_unless_asked(docker_backend, base_image):
    probe = ("python3 -c \"import socket; s=socket.socket(); s.settimeout(3); "
             "s.connect(('1.1.1.1', 53)); print('connected')\"")
    with docker_backend.start(base_image) as box:
        assert box.exec("ls /sys/class/net").output.split() == ["lo"]
        result = box.exec(probe)
        assert result.exit_code != 0 and "connected" not in result.output
    with docker_backend.start(base_image, Limits(network=True)) as box:
        assert "eth0" in box.exec("ls /sys/class/net").output.split()


def test_cpu_and_memory_caps_are_set_on_the_container(docker_backend, base_image, docker_client):
    with docker_backend.start(base_image, Limits(cpus=0.5, memory_mb=300, pids=100)) as box:
        host = docker_client.api.inspect_container(box.id)["HostConfig"]
        assert host["NanoCpus"] == 500_000_000
        assert host["Memory"] == host["MemorySwap"] == 300 * 1024 * 1024
        assert host["PidsLimit"] == 100
        assert host["NetworkMode"] == "none" and host["Init"] is not True  # PID 1 is the signal-immune keep-alive
        assert host["CapDrop"] == ["ALL"] and "no-new-privileges" in host["SecurityOpt"]
