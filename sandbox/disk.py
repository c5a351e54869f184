"""A disk cap for a container's writable layer that works on overlay2 over ext4.

Docker caps the writable layer (`--storage-opt size`) only on overlay2 over XFS with
project quotas; on ext4, the common case (this machine included), the engine refuses it
and an agent can fill the host's disk from anywhere in `/` in seconds. Here, between
`create` and `start`, the container's layer directory (the one holding its overlay
`diff` and `work`) gets a filesystem of its own: a sparse file of the capped size,
formatted ext4 (no journal) and loop-mounted over that directory. Every write of the
container, to any path, lands on that filesystem, so writing past the cap fails with
ENOSPC inside the container and the host's disk keeps its free space; `df /` in the
container shows the cap, not the host's disk.

The backing file is unlinked as soon as it is mounted: the kernel frees it when the
container is removed (the engine unmounts the layer directory itself, whoever removes
the container: `close()`, `docker rm -f`, gc), so nothing is left to clean up.

Needs: root on the engine's host, the engine's root directory visible here (a local
socket), overlay2, `mkfs.ext4`, loop devices. Where any is missing, `LoopDisk.available`
is False with the reason and the backend falls back to `storage_opt` (XFS pquota) or
runs uncapped (`Sandbox.disk_limited` False). Start-up cost: about 40 ms per sandbox
(benchmarks/results/sandbox.md, "disk cap").
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import uuid
from pathlib import Path
from typing import Any

from sandbox.errors import SandboxError

DISK_DIR = Path(os.environ.get("ENVFARM_DISK_DIR", "/var/lib/envfarm/disks"))


class LoopDisk:
    """Caps containers' writable layers on one engine (see the module docstring)."""

    _probe_lock = threading.Lock()
    driver = "overlay2"
    """The engine's storage driver this works on, also its folder under the engine's root."""
    default_root = "/var/lib/docker"

    def __init__(self, client: Any) -> None:
        self.client = client
        self._available: bool | None = None
        self.reason = ""

    @property
    def available(self) -> bool:
        """Whether this engine's layers can be capped from here (probed once)."""
        if self._available is None:
            with self._probe_lock:
                if self._available is None:
                    self.reason = self._probe()
                    self._available = not self.reason
        return bool(self._available)

    def attach(self, container: Any, size_mb: int) -> None:
        """Give the created (not yet started) container a `size_mb` writable layer.

        Raises SandboxError when the mount fails (the caller removes the container)."""
        data = (container.attrs.get("GraphDriver") or {}).get("Data") or {}
        upper = data.get("UpperDir")
        if not upper:
            raise SandboxError(f"container {container.id[:12]} has no overlay2 UpperDir")
        layer = Path(upper).parent
        keep = {name: (layer / name).read_bytes() for name in ("link", "lower")
                if (layer / name).is_file()}
        diff_stat = (layer / "diff").stat()
        DISK_DIR.mkdir(parents=True, exist_ok=True)
        image = DISK_DIR / f"{container.id[:16]}-{uuid.uuid4().hex[:8]}.img"
        try:
            with image.open("wb") as handle:
                handle.truncate(size_mb << 20)
            _run(["mkfs.ext4", "-q", "-F", "-m", "0", "-O", "^has_journal",
                  "-E", "lazy_itable_init=1,nodiscard", "-L", "envfarm-disk", str(image)])
            _run(["mount", "-o", "loop,nosuid,nodev", str(image), str(layer)])
        except SandboxError:
            image.unlink(missing_ok=True)
            raise
        image.unlink()  # the loop device holds it; freed when the layer is unmounted
        os.chmod(layer, 0o710)
        shutil.rmtree(layer / "lost+found", ignore_errors=True)
        for name, content in keep.items():
            (layer / name).write_bytes(content)
        (layer / "diff").mkdir(mode=0o755)
        os.chown(layer / "diff", diff_stat.st_uid, diff_stat.st_gid)
        os.chmod(layer / "diff", diff_stat.st_mode & 0o7777)
        (layer / "work").mkdir(mode=0o700)

    # -- internals -------------------------------------------------------------
    def _probe(self) -> str:
        """Empty when usable, else why not."""
        if os.geteuid() != 0:
            return "not root"
        for tool in ("mkfs.ext4", "mount"):
            if shutil.which(tool) is None:
                return f"{tool} missing"
        if not Path("/dev/loop-control").exists():
            return "no loop devices (/dev/loop-control)"
        base_url = str(getattr(self.client.api, "base_url", ""))
        if not base_url.startswith(("http+docker://localhost", "http+docker://localunixsocket")):
            return f"engine not local ({base_url})"
        try:
            info = self.client.info()
        except Exception as exc:  # noqa: BLE001 — any failure: not available
            return f"engine info: {exc}"
        if info.get("Driver") != self.driver:
            return f"storage driver {info.get('Driver')!r} is not {self.driver}"
        root = Path(info.get("DockerRootDir") or self.default_root) / self.driver
        if not root.is_dir():
            return f"{root} not visible here (engine in another mount namespace or host)"
        return ""


def _run(argv: list[str]) -> None:
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise SandboxError(f"disk cap: {argv[0]} failed: {exc}") from exc
    if proc.returncode != 0:
        raise SandboxError(f"disk cap: {' '.join(argv[:3])} failed: {proc.stderr.strip()[-300:]}")
