"""The Podman service the podman backend talks to: its socket, started on demand.

`podman system service --time=0 unix://SOCKET` serves the Docker-compatible API (and
libpod's) on a unix socket and never exits on idle. `connect_podman` returns a docker-py
client on it, starting the service first (once across processes: a file lock) when
nothing answers, with the OCI runtime this host needs (`wanted_runtime`) and its log
appended to LOG. Rootful: `/run/envfarm-podman.sock`, `/var/log/envfarm-podman.log`;
rootless: both under `$XDG_RUNTIME_DIR`. `$ENVFARM_PODMAN_SOCKET` and
`$ENVFARM_PODMAN_LOG` override them.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import resource
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import docker
import docker.types

from sandbox.errors import SandboxError

_ROOT = os.geteuid() == 0
_RUNTIME_DIR = "/run" if _ROOT else os.environ.get("XDG_RUNTIME_DIR", f"/tmp/envfarm-{os.getuid()}")
SOCKET = Path(os.environ.get("ENVFARM_PODMAN_SOCKET", f"{_RUNTIME_DIR}/envfarm-podman.sock"))
LOG = Path(os.environ.get("ENVFARM_PODMAN_LOG", "/var/log/envfarm-podman.log" if _ROOT
                          else f"{_RUNTIME_DIR}/envfarm-podman.log"))
API_VERSION = "1.41"
"""The Docker API version Podman 4 and 5 serve (and docker-py speaks)."""
_service: subprocess.Popen[bytes] | None = None
"""The service this process started, if any."""


def connect_podman(socket: Path | str = SOCKET, *, start: bool = True,
                   timeout_s: float = 120.0) -> docker.DockerClient:
    """A docker-py client on Podman's Docker-compatible socket, the service started first
    (`podman system service`) when nothing answers there and `start` is set.

    Raises SandboxError with the fix when Podman is not installed or does not answer."""
    socket = Path(socket)
    client = _client(socket, timeout_s)
    if _answers(client):
        return client
    if not start:
        raise SandboxError(f"no Podman service answers on {socket}; start it with "
                           f"`podman system service --time=0 unix://{socket}`")
    _start_service(socket)
    return client


def service_ulimits(socket: Path) -> list[docker.types.Ulimit]:
    """nofile and nproc at the service's own hard limits (Podman lowers its nproc at
    start-up; a container may not ask for more than the service holds). The service is
    found by its socket in /proc; not found (another host): this process's limits."""
    limits = {"nofile": resource.getrlimit(resource.RLIMIT_NOFILE)[1],
              "nproc": resource.getrlimit(resource.RLIMIT_NPROC)[1]}
    rows = {"Max open files": "nofile", "Max processes": "nproc"}
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
            if b"service" not in argv or not any(str(socket).encode() in a for a in argv):
                continue
            for line in (proc / "limits").read_text().splitlines():
                for label, name in rows.items():
                    if line.startswith(label) and line.split()[-3].isdigit():
                        limits[name] = int(line.split()[-3])  # the hard limit
            break
        except OSError:
            continue
    return [docker.types.Ulimit(name=name, soft=hard, hard=hard)
            for name, hard in limits.items() if hard != resource.RLIM_INFINITY]


def wanted_runtime() -> str | None:
    """The OCI runtime the service must run: `$ENVFARM_PODMAN_RUNTIME`, else runc on a
    cgroup v1 host (crun refuses hybrid hosts, v1 with a controller on the unified
    hierarchy, as this VM's hugetlb: "cgroups in hybrid mode not supported"), else
    Podman's default. The compatible API ignores a container's `Runtime`, so it is the
    service's `--runtime`."""
    chosen = os.environ.get("ENVFARM_PODMAN_RUNTIME")
    if chosen:
        return chosen
    if not Path("/sys/fs/cgroup/cgroup.controllers").exists() and shutil.which("runc"):
        return "runc"
    return None


def check_runtime(client: docker.DockerClient, socket: Path) -> None:
    """Raise SandboxError when the service (maybe started by someone else) runs another
    runtime than this host needs."""
    want = wanted_runtime()
    have = client.info().get("DefaultRuntime")
    if want and have != want:
        raise SandboxError(f"the Podman service on {socket} runs {have!r}, this host needs "
                           f"{want!r} (crun refuses cgroup v1 hybrid hosts); stop that "
                           f"service (envfarm then starts it as `podman --runtime {want} "
                           "system service`) or set ENVFARM_PODMAN_RUNTIME")


def libpod_info(client: docker.DockerClient) -> dict[str, Any]:
    """Podman's own `/libpod/info` (cgroup controllers, rootless, network backend), which
    the Docker-compatible `/info` leaves out."""
    api = client.api
    res = api._get(f"{api.base_url}/v4.0.0/libpod/info")
    api._raise_for_status(res)
    return dict(res.json())


class PodmanAPIClient(docker.APIClient):
    """docker-py's low-level client, with Podman's answers made Docker's where they differ.

    The archive API's stat header (`X-Docker-Container-Path-Stat`): Podman names every
    path its own `linkTarget` (a regular file `/tmp/x`: `"/tmp/x"`), Docker only links.
    Readers that follow links (`sandbox.streams.read_file`) would follow every path to
    their depth limit, one archive GET per hop; here the field is cleared unless the mode
    says symlink (Go's `os.ModeSymlink`, bit 27, set alike by both engines)."""

    def _get(self, url: str, *args: Any, **kwargs: Any) -> Any:
        res = super()._get(url, *args, **kwargs)
        header = res.headers.get(_STAT_HEADER) if url.endswith("/archive") else None
        if header:
            try:
                stat = json.loads(base64.b64decode(header))
            except ValueError:
                return res
            if stat.get("linkTarget") and not int(stat.get("mode", 0)) & _MODE_SYMLINK:
                stat["linkTarget"] = ""
                res.headers[_STAT_HEADER] = base64.b64encode(json.dumps(stat).encode()).decode()
        return res


_STAT_HEADER = "X-Docker-Container-Path-Stat"
_MODE_SYMLINK = 1 << 27


def _client(socket: Path, timeout_s: float) -> docker.DockerClient:
    client = docker.DockerClient.__new__(docker.DockerClient)
    # A fixed API version: "auto" would ask the (maybe not yet started) service.
    client.api = PodmanAPIClient(base_url=f"unix://{socket}", version=API_VERSION,
                                 timeout=int(timeout_s))
    return client


def _answers(client: docker.DockerClient) -> bool:
    try:
        return bool(client.ping())
    except Exception:  # noqa: BLE001 — not answering, for any reason
        return False


def _start_service(socket: Path, wait_s: float = 30.0) -> None:
    """Start `podman system service` on `socket` (once across processes: a file lock),
    detached, logging to LOG; wait until it answers."""
    global _service
    podman = shutil.which("podman")
    if podman is None:
        raise SandboxError("podman is not installed; run `make setup` "
                           "(scripts/setup.d/podman.sh) or `apt-get install podman`")
    socket.parent.mkdir(parents=True, exist_ok=True)
    LOG.parent.mkdir(parents=True, exist_ok=True)
    probe = _client(socket, 5)
    with open(f"{socket}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _answers(probe):
            return
        socket.unlink(missing_ok=True)  # a stale socket of a service that died
        with open(LOG, "ab") as log:
            log.write(f"--- {time.strftime('%Y-%m-%dT%H:%M:%S')} envfarm starts podman "
                      f"system service on {socket}\n".encode())
            log.flush()
            runtime = wanted_runtime()
            _service = subprocess.Popen(
                [podman, *(["--runtime", runtime] if runtime else []),
                 "system", "service", "--time=0", f"unix://{socket}"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True, close_fds=True)
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            if _answers(probe):
                return
            if _service.poll() is not None:
                break
            time.sleep(0.1)
    tail = LOG.read_text(errors="replace").strip().splitlines()[-3:] if LOG.exists() else []
    raise SandboxError(f"the Podman service did not answer on {socket} in {wait_s:.0f}s "
                       f"({' | '.join(tail)}); see {LOG}")
