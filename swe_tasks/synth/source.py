"""Where synthesis starts: a clean commit of a Python repository, as a git repository on the host.

`prepare(SOURCE)` takes
- a PyPI sdist spec (`toolz==0.12.1`): `pip download --no-binary :all: --no-deps` gives the
  release's real source with its tests; it is unpacked and committed as ONE commit (fixed
  author and date, so the sha, and so the environment image, is the same on every machine)
  into a local repository under the envfarm cache;
- a local sdist file (`./cachetools-5.5.0.tar.gz`, `.tgz`, `.tar.bz2`, `.zip`) or a local
  folder that is not a git repository: committed the same way (the cache key holds a
  digest of the archive or the folder's files, so a changed source is a new repository;
  a folder's symlinks are committed as links, never followed);
- a local git repository path or URL / GitHub slug (through `swe_tasks.git_source.resolve`).

Buggy trees are written as commits whose parent is the clean commit (`buggy_commit`), with
git plumbing on a temporary index (works in bare mirrors too) and kept reachable under
`refs/envfarm/synth/`, so an instance's `base_commit` is a real commit of its `repo` and
injection into a sandbox works unchanged.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from sandbox.cache import cache_dir
from sandbox.errors import TaskError
from swe_tasks import git_source
from swe_tasks.workspace import is_test_path

_SDIST = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([A-Za-z0-9][A-Za-z0-9._+!-]*)$")
FIXED_DATE = "2024-01-01T00:00:00+00:00"
NOT_SOURCE_DIRS = frozenset({"docs", "doc", "examples", "example", "benchmarks", "bench",
                             "scripts", "tools", "build", "dist", "ci", ".github"})


@dataclass(frozen=True)
class SourceRepo:
    """A repository to synthesize from: `repo` as instances name it, its clean commit."""

    repo: str
    git_dir: Path
    commit: str
    name: str
    version: str


def _git(git_dir: Path, *args: str, input_text: str | None = None,
         env: dict[str, str] | None = None) -> str:
    full_env = {**os.environ, "GIT_AUTHOR_NAME": "envfarm", "GIT_AUTHOR_EMAIL": "envfarm@localhost",
                "GIT_COMMITTER_NAME": "envfarm", "GIT_COMMITTER_EMAIL": "envfarm@localhost",
                "GIT_AUTHOR_DATE": FIXED_DATE, "GIT_COMMITTER_DATE": FIXED_DATE, **(env or {})}
    proc = subprocess.run(["git", *args], cwd=git_dir, input=input_text, capture_output=True,
                          text=True, env=full_env, check=False)
    if proc.returncode != 0:
        raise TaskError(f"git {' '.join(args[:2])} failed in {git_dir}: {proc.stderr[-500:]}")
    return proc.stdout


def is_sdist_spec(source: str) -> bool:
    return bool(_SDIST.match(source)) and not Path(source).exists()


ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar.bz2", ".tar.xz", ".tar", ".zip")
_ARCHIVE_NAME = re.compile(r"^(?P<name>.+?)-(?P<version>[0-9][A-Za-z0-9._+!-]*?)"
                           r"(?:\.tar\.gz|\.tgz|\.tar\.bz2|\.tar\.xz|\.tar|\.zip)$")


def prepare(source: str, *, rev: str = "HEAD") -> SourceRepo:
    """The clean commit to inject bugs into (see module docstring). Raises TaskError."""
    match = _SDIST.match(source)
    if match and not Path(source).exists():
        return _from_sdist(match.group(1), match.group(2))
    local = Path(source).expanduser()
    if local.is_file():
        if not source.lower().endswith(ARCHIVE_SUFFIXES):
            raise TaskError(f"{source} is a file but not a source archive; give an sdist "
                            f"({', '.join(ARCHIVE_SUFFIXES)}), a folder, a git repository or "
                            "pkg==version")
        return _from_archive(local)
    if local.is_dir() and not _looks_like_git(local):
        return _from_folder(local)
    if not local.exists() and (source.startswith(("./", "../", "/", "~"))
                               or source.lower().endswith(ARCHIVE_SUFFIXES)):
        raise TaskError(f"no such file or folder: {source}; give an existing sdist, folder or "
                        "git repository, or pkg==version for PyPI")
    git_dir = git_source.resolve(source)
    commit = _git(git_dir, "rev-parse", f"{rev}^{{commit}}").strip()
    name = re.sub(r"\.git$", "", source.rstrip("/").rsplit("/", 1)[-1]) or "repo"
    return SourceRepo(source, git_dir, commit, name, commit[:12])


def _looks_like_git(folder: Path) -> bool:
    """A work tree (has .git) or a bare repository (HEAD file and objects folder)."""
    return (folder / ".git").exists() or ((folder / "HEAD").is_file()
                                          and (folder / "objects").is_dir())


def _cached(repo: Path, name: str, version: str) -> SourceRepo | None:
    """The repository made earlier for this source, if it is complete."""
    if (repo / ".git").is_dir():
        try:
            commit = _git(repo, "rev-parse", "refs/tags/clean^{commit}").strip()
            return SourceRepo(str(repo), repo, commit, name, version)
        except TaskError:
            pass
    return None


def _from_sdist(name: str, version: str) -> SourceRepo:
    root = cache_dir() / "synth" / f"{name.lower()}-{version}"
    repo = root / "repo"
    if (found := _cached(repo, name, version)) is not None:
        return found
    archive = _download(name, version, root / "sdist")
    return _commit_unpacked(archive, root, name, version)


def _from_archive(archive: Path) -> SourceRepo:
    """A local sdist: name and version from its file name (`pkg-1.0.tar.gz`)."""
    match = _ARCHIVE_NAME.match(archive.name)
    name, version = (match["name"], match["version"]) if match else \
        (archive.name.split(".")[0] or "package", "local")
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()[:12]
    root = cache_dir() / "synth" / f"{name.lower()}-{version}-{digest}"
    repo = root / "repo"
    if (found := _cached(repo, name, version)) is not None:
        return found
    root.mkdir(parents=True, exist_ok=True)
    return _commit_unpacked(archive.resolve(), root, name, version)


def _from_folder(folder: Path) -> SourceRepo:
    """A local folder that is not a git repository: its files, committed as they are."""
    folder = folder.resolve()
    digest = _folder_digest(folder)
    name = folder.name or "package"
    root = cache_dir() / "synth" / f"{name.lower()}-folder-{digest}"
    repo = root / "repo"
    if (found := _cached(repo, name, digest)) is not None:
        return found
    root.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(repo, ignore_errors=True)
    shutil.copytree(folder, repo, symlinks=True,
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc", ".tox", ".venv"))
    return _commit(repo, name, digest, f"{name} (folder {folder})")


def _folder_digest(folder: Path) -> str:
    """A digest of the folder's relative paths and file bytes (links as their targets'
    text, never followed)."""
    h = hashlib.sha256()
    for dirpath, dirnames, filenames in os.walk(folder):  # does not follow linked dirs
        dirnames[:] = sorted(d for d in dirnames if d not in ("__pycache__", ".tox", ".venv"))
        for fname in sorted(filenames):
            path = Path(dirpath) / fname
            h.update(str(path.relative_to(folder)).encode() + b"\0")
            if path.is_symlink():
                h.update(b"link:" + os.readlink(path).encode())
            elif fname.endswith(".pyc"):
                continue
            else:
                h.update(path.read_bytes())
    return h.hexdigest()[:12]


def _commit_unpacked(archive: Path, root: Path, name: str, version: str) -> SourceRepo:
    repo = root / "repo"
    shutil.rmtree(repo, ignore_errors=True)
    with tempfile.TemporaryDirectory(dir=root) as tmp:
        try:
            _unpack(archive, Path(tmp))
        except (tarfile.TarError, zipfile.BadZipFile, OSError, EOFError) as exc:
            raise TaskError(f"cannot unpack {archive.name}: {exc}; give a complete sdist "
                            "(.tar.gz or .zip)") from None
        entries = list(Path(tmp).iterdir())
        if not entries:
            raise TaskError(f"{archive.name} is empty; give a complete sdist")
        top = entries[0] if len(entries) == 1 and entries[0].is_dir() else Path(tmp)
        shutil.move(str(top), str(repo))
    return _commit(repo, name, version, f"{name} {version} (sdist)")


def _commit(repo: Path, name: str, version: str, message: str) -> SourceRepo:
    _git(repo, "init", "-q", "-b", "main")
    _git(repo, "add", "-A", "-f")
    _git(repo, "commit", "-q", "--no-verify", "--allow-empty", "-m", message)
    _git(repo, "tag", "clean")
    commit = _git(repo, "rev-parse", "HEAD").strip()
    return SourceRepo(str(repo), repo, commit, name, version)


def _download(name: str, version: str, dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    found = [p for p in dest.iterdir() if p.suffix in (".gz", ".zip", ".bz2")]
    if not found:
        proc = subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-binary",
                               ":all:", "--no-deps", f"{name}=={version}", "-d", str(dest)],
                              capture_output=True, text=True, check=False)
        found = [p for p in dest.iterdir() if p.suffix in (".gz", ".zip", ".bz2")]
        if proc.returncode != 0 or not found:
            raise TaskError(f"cannot download the sdist of {name}=={version} from PyPI: "
                            f"{proc.stderr.strip()[-500:]}")
    return found[0]


def _unpack(archive: Path, dest: Path) -> None:
    if archive.suffix == ".zip":
        with zipfile.ZipFile(archive) as zf:
            zf.extractall(dest)
        return
    with tarfile.open(archive) as tf:
        tf.extractall(dest, filter="data")


def source_files(src: SourceRepo) -> dict[str, str]:
    """path -> text of the library's own Python files at the clean commit: tests, the
    repository root's other files (setup.py, versioneer.py, benchmark.py) and
    docs/examples/... left out; a root module named as the package (parse.py, six.py) is
    the library and is kept."""
    names = _git(src.git_dir, "ls-tree", "-r", "--name-only", src.commit).splitlines()
    out: dict[str, str] = {}
    for path in names:
        parts = PurePosixPath(path).parts
        if (not path.endswith(".py") or is_test_path(path)
                or (len(parts) == 1 and _norm(parts[0][:-3]) != _norm(src.name))
                or NOT_SOURCE_DIRS & set(parts[:-1]) or parts[-1] == "conftest.py"):
            continue
        out[path] = _git(src.git_dir, "show", f"{src.commit}:{path}")
    return out


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def all_files(src: SourceRepo) -> set[str]:
    """Every path in the clean tree (maps JUnit class names back to test files)."""
    return set(_git(src.git_dir, "ls-tree", "-r", "--name-only", src.commit).splitlines())


def file_text(src: SourceRepo, path: str) -> str:
    """One file of the clean tree."""
    return _git(src.git_dir, "show", f"{src.commit}:{path}")


def buggy_commit(src: SourceRepo, patch: str, message: str, ref_name: str) -> str:
    """A commit of the clean tree with `patch` applied, kept under refs/envfarm/synth/.

    Raises TaskError if the patch does not apply to the clean commit.
    """
    fd, index = tempfile.mkstemp(prefix="envfarm-index-")
    os.close(fd)
    os.unlink(index)
    env = {"GIT_INDEX_FILE": index}
    try:
        _git(src.git_dir, "read-tree", src.commit, env=env)
        _git(src.git_dir, "apply", "--cached", "-", input_text=patch, env=env)
        tree = _git(src.git_dir, "write-tree", env=env).strip()
    finally:
        Path(index).unlink(missing_ok=True)
    sha = _git(src.git_dir, "commit-tree", tree, "-p", src.commit, "-m", message).strip()
    _git(src.git_dir, "update-ref", f"refs/envfarm/synth/{ref_name}", sha)
    return sha
