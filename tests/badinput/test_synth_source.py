"""`envfarm swe synthesize` takes a downloaded sdist or a plain folder as its source (each
committed once, keyed by its content), and anything else is one line saying what it takes."""

from __future__ import annotations

import tarfile
import zipfile

import pytest

from swe_tasks.synth.source import prepare
from tests.badinput.conftest import assert_one_line_error

pytestmark = pytest.mark.badinput


@pytest.fixture
def package(tmp_path):
    root = tmp_path / "mypkg-1.0"
    (root / "mypkg").mkdir(parents=True)
    (root / "tests").mkdir()
    (root / "mypkg" / "__init__.py").write_text("def add(a, b):\n    return a + b\n")
    (root / "tests" / "test_add.py").write_text(
        "from mypkg import add\n\ndef test_add():\n    assert add(1, 2) == 3\n")
    (root / "outside").symlink_to("/etc/hostname")  # committed as a link, never followed
    return root


@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("ENVFARM_CACHE", str(tmp_path / "cache"))


def files_at(src) -> set[str]:
    from swe_tasks.synth.source import all_files

    return all_files(src)


def test_a_local_sdist_and_a_folder_are_sources(package, tmp_path):
    with tarfile.open(tmp_path / "mypkg-1.0.tar.gz", "w:gz") as tf:
        tf.add(package, arcname="mypkg-1.0",
               filter=lambda info: None if info.name.endswith("outside") else info)
    with zipfile.ZipFile(tmp_path / "mypkg-1.0.zip", "w") as zf:
        for path in package.rglob("*.py"):
            zf.write(path, f"mypkg-1.0/{path.relative_to(package)}")
    for source in (tmp_path / "mypkg-1.0.tar.gz", tmp_path / "mypkg-1.0.zip"):
        src = prepare(str(source))
        assert (src.name, src.version) == ("mypkg", "1.0")
        assert {"mypkg/__init__.py", "tests/test_add.py"} <= files_at(src)
        assert prepare(str(source)).commit == src.commit  # cached, same commit
    folder = prepare(str(package))
    assert {"mypkg/__init__.py", "tests/test_add.py", "outside"} <= files_at(folder)
    from swe_tasks.synth.source import _git

    assert _git(folder.git_dir, "show", f"{folder.commit}:outside") == "/etc/hostname"
    (package / "mypkg" / "__init__.py").write_text("def add(a, b):\n    return b + a\n")
    assert prepare(str(package)).commit != folder.commit  # changed folder: new source


def test_bad_sources_are_one_line(cli, tmp_path, package):
    with tarfile.open(tmp_path / "evil-1.0.tar.gz", "w:gz") as tf:
        tf.add(package, arcname="evil-1.0")  # holds a link to /etc/hostname
    (tmp_path / "notes.txt").write_text("not an archive")
    (tmp_path / "broken.tar.gz").write_bytes(b"\x1f\x8b not really gzip")
    cases = [("./missing-1.0.tar.gz", "no such file or folder"),
             ("notes.txt", "not a source archive"),
             ("broken.tar.gz", "cannot unpack"),
             ("evil-1.0.tar.gz", "link to an absolute path")]
    for source, needle in cases:
        out = cli("swe", "synthesize", source, "--out", "out.jsonl")
        assert_one_line_error(out, needle)
    assert not (tmp_path / "out.jsonl").exists()
