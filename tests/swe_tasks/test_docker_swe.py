"""Code injection, diffs and gold validation on a real Docker engine with real instances.

The instances are three real more-itertools bugs and their real fixes, built from PyPI
sdists into a local git repository (tests/swe_tasks/realdata.py); their environment image
installs the package with pip at build time (PyPI reachable), then everything runs with
no network.
"""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from sandbox import Limits
from swe_tasks.agent_diff import build_patch, read_changes
from swe_tasks.catalogue import Catalogue
from swe_tasks.environment import ensure_image
from swe_tasks.example import example_instance, example_repo
from swe_tasks.importer import import_file
from swe_tasks.instance import SWEInstance
from swe_tasks.workspace import apply_patch, inject
from tests.swe_tasks.realdata import real_records

pytestmark = pytest.mark.docker
LIMITS = Limits(cpus=1, memory_mb=2048, network=False, timeout_s=120)


@pytest.fixture(scope="session")
def records(tmp_path_factory):
    return real_records(tmp_path_factory.mktemp("realdata"))


@pytest.fixture(scope="session")
def example_image(base_image):
    return ensure_image(example_instance())


def test_injection_is_one_fresh_commit_without_tests_or_future(docker_backend, example_image):
    inst = example_instance()
    import subprocess

    fixed = subprocess.run(["git", "rev-parse", "fixed"], cwd=example_repo(), text=True,
                           capture_output=True, check=True).stdout.strip()
    with docker_backend.start(example_image, LIMITS, workdir="/testbed") as sb:
        injected = inject(sb, inst, hide_tests=True)
        assert injected.hidden == ("tests/test_wordstats.py",)
        log = sb.exec("git log --all --format='%H %s'; git reflog | wc -l; git tag; "
                      "git branch -a").output.split()
        assert log[:2] == [injected.base_sha, "base"] and log[2] == "1"
        assert log[3:] == ["*", "main"]  # one commit, one reflog entry, no tags, one branch
        objects = sb.exec("git cat-file --batch-all-objects --batch-check | wc -l").output
        assert int(objects) < 10  # the fixed release's commit and blobs are nowhere inside
        assert fixed not in sb.exec("grep -r . .git 2>/dev/null | head -500").output
        assert sb.exec("test -e tests/test_wordstats.py").exit_code == 1
        assert sb.exec("git status --porcelain").output == ""  # install leftovers hidden
        assert 'split(" ")' in sb.exec("cat wordstats/__init__.py").output  # the buggy code

        sb.exec("sed -i 's/split(\" \")/split()/' wordstats/__init__.py && "
                "mkdir -p tests && echo 'def test_whitespace(): pass' > tests/test_wordstats.py"
                " && echo 'x = 1' > conftest.py && echo new > NOTES.txt && rm pyproject.toml"
                " && echo junk > wordstats.egg-info/PKG-INFO && git add -A && git commit -qm x")
        sb.stop_processes()
        changes = read_changes(sb, inst, injected)
        assert {c.path for c in changes} == {"wordstats/__init__.py", "tests/test_wordstats.py",
                                              "conftest.py", "NOTES.txt", "pyproject.toml"}
        assert injected.untracked == ("wordstats.egg-info/",)  # install leftovers not read

    with docker_backend.start(example_image, LIMITS, workdir="/testbed") as fresh:
        inject(fresh, inst, hide_tests=False)
        diff = build_patch(fresh, inst, changes)
        assert set(diff.excluded) == {"tests/test_wordstats.py", "conftest.py"}
        assert not diff.tampered and diff.error is None
        assert "wordstats/__init__.py" in diff.diff and "NOTES.txt" in diff.diff
        assert "deleted file mode" in diff.diff and "b/pyproject.toml" in diff.diff
        assert "test_whitespace" not in diff.diff and "conftest" not in diff.diff

    with docker_backend.start(example_image, LIMITS, workdir="/testbed") as fresh:
        inject(fresh, inst, hide_tests=False)
        assert fresh.exec("test -f tests/test_wordstats.py").exit_code == 0
        bad = apply_patch(fresh, diff.diff.replace('split(" ")', "split('x')"), "agent")
        assert not bad.applied and fresh.exec("git status --porcelain").output == ""
        assert apply_patch(fresh, diff.diff, "agent").applied
        assert apply_patch(fresh, inst.test_patch, "test").applied


def test_gold_validation_marks_real_instances(tmp_path, records, base_image, monkeypatch):
    # An invalid variant: a test that already passes listed as FAIL_TO_PASS.
    broken = dict(records[2], instance_id="more-itertools__broken-f2p",
                  FAIL_TO_PASS=records[2]["PASS_TO_PASS"][:1])
    f = tmp_path / "real.jsonl"
    import json

    f.write_text("\n".join(json.dumps(r) for r in [*records, broken]))
    store = f"sqlite:///{tmp_path / 'c.db'}"
    with Catalogue(store) as cat:
        assert import_file(cat, f).imported == 4
    from orchestrator.cli import app

    res = CliRunner().invoke(app, ["tasks", "validate", "--store", store, "--concurrency", "2",
                                   "--runs", "2"])
    assert res.exit_code == 0, res.output
    with Catalogue(store) as cat:
        got = {t.id: (t.status, t.status_reason) for t in cat.query(kind="swe")}
    for r in records:
        assert got[r["instance_id"]] == ("valid", None), got
    status, reason = got["more-itertools__broken-f2p"]
    assert status == "invalid" and "FAIL_TO_PASS passes without the fix" in reason


def test_swe_instance_round_trips_through_records(records):
    assert [SWEInstance.model_validate(r).dialect for r in records] == ["swe-bench"] * 3


def test_odd_changes_become_a_patch_that_applies(docker_backend, example_image):
    # A file replaced by a directory, names git must quote, a symlink inside and one out of
    # the repository, an executable bit, a binary file and a deleted file: trusted git
    # records each, and the patch applies in a pristine sandbox.
    inst = example_instance()
    with docker_backend.start(example_image, LIMITS, workdir="/testbed") as sb:
        injected = inject(sb, inst, hide_tests=True)
        res = sb.exec(
            "set -e; rm pyproject.toml && mkdir -p pyproject.toml && echo x > pyproject.toml/a; "
            "printf 'q\\n' > \"$(printf 'wordstats/we\\xc3\\xa9ird \"name\"\\ttab.txt')\"; "
            "ln -s __init__.py wordstats/alias.py && ln -s /etc/passwd wordstats/out.py; "
            "chmod +x wordstats/__init__.py; head -c 3000 /dev/urandom > wordstats/data.bin")
        assert res.ok, res.output
        sb.stop_processes()
        changes = read_changes(sb, inst, injected)
    with docker_backend.start(example_image, LIMITS, workdir="/testbed") as fresh:
        inject(fresh, inst, hide_tests=False)
        diff = build_patch(fresh, inst, changes)
        assert diff.error is None and not diff.tampered, diff
        assert [d["path"] for d in diff.dropped] == ["wordstats/out.py"]  # points outside
        assert diff.diff.count("diff --git") == 6, diff.diff[:2000]
        assert apply_patch(fresh, diff.diff, "agent").applied
        listing = fresh.exec("ls -l wordstats pyproject.toml; cat pyproject.toml/a").output
        assert "alias.py -> __init__.py" in listing and "weéird" in listing, listing
        assert "-rwxr-xr-x" in listing and listing.rstrip().endswith("x"), listing
