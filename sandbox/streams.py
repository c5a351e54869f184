"""Bounded, streamed reads from a sandbox into the host.

Everything that leaves a sandbox is written by the agent, who is adversarial: a 500 MB
log, a 150 MB file in the repository, a million small files. Reads here never hold more
than their byte cap in host memory and never read past it from the engine: archives are
requested as a stream, read through a counting wrapper and the connection is closed as
soon as the cap is passed.

Caps (override per call): `READ_LIMIT` for one file (64 MiB), `DOWNLOAD_LIMIT` for a
directory (256 MiB of archive).
"""

from __future__ import annotations

import io
import tarfile
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any, Self

import docker.errors
import docker.utils

from sandbox.errors import FileTooLarge

READ_LIMIT = 64 << 20
DOWNLOAD_LIMIT = 256 << 20
_TAR_SLACK = 64 << 10  # headers and padding around a file's bytes in its archive


class _CountingReader(io.RawIOBase):
    """A raw stream over an iterator of chunks that raises FileTooLarge past `limit`."""

    def __init__(self, chunks: Iterator[bytes], limit: int, path: str) -> None:
        self._chunks, self._limit, self._path = chunks, limit, path
        self._rest = b""
        self.total = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if not self._rest:
            self._rest = next(self._chunks, b"")
            self.total += len(self._rest)
            if self.total > self._limit:
                raise FileTooLarge(self._path, self._limit)
        n = min(len(buffer), len(self._rest))
        buffer[:n] = self._rest[:n]
        self._rest = self._rest[n:]
        return n


class ArchiveStream:
    """One `GET /containers/{id}/archive` response, open as a stream; a context manager
    that closes the connection (unread bytes are never fetched)."""

    def __init__(self, api: Any, container_id: str, path: str) -> None:
        url = api._url("/containers/{0}/archive", container_id)
        self._res = api._get(url, params={"path": path}, stream=True,
                             headers={"Accept-Encoding": "identity"})
        try:
            api._raise_for_status(self._res)
        except BaseException:
            self._res.close()
            raise
        header = self._res.headers.get("x-docker-container-path-stat")
        self.stat: dict[str, Any] = docker.utils.decode_json_header(header) if header else {}

    def chunks(self) -> Iterator[bytes]:
        return self._res.raw.stream(1 << 16, decode_content=False)

    def close(self) -> None:
        self._res.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def is_dir_mode(mode: int) -> bool:
    """Go's os.FileMode directory bit, as the archive API's stat header carries it."""
    return bool(mode & (1 << 31))


def read_file(api: Any, container_id: str, path: str, max_bytes: int | None = None,
              *, truncate: bool = False, _depth: int = 0) -> bytes:
    """The bytes of one file, at most `max_bytes` (default READ_LIMIT) of them.

    Over the cap: FileTooLarge, or with `truncate=True` the first `max_bytes` bytes and a
    marker line `[... envfarm: truncated at N of M bytes ...]`. Raises FileNotFoundError,
    IsADirectoryError; docker errors propagate (the caller maps them)."""
    limit = READ_LIMIT if max_bytes is None else max_bytes
    try:
        archive = ArchiveStream(api, container_id, path)
    except docker.errors.NotFound as exc:
        raise FileNotFoundError(path) from exc
    with archive:
        stat = archive.stat
        target = stat.get("linkTarget") or ""
        # A link inside the sandbox: read what it names there. Only a link's stat has
        # Go's os.ModeSymlink bit (1 << 27); Podman fills linkTarget for every path.
        if target and _depth < 8 and int(stat.get("mode", 0)) & (1 << 27):
            archive.close()
            resolved = str(PurePosixPath(path).parent / target) if not target.startswith("/") \
                else target
            return read_file(api, container_id, resolved, max_bytes, truncate=truncate,
                             _depth=_depth + 1)
        if is_dir_mode(int(stat.get("mode", 0))):
            raise IsADirectoryError(path)
        size = int(stat.get("size", 0))
        if size > limit and not truncate:
            raise FileTooLarge(path, limit, size)
        reader = io.BufferedReader(_CountingReader(archive.chunks(), limit + _TAR_SLACK, path))
        with tarfile.open(fileobj=reader, mode="r|") as tar:
            for member in tar:
                if member.isfile():
                    handle = tar.extractfile(member)
                    data = handle.read(limit) if handle else b""
                    if member.size > limit:
                        data += (f"\n[... envfarm: truncated at {limit} of {member.size} "
                                 "bytes ...]\n").encode()
                    return data
                break
    raise IsADirectoryError(path)


def download_dir(api: Any, container_id: str, src: str, dest: Path,
                 max_bytes: int | None = None) -> None:
    """Extract the sandbox directory `src` into `dest`, streaming, at most `max_bytes`
    (default DOWNLOAD_LIMIT) of archive; over it FileTooLarge (what was extracted stays).
    Members are extracted with tarfile's "data" filter: no links out, no devices."""
    limit = DOWNLOAD_LIMIT if max_bytes is None else max_bytes
    dest.mkdir(parents=True, exist_ok=True)
    base = PurePosixPath(src).name
    try:
        archive = ArchiveStream(api, container_id, src)
    except docker.errors.NotFound as exc:
        raise FileNotFoundError(src) from exc
    with archive:
        reader = io.BufferedReader(_CountingReader(archive.chunks(), limit, src))
        with tarfile.open(fileobj=reader, mode="r|") as tar:
            for member in tar:
                rel = PurePosixPath(member.name)
                rel = rel.relative_to(base) if rel.parts and rel.parts[0] == base else rel
                if not rel.parts:
                    continue
                member.name = str(rel)
                tar.extract(member, dest, filter="data")
