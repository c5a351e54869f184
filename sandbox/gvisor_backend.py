"""gVisor as an isolation tier for untrusted code: Docker with the `runsc` runtime.

The agent's system calls go to gVisor's user-space kernel instead of the host's, so a
kernel exploit from inside the sandbox meets gVisor, not Linux. `make setup` installs
Debian's `runsc` and registers it with the engine (scripts/setup.d/gvisor.sh, ptrace
platform, `--network=none`). Choose it per env or run with `backend=make_backend("gvisor")`,
`ENVFARM_BACKEND=gvisor` or `envfarm rollout --backend gvisor`.

One filesystem view. Verifiers read the agent's work from outside (`docker diff`, the
archive API, `docker commit`), so the host and the sandbox must see the same files. The
runtime is registered with `--overlay2=none --file-access=shared`: writes go through
gVisor's gofer to the container's own layer (with gVisor's in-memory overlay the host
saw none of them: a verifier would grade an empty tree), and gVisor revalidates what the
host changed. gVisor mounts a private tmpfs on `/tmp` when the image's `/tmp` is empty,
invisible from the host; each container gets a marker file there before it starts, so
`/tmp` stays the layer's. The disk cap is Docker's: the loop-mounted layer.

Networked sandboxes stay on runc: gVisor's own network stack cannot start in this VM's
root network namespace (`cannot run with network enabled in root network namespace`),
and the registered runtime is network-less; `network_fallbacks` counts them. Cost, measured
side by side: benchmarks/results/gvisor.md.
"""

from __future__ import annotations

import io
import tarfile
from typing import Any

from sandbox.docker_backend import DockerBackend
from sandbox.errors import SandboxError
from sandbox.types import Limits

RUNTIME = "runsc"
REQUIRED_ARGS = ("--overlay2=none", "--file-access=shared")
"""Runtime arguments without which the host's view of the sandbox's files is not its own."""
TMP_MARKER = "tmp/.envfarm-keep"


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
        args = (runtimes[RUNTIME] or {}).get("runtimeArgs") or []
        if any(a not in args for a in REQUIRED_ARGS):
            raise SandboxError(f"the 'runsc' runtime is registered with {args}, without "
                               f"{' '.join(REQUIRED_ARGS)}: verifiers would not see the "
                               "sandbox's files; run `make setup` (scripts/setup.d/gvisor.sh)")
        self.network_fallbacks = 0

    def _runtime_for(self, limits: Limits) -> str | None:
        if limits.network:
            self.network_fallbacks += 1
            return None
        return RUNTIME

    def _create(self, image: str, kwargs: dict[str, Any], limits: Limits) -> tuple[Any, bool]:
        container, capped = super()._create(image, kwargs, limits)
        if kwargs.get("runtime") == RUNTIME:
            try:
                self._call(self.client.api.put_archive, container.id, "/", _tmp_marker())
            except BaseException:
                container.remove(force=True)
                raise
        return container, capped


def _tmp_marker() -> bytes:
    """A tar holding an empty `/tmp/.envfarm-keep` (mode 1777 kept on /tmp)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo(TMP_MARKER)
        info.mode = 0o644
        tar.addfile(info)
    return buf.getvalue()
