"""Host folders into tar archives without ever following a symlink out of the folder.

Task folders come from strangers: a link in one may name any host file (`~/.ssh/id_rsa`,
a secret under /tmp). Archives built here (image build contexts, `upload_dir`) hold a
link as a link, never the bytes it names; a link whose target resolves outside the
folder is refused with a one-line `TaskError` naming it (policy "refuse"), or kept as a
link (policy "link": harmless inside a sandbox, where it names a sandbox path).
Symlinked directories are never walked into, so a link loop is one entry, not 41.
"""

from __future__ import annotations

import hashlib
import os
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

from sandbox.errors import TaskError

EscapePolicy = Literal["refuse", "link"]


def walk(root: Path) -> Iterator[Path]:
    """Every path under `root` (files, dirs, links), sorted, never entering a linked dir."""
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames.sort()
        base = Path(dirpath)
        for name in sorted(dirnames + filenames):
            yield base / name


def escapes(link: Path, root: Path) -> bool:
    """Whether the symlink `link` resolves (or would resolve) outside `root`."""
    target = os.readlink(link)
    resolved = Path(os.path.normpath(link.parent / target)) if not os.path.isabs(target) \
        else Path(os.path.normpath(target))
    try:
        real = resolved.resolve()  # follows further links (a chain out of the folder)
    except (OSError, RuntimeError):  # a loop: refuse like an escape
        return True
    root_real = root.resolve()
    return not (real == root_real or root_real in real.parents)


def check_link(link: Path, root: Path) -> None:
    """Raise TaskError naming `link` when it leaves `root`."""
    if escapes(link, root):
        raise TaskError(f"{link} is a symlink to {os.readlink(link)!r}, outside {root}; "
                        "replace it with the file it names (links never leave a task folder)")


def add_tree(tar: tarfile.TarFile, root: Path, arcname: str,
             policy: EscapePolicy = "refuse") -> None:
    """Add `root` (a directory) and everything under it to `tar` as `arcname/...`.

    Regular files and directories are copied; symlinks stay symlinks (never followed);
    sockets, devices and fifos are skipped. With policy "refuse", a link leaving `root`
    raises TaskError before anything names its target."""
    root = Path(root)
    tar.add(root, arcname=arcname, recursive=False)
    for path in walk(root):
        if path.is_symlink() and policy == "refuse":
            check_link(path, root)
        if not (path.is_symlink() or path.is_dir() or path.is_file()):
            continue
        rel = path.relative_to(root).as_posix()
        name = rel if arcname in ("", ".") else f"{arcname.rstrip('/')}/{rel}"
        tar.add(path, arcname=name, recursive=False)  # lstat: a link is stored as a link


def tree_digest(root: Path, policy: EscapePolicy = "refuse") -> bytes:
    """sha256 over the tree's names, modes, file bytes and link targets (never followed)."""
    h = hashlib.sha256()
    for path in walk(root):
        rel = path.relative_to(root).as_posix()
        if path.is_symlink():
            if policy == "refuse":
                check_link(path, root)
            h.update(f"L\0{rel}\0{os.readlink(path)}\0".encode())
        elif path.is_file():
            mode = path.stat().st_mode & 0o7777
            h.update(f"{rel}\0{mode:o}\0".encode())
            with path.open("rb") as handle:
                h.update(hashlib.file_digest(handle, "sha256").digest())
    return h.digest()
