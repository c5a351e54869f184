"""What of the agent's change may reach the verifier: the path policy and the patch filter.

The agent's change is read from outside its control (`swe_tasks.workspace`); this module
decides, path by path, what crosses into the verifier's fresh sandbox, and filters the
patch that trusted git produced there by the patch's OWN `diff --git` headers.

Decisions (`classify`), and why:
- test files (the test patch's files, `test_*.py`, `*_test.py`, anything under `tests/` or
  `test/`) are dropped silently, as SWE-bench drops them: the hidden tests decide.
- `conftest.py` anywhere is dropped; one that defines pytest hooks or plugins is
  `tampered` (it was written to change how the tests run).
- pytest configuration: `pytest.ini` / `.pytest.ini` changed or added anywhere is dropped
  and `tampered`; `tox.ini`, `setup.cfg`, `pyproject.toml` are compared section by section
  and a change to their pytest section (`[pytest]`, `[tool:pytest]`,
  `[tool.pytest.ini_options]`) drops the file's change and is `tampered`; other changes
  to them stay (a fix may add a dependency). An unreadable new version is dropped (the
  pristine file stays), not `tampered`.
- `setup.py` gaining code that runs at install time beyond describing the package
  (`os.system`, `subprocess`, file writes, `site-packages`, ...) and a changed
  `[build-system]` in `pyproject.toml` are `tampered`: an eval script that reinstalls
  the package runs them as root in the verifier, before the tests.
- packaging metadata (`*.egg-info/`, `*.dist-info/`, `*.egg-link`, `*.pth`) is dropped;
  `tampered` when it registers a pytest plugin (`pytest11`) or a `.pth` imports code.
- `sitecustomize.py` / `usercustomize.py` anywhere, and a NEW top-level module (at the
  repository root or under `src/`) named like a standard-library or test-machinery module
  (`pytest`, `_pytest`, `pluggy`, `xml`, ...), are dropped and `tampered`: they would be
  imported in place of the real one.
- compiled code (`__pycache__/`, `.pyc`, `.so`, ...) is dropped: an unchecked-hash `.pyc`
  runs code its source does not show.
- `.gitattributes` is dropped (it could make source look binary to the patch scan).
- any other NEW top-level module or package (`x.py`, `x/__init__.py` at the root or
  under `src/`) is dropped: it could shadow an installed dependency the tests import
  (`numpy/`), and fixes do not add them (agents' `reproduce.py` is what gets dropped).
- a symlink pointing outside the repository, or at a test path, is dropped.
Everything else is kept and its added lines go through `swe_tasks.patch_scan`.
"""

from __future__ import annotations

import configparser
import re
import sys
import tomllib
from dataclasses import dataclass
from pathlib import PurePosixPath

from swe_tasks.patch_scan import CODE_SUFFIXES

KEEP, DROP, TAMPERED = "keep", "drop", "tampered"
PYTEST_INI = frozenset({"pytest.ini", ".pytest.ini"})
SECTIONED_CONFIG = frozenset({"tox.ini", "setup.cfg", "pyproject.toml"})
COMPILED = (".pyc", ".pyo", ".so", ".pyd", ".dylib", ".dll")
METADATA_DIRS = (".egg-info", ".dist-info")
SHADOWED = frozenset(sys.stdlib_module_names) | frozenset({
    "pytest", "_pytest", "pluggy", "py", "iniconfig", "packaging", "exceptiongroup", "tomli",
    "setuptools", "pkg_resources", "_distutils_hack", "pip", "xdist", "hypothesis",
    "coverage", "pytest_cov", "attr", "attrs", "six", "typing_extensions", "conftest",
})
_HOOKS = re.compile(r"\bdef\s+pytest_\w+|\bpytest_plugins\b|\bhookimpl\b|\bhookwrapper\b|"
                    r"\b_pytest\b|\bpluginmanager\b")


@dataclass(frozen=True)
class Decision:
    action: str
    """KEEP, DROP (silently, noted) or TAMPERED (dropped, and the episode is tampered)."""
    reason: str = ""


def is_test_path(path: str, test_files: list[str] | tuple[str, ...] = ()) -> bool:
    """A path the agent's diff may not change: the test patch's files, or anything that
    looks like a test (test modules, conftest.py, files under tests/ or test/)."""
    if path in test_files:
        return True
    p = PurePosixPath(path)
    return bool(_TEST_NAME.match(p.name)) or any(part in ("tests", "test") for part in p.parts[:-1])


_TEST_NAME = re.compile(r"^(test_.*\.py|.*_test\.py|tests?\.py|conftest\.py)$")


def classify_path(path: str, *, test_files: tuple[str, ...] = (), is_new: bool = False,
                  symlink_target: str | None = None) -> tuple[Decision, str | None]:
    """The decision for `path` by its name alone, and what content check is still due
    (`"conftest"`, `"pytest-config"`, `"metadata"`), if any."""
    p = PurePosixPath(path)
    name, parts = p.name, p.parts
    if name == "conftest.py":
        return Decision(DROP, "conftest.py (test configuration)"), "conftest"
    if name in PYTEST_INI:
        return Decision(TAMPERED, f"changes pytest's configuration ({name})"), None
    if name in SECTIONED_CONFIG:
        return Decision(KEEP), "pytest-config"
    if symlink_target is not None and (
            _escapes(path, symlink_target) or name in ("tests", "test")
            or is_test_path(str(PurePosixPath(path).parent / symlink_target), test_files)):
        return Decision(DROP, f"symlink out of the repository or into its tests "
                              f"({symlink_target!r})"), None
    if is_test_path(path, test_files):
        return Decision(DROP, "test file"), None
    if any(part.endswith(METADATA_DIRS) for part in parts[:-1]) or name.endswith(
            (".egg-link", ".pth")):
        return Decision(DROP, "packaging metadata"), "metadata"
    if "__pycache__" in parts or name.endswith(COMPILED):
        return Decision(DROP, "compiled code"), None
    if name in ("sitecustomize.py", "usercustomize.py"):
        return Decision(TAMPERED, f"adds {name} (runs at interpreter start)"), None
    if name == ".gitattributes":
        return Decision(DROP, ".gitattributes"), None
    if is_new and _shadows(parts):
        return Decision(TAMPERED, f"adds a top-level module that shadows "
                                  f"{_module_of(parts)!r}"), None
    if is_new and _top_level_module(parts):
        return Decision(DROP, "new top-level module (importable ahead of installed "
                              "packages; no fix needs one)"), None
    if name == "setup.py":
        return Decision(KEEP), "build-code"
    return Decision(KEEP), None


def check_content(check: str, path: str, old: bytes | None, new: bytes | None,
                  decision: Decision) -> Decision:
    """The final decision after the content check `check` (see `classify_path`); `old` is
    the pristine content (None: the file is new), `new` the agent's (None: deleted)."""
    if check == "conftest":
        text = (new or b"").decode("utf-8", errors="replace")
        hooks = _HOOKS.search(text)
        if hooks:
            return Decision(TAMPERED, f"conftest.py with pytest hooks or plugins "
                                      f"({hooks.group(0)!r})")
        return decision
    if check == "metadata":
        text = (new or b"").decode("utf-8", errors="replace")
        if "pytest11" in text:
            return Decision(TAMPERED, "packaging metadata registering a pytest plugin")
        if path.endswith(".pth") and re.search(r"^\s*import\b", text, re.MULTILINE):
            return Decision(TAMPERED, ".pth file that imports code at interpreter start")
        return decision
    if check == "build-code":
        from swe_tasks.patch_scan import added_lines

        lines = added_lines((old or b"").decode("utf-8", "replace"),
                            (new or b"").decode("utf-8", "replace"))
        hit = next((m for line in lines if (m := _BUILD_CODE.search(line))), None)
        if hit:
            return Decision(TAMPERED, f"setup.py gains code that runs at install time beyond "
                                      f"building the package ({hit.group(0)!r})")
        return decision
    if check == "pytest-config":
        name = PurePosixPath(path).name
        try:
            before = pytest_section(name, old) if old is not None else None
        except ValueError:
            before = None  # the pristine file is unreadable: pytest ignores it too
        try:
            after = pytest_section(name, new) if new is not None else None
        except ValueError as exc:
            return Decision(DROP, f"{name} the verifier cannot read ({exc}): the pristine "
                                  "file stays")
        if before != after:
            return Decision(TAMPERED, f"changes pytest's configuration in {path}")
        if name == "pyproject.toml" and new is not None and _build_system(old) != _build_system(new):
            return Decision(TAMPERED, f"changes how {path} builds the package (an install "
                                      "would run the new build backend as root)")
        return decision
    return decision


def pytest_section(name: str, data: bytes) -> object:
    """The pytest configuration held by a `tox.ini`, `setup.cfg` or `pyproject.toml` (None
    when it holds none). Raises ValueError when the file cannot be parsed."""
    text = data.decode("utf-8", errors="replace")
    if name == "pyproject.toml":
        try:
            doc = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ValueError(str(exc)) from None
        tool = doc.get("tool")
        return tool.get("pytest") if isinstance(tool, dict) else None
    parser = configparser.RawConfigParser(strict=False, interpolation=None)
    try:
        parser.read_string(text)
    except configparser.Error as exc:
        raise ValueError(str(exc).splitlines()[0]) from None
    return {section: dict(parser.items(section)) for section in ("pytest", "tool:pytest")
            if parser.has_section(section)} or None


_BUILD_CODE = re.compile(r"\b(os\.(system|popen|exec\w*|spawn\w*|remove|unlink|rename|"
                         r"replace|chmod)|subprocess|Popen|shutil|exec\s*\(|eval\s*\(|"
                         r"__import__|importlib|site-packages|sitecustomize|\.pth\b|"
                         r"open\s*\([^)]*['\"][wa])")


def _build_system(data: bytes | None) -> object:
    """The `[build-system]` table of a pyproject.toml (None: none, or unreadable)."""
    if data is None:
        return None
    try:
        return tomllib.loads(data.decode("utf-8", errors="replace")).get("build-system")
    except tomllib.TOMLDecodeError:
        return None


def _module_of(parts: tuple[str, ...]) -> str:
    top = parts[1] if parts[0] == "src" and len(parts) > 1 else parts[0]
    return top.split(".", 1)[0] if top.endswith(CODE_SUFFIXES) else top


def _shadows(parts: tuple[str, ...]) -> bool:
    """Whether a new file creates a top-level module (at the root or under `src/`) named
    like one the interpreter or pytest would import instead."""
    rel = parts[1:] if parts and parts[0] == "src" and len(parts) > 1 else parts
    if len(rel) == 1:
        return rel[0].endswith(CODE_SUFFIXES) and rel[0].split(".", 1)[0] in SHADOWED
    return rel[0] in SHADOWED


def _top_level_module(parts: tuple[str, ...]) -> bool:
    """Whether a file makes a module or package importable by a top-level name (at the
    root or under `src/`): `x.py`, `x.so`, `x/__init__.py`. Such a NEW name can shadow
    any installed dependency the tests import (`numpy/__init__.py` at the root, first on
    sys.path under `python -m pytest`), and none of the SWE-bench gold patches (lite and
    verified, 800) adds one: reproduction scripts (`reproduce.py`) are what agents add."""
    rel = parts[1:] if parts and parts[0] == "src" and len(parts) > 1 else parts
    if len(rel) == 1:
        return rel[0].endswith(CODE_SUFFIXES) and not rel[0].startswith(("setup", "."))
    return len(rel) == 2 and rel[1] in ("__init__.py", "__init__.pyi")


def _escapes(path: str, target: str) -> bool:
    if target.startswith("/"):
        return True
    depth = len(PurePosixPath(path).parts) - 1
    for part in PurePosixPath(target).parts:
        depth += -1 if part == ".." else (0 if part == "." else 1)
        if depth < 0:
            return True
    return False


# -- the patch, filtered by its own headers ---------------------------------------------------

_HEADER = re.compile(r'^diff --git (?P<a>"(?:[^"\\]|\\.)*"|\S+) (?P<b>"(?:[^"\\]|\\.)*"|\S+)$')


@dataclass(frozen=True)
class PatchBlock:
    """One file's part of a git patch."""

    path: str
    text: str


def split_patch(patch: str) -> list[PatchBlock]:
    """A git patch (made with `--no-renames`) cut at its `diff --git` headers. Raises
    ValueError when a header cannot be read or names two different paths, or text comes
    before the first header."""
    blocks: list[PatchBlock] = []
    lines = patch.splitlines(keepends=True)
    current: list[str] = []
    path: str | None = None
    for line in lines:
        if line.startswith("diff --git "):
            if path is not None:
                blocks.append(PatchBlock(path, "".join(current)))
            m = _HEADER.match(line.rstrip("\n"))
            if not m:
                raise ValueError(f"unreadable patch header {line[:200]!r}")
            a, b = _unquote(m.group("a")), _unquote(m.group("b"))
            if not (a.startswith("a/") and b.startswith("b/")) or a[2:] != b[2:]:
                raise ValueError(f"patch header names two paths: {line[:200]!r}")
            path, current = b[2:], [line]
        elif path is None:
            if line.strip():
                raise ValueError(f"text before the first patch header: {line[:200]!r}")
        else:
            current.append(line)
    if path is not None:
        blocks.append(PatchBlock(path, "".join(current)))
    return blocks


def _unquote(token: str) -> str:
    """A path as git wrote it: bare, or C-quoted with octal escapes for bytes."""
    if not token.startswith('"'):
        return token
    body, out, i = token[1:-1], bytearray(), 0
    simple = {"n": 10, "t": 9, "r": 13, "a": 7, "b": 8, "f": 12, "v": 11, "\\": 92, '"': 34}
    while i < len(body):
        ch = body[i]
        if ch == "\\" and i + 1 < len(body):
            nxt = body[i + 1]
            if nxt in simple:
                out.append(simple[nxt])
                i += 2
                continue
            if re.fullmatch(r"[0-7]{3}", body[i + 1:i + 4]):
                out.append(int(body[i + 1:i + 4], 8))
                i += 4
                continue
        out += ch.encode()
        i += 1
    return out.decode("utf-8", errors="surrogateescape")
