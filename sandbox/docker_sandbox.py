"""One Docker container with one persistent shell: what runs in a sandbox and what comes
out of it. Lifecycle (how it starts) is `sandbox.docker_backend.DockerBackend`.

Reads into the host are bounded and streamed (`sandbox.streams`); uploads never follow a
host symlink (`sandbox.hostfiles`); a container found dead raises by who must act
(`sandbox.shell.death`).
"""

from __future__ import annotations

import io
import json
import tarfile
import threading
import time
from pathlib import Path, PurePosixPath
from typing import Any, Self

import docker.errors

import docker
from sandbox import streams
from sandbox.errors import AgentCaused, ContainerDied, FileTooLarge, SandboxError
from sandbox.hostfiles import add_tree
from sandbox.shell import PersistentShell, death
from sandbox.types import ExecResult, FileChange, Limits

_DIFF_KINDS = {0: "C", 1: "A", 2: "D"}
CHANGES_LIMIT = 32 << 20
"""Most bytes of `docker diff` JSON read into the host (about 300,000 paths)."""


class DockerSandbox:
    """One container with one persistent shell. See `sandbox.types.Sandbox`."""

    def __init__(self, client: docker.DockerClient, container: Any, limits: Limits,
                 *, env: dict[str, str] | None = None, workdir: str | None = None,
                 disk_limited: bool = False, network: str | None = None,
                 on_close: Any = None) -> None:
        self.id: str = container.id
        self.image: str = container.attrs["Config"]["Image"]
        self.limits = limits
        self.disk_limited = disk_limited
        """Whether writes to the writable layer stop at `limits.disk_mb` (ENOSPC)."""
        self.network = network
        """The sandbox's own isolated network (`sandbox.netiso`), None without one."""
        self._on_close = on_close
        self._client = client
        self._api = client.api
        self._container = container
        self._shell = PersistentShell(self._api, container.id, env=env, workdir=workdir)
        self._lock = threading.Lock()
        self._closed = False
        self._created_at = int(time.time()) - 5

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

    def read_file(self, path: str, max_bytes: int | None = None, *,
                  truncate: bool = False) -> bytes:
        """Read one file, streamed, at most `max_bytes` (default `streams.READ_LIMIT`,
        64 MiB). A larger file raises FileTooLarge (an AgentCaused), or with
        `truncate=True` returns its head and a `[... envfarm: truncated ...]` line.
        Raises FileNotFoundError / IsADirectoryError."""
        return self._archive_call(streams.read_file, path, max_bytes, truncate=truncate)

    def upload_dir(self, src: Path | str, dest: str) -> None:
        """Copy a host directory's contents into `dest` (created if missing). Symlinks
        are copied as links, never followed: no host file outside `src` is read."""
        src = Path(src)
        if not src.is_dir():
            raise NotADirectoryError(str(src))
        buf = io.BytesIO()
        prefix = PurePosixPath(dest).relative_to("/")
        with tarfile.open(fileobj=buf, mode="w") as tar:
            add_tree(tar, src, str(prefix), policy="link")
        self._put_archive("/", buf.getvalue())

    def download_dir(self, src: str, dest: Path | str, max_bytes: int | None = None) -> None:
        """Copy the contents of the sandbox directory `src` into the host directory `dest`,
        streamed, at most `max_bytes` of archive (default `streams.DOWNLOAD_LIMIT`, 256
        MiB; over it FileTooLarge). Links out of `dest` and devices are not extracted."""
        self._archive_call(streams.download_dir, src, Path(dest), max_bytes)

    # -- the agent is done: freeze, inspect, snapshot ---------------------------
    def stop_processes(self) -> None:
        """Kill every process but PID 1 (the keep-alive), from a fresh exec as root.

        Repeated until none is left, so a fork bomb or a double-forked daemon cannot
        outlive the agent's turn. The persistent shell is gone afterwards. The loop runs
        the sandbox's own `sh`, which the agent may have replaced: its exit code must be
        0 and the engine's own process list (`docker top`, read on the host) must show
        nothing but the keep-alive, or the agent kept processes alive: `AgentCaused`."""
        self._check_open()
        with self._lock:
            self._shell.close()
            # Builtins only but `sleep` (a fork bomb may leave no pid to fork one: the loop
            # then spins); from `/`, which the agent cannot remove.
            script = ("i=0; while [ $i -lt 100 ]; do i=$((i+1)); kill -9 -1 2>/dev/null; "
                      "n=0; for p in /proc/[0-9]*; do n=$((n+1)); done; "
                      "[ $n -le 3 ] && exit 0; sleep 0.05 2>/dev/null; done; exit 1")
            try:
                exec_id = self._api.exec_create(self.id, ["sh", "-c", script], user="0:0",
                                                privileged=False, workdir="/")["Id"]
                self._api.exec_start(exec_id)
                code = self._api.exec_inspect(exec_id).get("ExitCode")
            except docker.errors.NotFound as exc:
                raise death(self._api, self.id) from exc
            except docker.errors.DockerException as exc:
                self._ensure_running()
                raise SandboxError(f"cannot stop processes in {self.id[:12]}: {exc}") from exc
            left = self._processes_left()
            if code != 0 or left > 0:
                raise AgentCaused(
                    f"the agent's processes could not be stopped in {self.id[:12]} (kill loop "
                    f"exit code {code}, {left} process(es) besides the keep-alive): a "
                    f"replaced /bin/sh or processes that outlive SIGKILL")

    def _processes_left(self) -> int:
        """Processes besides the keep-alive and its sleep, as the engine lists them (0 when
        the engine cannot list them, as some runtimes cannot: the exit code decides)."""
        try:
            listed = self._api.top(self.id).get("Processes") or []
        except docker.errors.DockerException:
            return 0
        alive = [row for row in listed if not any("<defunct>" in str(c) for c in row)]
        return max(0, len(alive) - 2)

    def changes(self) -> list[FileChange]:
        """Paths that differ from the image, as the engine sees them (`docker diff`).

        Streamed with a cap (`CHANGES_LIMIT` bytes of JSON): an agent that made a million
        files gets FileTooLarge (AgentCaused), the host never holds the whole list."""
        self._check_open()
        try:
            res = self._api._get(self._api._url("/containers/{0}/changes", self.id), stream=True)
            with res:
                self._api._raise_for_status(res)
                body = bytearray()
                for chunk in res.raw.stream(1 << 16, decode_content=True):
                    body += chunk
                    if len(body) > CHANGES_LIMIT:
                        raise FileTooLarge("the container's change list", CHANGES_LIMIT)
            raw = json.loads(bytes(body) or b"null") or []
        except docker.errors.NotFound as exc:
            raise ContainerDied(f"container {self.id[:12]} is gone") from exc
        except (docker.errors.DockerException, ValueError) as exc:
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
        """The engine's view of the container (`State`: Running, OOMKilled, ExitCode), and
        `KilledFromOutside`: a stopped container the engine was asked to kill (`docker
        kill`/`stop`/`rm -f`, an operator, a node drain) did not stop by the agent's doing."""
        try:
            self._container.reload()
        except docker.errors.NotFound:
            return {"Running": False, "Removed": True}
        except docker.errors.DockerException as exc:
            raise SandboxError(f"Docker engine unreachable: {exc}") from exc
        state = dict(self._container.attrs.get("State", {}))
        if not state.get("Running", True):
            state["KilledFromOutside"] = self._killed_by_engine()
        return state

    def _killed_by_engine(self) -> bool:
        """Whether the engine's event log holds a `kill` of this container since it was
        created (signals the agent sends from inside are not engine events)."""
        try:
            events = self._api.events(since=self._created_at, until=int(time.time()) + 1,
                                      filters={"container": self.id, "event": "kill"},
                                      decode=True)
            return any(True for _ in events)
        except docker.errors.DockerException:
            return False

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
        finally:
            if self._on_close is not None:
                self._on_close(self)

    def __enter__(self) -> Self:
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
            raise death(self._api, self.id)

    def _put_archive(self, path: str, data: bytes) -> None:
        self._ensure_running()
        try:
            self._api.put_archive(self.id, path, data)
        except docker.errors.APIError as exc:
            self._ensure_running()
            raise SandboxError(f"cannot copy into {self.id[:12]}: {exc}") from exc

    def _archive_call(self, fn: Any, path: str, *args: Any, **kwargs: Any) -> Any:
        self._ensure_running()
        try:
            return fn(self._api, self.id, path, *args, **kwargs)
        except docker.errors.APIError as exc:
            self._ensure_running()
            raise SandboxError(f"cannot copy from {self.id[:12]}: {exc}") from exc
        except (OSError, tarfile.TarError) as exc:
            if isinstance(exc, (FileNotFoundError, IsADirectoryError)):
                raise
            self._ensure_running()
            raise SandboxError(f"cannot copy from {self.id[:12]}: {exc}") from exc
