"""What a source's tests need, read from its files before anything is built.

A release's own install pulls in its runtime dependencies, never what its tests import
(hypothesis, pytz, a plugin) nor how they are collected. `discover(files)` reads, without
running anything:
- declared test dependencies: extras named like tests (`[test]`, `[tests]`, `[testing]`;
  from pyproject, setup.cfg or setup.py), requirement files named for tests, tox `deps`;
  broad lists (`dev` extras, poetry/PDM/PEP 735 groups, dev requirement files, noxfile
  installs) only where the tests import the package or it is a pytest plugin;
- imports of the test modules that are neither the standard library, the package itself
  nor a file of the tree, mapped to their PyPI names (`IMPORT_TO_DIST`, else the name);
- how tests are collected: the pytest configuration if there is one, otherwise the test
  folders as `testpaths` and wider `python_files` when the default patterns find nothing
  (`test.py`, `tests.py`, `*_tests.py`).
No test file at all means the source cannot give instances (`has_tests` is False).
"""

from __future__ import annotations

import ast
import configparser
import re
import sys
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from fnmatch import fnmatch
from pathlib import PurePosixPath

IMPORT_TO_DIST = {
    "yaml": "PyYAML", "dateutil": "python-dateutil", "PIL": "Pillow", "bs4": "beautifulsoup4",
    "sklearn": "scikit-learn", "cv2": "opencv-python-headless", "attr": "attrs",
    "jwt": "PyJWT", "dns": "dnspython", "OpenSSL": "pyOpenSSL", "Crypto": "pycryptodome",
    "serial": "pyserial", "magic": "python-magic", "docx": "python-docx", "git": "GitPython",
    "google": "protobuf", "pkg_resources": "setuptools", "_pytest": "pytest",
    "railroad": "railroad-diagrams", "slugify": "python-slugify", "dotenv": "python-dotenv",
    "multipart": "python-multipart", "jose": "python-jose", "gi": "PyGObject",
    "markdown": "Markdown", "jinja2": "Jinja2", "markupsafe": "MarkupSafe", "lxml": "lxml",
    "simplejson": "simplejson", "faker": "Faker", "typing_extensions": "typing-extensions",
    "zmq": "pyzmq", "win32api": "pywin32", "Levenshtein": "python-Levenshtein",
    "levenshtein": "Levenshtein", "tz": "tzdata", "ruamel": "ruamel.yaml",
    "importlib_metadata": "importlib-metadata", "importlib_resources": "importlib-resources",
    "backports": "backports.zoneinfo", "zope": "zope.interface", "tidylib": "pytidylib", "nose": "nose", "mock": "mock",
}
"""Import names whose PyPI distribution is named otherwise (the rest install as named)."""

TEST_EXTRA = re.compile(r"^(tests?|testing|test[-_].*|.*[-_]tests?|check)$", re.IGNORECASE)
BROAD_EXTRA = re.compile(r"^(dev|develop|development|all|full|ci)$", re.IGNORECASE)
TOX_TEST_ENV = re.compile(r"^testenv(:(py\d[\w.-]*|pypy[\w.-]*|tests?|unit|pytest))?$")
DEFAULT_PATTERNS = ("test_*.py", "*_test.py")
WIDE_PATTERNS = ("test*.py", "*_test.py", "*_tests.py", "tests.py")
TEST_DIRS = ("tests", "test", "testing", "t")
SKIP_DIRS = frozenset({"docs", "doc", "examples", "example", "benchmarks", "bench", "build",
                       "dist", ".tox", ".git", "site-packages"})
CONFIG_FILES = ("pytest.ini", ".pytest.ini", "pyproject.toml", "setup.cfg", "tox.ini",
                "setup.py", "noxfile.py")
_REQ_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


@dataclass
class Discovery:
    """What the tests need; `notes` says where each finding came from (for the report)."""

    own_modules: set[str] = field(default_factory=set)
    requirements: list[str] = field(default_factory=list)
    test_files: list[str] = field(default_factory=list)
    python_files: list[str] | None = None
    testpaths: list[str] | None = None
    pytest_config: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def has_tests(self) -> bool:
        return bool(self.test_files)


def dist_name(requirement: str) -> str:
    """The normalized distribution name of a requirement line (`Foo_Bar>=1` -> `foo-bar`)."""
    match = _REQ_NAME.match(requirement)
    return re.sub(r"[-_.]+", "-", match.group(1)).lower() if match else ""


def own_modules(paths: Iterable[str]) -> set[str]:
    """Top-level import names the source itself provides (packages, root modules, src/)."""
    out: set[str] = set()
    for path in paths:
        parts = PurePosixPath(path).parts
        if parts and parts[0] == "src":
            parts = parts[1:]
        if len(parts) == 1 and parts[0].endswith(".py"):
            out.add(parts[0][:-3])
        elif len(parts) >= 2 and parts[-1].endswith((".py", ".pyi", ".so")):
            out.add(parts[0])
    return {m for m in out if m.isidentifier()}


def _is_test_file(path: str, patterns: Iterable[str]) -> bool:
    p = PurePosixPath(path)
    return (p.suffix == ".py" and not SKIP_DIRS & set(p.parts[:-1])
            and any(fnmatch(p.name, pat) for pat in patterns) and p.name != "conftest.py")


def _imports(text: str) -> set[str]:
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError):
        return set()
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def _req_lines(text: str) -> list[str]:
    out = []
    for line in text.splitlines():
        line = line.split(" #", 1)[0].strip()
        if line and not line.startswith(("#", "-", ".", "/")) and "://" not in line:
            out.append(line)
    return out


def _toml(files: Mapping[str, str]) -> dict:
    try:
        return tomllib.loads(files.get("pyproject.toml", ""))
    except tomllib.TOMLDecodeError:
        return {}


def _cfg(text: str) -> configparser.ConfigParser:
    cfg = configparser.ConfigParser(interpolation=None, strict=False)
    try:
        cfg.read_string(text)
    except configparser.Error:
        pass
    return cfg


def _setup_py_extras(text: str) -> dict[str, list[str]]:
    """`extras_require={...}` in setup.py when it is a literal (or a name bound to one)."""
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError):
        return {}
    bound = {t.id: n.value for n in ast.walk(tree) if isinstance(n, ast.Assign)
             for t in n.targets if isinstance(t, ast.Name)}
    for node in ast.walk(tree):
        if isinstance(node, ast.keyword) and node.arg == "extras_require":
            value = bound.get(node.value.id) if isinstance(node.value, ast.Name) else node.value
            try:
                extras = ast.literal_eval(value) if value is not None else {}
            except ValueError:
                return {}
            if isinstance(extras, dict):
                return {str(k): [str(x) for x in v] for k, v in extras.items()
                        if isinstance(v, (list, tuple))}
    return {}


def _older_pythons(files: Mapping[str, str]) -> set[str]:
    """Requirement files for an older Python than a sibling's (`requirements-tests36.txt`
    beside `...39.txt`): only the newest Python's is read, the closest to the image's."""
    groups: dict[tuple[str, str], list[tuple[int, str]]] = {}
    for path in files:
        if m := re.fullmatch(r"(.*req[^/]*?)(?:py)?(\d{2,3})(\.txt|\.in)", path.lower()):
            groups.setdefault((m[1], m[3]), []).append((int(m[2]), path))
    return {p for members in groups.values() for _, p in sorted(members)[:-1]}


def _declared(files: Mapping[str, str]) -> list[tuple[str, str, bool]]:
    """(requirement, where, narrow) from every place a project declares test needs."""
    out: list[tuple[str, str, bool]] = []
    doc = _toml(files)
    project = doc.get("project", {})
    extras: dict[str, list[str]] = dict(project.get("optional-dependencies") or {})
    setup_cfg = _cfg(files.get("setup.cfg", ""))
    if setup_cfg.has_section("options.extras_require"):
        extras.update({k: _req_lines(v) for k, v in setup_cfg["options.extras_require"].items()})
    extras.update(_setup_py_extras(files.get("setup.py", "")))
    for name, reqs in extras.items():
        if TEST_EXTRA.match(name) or BROAD_EXTRA.match(name):
            out += [(r, f"extra [{name}]", bool(TEST_EXTRA.match(name))) for r in reqs]
    tool = doc.get("tool", {})
    poetry = tool.get("poetry", {})
    groups = {g: v.get("dependencies", {}) for g, v in (poetry.get("group") or {}).items()}
    groups["dev-dependencies"] = poetry.get("dev-dependencies") or {}
    for g, deps in groups.items():
        out += [(n, f"poetry group {g}", bool(TEST_EXTRA.match(g))) for n in deps
                if n != "python"]
    for g, reqs in {**(tool.get("pdm", {}).get("dev-dependencies") or {}),
                    **(doc.get("dependency-groups") or {})}.items():
        out += [(r, f"group {g}", bool(TEST_EXTRA.match(g))) for r in reqs if isinstance(r, str)]
    for env, spec in (tool.get("hatch", {}).get("envs") or {}).items():
        out += [(r, f"hatch env {env}", env in ("test", "tests", "default"))
                for r in spec.get("dependencies") or [] if isinstance(r, str)]
    for path, text in files.items():
        name = PurePosixPath(path).name.lower()
        if path in _older_pythons(files):
            continue
        if path.count("/") <= 1 and name.endswith((".txt", ".in")) and "req" in path.lower():
            narrow = "test" in name
            if narrow or "dev" in name or "ci" in name:
                out += [(r, path, narrow) for r in _req_lines(text)]
    tox = _cfg(files.get("tox.ini", ""))
    for section in tox.sections():
        if section.startswith("testenv") and tox.has_option(section, "deps"):
            for line in _req_lines(tox.get(section, "deps")):
                line = re.sub(r"^[\w,{}-]+:\s*", "", line)  # tox factor prefix "py37: foo"
                if line and "{" not in line:
                    out.append((line, f"tox.ini [{section}]", bool(TOX_TEST_ENV.match(section))))
    for call in re.findall(r"session\.install\(([^)]*)\)", files.get("noxfile.py", "")):
        out += [(r, "noxfile.py", False) for r in re.findall(r"[\"']([^\"']+)[\"']", call)
                if not r.startswith(("-", "."))]
    return out


def _pytest_config(files: Mapping[str, str]) -> tuple[str | None, dict[str, str]]:
    """The file pytest would read its configuration from, and that configuration."""
    for path in ("pytest.ini", ".pytest.ini"):
        if path in files:
            cfg = _cfg(files[path])
            return path, dict(cfg["pytest"]) if cfg.has_section("pytest") else {}
    ini = _toml(files).get("tool", {}).get("pytest", {}).get("ini_options")
    if ini is not None:
        return "pyproject.toml", {k: " ".join(v) if isinstance(v, list) else str(v)
                                  for k, v in ini.items()}
    for path, section in (("tox.ini", "pytest"), ("setup.cfg", "tool:pytest")):
        cfg = _cfg(files.get(path, ""))
        if cfg.has_section(section):
            return path, dict(cfg[section])
    return None, {}


def discover(files: Mapping[str, str], paths: Iterable[str]) -> Discovery:
    """See the module docstring. `files`: text of the config files and test modules;
    `paths`: every path of the tree."""
    paths = sorted(paths)
    found = Discovery(own_modules=own_modules(p for p in paths if not _is_test_file(
        p, WIDE_PATTERNS) and not SKIP_DIRS & set(PurePosixPath(p).parts[:-1])))
    found.pytest_config, ini = _pytest_config(files)
    patterns = tuple(ini.get("python_files", "").split()) or DEFAULT_PATTERNS
    found.test_files = [p for p in paths if _is_test_file(p, patterns)]
    if not found.test_files and "python_files" not in ini:
        wide = [p for p in paths if _is_test_file(p, WIDE_PATTERNS)]
        if wide:
            found.test_files, found.python_files = wide, list(WIDE_PATTERNS)
            found.notes.append(f"no test_*.py: collecting {' '.join(WIDE_PATTERNS)}")
    if found.test_files and "testpaths" not in ini:
        tops = sorted({PurePosixPath(p).parts[0] for p in found.test_files})
        if all(t in TEST_DIRS or t == "src" or t in found.own_modules or t.endswith(".py")
               for t in tops) and len(tops) <= 4:
            found.testpaths = tops
    if found.pytest_config:
        found.notes.append(f"pytest configuration in {found.pytest_config}")
    local = found.own_modules | {PurePosixPath(p).stem for p in paths if p.endswith(".py")} \
        | {part for p in paths for part in PurePosixPath(p).parts[:-1]}
    imported: dict[str, str] = {}
    for path in found.test_files + [p for p in paths if p.endswith("conftest.py")]:
        for mod in _imports(files.get(path, "")):
            if mod not in sys.stdlib_module_names and mod not in local and mod != "__future__":
                imported.setdefault(IMPORT_TO_DIST.get(mod, mod), path)
    imported_names = {dist_name(d) for d in imported}
    chosen: dict[str, str] = {}
    for req, where, narrow in _declared(files):
        name = dist_name(req)
        if not name or name.replace("-", "_") in found.own_modules or name in chosen:
            continue
        if narrow or name in imported_names or name.startswith("pytest-"):
            chosen[name] = req
            found.notes.append(f"{req} ({where})")
    for dist, path in sorted(imported.items()):
        if dist_name(dist) not in chosen and dist_name(dist) != "pytest":
            chosen[dist_name(dist)] = dist
            found.notes.append(f"{dist} (imported by {path})")
    found.requirements = [r for r in chosen.values() if r.strip().lower() != "pytest"]
    return found


def files_to_read(paths: Iterable[str]) -> list[str]:
    """The paths `discover` needs the text of: configuration, requirement files, tests."""
    out = []
    for path in paths:
        p = PurePosixPath(path)
        if (path in CONFIG_FILES or (p.suffix in (".txt", ".in") and "req" in path.lower()
                                     and path.count("/") <= 1)
                or (p.suffix == ".py" and (_is_test_file(path, WIDE_PATTERNS)
                                           or p.name == "conftest.py"))):
            out.append(path)
    return out
