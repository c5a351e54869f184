"""Real SWE instances built offline-from-PyPI: more-itertools releases and their real fixes.

`build_repo(dest)` downloads the sdists of a few more-itertools releases (`pip download
--no-binary :all: --no-deps`, cached under ~/.cache/envfarm/sdists), commits each
release in order into a local git repository, and returns SWE-bench-format records whose
`base_commit` is the release with the bug, `patch` the library part of the next release's
diff (the real fix) and `test_patch` its tests part. The later releases stay in the repo:
the sandbox must not let them be seen.

The three bugs (from the project's own changelog):
- 11.0.0 removed `pairwise` by mistake; 11.0.1 restored it (deprecated).
- 10.8.0's `exactly_n` crashed on a negative `n`; 11.0.0 returns False.
- 11.0.2's `reversed(numeric_range(0))` raised IndexError; 11.1.0 fixed empty ranges.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

from sandbox.cache import cache_dir

PACKAGE = "more-itertools"
VERSIONS = ["10.8.0", "11.0.0", "11.0.1", "11.0.2", "11.1.0"]
SOURCE_DIRS = ("more_itertools/",)
TEST_DIRS = ("tests/",)

# instance -> (buggy release, fixed release, FAIL_TO_PASS, PASS_TO_PASS, problem statement)
CASES: dict[str, tuple[str, str, list[str], list[str], str]] = {
    "more-itertools__pairwise-restored": (
        "11.0.0", "11.0.1",
        ["tests/test_recipes.py::RunningMedianTests::test_vs_statistics_median_windowed"],
        ["tests/test_recipes.py::RunningMedianTests::test_vs_statistics_median",
         "tests/test_recipes.py::TakeTests::test_simple_take",
         "tests/test_recipes.py::TabulateTests::test_simple_tabulate"],
        ("`more_itertools.pairwise` is gone in 11.0.0: `from more_itertools import pairwise` "
        "raises ImportError. It was meant to be deprecated, not removed. Please bring it "
        "back (it should still work like itertools.pairwise, and warn that it is deprecated)."),
    ),
    "more-itertools__exactly-n-negative": (
        "10.8.0", "11.0.0",
        ["tests/test_more.py::ExactlyNTests::test_false"],
        ["tests/test_more.py::ExactlyNTests::test_true",
         "tests/test_more.py::ExactlyNTests::test_empty",
         "tests/test_more.py::FirstTests::test_many"],
        ("`exactly_n(iterable, n)` crashes for negative `n`: `exactly_n([True], -10)` raises "
        "`ValueError: Indices for islice() must be None or an integer`. No iterable has a "
        "negative number of true items, so it should simply return False."),
    ),
    "more-itertools__numeric-range-empty": (
        "11.0.2", "11.1.0",
        ["tests/test_more.py::NumericRangeTests::test_empty_reversed"],
        ["tests/test_more.py::NumericRangeTests::test_basic",
         "tests/test_more.py::NumericRangeTests::test_reversed",
         "tests/test_more.py::NumericRangeTests::test_contains"],
        ("`reversed()` of an empty `numeric_range` crashes: "
        "`list(reversed(numeric_range(0)))` raises `IndexError: numeric range object index "
        "out of range`, while `list(reversed(range(0)))` is `[]`. Empty numeric ranges "
        "should reverse to nothing, like empty built-in ranges."),
    ),
}


def sdist_cache() -> Path:
    return cache_dir() / "sdists"


def download(version: str) -> Path:
    """The sdist of one release, downloaded once from PyPI."""
    cache = sdist_cache()
    cache.mkdir(parents=True, exist_ok=True)
    for found in cache.glob(f"more*itertools-{version}.tar.gz"):
        return found
    done = subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-binary", ":all:",
                           "--no-deps", f"{PACKAGE}=={version}", "-d", str(cache)],
                          capture_output=True, text=True, check=False)
    found = next(cache.glob(f"more*itertools-{version}.tar.gz"), None)
    if done.returncode != 0 or found is None:
        from tests.conftest import missing  # skips on a workstation, fails under CI

        tail = " ".join(done.stderr.split())[-200:]
        missing(f"cannot download the {PACKAGE} {version} sdist from PyPI ({tail}); connect "
                f"to the network once, or put {PACKAGE.replace('-', '_')}-{version}.tar.gz in "
                f"{cache}")
    return found


def _git(repo: Path, *args: str, env: dict[str, str] | None = None) -> str:
    return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True,
                          env={**os.environ, **(env or {})}).stdout


def build_repo(dest: Path) -> tuple[Path, list[dict]]:
    """A git repo with one commit per release, and the SWE-bench-format records."""
    repo = dest / "more-itertools"
    repo.mkdir(parents=True)
    _git(repo, "init", "-q", "-b", "main")
    shas: dict[str, str] = {}
    for i, version in enumerate(VERSIONS):
        for child in repo.iterdir():
            if child.name != ".git":
                shutil.rmtree(child) if child.is_dir() else child.unlink()
        with tarfile.open(download(version)) as tar:
            tar.extractall(dest / "x", filter="data")
        (src,) = [p for p in (dest / "x").iterdir() if p.is_dir()]
        for child in src.iterdir():
            shutil.move(str(child), repo / child.name)
        shutil.rmtree(dest / "x")
        date = f"2025-0{i + 1}-01T12:00:00+00:00"
        _git(repo, "add", "-A")
        _git(repo, "-c", "user.name=upstream", "-c", "user.email=u@example.org", "commit", "-q",
             "-m", f"more-itertools {version}",
             env={"GIT_AUTHOR_DATE": date, "GIT_COMMITTER_DATE": date})
        _git(repo, "tag", f"v{version}")
        shas[version] = _git(repo, "rev-parse", "HEAD").strip()
    records = []
    for iid, (bug, fix, f2p, p2p, statement) in CASES.items():
        records.append({
            "instance_id": iid, "repo": str(repo), "base_commit": shas[bug],
            "patch": _git(repo, "diff", shas[bug], shas[fix], "--", *SOURCE_DIRS),
            "test_patch": _git(repo, "diff", shas[bug], shas[fix], "--", *TEST_DIRS),
            "problem_statement": statement, "hints_text": "", "created_at": "2025-06-01",
            "version": "11", "FAIL_TO_PASS": f2p, "PASS_TO_PASS": p2p,
            "environment_setup_commit": shas[VERSIONS[-1]],
        })
    return repo, records


_built: dict[str, list[dict]] = {}


def real_records(root: Path) -> list[dict]:
    """The records, building the repository under `root` once per process."""
    if "records" not in _built:
        _built["records"] = build_repo(root)[1]
    return [dict(r) for r in _built["records"]]
