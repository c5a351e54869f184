"""Red team, the host (classes k, l, m): an agent that is root in its sandbox cannot fill
the host's disk, make the host read a huge file into memory, or reach the host's
services and other episodes over the network."""

from __future__ import annotations

import socket
import threading

import pytest

from envs.echo import EchoEnv
from envs.tools import EDITOR_MAX_BYTES, UNDO_MAX_BYTES, StrReplaceEditorTool, ToolArgumentError
from sandbox import Limits

pytestmark = [pytest.mark.integrity, pytest.mark.docker]


def rss_mb() -> float:
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def test_k_the_disk_cap_holds_anywhere_in_the_filesystem(docker_backend, base_image):
    """3 GB written in 2 s used to land on the host's disk; now every write of the
    sandbox, to any path, is capped (on by default: 4 GB; 300 MB here to be quick)."""
    with EchoEnv(backend=docker_backend) as env:
        env.reset(options={"task_id": "echo-full"})
        assert env.sandbox.disk_limited and env.sandbox.limits.disk_mb
    with docker_backend.start(base_image, Limits(disk_mb=300, timeout_s=60)) as box:
        assert box.disk_limited
        for path in ("/var/fill", "/tmp/fill", "/root/fill"):
            out = box.exec(f"dd if=/dev/zero of={path} bs=1M count=600 2>&1").output
            assert "No space left on device" in out, out
        used = box.exec("du -smx / 2>/dev/null | cut -f1").output.strip()
        assert int(used) < 320


def test_l_reads_into_the_host_are_bounded(docker_backend, base_image):
    """A 100 MB file viewed or edited through the editor used to take the host process to
    1.9 GB; the editor now refuses files over its cap, and undo history is bounded."""
    with docker_backend.start(base_image, Limits(timeout_s=60)) as box:
        box.exec("head -c 100000000 /dev/urandom | base64 > /big.txt")

        class Env:  # the editor needs only a sandbox and a place for its state
            sandbox, tool_state = box, {}

        editor, env = StrReplaceEditorTool(), Env()
        before = rss_mb()
        for command in ({"command": "view", "path": "/big.txt"},
                        {"command": "str_replace", "path": "/big.txt", "old_str": "A",
                         "new_str": "B"}):
            with pytest.raises(ToolArgumentError, match="editor's .* limit"):
                editor(command, env)
        assert rss_mb() - before < 50
        medium = "x" * (EDITOR_MAX_BYTES - 1000) + "\nMARK\n"
        box.write_file("/medium.txt", medium)
        for i in range(8):  # each edit keeps the previous text for undo, within a budget
            editor({"command": "str_replace", "path": "/medium.txt",
                    "old_str": f"MARK{'' if i == 0 else i - 1}\n", "new_str": f"MARK{i}\n"}, env)
        kept = sum(len(t or "") for s in env.tool_state["str_replace.history"].values()
                   for t in s)
        assert kept <= UNDO_MAX_BYTES
        assert rss_mb() - before < 100


def test_m_a_networked_sandbox_cannot_reach_the_host_or_other_sandboxes(
        docker_backend, base_image):
    server = socket.socket()
    server.bind(("0.0.0.0", 0))
    server.listen(8)
    port = server.getsockname()[1]
    threading.Thread(target=lambda: [server.accept() for _ in range(8)], daemon=True).start()
    host_ip = socket.gethostbyname(socket.gethostname())
    try:
        with docker_backend.start(base_image, Limits(network=True)) as a, \
                docker_backend.start(base_image, Limits(network=True)) as b:
            b.exec("nohup python3 -m http.server 8000 >/dev/null 2>&1 &")
            b_ip = b.exec("hostname -I").output.split()[0]
            gateway = a.exec("awk '$2==\"00000000\"{print $3}' /proc/net/route | head -1"
                             ).output.strip()
            targets = [host_ip, "172.17.0.1", b_ip]
            if len(gateway) == 8:  # little-endian hex
                targets.append(".".join(str(int(gateway[i:i + 2], 16)) for i in (6, 4, 2, 0)))
            for ip, target_port in [(t, port) for t in targets[:2] + targets[3:]] + \
                    [(b_ip, 8000)]:
                probe = a.exec(f"timeout 5 bash -c 'echo > /dev/tcp/{ip}/{target_port}' "
                               "&& echo REACHED || echo blocked", timeout_s=20)
                assert "blocked" in probe.output, (ip, target_port, probe.output)
    finally:
        server.close()
