"""The agent's change, read from outside its control and made a patch by trusted git.

`read_changes` (after `Sandbox.stop_processes()`): the Docker engine's archive of /testbed
is streamed to the host (bounded: `MAX_STREAM_BYTES` and `MAX_ENTRIES` read,
`MAX_FILE_BYTES`, `MAX_CHANGED_BYTES` and `MAX_CHANGED_FILES` kept, else
`ChangesTooLarge`, an agent fault) and every file is compared with the manifest `inject`
returned (`swe_tasks.workspace`). No command runs in the agent's container: its shell,
its `git`, its `.git/config` and its processes play no part. Paths are decided by
`swe_tasks.integrity.classify_path` (test files, pytest configuration, compiled code, ...).

`build_patch` turns the kept changes into a patch with TRUSTED git in the verifier's
fresh sandbox (pristine image, no agent process ever ran there): the files go in as blobs
of a private index over the pristine HEAD, new files the pristine ignore rules ignore
are left out (as `git add -A` would), and `git diff --cached` runs with a clean
environment (`env -i`, no system or global config, no hooks, `--no-ext-diff`,
`--no-textconv`). The patch is then cut at its own `diff --git` headers and every block
is decided again by its path; only kept blocks are applied (`workspace.apply_patch`).
"""

from __future__ import annotations

import hashlib
import io
import tarfile
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from sandbox import Sandbox, SandboxError
from sandbox.errors import AgentCaused
from swe_tasks.instance import SWEInstance
from swe_tasks.integrity import (
    DROP,
    KEEP,
    TAMPERED,
    Decision,
    check_content,
    classify_path,
    is_test_path,
    split_patch,
)
from swe_tasks.patch_scan import Finding, scan_files
from swe_tasks.workspace import TESTBED, Injected, blob_id, file_mode

__all__ = ["AgentDiff", "Change", "ChangesTooLarge", "build_patch", "read_changes"]

MAX_STREAM_BYTES = 4 * 1024**3
"""Most bytes of the agent's /testbed archive read (streamed, never held)."""
MAX_FILE_BYTES = 16 * 1024**2
"""Largest changed file carried to the verifier."""
MAX_CHANGED_BYTES = 64 * 1024**2
"""Most bytes of changed files carried to the verifier, all together."""
MAX_ENTRIES = 1_000_000
"""Most archive entries looked at (a million empty files would otherwise take minutes)."""
MAX_CHANGED_FILES = 20_000
"""Most changed paths carried to the verifier."""
CLEAN_GIT = ("env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin "
             "HOME=/nonexistent LC_ALL=C GIT_CONFIG_NOSYSTEM=1 GIT_CONFIG_GLOBAL=/dev/null "
             "GIT_TERMINAL_PROMPT=0 {extra}git -c core.hooksPath=/dev/null -c core.fsmonitor=false "
             "-c core.quotePath=true -c safe.directory=/testbed")


class ChangesTooLarge(AgentCaused):
    """The agent's changes are larger than the verifier carries (scored 0, agent fault)."""


@dataclass
class Change:
    """One path the agent changed: its new mode and content (None: deleted), and what the
    policy decided."""

    path: str
    mode: str | None
    data: bytes | None
    decision: Decision
    new: bool = False
    check: str | None = None

    @property
    def sha(self) -> str:
        return blob_id(self.data or b"")


@dataclass
class AgentDiff:
    """The agent's change as the verifier takes it: `diff` (the kept blocks), every changed
    path, what was left out and why, and the tampering evidence (empty: none)."""

    diff: str
    changed: tuple[str, ...]
    excluded: tuple[str, ...]
    dropped: list[dict[str, str]] = field(default_factory=list)
    tampered: list[dict[str, str]] = field(default_factory=list)
    ignored: tuple[str, ...] = ()
    error: str | None = None


def read_changes(sandbox: Sandbox, instance: SWEInstance, injected: Injected) -> list[Change]:
    """Every path under /testbed that differs from the injected tree, decided by the path
    policy; read through the engine's archive of the (stopped) agent sandbox. Paths
    untracked at the start and `.git` are not looked at. Raises ChangesTooLarge (agent
    fault) past the byte limits, FileNotFoundError when /testbed is gone."""
    tree, hidden = injected.tree, set(injected.hidden)
    files, dirs = _untracked_sets(injected.untracked)
    seen: set[str] = set()
    changes: list[Change] = []
    kept_bytes = 0
    with tarfile.open(fileobj=_Stream(_archive_chunks(sandbox, TESTBED), MAX_STREAM_BYTES),
                      mode="r|", errors="surrogateescape") as tar:
        for count, m in enumerate(tar):
            if count >= MAX_ENTRIES:
                raise ChangesTooLarge(f"the agent's /testbed holds more than {MAX_ENTRIES} "
                                      "entries")
            path = _relative(m.name)
            if path is None or _skipped(path, files, dirs):
                continue
            if m.isdir():
                continue
            if m.issym():
                data: bytes | None = m.linkname.encode("utf-8", "surrogateescape")
                mode = "120000"
            elif m.isfile():
                mode = file_mode(m.mode)
                data = None
            else:
                seen.add(path)
                if path in tree:
                    changes.append(Change(path, None, None, Decision(DROP, "not a file")))
                continue
            seen.add(path)
            old = tree.get(path)
            decision, check = classify_path(path, test_files=tuple(instance.test_files),
                                            is_new=old is None,
                                            symlink_target=m.linkname if m.issym() else None)
            needed = decision.action != DROP or check is not None
            if data is None and old is None and not needed:
                changes.append(Change(path, mode, None, decision, new=True))  # never read
                if len(changes) > MAX_CHANGED_FILES:
                    raise ChangesTooLarge(f"the agent changed more than {MAX_CHANGED_FILES} "
                                          "paths")
                continue
            if data is None and old is None and m.size > MAX_FILE_BYTES:
                raise ChangesTooLarge(f"the agent's new file {path} is {m.size} bytes; the "
                                      f"verifier carries files up to {MAX_FILE_BYTES} bytes")
            if data is None:
                sha, data = _hash_member(tar, m, keep=needed and m.size <= MAX_FILE_BYTES)
            else:
                sha = blob_id(data)
            if old == (mode, sha):
                continue
            if decision.action == DROP and check is None:
                data = None  # not carried: content not needed
            elif data is None:
                raise ChangesTooLarge(f"the agent's change to {path} is {m.size} bytes; the "
                                      f"verifier carries files up to {MAX_FILE_BYTES} bytes")
            kept_bytes += len(data or b"")
            if kept_bytes > MAX_CHANGED_BYTES:
                raise ChangesTooLarge(f"the agent's changes exceed {MAX_CHANGED_BYTES} bytes "
                                      "(the most the verifier carries)")
            changes.append(Change(path, mode, data, decision, new=old is None, check=check))
            if len(changes) > MAX_CHANGED_FILES:
                raise ChangesTooLarge(f"the agent changed more than {MAX_CHANGED_FILES} paths")
    for path in sorted(set(tree) - seen - hidden):
        decision, check = classify_path(path, test_files=tuple(instance.test_files))
        changes.append(Change(path, None, None, decision, check=check))
    return changes


def build_patch(fresh: Sandbox, instance: SWEInstance, changes: list[Change]) -> AgentDiff:
    """The agent's patch, made by trusted git in the verifier's fresh sandbox (pristine
    /testbed from `inject`), filtered by its own headers; see the module docstring."""
    dropped: list[dict[str, str]] = []
    tampered: list[dict[str, str]] = []
    pristine = _pristine(fresh, [c.path for c in changes if not c.new and (
        c.check is not None or (c.decision.action == KEEP and c.data is not None))])
    for c in changes:
        if c.check is not None:
            c.decision = check_content(c.check, c.path, pristine.get(c.path), c.data,
                                       c.decision)
        if c.decision.action == DROP:
            dropped.append({"path": c.path, "reason": c.decision.reason})
        elif c.decision.action == TAMPERED:
            tampered.append({"path": c.path, "reason": c.decision.reason})
    kept = [c for c in changes if c.decision.action == KEEP]
    excluded = tuple(d["path"] for d in dropped if is_test_path(d["path"], instance.test_files))
    changed = tuple(c.path for c in changes)
    if not kept:
        return AgentDiff("", changed, excluded, dropped, tampered)
    patch, ignored = _diff_in(fresh, kept)
    for path in ignored:
        dropped.append({"path": path, "reason": "ignored by the repository's ignore rules"})
    wanted = {c.path: c for c in kept if c.path not in set(ignored)}
    try:
        blocks = split_patch(patch)
    except ValueError as exc:
        return AgentDiff("", changed, excluded, dropped, tampered, tuple(ignored),
                         error=f"the verifier could not read its own patch: {exc}")
    out = []
    for block in blocks:
        change = wanted.get(block.path)
        decision, _ = classify_path(block.path, test_files=tuple(instance.test_files),
                                    is_new=change.new if change else False)
        if change is None or decision.action != KEEP:
            dropped.append({"path": block.path, "reason": "not a kept change of the agent"
                            if change is None else decision.reason})
            continue
        out.append(block.text)
    tampered += [f.as_dict() for f in _scan(pristine, list(wanted.values()))]
    return AgentDiff("".join(out), changed, excluded, dropped, tampered, tuple(ignored))


def _scan(pristine: dict[str, bytes], kept: list[Change]) -> list[Finding]:
    """Patch-scan findings over the added lines of kept non-test text files."""
    triples = []
    for c in kept:
        if c.data is None or c.mode == "120000" or b"\0" in c.data:
            continue
        old = pristine.get(c.path, b"")
        triples.append((c.path, old.decode("utf-8", "replace"), c.data.decode("utf-8", "replace")))
    return scan_files(triples)


def _pristine(fresh: Sandbox, paths: list[str]) -> dict[str, bytes]:
    """The injected content of `paths` (regular files; others absent), read in one archive
    from the verifier's pristine /testbed before anything of the agent is applied."""
    if not paths:
        return {}
    work = f"/tmp/envfarm-pristine-{uuid.uuid4().hex[:12]}"
    fresh.write_file(f"{work}/list", b"".join(
        p.encode("utf-8", "surrogateescape") + b"\0" for p in paths))
    res = fresh.exec(f"cd {TESTBED} && tar --null --no-recursion --ignore-failed-read "
                     f"-T {work}/list -cf {work}/pristine.tar 2>/dev/null; "
                     f"test -f {work}/pristine.tar")
    if not res.ok:
        raise SandboxError(f"cannot read the pristine files in the verifier: {res.output[-300:]}")
    out: dict[str, bytes] = {}
    with tarfile.open(fileobj=io.BytesIO(fresh.read_file(f"{work}/pristine.tar")),
                      errors="surrogateescape") as tar:
        for m in tar:
            if m.isfile():
                out[m.name] = tar.extractfile(m).read()  # type: ignore[union-attr]
    fresh.exec(f"rm -rf {work}")
    return out


def _diff_in(fresh: Sandbox, kept: list[Change]) -> tuple[str, list[str]]:
    """(patch, new paths the pristine ignore rules leave out): trusted git in `fresh`."""
    work = f"/tmp/envfarm-agent-{uuid.uuid4().hex[:12]}"
    info, new_paths, blobs = bytearray(), bytearray(), []
    for c in kept:  # deletions first: a file may give way to a directory of that name
        if c.mode is None:
            info += b"0 " + b"0" * 40 + b"\t" + c.path.encode("utf-8", "surrogateescape") + b"\0"
    for i, c in enumerate(kept):
        enc = c.path.encode("utf-8", "surrogateescape")
        if c.mode is None:
            continue
        blobs.append((i, c))
        info += f"{c.mode} {c.sha}\t".encode() + enc + b"\0"
        if c.new:
            new_paths += enc + b"\0"
    with tempfile.TemporaryDirectory(prefix="envfarm-agent-") as tmp:
        root = Path(tmp)
        (root / "f").mkdir()
        for i, c in blobs:
            (root / "f" / str(i)).write_bytes(c.data or b"")
        (root / "info").write_bytes(bytes(info))
        (root / "new").write_bytes(bytes(new_paths))
        (root / "blobs").write_text("".join(f"{work}/f/{i}\n" for i, _ in blobs))
        fresh.upload_dir(root, work)
    git = CLEAN_GIT.format(extra=f"GIT_INDEX_FILE={work}/index ")
    script = (
        f"set -u; cd {TESTBED} || exit 3\n"
        f"{git} check-ignore --no-index -z --stdin < {work}/new > {work}/ignored; "
        f"[ $? -le 1 ] || : > {work}/ignored\n"
        f"{git} read-tree HEAD || exit 5\n"
        f"{git} hash-object -w --no-filters --stdin-paths < {work}/blobs > {work}/shas || exit 6\n"
        f"{git} update-index -z --index-info < {work}/info || exit 7\n"
        f"{git} update-index -z --force-remove --stdin < {work}/ignored || exit 8\n"
        f"{git} diff --cached HEAD --binary --full-index --no-renames --no-color --no-ext-diff "
        f"--no-textconv --src-prefix=a/ --dst-prefix=b/ > {work}/patch || exit 9\n"
    )
    res = fresh.exec(script, timeout_s=300)
    if res.exit_code == 3 or res.timed_out:
        raise SandboxError(f"the verifier's /testbed is not there or git hung: {res.output[-600:]}")
    if not res.ok:  # git refused what the agent left (names, file/directory clashes)
        raise AgentCaused(f"git cannot record the agent's changes (step {res.exit_code}): "
                          f"{res.output[-600:]}")
    shas = fresh.read_file(f"{work}/shas").decode().split()
    if shas != [c.sha for _, c in blobs]:
        raise SandboxError("the verifier's git hashed the agent's files differently from the host")
    ignored = [p for p in fresh.read_file(f"{work}/ignored").decode(
        "utf-8", "surrogateescape").split("\0") if p]
    patch = fresh.read_file(f"{work}/patch").decode("utf-8", errors="surrogateescape")
    fresh.exec(f"rm -rf {work}")
    return patch, ignored


def _relative(name: str) -> str | None:
    """The path under /testbed of an archive member named `testbed/...` (None: the root,
    or a name that does not belong to it)."""
    parts = PurePosixPath(name).parts
    if len(parts) < 2 or parts[0] != "testbed" or ".." in parts:
        return None
    return "/".join(parts[1:])


def _untracked_sets(untracked: tuple[str, ...]) -> tuple[set[str], set[str]]:
    files = {p for p in untracked if not p.endswith("/")}
    dirs = {p.rstrip("/") for p in untracked if p.endswith("/")}
    return files, dirs


def _skipped(path: str, files: set[str], dirs: set[str]) -> bool:
    """`.git` anywhere, and whatever was untracked when the agent began (install
    leftovers, hidden from git by the exclude file: never part of the change)."""
    parts = path.split("/")
    if ".git" in parts or path in files:
        return True
    return any("/".join(parts[:i]) in dirs for i in range(1, len(parts) + 1))


def _hash_member(tar: tarfile.TarFile, member: tarfile.TarInfo, *,
                 keep: bool) -> tuple[str, bytes | None]:
    """(blob id, content if `keep`) of a regular-file member, read in chunks."""
    h = hashlib.sha1(b"blob %d\0" % member.size)
    buf = bytearray() if keep else None
    f = tar.extractfile(member)
    if f is not None:
        while chunk := f.read(1 << 20):
            h.update(chunk)
            if buf is not None:
                buf += chunk
    return h.hexdigest(), bytes(buf) if buf is not None else None


def _archive_chunks(sandbox: Sandbox, path: str) -> Iterator[bytes]:
    """The engine's tar of `path`, streamed: Docker's archive API when the sandbox has one
    (nothing runs in the container), else the backend's `download_dir`, re-packed."""
    api, cid = getattr(sandbox, "_api", None), getattr(sandbox, "id", None)
    if api is not None and cid:
        import docker.errors

        try:
            stream, _ = api.get_archive(cid, path, chunk_size=1 << 20)
        except docker.errors.NotFound as exc:
            raise FileNotFoundError(path) from exc
        except docker.errors.DockerException as exc:
            raise SandboxError(f"cannot read {path} of {cid[:12]}: {exc}") from exc
        yield from stream
        return
    with tempfile.TemporaryDirectory(prefix="envfarm-tree-") as tmp:
        sandbox.download_dir(path, tmp)
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as out:
            out.add(tmp, arcname=PurePosixPath(path).name)
        yield buf.getvalue()


class _Stream(io.RawIOBase):
    """A read-only file over byte chunks that stops (ChangesTooLarge) past `limit`."""

    def __init__(self, chunks: Iterator[bytes], limit: int) -> None:
        self._chunks, self._limit, self._read, self._pending = chunks, limit, 0, b""

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        while not self._pending:
            try:
                self._pending = next(self._chunks)
            except StopIteration:
                return 0
        n = min(len(b), len(self._pending))
        b[:n], self._pending = self._pending[:n], self._pending[n:]
        self._read += n
        if self._read > self._limit:
            raise ChangesTooLarge(f"the agent's /testbed is larger than {self._limit} bytes")
        return n
