"""Sandboxes as Docker containers, through the Docker Engine API (the SDK, not the CLI).

Lifecycle (where it runs) is `DockerBackend.start`; operations (what runs) are the
`DockerSandbox` methods. Every container carries labels so that `sandbox.gc` can find
what a crashed run left behind.
"""

from __future__ import annotations

import io
import tarfile
import threading
import time
from pathlib import Path, PurePosixPath
from typing import Any

import docker
import docker.errors

from sandbox.errors import ContainerDied, SandboxError
from sandbox.run_context import (  # noqa: F401  (re-exported: older imports)
    LABEL_CREATED,
    LABEL_IMAGE,
    LABEL_OWNER,
    LABEL_RUN,
    current_run,
    owner_id,
    run_label,
)
from sandbox.shell import PersistentShell
from sandbox.types import ExecResult, FileChange, Limits

KEEPALIVE = ("trap '' HUP INT QUIT TERM USR1 USR2; "
             "while :; do sleep 86400 & wait $! 2>/dev/null; done")
"""PID 1 of every sandbox: a shell that reaps orphans and restarts its sleep. The kernel
never delivers a signal to a namespace's PID 1 from inside unless it handles it, so
`kill -9 -1` or `kill -9 1` by the agent cannot end the container (with Docker's
`--init`, the agent could kill init's only child and the container with it)."""

_DIFF_KINDS = {0: "C", 1: "A", 2: "D"}


def connect(timeout_s: float = 120.0) -> docker.DockerClient:
    """A Docker client from the environment (DOCKER_HOST or the local socket).

    Raises SandboxError with the fix when no engine answers."""
    try:
        client = docker.from_env(timeout=int(timeout_s))
        client.ping()
    except Exception as exc:
        raise SandboxError(
            f"no Docker engine answers ({exc}); run `make setup` (starts dockerd as root) "
            "or start Docker yourself"
        ) from exc
    return client


class DockerSandbox:
    """One container with one persistent shell. See `sandbox.types.Sandbox`."""

    def __init__(self, client: docker.DockerClient, container: Any, limits: Limits,
                 *, env: dict[str, str] | None = None, workdir: str | None = None,
                 disk_limited: bool = False) -> None:
        self.id: str = container.id
        self.image: str = container.attrs["Config"]["Image"]
        self.limits = limits
        self.disk_limited = disk_limited
        self._client = client
        self._api = client.api
        self._container = container
        self._shell = PersistentShell(self._api, container.id, env=env, workdir=workdir)
        self._lock = threading.Lock()
        self._closed = False

    # -- commands ------------------------------------------------------------
    def start_shell(self) -> None:
        """Open the shell now (warm pools do this ahead of use)."""
        with self._lock:
            if not self._shell.alive:
                self._shell.start()

    def exec(self, command: str, timeout_s: float | None = None) -> ExecResult:
        """Run `command` in the persistent shell. Raises SandboxError if the container died."""
        self._check_open()
        with self._lock:
            return self._shell.run(
                command,
                timeout_s=timeout_s or self.limits.timeout_s,
                output_limit_bytes=self.limits.output_limit_bytes,
            )

    # -- files ---------------------------------------------------------------
    def write_file(self, path: str, data: bytes | str, mode: int = 0o644) -> None:
        """Write one file (parents created), through the archive API: no shell quoting."""
        raw = data.encode() if isinstance(data, str) else data
        target = PurePosixPath(path)
        if not target.is_absolute():
            raise ValueError(f"write_file needs an absolute path, got {path!r}")
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            parts = target.parts[1:]
            for depth in range(1, len(parts)):
                info = tarfile.TarInfo("/".join(parts[:depth]))
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            info = tarfile.TarInfo("/".join(parts))
            info.size, info.mode, info.mtime = len(raw), mode, int(time.time())
            tar.addfile(info, io.BytesIO(raw))
        self._put_archive("/", buf.getvalue())

    def read_file(self, path: str) -> bytes:
        """Read one file. Raises FileNotFoundError if it is not there."""
        members = self._get_archive(path)
        with tarfile.open(fileobj=members) as tar:
            for member in tar:
                if member.isfile():
                    extracted = tar.extractfile(member)
                    return extracted.read() if extracted else b""
        raise IsADirectoryError(path)

    def upload_dir(self, src: Path | str, dest: str) -> None:
        """Copy a host directory's contents into `dest` (created if missing)."""
        src = Path(src)
        if not src.is_dir():
            raise NotADirectoryError(str(src))
        buf = io.BytesIO()
        prefix = PurePosixPath(dest).relative_to("/")
        with tarfile.open(fileobj=buf, mode="w") as tar:
            tar.add(src, arcname=str(prefix))
        self._put_archive("/", buf.getvalue())

    def download_dir(self, src: str, dest: Path | str) -> None:
        """Copy the contents of the sandbox directory `src` into the host directory `dest`."""
        dest = Path(dest)
        dest.mkdir(parents=True, exist_ok=True)
        base = PurePosixPath(src).name
        with tarfile.open(fileobj=self._get_archive(src)) as tar:
            for member in tar.getmembers():
                rel = PurePosixPath(member.name)
                rel = rel.relative_to(base) if rel.parts and rel.parts[0] == base else rel
                member.name = str(rel)
            tar.extractall(dest, filter="data")

    # -- the agent is done: freeze, inspect, snapshot ---------------------------
    def stop_processes(self) -> None:
        """Kill every process but PID 1 (the keep-alive), from a fresh exec as root.

        Repeated until none is left, so a fork bomb or a double-forked daemon cannot
        outlive the agent's turn. The persistent shell is gone afterwards."""
        self._check_open()
        with self._lock:
            self._shell.close()
            script = ("for i in 1 2 3 4 5 6 7 8; do kill -9 -1 2>/dev/null; "
                      "n=0; for p in /proc/[0-9]*; do n=$((n+1)); done; "
                      "[ $n -le 3 ] && exit 0; sleep 0.05; done; exit 1")
            try:
                exec_id = self._api.exec_create(self.id, ["sh", "-c", script], user="0:0",
                                                privileged=False)["Id"]
                self._api.exec_start(exec_id)
            except docker.errors.NotFound as exc:
                raise ContainerDied(f"container {self.id[:12]} is gone") from exc
            except docker.errors.DockerException as exc:
                self._ensure_running()
                raise SandboxError(f"cannot stop processes in {self.id[:12]}: {exc}") from exc

    def changes(self) -> list[FileChange]:
        """Paths that differ from the image, as the engine sees them (`docker diff`)."""
        self._check_open()
        try:
            raw = self._api.diff(self.id) or []
        except docker.errors.NotFound as exc:
            raise ContainerDied(f"container {self.id[:12]} is gone") from exc
        except docker.errors.DockerException as exc:
            raise SandboxError(f"cannot read changes of {self.id[:12]}: {exc}") from exc
        return [FileChange(_DIFF_KINDS.get(c.get("Kind"), "C"), c["Path"]) for c in raw]

    def snapshot(self) -> str:
        """Commit the filesystem to an untagged image; returns its id."""
        self._check_open()
        try:
            return self._api.commit(self.id, pause=True)["Id"]
        except docker.errors.NotFound as exc:
            raise ContainerDied(f"container {self.id[:12]} is gone") from exc
        except docker.errors.DockerException as exc:
            raise SandboxError(f"cannot snapshot {self.id[:12]}: {exc}") from exc

    def state(self) -> dict[str, Any]:
        """The engine's view of the container (`State`: Running, OOMKilled, ExitCode)."""
        try:
            self._container.reload()
        except docker.errors.NotFound:
            return {"Running": False, "Removed": True}
        except docker.errors.DockerException as exc:
            raise SandboxError(f"Docker engine unreachable: {exc}") from exc
        return dict(self._container.attrs.get("State", {}))

    # -- lifecycle -------------------------------------------------------------
    def alive(self) -> bool:
        try:
            self._container.reload()
        except docker.errors.NotFound:
            return False
        except docker.errors.DockerException as exc:
            raise SandboxError(f"Docker engine unreachable: {exc}") from exc
        return self._container.status == "running"

    def close(self) -> None:
        """Stop and remove the container. Calling it twice has no effect."""
        if self._closed:
            return
        self._closed = True
        self._shell.close()
        try:
            self._container.remove(force=True)
        except docker.errors.NotFound:
            pass
        except docker.errors.APIError as exc:
            if "already in progress" not in str(exc):
                raise SandboxError(f"cannot remove container {self.id[:12]}: {exc}") from exc

    def __enter__(self) -> DockerSandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"DockerSandbox({self.id[:12]}, image={self.image!r})"

    # -- internals -------------------------------------------------------------
    def _check_open(self) -> None:
        if self._closed:
            raise SandboxError(f"sandbox {self.id[:12]} is closed")

    def _ensure_running(self) -> None:
        self._check_open()
        if not self.alive():
            raise ContainerDied(f"container {self.id[:12]} is no longer running")

    def _put_archive(self, path: str, data: bytes) -> None:
        self._ensure_running()
        try:
            self._api.put_archive(self.id, path, data)
        except docker.errors.APIError as exc:
            self._ensure_running()
            raise SandboxError(f"cannot copy into {self.id[:12]}: {exc}") from exc

    def _get_archive(self, path: str) -> io.BytesIO:
        self._ensure_running()
        try:
            stream, _ = self._api.get_archive(self.id, path)
            return io.BytesIO(b"".join(stream))
        except docker.errors.NotFound as exc:
            raise FileNotFoundError(path) from exc
        except docker.errors.APIError as exc:
            self._ensure_running()
            raise SandboxError(f"cannot copy from {self.id[:12]}: {exc}") from exc


class DockerBackend:
    """Starts sandboxes on one Docker engine.

    Args:
        client: a docker client; by default one from the environment.
        run: the `envfarm.run` label of every container started here (for gc by run);
            default: the rollout run of this thread (`current_run`), else `$ENVFARM_RUN`.
    """

    name = "docker"
    runtime: str | None = None
    """The OCI runtime (None: the engine's default, runc); `GVisorBackend` sets "runsc"."""
    _storage_opt_supported: bool | None = None

    def __init__(self, client: docker.DockerClient | None = None, *,
                 run: str | None = None) -> None:
        self.client = client or connect()
        self.run = run_label(run)

    def healthy(self) -> bool:
        """Whether the engine answers now."""
        try:
            return bool(self.client.ping())
        except Exception:  # noqa: BLE001 — any failure to answer is "not healthy"
            return False

    def remove_image(self, image: str) -> None:
        """Remove an image (a snapshot); missing is fine."""
        try:
            self.client.images.remove(image, force=True, noprune=False)
        except docker.errors.ImageNotFound:
            pass
        except docker.errors.APIError as exc:
            raise SandboxError(f"cannot remove image {image[:19]}: {exc}") from exc

    def start(self, image: str, limits: Limits | None = None, *, env: dict[str, str] | None = None,
              workdir: str | None = None, cap_add: list[str] | None = None,
              labels: dict[str, str] | None = None, start_shell: bool = True,
              use_pool: bool = True) -> DockerSandbox:
        """Start a container from `image` under `limits` and open its shell.

        With prewarming on (`sandbox.pool.enable_prewarm`) the sandbox comes from a warm
        pool of the same configuration when one is ready; `use_pool=False` never does.
        Raises SandboxError when the engine fails or the image is missing (build first)."""
        limits = limits or Limits()
        if use_pool and start_shell and labels is None and not cap_add:
            from sandbox.pool import REGISTRY

            key = repr((image, limits, sorted((env or {}).items()), workdir, cap_add))
            warm = REGISTRY.take(self, key, image, limits, env, workdir)
            if warm is not None:
                return warm
        all_labels = {
            LABEL_RUN: self.run,
            LABEL_OWNER: owner_id(),
            LABEL_CREATED: str(int(time.time())),
            LABEL_IMAGE: image,
            **(labels or {}),
        }
        kwargs: dict[str, Any] = dict(
            command=["sh", "-c", KEEPALIVE],
            detach=True,
            init=False,
            stop_signal="SIGKILL",
            network_mode="bridge" if limits.network else "none",
            cap_drop=["ALL"],
            cap_add=cap_add,
            security_opt=["no-new-privileges"],
            mem_limit=f"{limits.memory_mb}m",
            memswap_limit=f"{limits.memory_mb}m",
            pids_limit=limits.pids,
            nano_cpus=int(limits.cpus * 1e9),
            labels=all_labels,
            environment=env,
            working_dir=workdir,
        )
        if self.runtime:
            kwargs["runtime"] = self.runtime
        disk_limited = False
        if limits.disk_mb and DockerBackend._storage_opt_supported is not False:
            kwargs["storage_opt"] = {"size": f"{limits.disk_mb}m"}
            disk_limited = True
        try:
            container = self._run(image, kwargs)
        except docker.errors.ImageNotFound as exc:
            raise SandboxError(f"image {image!r} is not built here; build it first") from exc
        except docker.errors.APIError as exc:
            if "storage-opt" in str(exc) or "storage opt" in str(exc).lower():
                DockerBackend._storage_opt_supported = False
                kwargs.pop("storage_opt", None)
                disk_limited = False
                container = self._run(image, kwargs)
            else:
                raise SandboxError(f"cannot start a container from {image!r}: {exc}") from exc
        sandbox = DockerSandbox(self.client, container, limits, env=env, workdir=workdir,
                                disk_limited=disk_limited)
        if start_shell:
            try:
                sandbox.start_shell()
            except BaseException:
                sandbox.close()
                raise
        return sandbox

    def _run(self, image: str, kwargs: dict[str, Any]) -> Any:
        try:
            return self.client.containers.run(image, **kwargs)
        except (docker.errors.ImageNotFound, docker.errors.APIError):
            raise
        except docker.errors.DockerException as exc:
            raise SandboxError(f"Docker engine unreachable: {exc}") from exc
