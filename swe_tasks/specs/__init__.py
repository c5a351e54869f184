"""Spec data files: one JSON file per repository, `<owner>__<name>.json`.

Each file: `{"repo": "owner/name", "source": "...", "specs": [{"versions": [...], ...}]}`;
every entry lists the versions it covers and `RepoSpec` fields. `scm_pretend_version:
true` sets `SETUPTOOLS_SCM_PRETEND_VERSION` to the version (`5.4` -> `5.4.0`), since
environment images hold no git history. A file that does not validate is a bug in
the package: loading raises at import, naming the file and the entry.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent


def scm_version(version: str) -> str:
    """The release a version line stands for: `5.4` -> `5.4.0`, `2022.06` -> `2022.06.0`."""
    return f"{version}.0" if version.count(".") == 1 else version


def entries(path: Path) -> list[tuple[str, str, dict[str, Any]]]:
    """(repo, version, RepoSpec fields) for every version a spec file covers."""
    doc = json.loads(path.read_text())
    out = []
    for entry in doc["specs"]:
        fields = {k: v for k, v in entry.items() if k not in ("versions", "scm_pretend_version")}
        fields.setdefault("pip_packages", [])
        fields.setdefault("install", [])
        fields.setdefault("build_tools", True)
        for version in entry["versions"]:
            f = dict(fields)
            if entry.get("scm_pretend_version"):
                f["env"] = {**f.get("env", {}),
                            "SETUPTOOLS_SCM_PRETEND_VERSION": scm_version(version)}
            out.append((doc["repo"], version, f))
    return out


@cache
def _load() -> dict[tuple[str, str], Any]:
    from swe_tasks.repo_spec import RepoSpec

    specs = {}
    for path in sorted(HERE.glob("*.json")):
        for repo, version, fields in entries(path):
            try:
                specs[(repo, version)] = RepoSpec.model_validate(fields)
            except ValueError as e:
                raise ValueError(f"{path.name}: {repo} {version}: {e}") from None
    return specs


def load_all() -> dict[tuple[str, str], Any]:
    """Every (repo, version) -> RepoSpec of the data files (a fresh dict each call)."""
    return dict(_load())
