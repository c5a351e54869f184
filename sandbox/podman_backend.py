"""Podman as a second sandbox engine, through its Docker-compatible API socket.

`podman system service` speaks the Docker Engine API, so the Docker implementation
(`DockerBackend`, `DockerSandbox`: the persistent shell over an exec socket, the archive
API, diff, commit) runs unchanged over a docker-py client pointed at Podman's socket
(`unix:///run/envfarm-podman.sock`, `$ENVFARM_PODMAN_SOCKET`). The service is started on
demand when nothing answers there (`--time=0`: it never exits on idle), its log kept in
`/var/log/envfarm-podman.log` (`$ENVFARM_PODMAN_LOG`). `make setup` installs Debian's
Podman (scripts/setup.d/podman.sh). Choose it with `make_backend("podman")`,
`ENVFARM_BACKEND=podman` or `envfarm rollout --backend podman`.

What Podman does differently, and how each difference is handled (never silently
unbounded: a limit that cannot be enforced makes `start` refuse with the reason):

* **Images.** Podman has its own store. An image missing there, or older than the
  Docker engine's image of the same name (content ids differ), is copied from the Docker
  engine when one answers (`GET /images/{id}/get` streamed into Podman's
  `/images/load`, then tagged); the ids are equal after the copy. Without Docker, the
  image must be in Podman's store; else a one-line SandboxError names the fix.
  Snapshots (`Sandbox.snapshot`) are committed in Podman and used from there.
* **cgroup limits** (cpus, memory without swap, pids). Podman applies them when its
  cgroup controllers allow; rootless Podman on cgroup v1, or on v2 without delegated
  controllers, would ignore them with a warning. The backend refuses to construct
  unless Podman reports the cpu, memory and pids controllers, and (cgroup v1, swap on)
  the memsw controller that makes "no swap beyond the cap" hold.
* **Disk cap** (`Limits.disk_mb`). `--storage-opt size` needs XFS project quotas, so the
  loop-mounted layer of `sandbox.disk` is used: Podman's overlay driver keeps the same
  layer layout as Docker's overlay2 (`diff`, `work`, `merged`, `link`, `lower`). Where
  it cannot be used (not root, storage not overlay or not visible here), a start with a
  `disk_mb` is refused: pass `Limits(disk_mb=None)` to run uncapped knowingly.
* **Per-episode network** (`Limits(network=True)`). Podman (CNI) honours the bridge
  name and turns `enable_icc=false` into `isolate`; but its firewall plugin inserts
  its own FORWARD chain first and accepts the container's traffic before Docker's
  `DOCKER-USER` is reached. The rules of `sandbox.netiso` stay where they are and
  `CNI-ADMIN` (the chain CNI evaluates before its accepts, meant for this) jumps to
  `DOCKER-USER`, created when no Docker engine made it. Podman's netavark backend has
  no such chain: there networked starts are refused (fail closed), unless the backend
  is told `isolate_network=False` (Podman's default bridge, trusted code only).
* **OCI runtime.** The compatible API ignores a container's `Runtime`: the service
  runs with `--runtime runc` on cgroup v1 hosts (Debian's crun 1.8 refuses hybrid
  hierarchies, as this VM's); a service already running another runtime is refused.
* **rlimits.** Rootful Podman asks for nofile 1048576 and nproc 4194304, which the
  runtime cannot set where root may not raise its own hard limits (this VM: "setrlimit
  RLIMIT_NOFILE: Operation not permitted"); sandboxes get the service's own hard
  limits, as Docker's inherit dockerd's.
* **Labels, `init`, stop signal, capabilities, no-new-privileges, network none**: the
  compatible API takes them as Docker does (PID 1 is the keep-alive, no init).
* **Exec, archive API, diff, commit** behave as Docker's for what `DockerSandbox` uses,
  with three quirks: under heavy load Podman 4.3 may lose an exec's attach (its log:
  "timed out waiting for file .../exit"), so the shell's start is retried once; the
  archive stat header names every path its own `linkTarget`, which the client clears
  unless the path is a link (`podman_service.PodmanAPIClient`; else every read would
  follow it to its depth limit, 9 GETs); diff lists `/etc`
  as changed (Podman's mount points for hosts and resolv.conf live in the writable
  layer; the files themselves are left out). CNI's per-bridge isolation rules outlive
  their bridge: they are removed with the network. Image names come back fully
  qualified (`docker.io/envfarm/base:...`).

Rootless Podman (what clusters without Docker allow) differs: its socket is under
`$XDG_RUNTIME_DIR`; limits need cgroup v2 with the cpu, memory and pids controllers
delegated to the user (else the constructor refuses); the loop-mounted disk cap and
the iptables rules need root, so there a start with `disk_mb` is refused (run with
`disk_mb=None` and a quota on the user's storage instead) and networked starts are
refused unless `isolate_network=False` (slirp4netns then gives the sandbox outbound
access with no route to the host's loopback). Cost against Docker, measured side by
side: benchmarks/results/podman.md.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import threading
from pathlib import Path
from typing import Any, ClassVar

import docker
import docker.errors
import docker.types
import docker.utils

from sandbox.disk import LoopDisk
from sandbox.docker_backend import DockerBackend
from sandbox.docker_sandbox import DockerSandbox
from sandbox.errors import ContainerDied, SandboxError
from sandbox.netiso import BRIDGE_PREFIX, NET_PREFIX, EpisodeNetworks
from sandbox.podman_service import (
    LOG,
    SOCKET,
    check_runtime,
    connect_podman,
    libpod_info,
    service_ulimits,
)
from sandbox.types import Limits

__all__ = ["LOG", "SOCKET", "PodmanBackend", "connect_podman"]

REQUIRED_CONTROLLERS = ("cpu", "memory", "pids")
_copy_lock = threading.Lock()


class PodmanBackend(DockerBackend):
    """Sandboxes on Podman, over its Docker-compatible API (see the module docstring).

    Args:
        client: a docker-py client on Podman's socket; by default `connect_podman()`.
        run, isolate_network: as for `DockerBackend`.
        source: the Docker engine images are copied from; by default the local one if
            it answers, None for none (images must then be in Podman's store).
        socket: the service's socket (started there when nothing answers).
    """

    name = "podman"
    _disks: ClassVar[dict[int, LoopDisk]] = {}

    def __init__(self, client: docker.DockerClient | None = None, *, run: str | None = None,
                 isolate_network: bool = True,
                 source: docker.DockerClient | None | str = "auto",
                 socket: Path | str = SOCKET) -> None:
        self.socket = Path(socket)
        client = client or connect_podman(self.socket)
        if "podman" not in str(client.version().get("Components", [{}])[0].get("Name", "")).lower():
            raise SandboxError(f"the engine at {client.api.base_url} is not Podman; use the "
                               "docker backend for it")
        super().__init__(client, run=run, isolate_network=isolate_network)
        self.libpod = libpod_info(client)
        _check_cgroups(self.libpod)
        check_runtime(client, self.socket)
        self.disk = PodmanBackend._disks.setdefault(id(client), _PodmanLoopDisk(client))
        self.networks = _PodmanNetworks(client, self.libpod)
        self._source = source
        self._ulimits: list[docker.types.Ulimit] | None = None

    @property
    def disk_cap_available(self) -> bool:
        """Whether `Limits.disk_mb` can be enforced (else such starts are refused)."""
        return self.disk.available

    def start(self, image: str, limits: Limits | None = None, **kwargs: Any) -> DockerSandbox:
        """As `DockerBackend.start`, after refusing limits Podman cannot enforce here and
        copying the image from the Docker engine when Podman lacks it (or has an older one)."""
        limits = limits or Limits()
        if limits.disk_mb and not self.disk.available:
            raise SandboxError(f"Podman cannot cap this sandbox's disk here ({self.disk.reason}); "
                               "run as root with overlay storage, or pass Limits(disk_mb=None) "
                               "to run uncapped knowingly")
        if limits.network and self.isolate_network and not self.networks.available:
            raise SandboxError(f"Podman cannot isolate a networked sandbox here "
                               f"({self.networks.reason}); use the docker backend, or "
                               "isolate_network=False for trusted code")
        self.ensure_image(image)
        start_shell = kwargs.pop("start_shell", True)
        sandbox = super().start(image, limits, start_shell=False, **kwargs)
        if start_shell:
            try:
                try:
                    sandbox.start_shell()
                except ContainerDied:
                    raise
                except SandboxError:
                    # Podman under load can lose an exec's attach ("timed out waiting for
                    # file .../exit" in its log): the shell never answers. Once more.
                    sandbox.start_shell()
            except BaseException:
                sandbox.close()
                raise
        return sandbox

    def ensure_image(self, image: str) -> str:
        """Make `image` present in Podman's store, equal to the Docker engine's image of
        that name when one answers; returns its Podman id. Raises SandboxError with the
        fix when neither engine has it."""
        source = self._docker_source()
        wanted = _image_id(source, image) if source is not None else None
        have = _image_id(self.client, image)
        if wanted is None:
            if have is None:
                raise SandboxError(
                    f"image {image!r} is not in Podman's store"
                    + (" nor in the Docker engine" if source is not None else
                       " and no Docker engine answers to copy it from")
                    + f"; build it with Docker, or load it: docker save {image} | podman load")
            return have
        if have != wanted:
            with _copy_lock:
                if _image_id(self.client, image) != wanted:
                    self._copy(source, image, wanted)
        return wanted

    # -- internals -------------------------------------------------------------
    def _create(self, image: str, kwargs: dict[str, Any], limits: Limits) -> tuple[Any, bool]:
        # Rootful Podman raises RLIMIT_NOFILE/NPROC to 1048576/4194304 by default, past
        # what a root without CAP_SYS_RESOURCE over its own limits may set (crun:
        # "setrlimit RLIMIT_NOFILE: Operation not permitted"); Docker's containers
        # inherit the engine's: so do these (the service's own hard limits).
        if self._ulimits is None:
            self._ulimits = service_ulimits(self.socket)
        return super()._create(image, {**kwargs, "ulimits": self._ulimits}, limits)

    def _docker_source(self) -> docker.DockerClient | None:
        if self._source == "auto":
            self._source = None
            try:
                candidate = docker.from_env(timeout=300)
                version = candidate.version()
                if "podman" not in str(version.get("Components", [{}])[0].get("Name", "")).lower():
                    self._source = candidate
            except Exception:  # noqa: BLE001, S110 — no Docker engine: Podman's store only
                pass
        return self._source  # type: ignore[return-value]

    def _copy(self, source: docker.DockerClient, image: str, image_id: str) -> None:
        """Stream the Docker engine's image into Podman's store and tag it."""
        try:
            stream = source.api.get_image(image_id)
            for _ in self.client.api.load_image(stream):
                pass
        except docker.errors.DockerException as exc:
            raise SandboxError(f"cannot copy image {image!r} from Docker to Podman: {exc}; "
                               f"try: docker save {image} | podman load") from exc
        if _image_id(self.client, image_id) != image_id:
            raise SandboxError(f"copying image {image!r} into Podman did not give id "
                               f"{image_id[:19]}; see {LOG}")
        if not re.fullmatch(r"(sha256:)?[0-9a-f]{12,64}", image):  # a name, not an id
            repo, tag = docker.utils.parse_repository_tag(image)
            self.client.api.tag(image_id, repo, tag or "latest", force=True)


class _PodmanLoopDisk(LoopDisk):
    """`sandbox.disk.LoopDisk` for Podman's overlay storage: same layer layout as Docker's
    overlay2, plus a `merged` directory that must exist when the layer is mounted."""

    driver = "overlay"
    default_root = "/var/lib/containers/storage"

    def attach(self, container: Any, size_mb: int) -> None:
        super().attach(container, size_mb)
        upper = container.attrs["GraphDriver"]["Data"]["UpperDir"]
        merged = Path(upper).parent / "merged"
        merged.mkdir(mode=0o700, exist_ok=True)


class _PodmanNetworks(EpisodeNetworks):
    """`sandbox.netiso` networks on Podman: its CNI firewall chain `CNI-ADMIN` is made to
    jump to `DOCKER-USER` (created if missing), where netiso's rules live."""

    def __init__(self, client: Any, libpod: dict[str, Any]) -> None:
        super().__init__(client)
        self._backend = str(libpod.get("host", {}).get("networkBackend", ""))

    @property
    def available(self) -> bool:
        if self._reason is None:
            reason = self._hook()
            if reason:
                self._reason = reason
        return super().available

    def remove(self, name: str) -> None:
        """As netiso's, and the per-bridge rules CNI's firewall plugin leaves behind
        (`CNI-ISOLATION-STAGE-1/2`, kept after the bridge is gone)."""
        try:
            super().remove(name)
        finally:
            _delete_cni_rules({BRIDGE_PREFIX + name[len(NET_PREFIX):]})

    def gc(self) -> list[str]:
        removed = super().gc()
        live = {BRIDGE_PREFIX + n["Name"][len(NET_PREFIX):] for n in
                self.client.api.networks(filters={"label": "envfarm.network=episode"})}
        _delete_cni_rules(set(_cni_rule_bridges()) - live)
        return removed

    def _hook(self) -> str:
        if self._backend != "cni":
            return (f"Podman's network backend is {self._backend or 'unknown'!r}; only CNI "
                    "has an admin chain ahead of its accept rules")
        if os.geteuid() != 0 or shutil.which("iptables") is None:
            return "not root, or iptables missing"
        for chain in ("DOCKER-USER", "CNI-ADMIN"):
            if _iptables("-S", chain).returncode != 0 and _iptables("-N", chain).returncode != 0:
                return f"cannot create the iptables chain {chain}"
        if _iptables("-C", "CNI-ADMIN", "-j", "DOCKER-USER").returncode != 0:
            proc = _iptables("-I", "CNI-ADMIN", "1", "-j", "DOCKER-USER")
            if proc.returncode != 0:
                return f"cannot hook CNI-ADMIN to DOCKER-USER: {proc.stderr.strip()}"
        return ""


_CNI_CHAINS = ("CNI-ISOLATION-STAGE-1", "CNI-ISOLATION-STAGE-2")


def _cni_rule_lines() -> list[str]:
    if shutil.which("iptables") is None:
        return []
    return [line for chain in _CNI_CHAINS for line in _iptables("-S", chain).stdout.splitlines()
            if line.startswith("-A ")]


def _cni_rule_bridges() -> set[str]:
    return {m.group(1) for line in _cni_rule_lines()
            if (m := re.search(rf"-[io] ({BRIDGE_PREFIX}[0-9a-f]+) ", line))}


def _delete_cni_rules(bridges: set[str]) -> None:
    """Delete CNI's isolation rules that name one of `bridges` (as listed now)."""
    if not bridges:
        return
    for line in _cni_rule_lines():
        if any(f" {bridge} " in f"{line} " for bridge in bridges):
            _iptables("-D", *shlex.split(line)[1:])


def _iptables(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["iptables", "-w", *args], capture_output=True, text=True,
                          check=False)


def _image_id(client: docker.DockerClient, image: str) -> str | None:
    try:
        return str(client.api.inspect_image(image)["Id"])
    except docker.errors.ImageNotFound:
        return None
    except docker.errors.APIError as exc:
        if exc.status_code in (404, 400):  # Podman answers 400 for some malformed names
            return None
        raise SandboxError(f"cannot inspect image {image!r}: {exc}") from exc
    except docker.errors.DockerException as exc:
        raise SandboxError(f"engine unreachable: {exc}") from exc


def _check_cgroups(libpod: dict[str, Any]) -> None:
    """Refuse when Podman would ignore cpu, memory, pids or no-swap limits."""
    host = libpod.get("host", {})
    have = set(host.get("cgroupControllers") or [])
    missing = [c for c in REQUIRED_CONTROLLERS if c not in have]
    rootless = bool(host.get("security", {}).get("rootless"))
    if missing:
        raise SandboxError(
            f"Podman cannot enforce sandbox limits here: cgroup controllers {missing} "
            f"unavailable ({'rootless' if rootless else 'rootful'}, cgroup "
            f"{host.get('cgroupVersion')}); rootless Podman needs cgroup v2 with cpu, memory "
            "and pids delegated to the user; or use the docker backend")
    swap = int(host.get("swapTotal") or 0)
    if (host.get("cgroupVersion") == "v1" and swap > 0
            and not Path("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes").exists()):
        raise SandboxError("Podman cannot stop sandboxes from swapping past their memory cap "
                           "(cgroup v1 without swap accounting): boot with swapaccount=1, "
                           "turn swap off, or use the docker backend")
