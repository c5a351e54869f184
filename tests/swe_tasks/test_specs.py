"""The spec data files: complete for SWE-bench, faithful to its harness, installed in order."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from swe_tasks.environment import _YML_DEPS, install_steps, uses_python_layer
from swe_tasks.instance import SWEInstance
from swe_tasks.repo_spec import SPECS, RepoSpec, spec_for
from swe_tasks.specs import HERE, entries, load_all

DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "swebench"
FILES = ("swe-bench-verified.jsonl", "swe-bench-lite.json", "swe-bench-lite-dev.json")


def _records(name: str) -> list[dict]:
    path = DATA / name
    if name.endswith(".jsonl"):
        return [json.loads(line) for line in path.open() if line.strip()]
    return json.loads(path.read_text())


def test_every_file_loads_and_names_its_versions_once():
    seen = set()
    for path in sorted(HERE.glob("*.json")):
        for repo, version, _ in entries(path):
            assert path.name == repo.replace("/", "__") + ".json"
            assert (repo, version) not in seen, f"{repo} {version} twice"
            seen.add((repo, version))
    assert seen == set(load_all()) and len(seen) >= 290
    assert len({repo for repo, _ in seen}) >= 18


@pytest.mark.parametrize("name", FILES)
def test_every_swe_bench_instance_has_its_spec(name):
    if not DATA.is_dir():
        if os.environ.get("CI"):
            pytest.fail(f"{DATA} is missing: the SWE-bench files are project data")
        pytest.skip("../shared/data/swebench is not on this machine")
    missing = {(r["repo"], str(r["version"])) for r in _records(name)} - set(SPECS)
    assert not missing, sorted(missing)[:10]


def test_the_harness_facts_carry_over():
    pytest_54 = SPECS[("pytest-dev/pytest", "5.4")]
    assert pytest_54.python == "3.9" and "pluggy==0.13.1" in pytest_54.pip_packages
    # /testbed holds no history: setuptools_scm is told the version
    assert pytest_54.env["SETUPTOOLS_SCM_PRETEND_VERSION"] == "5.4.0"
    assert SPECS[("pydata/xarray", "2022.06")].env["SETUPTOOLS_SCM_PRETEND_VERSION"] == "2022.06.0"
    requests = SPECS[("psf/requests", "2.0")]
    assert (requests.python, requests.packages, requests.install) == (
        "3.9", ["pytest"], ["python -m pip install ."])
    assert requests.network == "httpbin" and SPECS[("psf/requests", "2.9")].network == "blackhole"
    flask = SPECS[("pallets/flask", "2.3")]
    assert flask.python == "3.11" and flask.requirements == ["requirements/dev.txt"]
    assert "Werkzeug==2.3.7" in flask.pip_packages
    django = SPECS[("django/django", "3.0")]
    assert (django.python, django.runner) == ("3.6", "django")
    assert django.env["LC_ALL"] == "en_US.UTF-8" and "runtests.py" in django.harness_test_cmd
    assert SPECS[("sympy/sympy", "1.1")].runner == "sympy"
    sphinx = SPECS[("sphinx-doc/sphinx", "3.5")]
    # tox's own arguments stay with tox: the harness's `tox --current-env -epy39 -v --`
    # runs tox.ini's `python -X dev -m pytest`
    assert sphinx.test_command == "python -X dev -m pytest -p no:cacheprovider -rA"
    assert not [k for k, s in SPECS.items() if "--current-env" in s.test_command]
    assert sphinx.pre_install[0] == "sed -i 's/pytest/pytest -rA/' tox.ini"
    assert SPECS[("matplotlib/matplotlib", "3.5")].environment_yml == ["environment.yml"]
    astropy = SPECS[("astropy/astropy", "1.3")]
    assert astropy.test_command.endswith("-vv -o console_output_style=classic --tb=no")
    assert all(s.build_tools for s in SPECS.values())


def test_install_order_is_the_harness_order():
    spec = RepoSpec(packages=["numpy"], requirements=["req.txt"], environment_yml=["env.yml"],
                    pip_packages=["a==1"], pre_install=["X=1", "echo $X"], install=["make"])
    steps = install_steps(spec)
    assert steps[0] == "pip install numpy"
    assert "req.txt" in steps[1] and "env.yml" in steps[2]
    assert steps[3] == "pip install a==1"
    assert steps[4] == "cd /testbed\nX=1\necho $X"  # one shell: variables carry over
    assert steps[5] == "cd /testbed && make"
    assert "import pytest" in steps[6]
    assert not uses_python_layer(RepoSpec()) and uses_python_layer(RepoSpec(python="3.9"))


def test_conda_environment_files_become_pip_requirements(tmp_path):
    yml = tmp_path / "environment.yml"
    yml.write_text("name: t\nchannels: [conda-forge]\ndependencies:\n  - python=3.10\n"
                   "  - numpy=1.23\n  - dask-core\n  - scipy>=1.5\n  - conda-forge::pint\n"
                   "  - pip\n  - pip:\n      - sphinx-book-theme\n")
    out = subprocess.run([sys.executable, "-c", _YML_DEPS, str(yml)], capture_output=True,
                         text=True, check=True).stdout.split()
    assert out == ["numpy==1.23.*", "dask", "scipy>=1.5", "pint", "sphinx-book-theme"]


def test_rebench_install_config_and_unknown_versions():
    inst = SWEInstance.model_validate({
        "instance_id": "o__r-1", "repo": "o/r", "base_commit": "a" * 40,
        "patch": "diff --git a/x b/x\n", "FAIL_TO_PASS": ["t.py::t"], "version": "9.9",
        "install_config": {"python": "3.9", "install": "pip install -e .", "packages": "numpy",
                           "pip_packages": ["pytest==7.4.4"], "reqs_path": ["r.txt"],
                           "test_cmd": "pytest -rA"}})
    spec = spec_for(inst)
    assert (spec.python, spec.packages, spec.install) == (
        "3.9", ["numpy"], ["pip install -r r.txt", "pip install -e ."])
    unknown = SWEInstance.model_validate({**inst.to_record(), "install_config": None})
    assert spec_for(unknown) == RepoSpec()
