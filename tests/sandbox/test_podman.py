"""The sandbox test suite against Podman (backend "podman"): the same test bodies as
test_shell, test_files, test_limits and test_pool_gc, collected here with this module's
`box` and `docker_backend` fixtures (a Podman sandbox and backend), plus what is
Podman's own: images copied from Docker by content id, the disk cap, the isolated
network, nothing left behind, the service started on demand.

Without podman these tests skip with the fix, and FAIL under CI=true."""

from __future__ import annotations

import shutil
import socket
import subprocess
import threading
import uuid
from pathlib import Path

import pytest

from sandbox import ContainerDied, Limits, SandboxError, make_backend
from sandbox.gc import gc_containers

# The shared behaviours: these run here against Podman (fixtures resolve in this module).
from tests.sandbox.test_files import (  # noqa: F401
    test_reading_a_missing_file_raises_file_not_found,
    test_upload_and_download_directories,
    test_write_then_read_any_bytes,
)
from tests.sandbox.test_limits import (  # noqa: F401
    test_memory_bomb_is_killed_by_the_memory_limit,
    test_no_network_unless_asked,
)
from tests.sandbox.test_pool_gc import test_warm_pool_never_hands_out_a_container_twice  # noqa: F401
from tests.sandbox.test_shell import (  # noqa: F401
    test_background_jobs_of_earlier_commands_survive_a_timeout,
    test_binary_output_never_crashes_the_reader,
    test_capabilities_are_dropped,
    test_commands_read_no_stdin,
    test_cwd_and_environment_persist_between_calls,
    test_exit_codes_and_stderr_are_reported,
    test_exit_restarts_the_shell_and_says_so,
    test_forged_end_markers_do_not_end_the_output,
    test_output_without_trailing_newline_is_kept_exactly,
    test_ten_megabytes_of_output_keep_head_and_tail,
    test_timeout_kills_the_command_and_the_shell_stays_usable,
    test_timeouts_interrupt_every_kind_of_command,
)

pytestmark = [pytest.mark.podman, pytest.mark.docker]


@pytest.fixture(scope="module")
def podman(base_image):
    from tests.conftest import missing

    if shutil.which("podman") is None:
        missing("podman is not installed; run `make setup` (scripts/setup.d/podman.sh) "
                "or apt-get install podman")
    backend = make_backend("podman", run=f"pytest-podman-{uuid.uuid4().hex[:8]}")
    backend.ensure_image(base_image)  # the copy from Docker, once, outside any timing
    try:
        yield backend
    finally:
        gc_containers(backend.client, run=backend.run)


@pytest.fixture(scope="module")
def docker_backend(podman):
    """The shared tests' backend, here Podman's."""
    return podman


@pytest.fixture(scope="module")
def box(podman, base_image):
    sandbox = podman.start(base_image, Limits(timeout_s=20, output_limit_bytes=10_000))
    yield sandbox
    sandbox.close()


def test_the_image_is_copied_from_docker_by_content_id(podman, base_image, docker_client):
    assert podman.client.api.inspect_image(base_image)["Id"] == \
        docker_client.api.inspect_image(base_image)["Id"]
    assert podman.ensure_image(base_image) == docker_client.api.inspect_image(base_image)["Id"]
    with pytest.raises(SandboxError, match="podman load"):
        podman.start("envfarm/no-such-image:nope")


def test_limits_are_set_and_pid_1_is_the_keep_alive(podman, base_image):
    with podman.start(base_image, Limits(cpus=0.5, memory_mb=300, pids=100)) as box:
        host = podman.client.api.inspect_container(box.id)["HostConfig"]
        assert host["NanoCpus"] == 500_000_000
        assert host["Memory"] == host["MemorySwap"] == 300 * 1024 * 1024
        assert host["PidsLimit"] == 100 and host["NetworkMode"] == "none"
        assert "no-new-privileges" in host["SecurityOpt"]
        cg = box.exec("cat /sys/fs/cgroup/memory/memory.limit_in_bytes "
                      "/sys/fs/cgroup/pids/pids.max 2>/dev/null || cat /sys/fs/cgroup/memory.max "
                      "/sys/fs/cgroup/pids.max").output.split()
        assert cg == [str(300 << 20), "100"]  # what the kernel enforces, read inside
        assert box.exec("tr '\\0' ' ' < /proc/1/cmdline").output.startswith("sh -c trap")
        box.exec("kill -9 1; kill -9 -1")
        assert box.exec("echo still").output.strip() == "still"


def test_fork_bomb_is_stopped_by_the_pids_limit(podman, base_image):
    with podman.start(base_image, Limits(pids=64, timeout_s=30)) as box:
        result = box.exec("bomb() { bomb | bomb; }; bomb", timeout_s=4)
        assert result.timed_out
        assert int(box.exec('ls /proc | grep -c "^[0-9]"').output.split()[-1]) < 10


def test_disk_cap_stops_writes_anywhere(podman, base_image):
    assert podman.disk_cap_available
    with podman.start(base_image, Limits(disk_mb=64)) as box:
        assert box.disk_limited
        result = box.exec("dd if=/dev/zero of=/var/tmp/fill bs=1M count=200 2>&1; df -m / | tail -1")
        assert "No space left" in result.output
        assert int(result.output.split()[-5]) <= 64  # df's size column: the cap, not the host


def test_stop_processes_snapshot_and_changes(podman, base_image):
    with podman.start(base_image) as box:
        box.exec("setsid sh -c 'while :; do sleep 1; done' >/dev/null 2>&1 < /dev/null &")
        box.write_file("/work/made.txt", "made\n")
        box.exec("rm -f /etc/issue; ln -s made.txt /work/rel; ln -s /work/made.txt /work/abs")
        # Podman's stat header names every path its own link target; only links are followed
        assert box.read_file("/work/rel") == box.read_file("/work/abs") == b"made\n"
        box.stop_processes()
        assert "sleep 1" not in box.exec("ps -eo args 2>/dev/null || true").output
        changes = {(c.kind, c.path) for c in box.changes()}
        assert {("A", "/work/made.txt"), ("A", "/work/rel"), ("D", "/etc/issue")} <= changes
        assert not {p for _, p in changes} & {"/etc/hosts", "/etc/resolv.conf", "/run/.containerenv"}
        snap = box.snapshot()
    try:
        with podman.start(snap, Limits(disk_mb=None)) as again:
            assert again.read_file("/work/made.txt") == b"made\n"
    finally:
        podman.remove_image(snap)


def test_a_container_killed_from_outside_raises(podman, base_image):
    sandbox = podman.start(base_image)
    try:
        threading.Timer(0.5, lambda: podman.client.api.kill(sandbox.id)).start()
        with pytest.raises(ContainerDied):
            sandbox.exec("sleep 30", timeout_s=20)
        with pytest.raises(SandboxError):
            sandbox.exec("echo never")
    finally:
        sandbox.close()
        sandbox.close()


def test_removal_leaves_nothing(podman, base_image):
    box = podman.start(base_image, Limits(network=True, disk_mb=128))
    layer = Path(podman.client.api.inspect_container(box.id)["GraphDriver"]["Data"]["UpperDir"]).parent
    network = box.network
    assert layer.is_dir() and network and str(layer) in Path("/proc/mounts").read_text()
    box.close()
    assert not layer.exists() and str(layer) not in Path("/proc/mounts").read_text()
    assert box.id[:16] not in subprocess.run(["losetup", "-a"], capture_output=True,
                                             text=True, check=False).stdout
    assert network not in {n["Name"] for n in podman.client.api.networks()}
    assert network[len("envfarm-net-"):] not in subprocess.run(
        ["iptables", "-S"], capture_output=True, text=True, check=False).stdout
    assert box.id not in {c["Id"] for c in podman.client.api.containers(all=True)}


def _host_address() -> str:
    out = subprocess.run(["ip", "-4", "-o", "route", "get", "1.1.1.1"], capture_output=True,
                         text=True, check=False).stdout
    return out.split(" src ")[1].split()[0]


def test_a_networked_sandbox_cannot_reach_the_host(podman, base_image):
    """A service on the host's 0.0.0.0 answers a sandbox on Podman's shared bridge (what
    the isolation is for) and not one on its own isolated network."""
    server = socket.create_server(("0.0.0.0", 0))
    port = server.getsockname()[1]
    threading.Thread(target=lambda: [server.accept()[0].close() for _ in range(4)],
                     daemon=True).start()
    probe = (f"python3 -c \"import socket; s=socket.socket(); s.settimeout(3); "
             f"s.connect(('{_host_address()}', {port})); print('connected')\"")
    try:
        with podman.start(base_image, Limits(network=True)) as box:
            assert "eth0" in box.exec("ls /sys/class/net").output.split()
            assert "connected" not in box.exec(probe).output
        open_backend = make_backend("podman", run=podman.run, isolate_network=False)
        with open_backend.start(base_image, Limits(network=True)) as box:
            assert "connected" in box.exec(probe).output
    finally:
        server.close()


def test_the_service_starts_on_demand_with_its_log(podman):
    from sandbox import podman_service as service_module

    sock = Path(f"/run/envfarm-podman-test-{uuid.uuid4().hex[:8]}.sock")
    try:
        client = service_module.connect_podman(sock)
        assert client.ping() and sock.is_socket()
        assert f"system service on {sock}" in service_module.LOG.read_text()
        assert client.info()["DefaultRuntime"] == (service_module.wanted_runtime() or "crun")
    finally:
        service = service_module._service
        if service is not None and str(sock) in " ".join(map(str, service.args)):
            service.terminate()
            service.wait(10)
        sock.unlink(missing_ok=True)
        Path(f"{sock}.lock").unlink(missing_ok=True)


def test_limits_podman_would_ignore_are_refused():
    from sandbox.podman_backend import _check_cgroups

    rootless_v1 = {"host": {"cgroupControllers": [], "cgroupVersion": "v1",
                            "security": {"rootless": True}}}
    with pytest.raises(SandboxError, match="cannot enforce"):
        _check_cgroups(rootless_v1)
    _check_cgroups({"host": {"cgroupControllers": ["cpu", "memory", "pids"],
                             "cgroupVersion": "v2"}})


def test_an_env_episode_runs_on_podman(podman):
    """The seam end to end: an env given the Podman backend runs, verifies and scores an
    episode."""
    from envs.echo import EchoEnv
    from tests.episodes import step_until_done

    def bash(command: str) -> dict:
        return {"content": "", "tool_calls": [{"name": "bash", "arguments": {"command": command}}]}

    finish = {"content": "", "tool_calls": [{"name": "finish", "arguments": {}}]}
    with EchoEnv(backend=podman) as env:
        env.reset(options={"task_id": "echo-pod"})
        assert podman.client.api.inspect_container(env.sandbox.id)["Id"] == env.sandbox.id
        reward, info, _ = step_until_done(env, [bash("echo pod > /tmp/answer.txt"), finish])
    assert (reward, info["status"]) == (1.0, "ok")
