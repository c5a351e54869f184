"""Images for terminal tasks: the task's own Dockerfile, built by content through `sandbox`.

A `FROM` image that is neither local nor pullable is replaced by the *terminal base*
(the envfarm base plus what Terminal-Bench images carry and its tests expect: pytest
8.4.1, tmux, curl, openssl, an offline `uv` stand-in that maps `uv add` to
`pip install` and `uv run` to the command itself, and no apt retries). Every change is reported in the
spec's notes. Ubuntu-only lines (the deadsnakes PPA) are dropped, as the base is
Debian.

The build context holds only what the Dockerfile's COPY/ADD lines name, so tasks
that share a Dockerfile share one image (100 evoeval tasks, one build), and tests
and solutions never enter the image.
"""

from __future__ import annotations

import re
import shutil
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path

import docker.errors

import docker
from envs.terminal.task import TerminalTask
from sandbox import ImageBuilder, ImageSpec
from sandbox.errors import ImageBuildError
from sandbox.images import image_available

UV_STANDIN = """#!/bin/sh
# envfarm: offline stand-in for `uv` in Terminal-Bench test scripts.
# uv add PKG.. -> pip install PKG.. ; uv run CMD.. -> CMD (pytest/python via python3) ; rest: no-op
cmd="$1"; [ $# -gt 0 ] && shift
case "$cmd" in
  add) exec python3 -m pip install -q "$@" ;;
  pip) [ "$1" = install ] && shift; exec python3 -m pip install -q "$@" ;;
  run)
    case "$1" in
      pytest) shift; exec python3 -m pytest "$@" ;;
      python|python3) shift; exec python3 "$@" ;;
      *) exec "$@" ;;
    esac ;;
  *) exit 0 ;;
esac
"""

TERMINAL_BASE = ImageSpec(
    name="terminal-base",
    # Sandboxes have no network: apt's default 3 retries with backoff cost 7 s per
    # `apt-get update` in every Terminal-Bench test run; failing at once costs 0.2 s.
    files={"/usr/local/bin/uv": UV_STANDIN,
           "/etc/apt/apt.conf.d/80envfarm-no-retries": 'Acquire::Retries "0";\n'},
    steps=[
        "chmod 755 /usr/local/bin/uv",
        ("apt-get update && apt-get install -y --no-install-recommends tmux curl openssl "
         "&& rm -rf /var/lib/apt/lists/*"),
        "python3 -m pip install --no-cache-dir pytest==8.4.1",
    ],
)

UBUNTU_STANDIN = TERMINAL_BASE.model_copy(update={
    "name": "terminal-base-ubuntu",
    # Ubuntu images have no `python` alias and Harbor Dockerfiles create it (`ln -s`),
    # which fails on a base that has one.
    "steps": [*TERMINAL_BASE.steps,
              "(apt-get remove -y python-is-python3 || true) && rm -f /usr/bin/python"],
})

_FROM = re.compile(r"^\s*FROM\s+(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?", re.IGNORECASE | re.MULTILINE)
_COPY = re.compile(r"^\s*(?:COPY|ADD)\s+(.+)$", re.IGNORECASE | re.MULTILINE)
_UBUNTU_ONLY = re.compile(r"deadsnakes|add-apt-repository", re.IGNORECASE)

def from_map_for(dockerfile: str, client: docker.DockerClient, standin: Callable[[str], str],
                 overrides: dict[str, str] | None = None) -> dict[str, str]:
    """Map every FROM image that is not a stage, not local and not pullable to `standin(image)`."""
    overrides = overrides or {}
    stages: set[str] = set()
    mapping: dict[str, str] = {}
    for image, alias in _FROM.findall(dockerfile):
        if image in overrides:
            mapping[image] = overrides[image]
        elif (image.lower() not in stages and image != "scratch" and not image.startswith("$")
              and not image_available(image, client)):
            mapping[image] = standin(image)
        if alias:
            stages.add(alias.lower())
    return mapping


def _drop_ubuntu_only(dockerfile: str, notes: list[str]) -> str:
    """Drop RUN instructions (with their continuation lines) that only work on Ubuntu."""
    out: list[str] = []
    lines = dockerfile.splitlines()
    i = 0
    while i < len(lines):
        block = [lines[i]]
        while block[-1].rstrip().endswith("\\") and i + 1 < len(lines):
            i += 1
            block.append(lines[i])
        text = "\n".join(block)
        if text.lstrip().upper().startswith("RUN") and _UBUNTU_ONLY.search(text):
            notes.append("dropped an Ubuntu-only RUN (deadsnakes PPA); the base is Debian")
        else:
            out.extend(block)
        i += 1
    return "\n".join(out) + "\n"


def _stage_context(task: TerminalTask, dockerfile: str, dest: Path) -> None:
    """Copy into `dest` only the sources that COPY/ADD name (relative to the context)."""
    src_root = Path(task.context_dir)
    for args in _COPY.findall(dockerfile):
        parts = [p for p in args.split() if not p.startswith("--")]
        if parts and parts[0].startswith("["):
            continue  # JSON form is rare in task Dockerfiles; fall back below
        for source in parts[:-1]:
            src = (src_root / source).resolve()
            if not src.is_relative_to(src_root.resolve()) or not src.exists():
                continue  # the build will report the missing source itself
            target = dest / src.relative_to(src_root.resolve())
            target.parent.mkdir(parents=True, exist_ok=True)
            # links are copied as links, never followed (load_task refused any leaving it)
            if src.is_dir():
                shutil.copytree(src, target, symlinks=True, dirs_exist_ok=True)
            else:
                shutil.copy2(src, target, follow_symlinks=False)
    if any(a.split()[0].startswith("[") for a in _COPY.findall(dockerfile) if a.split()):
        shutil.copytree(src_root, dest, symlinks=True, dirs_exist_ok=True)
    # Sources may be read-only (a shared data folder); COPY keeps modes, and sandboxes
    # drop CAP_DAC_OVERRIDE, so root could not write the agent's own workspace.
    for path in [dest, *dest.rglob("*")]:
        if not path.is_symlink():
            path.chmod(path.stat().st_mode | 0o200)


class TerminalImages:
    """Builds (once, by content) the image of each terminal task; thread-safe."""

    def __init__(self, builder: ImageBuilder | None = None,
                 from_map: dict[str, str] | None = None) -> None:
        self.builder = builder or ImageBuilder()
        self.from_map = dict(from_map or {})
        self._standins: dict[str, str] = {}
        self._lock = threading.Lock()

    def standin(self, image: str) -> str:
        """Tag of the local image that stands in for an unpullable `image` (built once)."""
        spec = UBUNTU_STANDIN if "ubuntu" in image.lower() else TERMINAL_BASE
        with self._lock:
            if spec.name not in self._standins:
                self._standins[spec.name] = self.builder.ensure(spec)
            return self._standins[spec.name]

    def spec_for(self, task: TerminalTask, staging: Path) -> ImageSpec:
        """The task's ImageSpec, its context staged under `staging` (kept until built)."""
        context = Path(task.context_dir)
        original = (context / task.dockerfile).read_text()
        mapping = from_map_for(original, self.builder.client, self.standin, self.from_map)
        spec = ImageSpec.from_dockerfile(_image_name(task), context, task.dockerfile,
                                         from_map=mapping, client=self.builder.client)
        notes = list(spec.notes)
        dockerfile = _drop_ubuntu_only(spec.dockerfile or "", notes)
        _stage_context(task, dockerfile, staging)
        return spec.model_copy(update={"dockerfile": dockerfile, "context_dir": staging,
                                       "notes": notes})

    def ensure(self, task: TerminalTask) -> tuple[str, list[str]]:
        """(image tag, notes on what was changed). Raises ImageBuildError (a TaskError)."""
        with tempfile.TemporaryDirectory(prefix="envfarm-ctx-") as tmp:
            try:
                spec = self.spec_for(task, Path(tmp))
            except OSError as exc:
                raise ImageBuildError(f"cannot read the Dockerfile of {task.id}: {exc}") from exc
            return self.builder.ensure(spec), spec.notes


def _image_name(task: TerminalTask) -> str:
    """One name per Dockerfile family keeps `images list` readable: tb1-evoeval, harbor-…

    Always a valid image name, whatever the folder is called (`jeu de données ü`): names
    that are not one already become a slug plus a hash (`catalogue.ids.safe_image_name`)."""
    from catalogue.ids import safe_image_name

    if task.format == "tb1":
        return safe_image_name("terminal-tb1-" + Path(task.path).parent.name.lower())
    return safe_image_name("terminal-" + task.id.replace("/", "-").lower())
