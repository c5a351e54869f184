"""A Ray cluster of several nodes on this machine, each its own `ray start` (head + N
workers), for the scale benchmark: nodes can be killed one at a time (SIGKILL to every
process of that node: a machine that dies), and everything started is removed at the
end, by process id (never `ray stop`, which would stop other users' Ray on this machine).

Worker nodes offer the custom resource `envfarm_sim` (2 per node, so an actor of a dead
node can restart on a live one); the head offers none, so episode actors
(RolloutConfig.ray_node_resource="envfarm_sim") only land on workers.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Self

ROOT = Path(__file__).resolve().parents[1]
NODE_RESOURCE = "envfarm_sim"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LocalRayCluster:
    """`with LocalRayCluster(nodes=4) as cluster:` — `cluster.address` for ray.init."""

    def __init__(self, nodes: int, *, per_node_actors: int = 2,
                 object_store_bytes: int = 80_000_000) -> None:
        self.nodes = nodes
        self.per_node_actors = per_node_actors
        self.object_store_bytes = object_store_bytes
        self.port = _free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.temp_dir = tempfile.mkdtemp(prefix="rs", dir="/tmp")  # short: socket paths
        self._procs: list[subprocess.Popen] = []
        self.node_procs: list[subprocess.Popen] = []
        # Ray turns token auth on by itself when ~/.ray/auth_token exists (another Ray
        # user on this machine may have made one): this private cluster never uses it, and
        # the driver (this process) must agree.
        os.environ["RAY_AUTH_MODE"] = "disabled"
        self.env = {**os.environ, "PYTHONPATH": f"{ROOT}:{os.environ.get('PYTHONPATH', '')}",
                    "RAY_USAGE_STATS_ENABLED": "0"}
        self._ray = str(Path(sys.executable).with_name("ray"))

    def _start(self, args: list[str]) -> subprocess.Popen:
        log = open(Path(self.temp_dir) / f"start-{len(self._procs)}.log", "wb")  # noqa: SIM115
        proc = subprocess.Popen([self._ray, "start", "--block", "--disable-usage-stats",
                                 "--num-cpus", "0",
                                 "--object-store-memory", str(self.object_store_bytes),
                                 "--dashboard-agent-listen-port", str(_free_port()),
                                 "--metrics-export-port", str(_free_port()), *args],
                                env=self.env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
        log.close()
        self._procs.append(proc)
        return proc

    def __enter__(self) -> Self:
        try:
            self._start(["--head", "--port", str(self.port), "--include-dashboard", "false",
                         "--temp-dir", self.temp_dir])
            self._wait_gcs()
            self.wait_nodes(1)
            for _ in range(self.nodes):
                self.node_procs.append(self._start_worker())
        except BaseException:
            self.close()
            raise
        return self

    def _start_worker(self, tries: int = 3) -> subprocess.Popen:
        """One worker node, started after the previous one is up: on a loaded machine a
        raylet that misses Ray's fixed 30 s registration window exits; it is retried."""
        alive = self.alive_nodes()
        name = f"sim-node-{len(self.node_procs)}"
        for _ in range(tries):
            proc = self._start(["--address", self.address, "--node-name", name,
                                "--resources", json.dumps({NODE_RESOURCE: self.per_node_actors})])
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline and proc.poll() is None:
                if self.alive_nodes() > alive:
                    return proc
                time.sleep(0.5)
            _kill(list(reversed(self.processes(proc))))
        raise TimeoutError(f"a Ray worker node did not come up in {tries} tries; logs in "
                           f"{self.temp_dir}")

    def node_index(self, node_id: str) -> int:
        """Which of `node_procs` is the Ray node `node_id`."""
        import ray

        for n in ray.nodes():
            if n["NodeID"] == node_id and n.get("NodeName", "").startswith("sim-node-"):
                return int(n["NodeName"].rsplit("-", 1)[1])
        raise KeyError(f"no worker node {node_id}")

    def alive_nodes(self) -> int:
        import ray

        return sum(1 for n in ray.nodes() if n["Alive"])

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _wait_gcs(self, timeout_s: float = 60) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            if self._procs[0].poll() is not None:
                raise RuntimeError("the Ray head exited at start")
            time.sleep(0.2)
        raise TimeoutError("the Ray head did not open its port")

    def wait_nodes(self, count: int, timeout_s: float = 300) -> None:
        """Wait until `count` nodes are alive (asked through the `ray` CLI's state API)."""
        import ray

        deadline = time.monotonic() + timeout_s
        connected = ray.is_initialized()
        while not connected:
            try:
                ray.init(address=self.address, log_to_driver=False, configure_logging=False)
                connected = True
            except ConnectionError:
                if self._procs[0].poll() is not None or time.monotonic() > deadline:
                    raise
                time.sleep(1)
        while time.monotonic() < deadline:
            if sum(1 for n in ray.nodes() if n["Alive"]) >= count:
                return
            time.sleep(0.5)
        logs = "".join(p.read_text(errors="replace")[-600:]
                       for p in sorted(Path(self.temp_dir).glob("start-*.log")))
        raise TimeoutError(f"fewer than {count} Ray nodes came up; logs:\n{logs}")

    def processes(self, proc: subprocess.Popen) -> list[int]:
        """Pids of one node: the `ray start` process and its live descendants."""
        return _descendants(proc.pid) if proc.poll() is None else []

    def kill_node(self, index: int) -> int:
        """SIGKILL every process of worker node `index` at once; returns how many."""
        pids = self.processes(self.node_procs[index])
        _kill(pids)
        self.node_procs[index].wait(timeout=10)
        return len(pids)

    def rss_bytes(self) -> int:
        """Resident memory of every process of the cluster (head, nodes, workers)."""
        return sum(rss_bytes(pid) for proc in self._procs for pid in self.processes(proc))

    def close(self) -> None:
        """Disconnect, then kill every process this cluster started (workers first)."""
        try:
            import ray

            if ray.is_initialized():
                ray.shutdown()
        except Exception:  # noqa: BLE001, S110 — the processes go below anyway
            pass
        for proc in reversed(self._procs):
            _kill(list(reversed(self.processes(proc))))
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        self._procs.clear()
        shutil.rmtree(self.temp_dir, ignore_errors=True)


def _children() -> dict[int, list[int]]:
    """ppid -> pids, from /proc (no psutil in the venv)."""
    out: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        out.setdefault(ppid, []).append(int(entry))
    return out


def _descendants(pid: int) -> list[int]:
    """`pid` and every process below it."""
    tree, out, todo = _children(), [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(tree.get(p, []))
    return out


def _kill(pids: list[int]) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def rss_bytes(pid: int) -> int:
    """Resident set of one process (0 when it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0
