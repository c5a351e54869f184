"""An instance's code inside a sandbox: injected as ONE fresh commit; patches applied.

`inject` puts the tree of `base_commit` (from `git archive` on the host) into /testbed of
a sandbox started from the environment image, and commits it as the only commit of a
brand-new repository: no later commit, branch, tag, stash, reflog entry or packed ref
exists inside, so an agent cannot read the future with `git log --all`. The image's own
tree (the environment commit, which may be later than `base_commit`) is removed first;
what its install built (egg-info, extensions) stays and is hidden from git via
`.git/info/exclude`, but its bytecode goes (it was compiled from the environment commit's
source, which may be the future). `inject` also returns what the verifier needs later: the tree's
manifest (path -> git mode and blob id, hashed on the host from the tar it sent) and the
paths that were untracked when the agent got the sandbox.

How the agent's change is read back and turned into a patch: `swe_tasks.agent_diff`
(its names are re-exported here). `apply_patch` applies a diff in /testbed.
"""

from __future__ import annotations

import hashlib
import io
import re
import shlex
import tarfile
import uuid
from dataclasses import dataclass, field

from sandbox import Sandbox, SandboxError
from swe_tasks import git_source
from swe_tasks.environment import TRACKED
from swe_tasks.instance import SWEInstance
from swe_tasks.integrity import is_test_path

__all__ = ["TESTBED", "Injected", "PatchResult", "apply_patch", "blob_id", "file_mode",
           "inject", "is_test_path", "manifest"]

TESTBED = "/testbed"

_INJECT = r"""set -eu
cd /testbed
if [ -f {tracked} ]; then
  while IFS= read -r f; do rm -f -- "$f"; done < {tracked}
  rm -f {tracked}
fi
rm -rf .git
find . -name __pycache__ -type d -prune -exec rm -rf {{}} + 2>/dev/null || true
find . -mindepth 1 -depth -type d -empty -delete 2>/dev/null || true
tar -xf {tar} --no-same-owner
while IFS= read -r f; do if [ -n "$f" ]; then rm -rf -- "$f"; fi; done < {hide}
if [ -s {hide} ]; then find . -mindepth 1 -depth -type d -empty -delete 2>/dev/null || true; fi
tar -tf {tar} | grep -v '/$' | grep -vxF -f {hide} > {tar}.files || true
rm -f {tar}
git init -q
git --literal-pathspecs add -f --pathspec-from-file={tar}.files
git ls-files -o --directory --no-empty-directory --exclude-standard | sed 's|^|/|' >> .git/info/exclude
GIT_AUTHOR_DATE={date} GIT_COMMITTER_DATE={date} git commit -q --no-verify --allow-empty -m base
git ls-files -o -z --directory > {untracked}
rm -f {tar}.files {hide} "$0"
git rev-parse HEAD
"""


@dataclass(frozen=True)
class Injected:
    """What `inject` left in the sandbox: the sha of the one commit, the hidden paths, the
    tree's manifest and the paths untracked at the start (a trailing `/`: a directory)."""

    base_sha: str
    hidden: tuple[str, ...]
    duration_s: float
    tree: dict[str, tuple[str, str]] = field(default_factory=dict, repr=False)
    """path -> (git mode, blob id) of every file injected (hidden ones included)."""
    untracked: tuple[str, ...] = ()


def inject(sandbox: Sandbox, instance: SWEInstance, *, hide_tests: bool,
           post_inject: list[str] | None = None, timeout_s: float = 300) -> Injected:
    """Put `instance.base_commit` into /testbed as one fresh commit; see the module docstring.

    `hide_tests` removes the files the test patch touches (the agent's view). Raises
    TaskError if the commit is not in the repository, SandboxError if the sandbox fails.
    """
    git_dir = git_source.resolve(instance.repo)
    tree = git_source.archive(git_dir, instance.base_commit)
    date = git_source.commit_date(git_dir, instance.base_commit)
    hidden = tuple(instance.test_files) if hide_tests else ()
    tag = uuid.uuid4().hex[:8]
    tar, hide = f"/tmp/envfarm-base-{tag}.tar", f"/tmp/envfarm-hide-{tag}.txt"
    untracked = f"/tmp/envfarm-untracked-{tag}"
    sandbox.write_file(tar, tree)
    sandbox.write_file(hide, "".join(p + "\n" for p in hidden))
    sandbox.write_file(f"{tar}.sh", _INJECT.format(tracked=TRACKED, tar=tar, hide=hide,
                                                   date=shlex.quote(date), untracked=untracked))
    res = sandbox.exec(f"bash {tar}.sh", timeout_s=timeout_s)
    sha = res.output.strip().splitlines()[-1] if res.output.strip() else ""
    if not res.ok or not re.fullmatch(r"[0-9a-f]{40}", sha):
        raise SandboxError(f"injecting {instance.instance_id} into /testbed failed "
                           f"(exit {res.exit_code}): {res.output[-800:]}")
    try:
        listed = sandbox.read_file(untracked).decode("utf-8", errors="surrogateescape")
    except FileNotFoundError:
        listed = ""
    duration = res.duration_s
    for step in post_inject or []:
        r = sandbox.exec(f"cd {TESTBED} && {step}", timeout_s=timeout_s)
        if not r.ok:
            raise SandboxError(f"post-inject step {step!r} failed: {r.output[-800:]}")
        duration += r.duration_s
    sandbox.exec(f"rm -f {untracked}; cd {TESTBED}")
    return Injected(base_sha=sha, hidden=hidden, duration_s=duration, tree=manifest(tree),
                    untracked=tuple(p for p in listed.split("\0") if p))


def manifest(tar_bytes: bytes) -> dict[str, tuple[str, str]]:
    """path -> (git mode, blob id) of each file in a tar (as `git ls-tree` would say)."""
    out: dict[str, tuple[str, str]] = {}
    with tarfile.open(fileobj=io.BytesIO(tar_bytes), mode="r:",
                      errors="surrogateescape") as tar:
        for m in tar:
            if m.isfile():
                data = tar.extractfile(m).read()  # type: ignore[union-attr]
                out[m.name] = (file_mode(m.mode), blob_id(data))
            elif m.issym():
                out[m.name] = ("120000", blob_id(m.linkname.encode("utf-8", "surrogateescape")))
    return out


def blob_id(data: bytes) -> str:
    """git's object id of a blob holding `data`."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def file_mode(mode: int) -> str:
    """git's mode of a regular file with permission bits `mode`."""
    return "100755" if mode & 0o111 else "100644"


@dataclass(frozen=True)
class PatchResult:
    applied: bool
    log: str


def apply_patch(sandbox: Sandbox, patch: str, name: str, *,
                check_only: bool = False) -> PatchResult:
    """Apply a diff in /testbed: `git apply`, else `patch --fuzz` (dry run first, so a
    failure never leaves half a patch behind). `check_only`: say whether it would apply,
    change nothing."""
    if not patch.strip():
        return PatchResult(True, "empty patch")
    path = f"/tmp/envfarm-{name}-{uuid.uuid4().hex[:8]}.diff"
    sandbox.write_file(path, patch if patch.endswith("\n") else patch + "\n")
    dry_run = f"patch --dry-run --batch --fuzz=5 -p1 -i {path}"
    if check_only:
        command = f"git apply --check --whitespace=nowarn {path} 2>&1 || {dry_run}"
    else:
        command = (f"git apply --verbose --whitespace=nowarn {path} 2>&1 || "
                   f"({dry_run} >/dev/null 2>&1 && patch --batch --fuzz=5 -p1 -i {path})")
    res = sandbox.exec(f"cd {TESTBED} && ({command})", timeout_s=120)
    return PatchResult(res.ok, res.output[-2000:])
