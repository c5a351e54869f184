"""Version-matched interpreters: the Python layer under each environment image.

Layers are shared: root (a Debian release) -> Python layer (`envfarm/python<X.Y>`: the
interpreter, pip, build tools) -> repository version (`swe_tasks.environment`). Every
repository version that asks for the same Python builds on the same Python layer.

Providers, tried in the order of `$ENVFARM_PYTHON_PROVIDERS` (default `debian,uv`):
- `debian`: the Python of a Debian release, its root bootstrapped offline-capable with
  mmdebstrap from Debian's archive (bullseye 3.9, bookworm 3.11 = the envfarm base,
  trixie 3.13). Needs root and mmdebstrap (`make setup` installs it).
- `uv`: a uv-managed CPython build (`uv python install X.Y`) on the envfarm base: any
  version uv knows, where the build can reach python-build-standalone's downloads (or
  `$UV_PYTHON_INSTALL_MIRROR`, passed to the build).
A version no provider gives raises `PythonUnavailable` (a TaskError: the task gets
status task_error), naming what each provider lacked and the fix. Never a silent
fallback to another version: the base image's Python can change a test's outcome.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading

import docker
import docker.errors

from sandbox import ImageBuilder, ImageBuildError, ImageSpec, SandboxError, TaskError, base_image
from sandbox.bootstrap import BASE_ENV, BASE_STEPS, BOOTSTRAP_PACKAGES

DEBIAN_RELEASES: dict[str, str] = {"3.9": "bullseye", "3.11": "bookworm", "3.13": "trixie"}
"""Python minor version -> the Debian release whose python3 it is."""
BASE_PYTHON = "3.11"
"""The Python of the envfarm base image (bookworm, or python:3.11-slim-bookworm)."""
PROVIDERS = ("debian", "uv")
_BUILD_TOOLS = (
    "apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends"
    " build-essential pkg-config {dev} && rm -rf /var/lib/apt/lists/*"
)
# Debian's python3-dev only where python3 is Debian's (not python:3.11-slim's /usr/local).
_DEV = '$([ "$(command -v python3)" = /usr/bin/python3 ] && echo python3-dev python3-venv)'
# --ignore-installed: Debian's own pip/wheel (trixie) have no RECORD and cannot be
# uninstalled; the fresh ones go to /usr/local, ahead on sys.path.
_PIP = "python3 -m pip install --ignore-installed --upgrade 'pip<25.1' 'setuptools<70' wheel"
_CHECK = ("python -c 'import sys; v = \"%d.%d\" % sys.version_info[:2]; "
          "assert v == \"{v}\", f\"python is {{v}}, not {v}\"'")


class PythonUnavailable(TaskError):
    """No provider gives the Python version a task asks for (status task_error)."""

    def __init__(self, message: str, log_tail: str = "") -> None:
        super().__init__(message)
        self.log_tail = log_tail


def providers() -> list[str]:
    """The providers to try, in order (`$ENVFARM_PYTHON_PROVIDERS`, comma-separated)."""
    raw = os.environ.get("ENVFARM_PYTHON_PROVIDERS", ",".join(PROVIDERS))
    chosen = [p.strip() for p in raw.split(",") if p.strip()]
    unknown = [p for p in chosen if p not in PROVIDERS]
    if unknown:
        raise TaskError(f"ENVFARM_PYTHON_PROVIDERS names unknown providers {unknown}; "
                        f"use some of {', '.join(PROVIDERS)}")
    return chosen


def python_layer_spec(version: str, provider: str, root: str) -> ImageSpec:
    """The ImageSpec of the Python layer of `version` from `provider`, FROM `root`."""
    check = _CHECK.format(v=version)
    if provider == "debian":
        steps = ([] if version == BASE_PYTHON else list(BASE_STEPS)) + [
            _BUILD_TOOLS.format(dev=_DEV), _PIP, check]
        env = dict(BASE_ENV)
    else:
        mirror = os.environ.get("UV_PYTHON_INSTALL_MIRROR")
        prefix = f"UV_PYTHON_INSTALL_MIRROR={mirror} " if mirror else ""
        steps = [_BUILD_TOOLS.format(dev=""), "python3 -m pip install uv",
                 f"{prefix}uv python install {version}",
                 f"uv venv --seed --python {version} /opt/envfarm/python",
                 "/opt/envfarm/python/bin/" + _PIP, check]
        env = {**BASE_ENV, "VIRTUAL_ENV": "/opt/envfarm/python",
               "PATH": "/opt/envfarm/python/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:"
                       "/usr/bin:/sbin:/bin"}
    name = f"python{version}" + ("" if provider == "debian" else f"-{provider}")
    return ImageSpec(name=name, base=root, steps=steps, env=env)


def ensure_python(version: str, builder: ImageBuilder | None = None) -> str:
    """The tag of the Python layer for `version`, built on first use.

    Raises PythonUnavailable (a TaskError) when no provider gives it, SandboxError when
    the engine fails. A failed provider is not tried again in this process.
    """
    builder = builder or ImageBuilder()
    with _lock_for(version):
        return _ensure(version, builder)


def _ensure(version: str, builder: ImageBuilder) -> str:
    missing: list[str] = []
    tail = ""
    for provider in providers():
        key = (provider, version)
        if key in _failed:
            missing.append(_failed[key][0])
            tail = tail or _failed[key][1]
            continue
        try:
            return _build(version, provider, builder)
        except _Lacks as e:
            _failed[key] = (str(e), "")
            missing.append(str(e))
        except ImageBuildError as e:
            last = log_tail(e)
            why = f"{provider}: the Python {version} layer did not build ({_last_error(last)})"
            _failed[key] = (why, last)
            missing.append(why)
            tail = tail or last
    raise PythonUnavailable(
        f"Python {version} cannot be had here: {'; '.join(missing)}. Fix: on a machine whose "
        "image builds reach python-build-standalone's downloads, uv provides it (or set "
        "UV_PYTHON_INSTALL_MIRROR); or give the task a spec whose Python is one of "
        f"{', '.join(DEBIAN_RELEASES)}", tail)


class _Lacks(Exception):
    """A provider that does not have a version at all (no build tried)."""


def _build(version: str, provider: str, builder: ImageBuilder) -> str:
    if provider == "debian":
        release = DEBIAN_RELEASES.get(version)
        if release is None:
            have = ", ".join(f"{r} {v}" for v, r in DEBIAN_RELEASES.items())
            raise _Lacks(f"debian: no Debian release in reach ships Python {version} ({have})")
        try:
            root = base_image(builder.client) if version == BASE_PYTHON else \
                debian_root(builder.client, release)
        except SandboxError as e:
            raise _Lacks(f"debian: {e}") from None
        return builder.ensure(python_layer_spec(version, "debian", root))
    return builder.ensure(python_layer_spec(version, "uv", base_image(builder.client)))


def log_tail(error: ImageBuildError, lines: int = 30) -> str:
    """The last `lines` lines of a failed build's log (its message if it kept no log)."""
    return "\n".join((error.log or str(error)).splitlines()[-lines:])


def _last_error(log: str) -> str:
    lines = [ln for ln in log.splitlines() if ln.strip()]
    for ln in reversed(lines):
        low = ln.lower()
        if "error" in low or "failed" in low:
            return ln.strip()[:240]
    return lines[-1].strip()[:240] if lines else "no log"


def debian_root(client: docker.DockerClient, release: str) -> str:
    """`envfarm/bootstrap:<release>`: a minimal Debian root with python3, pip and git,
    bootstrapped with mmdebstrap the first time (about 20 s). Raises SandboxError if it
    cannot be (not root, no mmdebstrap, archive unreachable)."""
    tag = f"envfarm/bootstrap:{release}"
    with _lock_for(tag):
        try:
            client.images.get(tag)
            return tag
        except docker.errors.ImageNotFound:
            pass
        if shutil.which("mmdebstrap") is None or os.geteuid() != 0:
            raise SandboxError(f"the Debian {release} root cannot be bootstrapped here: run as "
                               "root with mmdebstrap installed (`make setup` does both)")
        proc = subprocess.Popen(
            ["mmdebstrap", "--quiet", "--variant=minbase", f"--include={BOOTSTRAP_PACKAGES}",
             release, "-"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        repo, _, name = tag.partition(":")
        try:
            client.api.import_image_from_stream(
                proc.stdout, repository=repo, tag=name,
                changes=["ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                         'CMD ["bash"]'])
        finally:
            _, err = proc.communicate()
        try:
            client.images.get(tag)
        except docker.errors.ImageNotFound:
            raise SandboxError(f"mmdebstrap {release} failed ({proc.returncode}): "
                               f"{err.decode(errors='replace')[-1500:]}") from None
        return tag


_failed: dict[tuple[str, str], tuple[str, str]] = {}
_locks: dict[str, threading.Lock] = {}
_guard = threading.Lock()


def _lock_for(key: str) -> threading.Lock:
    with _guard:
        return _locks.setdefault(key, threading.Lock())
