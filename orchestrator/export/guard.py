"""Where an export may be written: never over the store, never over a file the user made.

An `--out` that already exists is written over only when it is an earlier export of the
same format (each exporter `recognizes` its own files: a Parquet schema mark, a JSON first
line of its shape, a torch batch) or is empty, or with `force`. The store itself (the
same file by any path: relative, through a symlink, a hard link, or its SQLite journal
files) is refused even with `force`.
"""

from __future__ import annotations

import os
from pathlib import Path

from orchestrator.errors import ConfigError
from orchestrator.export.base import Exporter


def store_files(url: str) -> list[Path]:
    """The files of a SQLite store (the database and its journals); [] for servers."""
    from sqlalchemy.engine import make_url

    try:
        parsed = make_url(url)
    except Exception:  # noqa: BLE001 — not a URL we can read: nothing to protect by path
        return []
    if not parsed.drivername.startswith("sqlite") or parsed.database in (None, "", ":memory:"):
        return []
    db = Path(parsed.database)
    return [db, *(db.with_name(db.name + s) for s in ("-wal", "-shm", "-journal"))]


def _same_file(a: Path, b: Path) -> bool:
    try:
        if a.resolve() == b.resolve():
            return True
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def check_out(out: Path, exporter: Exporter, *, store_url: str, force: bool = False) -> None:
    """Raise ConfigError unless writing `exporter`'s file at `out` loses nothing."""
    for path in store_files(store_url):
        if _same_file(out, path):
            raise ConfigError(f"--out {out} is the store itself ({store_url})",
                              f"choose another file, e.g. --out run{exporter.suffix}")
    if out.is_dir():
        raise ConfigError(f"--out {out} is a folder",
                          f"give a file path, e.g. --out {out / ('run' + exporter.suffix)}")
    if out.exists() or out.is_symlink():
        if not out.is_file():
            raise ConfigError(f"--out {out} exists and is not a regular file",
                              "choose another path")
        if not force and out.stat().st_size > 0 and not exporter.recognizes(out):
            raise ConfigError(
                f"--out {out} exists and is not an earlier {exporter.name} export",
                "choose another path, or pass --force to replace it")
        if not os.access(out, os.W_OK):
            raise ConfigError(f"--out {out} is read-only", "choose another path")
    parent = _existing_parent(out)
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ConfigError(f"cannot write into {parent} (read-only or not yours)",
                          "choose another --out")


def _existing_parent(out: Path) -> Path:
    parent = out.absolute().parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    return parent
