"""Reading a changed file the way its consumer reads it, for the protected-path policy.

A rule such as "a `.pth` line that starts with `import` runs code" is only as good as
its parser. Python splits `.pth` files into lines on every line break `str.splitlines`
knows (`\\r` alone included) after dropping a UTF-8 byte-order mark; iniconfig
recognises `[ pytest ]` with spaces; importlib.metadata strips section names of
`entry_points.txt`; TOML lets a pytest section hide as a dotted key (`[tool]` then
`pytest.ini_options = {...}`) or an inline table. A byte regex over `^...` misses each of
these, and each was a way to load code into the verifier's pytest. So every check here
decodes the text and splits it as the consumer does, and anything it cannot read counts
as a match (conservative: the file is the agent's, the verifier must not trust it).
"""

from __future__ import annotations

import re
import tomllib

ARCHIVE_SUFFIXES = (".zip", ".egg", ".whl", ".pyz", ".jar")
"""A `.pth` line naming one of these puts an archive on sys.path whose content (modules,
`*.dist-info/entry_points.txt`) the policy cannot see: treated as code."""

PYTEST_INI_SECTIONS = frozenset({"pytest", "tool:pytest"})
UV_SOURCE_KEYS = frozenset({
    "index", "index-url", "extra-index-url", "find-links", "no-index", "sources",
    "override-dependencies", "constraint-dependencies", "pip", "python-install-mirror",
    "python-downloads", "python-preference", "cache-dir"})
"""`[tool.uv]` keys (or top-level `uv.toml` keys) that change what a later `uv pip
install pytest` / `uvx pytest` in the test script installs or which Python it runs."""


def lines(data: bytes) -> list[str]:
    """The text's lines as Python's own readers split them (any line break, no BOM)."""
    text = data.decode("utf-8", "surrogateescape")
    if text.startswith("\ufeff"):
        text = text[1:]
    return text.splitlines()


def pth_runs_code(data: bytes) -> bool:
    """Whether `site` executes a line of this `.pth` file (or would load an archive)."""
    for line in lines(data):
        bare = line.lstrip("\ufeff")
        if bare.startswith(("import ", "import\t")) or bare.strip().startswith("import"):
            return True
        if bare.strip().lower().endswith(ARCHIVE_SUFFIXES):
            return True
    return False


def declares_pytest_plugin(data: bytes) -> bool:
    """Whether an `entry_points.txt` has a `pytest11` section (however it is spaced)."""
    return any(_section(line) == "pytest11" for line in lines(data))


def ini_configures_pytest(data: bytes) -> bool:
    """Whether a `tox.ini` / `setup.cfg` has a section pytest reads."""
    return any(_section(line, comments=True) in PYTEST_INI_SECTIONS for line in lines(data))


def pyproject_configures(data: bytes) -> str | None:
    """What in a `pyproject.toml` (or `uv.toml` when `uv_file`) reaches the test toolchain:
    a `tool.pytest` table in any TOML spelling, or `tool.uv` keys that change what uv
    installs. None when nothing; unreadable TOML that mentions pytest or uv counts."""
    try:
        doc = tomllib.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError):
        lowered = data.lower()
        return "unreadable TOML naming pytest or uv" if (b"pytest" in lowered
                                                           or b"uv" in lowered) else None
    tool = doc.get("tool") if isinstance(doc.get("tool"), dict) else {}
    if "pytest" in tool:
        return "pytest configuration"
    uv = tool.get("uv")
    if isinstance(uv, dict) and UV_SOURCE_KEYS & set(uv):
        return "uv configuration that changes what the tests install"
    project = doc.get("project") if isinstance(doc.get("project"), dict) else {}
    declared = [project.get("dependencies"), project.get("optional-dependencies"),
                doc.get("dependency-groups")]
    if any(_local(s) for s in _strings(declared)):
        return "a dependency on local files (a test script's `uv add pytest` installs it)"
    return None


def uv_lock_local(data: bytes) -> bool:
    """Whether a `uv.lock` pins a package to local files (`path`, `directory`, `file:`
    URLs other than the project itself): `uv add pytest` / `uv sync` in the test script
    would install them. Unreadable: yes."""
    try:
        doc = tomllib.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError):
        return True
    for package in doc.get("package", []) if isinstance(doc.get("package"), list) else []:
        source = package.get("source") if isinstance(package, dict) else None
        if isinstance(source, dict):
            for key in ("path", "directory", "url", "registry"):
                value = source.get(key)
                if isinstance(value, str) and value not in (".", "./") and _local(value):
                    return True
    return False


def _local(value: str) -> bool:
    text = value.strip()
    return "file:" in text or text.startswith(("/", "../", "~")) or " @ /" in text \
        or "@/" in text.replace(" ", "")


def _strings(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


def uv_toml_configures(data: bytes) -> bool:
    """Whether a `uv.toml` changes what uv installs (unreadable: yes)."""
    try:
        doc = tomllib.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError):
        return True
    return bool(UV_SOURCE_KEYS & set(doc))


def _section(line: str, comments: bool = False) -> str | None:
    stripped = line.strip()
    if comments:
        for char in "#;":
            stripped = stripped.split(char)[0].rstrip()
    if stripped.startswith("[") and stripped.endswith("]"):
        return stripped[1:-1].strip().lower()
    return None


_GIT_RUNS = re.compile(r"(?im)^\s*(fsmonitor|pager|editor|sshcommand|hookspath|askpass|helper|"
                       r"program|driver|textconv|external|gitproxy|packobjectshook|"
                       r"clean|smudge|process)\s*=|^\s*\[\s*(include|includeif)\b|"
                       r"^\s*\w+\s*=\s*!")
_APT_RUNS = re.compile(r"(?i)invoke|install-pkgs|dir::|\bdir\s*\{|::methods")
_NPM_RUNS = re.compile(r"(?im)^\s*(script-shell|node-options|onload-script|prefix|"
                       r"globalconfig|userconfig|init-module|git)\s*=")
_APT_SOURCE_LOCAL = re.compile(r"(?i)\bfile:|\bcopy:|\bcdrom:|trusted\s*=\s*yes|"
                               r"trusted:\s*yes")


def git_config_runs(data: bytes) -> bool:
    """Whether a git configuration names a command git would run (fsmonitor, pager,
    hooksPath, filters, diff drivers, `!` aliases, includes of other files, ...)."""
    return bool(_GIT_RUNS.search(data.decode("utf-8", "replace")))


def apt_config_runs(data: bytes) -> bool:
    """Whether an apt or dpkg configuration runs commands or moves apt's own paths."""
    return bool(_APT_RUNS.search(data.decode("utf-8", "replace")))


def apt_source_local(data: bytes) -> bool:
    """Whether an apt source is a local or unauthenticated repository (its packages
    would replace `curl` or `python3` when the test script runs `apt-get install`)."""
    return bool(_APT_SOURCE_LOCAL.search(data.decode("utf-8", "replace")))


def npm_config_runs(data: bytes) -> bool:
    """Whether an `.npmrc` sets the shell, node options or paths npm runs scripts with."""
    return bool(_NPM_RUNS.search(data.decode("utf-8", "replace")))
