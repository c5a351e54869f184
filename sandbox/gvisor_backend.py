"""gVisor as an isolation tier for untrusted code: Docker with the `runsc` runtime.

The agent's system calls go to gVisor's user-space kernel instead of the host's, so a
kernel exploit from inside the sandbox meets gVisor, not Linux. `make setup` installs
Debian's `runsc` and registers it with the engine (scripts/setup.d/gvisor.sh, ptrace
platform, `--network=none`). Choose it per env or run with `backend=make_backend("gvisor")`,
`ENVFARM_BACKEND=gvisor` or `envfarm rollout --backend gvisor`.

Disk: the runtime is registered with `--overlay2=root:memory`: the sandbox's writes live
in its own memory, so its memory cap is its disk cap and the host's disk is untouched.

Networked sandboxes stay on runc: gVisor's own network stack cannot start in this VM's
root network namespace (`cannot run with network enabled in root network namespace`),
and the registered runtime is network-less; `network_fallbacks` counts them. Cost, measured
side by side: benchmarks/results/gvisor.md.
"""

from __future__ import annotations

from typing import Any

from sandbox.docker_backend import DockerBackend
from sandbox.errors import SandboxError
from sandbox.types import Limits

RUNTIME = "runsc"


class GVisorBackend(DockerBackend):
    """Docker sandboxes under gVisor (`runsc`); networked ones under runc."""

    name = "gvisor"
    runtime = RUNTIME

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        runtimes = (self.client.info() or {}).get("Runtimes") or {}
        if RUNTIME not in runtimes:
            raise SandboxError("the Docker engine has no 'runsc' runtime; run `make setup` "
                               "(scripts/setup.d/gvisor.sh registers gVisor) or use the "
                               "docker backend")
        self.network_fallbacks = 0
        self.disk = _MemoryOverlay()  # runsc keeps the writable layer in the sandbox's memory

    def disk_cap_available(self) -> bool:
        return True

    def _runtime_for(self, limits: Limits) -> str | None:
        if limits.network:
            self.network_fallbacks += 1
            return None
        return RUNTIME


class _MemoryOverlay:
    """Under gVisor the disk cap is the memory cap: the runtime is registered with
    `--overlay2=root:memory`, so every write lands in the sandbox's own memory (charged to
    its cgroup, never the host's disk). The loop-mounted layer of `sandbox.disk` is not
    used: runsc does not start on it."""

    available = False
    reason = "gVisor keeps the writable layer in memory (--overlay2=root:memory)"
