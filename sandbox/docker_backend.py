"""Sandboxes as Docker containers, through the Docker Engine API (the SDK, not the CLI).

Lifecycle (where it runs) is `DockerBackend.start`; operations (what runs) are the
`DockerSandbox` methods (`sandbox.docker_sandbox`). Every container carries labels so
that `sandbox.gc` can find what a crashed run left behind. The host is bounded: the
writable layer is capped (`sandbox.disk`), a networked sandbox gets a network of its own
with no route home (`sandbox.netiso`), reads out are streamed with caps
(`sandbox.streams`). Warm pools wrap any backend from outside (`sandbox.pool`).
"""

from __future__ import annotations

import time
from typing import Any

import docker
import docker.errors

from sandbox.disk import LoopDisk
from sandbox.docker_sandbox import DockerSandbox
from sandbox.errors import SandboxError
from sandbox.netiso import EpisodeNetworks
from sandbox.run_context import (  # noqa: F401  (re-exported: older imports)
    LABEL_CREATED,
    LABEL_IMAGE,
    LABEL_OWNER,
    LABEL_RUN,
    current_run,
    owner_id,
    run_label,
)
from sandbox.types import Limits

__all__ = ["KEEPALIVE", "DockerBackend", "DockerSandbox", "connect"]

KEEPALIVE = ("trap '' HUP INT QUIT TERM USR1 USR2; "
             "while :; do sleep 86400 & wait $! 2>/dev/null; done")
"""PID 1 of every sandbox: a shell that reaps orphans and restarts its sleep. The kernel
never delivers a signal to a namespace's PID 1 from inside unless it handles it, so
`kill -9 -1` or `kill -9 1` by the agent cannot end the container (with Docker's
`--init`, the agent could kill init's only child and the container with it)."""


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


class DockerBackend:
    """Starts sandboxes on one Docker engine.

    Args:
        client: a docker client; by default one from the environment.
        run: the `envfarm.run` label of every container started here (for gc by run);
            default: the rollout run of this thread (`current_run`), else `$ENVFARM_RUN`.
        isolate_network: give each networked sandbox its own firewalled network (default);
            False puts it on the engine's default bridge (only for trusted code).
    """

    name = "docker"
    runtime: str | None = None
    """The OCI runtime (None: the engine's default, runc); `GVisorBackend` sets "runsc"."""
    _storage_opt_supported: bool | None = None
    _disks: dict[int, LoopDisk] = {}

    def __init__(self, client: docker.DockerClient | None = None, *,
                 run: str | None = None, isolate_network: bool = True) -> None:
        self.client = client or connect()
        self.run = run_label(run)
        self.isolate_network = isolate_network
        self.networks = EpisodeNetworks(self.client)
        self.disk = DockerBackend._disks.setdefault(id(self.client), LoopDisk(self.client))

    @property
    def disk_cap_available(self) -> bool:
        """Whether `Limits.disk_mb` is enforced for sandboxes started here."""
        return self.disk.available or DockerBackend._storage_opt_supported is True

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
              use_pool: bool = True, **options: Any) -> DockerSandbox:
        """Start a container from `image` under `limits` and open its shell.

        `use_pool` is for wrappers (`sandbox.pool.PooledBackend`); a bare backend always
        starts a new container. Raises SandboxError when the engine fails or the image is
        missing (build first)."""
        limits = limits or Limits()
        runtime = self._runtime_for(limits)
        all_labels = {
            LABEL_RUN: self.run,
            LABEL_OWNER: owner_id(),
            LABEL_CREATED: str(int(time.time())),
            LABEL_IMAGE: image,
            **(labels or {}),
        }
        network = None
        if limits.network and self.isolate_network:
            network = self.networks.create(self.run, all_labels[LABEL_OWNER])
        kwargs: dict[str, Any] = dict(
            command=["sh", "-c", KEEPALIVE],
            detach=True,
            init=False,
            stop_signal="SIGKILL",
            network_mode=network or ("bridge" if limits.network else "none"),
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
        if runtime:
            kwargs["runtime"] = runtime
        try:
            container, disk_limited = self._create(image, kwargs, limits)
        except BaseException:
            if network:
                self.networks.remove(network)
            raise
        sandbox = DockerSandbox(self.client, container, limits, env=env, workdir=workdir,
                                disk_limited=disk_limited, network=network,
                                on_close=self._closed)
        try:
            self._call(container.start)
            container.reload()
            if start_shell:
                sandbox.start_shell()
        except BaseException:
            sandbox.close()
            raise
        return sandbox

    # -- internals -------------------------------------------------------------
    def _runtime_for(self, limits: Limits) -> str | None:
        return self.runtime

    def _closed(self, sandbox: DockerSandbox) -> None:
        if sandbox.network:
            self.networks.remove(sandbox.network)

    def _create(self, image: str, kwargs: dict[str, Any], limits: Limits) -> tuple[Any, bool]:
        """Create the container (not started) with its disk cap; returns (container,
        capped). The loop-mounted layer is preferred; `storage_opt` where it is not."""
        use_loop = bool(limits.disk_mb) and self.disk.available
        if limits.disk_mb and not use_loop and DockerBackend._storage_opt_supported is not False:
            kwargs = {**kwargs, "storage_opt": {"size": f"{limits.disk_mb}m"}}
        try:
            container = self._call(self.client.containers.create, image, **kwargs)
        except docker.errors.APIError as exc:
            if "storage_opt" in kwargs and ("storage-opt" in str(exc)
                                            or "storage opt" in str(exc).lower()):
                DockerBackend._storage_opt_supported = False
                kwargs = {k: v for k, v in kwargs.items() if k != "storage_opt"}
                return self._call(self.client.containers.create, image, **kwargs), False
            raise
        if "storage_opt" in kwargs:
            DockerBackend._storage_opt_supported = True
            return container, True
        if use_loop:
            try:
                self.disk.attach(container, int(limits.disk_mb or 0))
            except BaseException:
                container.remove(force=True)
                raise
        return container, use_loop

    def _call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except docker.errors.ImageNotFound as exc:
            raise SandboxError(f"image {args[0] if args else ''!r} is not built here; "
                               "build it first") from exc
        except docker.errors.APIError as exc:
            if "storage" in str(exc).lower() and "opt" in str(exc).lower():
                raise
            raise SandboxError(f"cannot start a container: {exc}") from exc
        except docker.errors.DockerException as exc:
            raise SandboxError(f"Docker engine unreachable: {exc}") from exc
