"""How to install a repository and run its tests: `RepoSpec`, per repo and version.

`spec_for(instance)` picks, in order: the instance's own SWE-rebench `install_config`; a
spec for (repo, version) from the data files in `swe_tasks/specs/` (or one `register`ed
at run time); the default for plain Python packages (`pip install -e .` with any test
extras, then pytest). Specs are data: add a repo by adding a file, never a branch in code.

The data files carry the facts of the SWE-bench harness's spec tables (Python version,
packages, pins, pre-install steps, install, test command, environment) in envfarm's own
schema; `swe_tasks.specs` reads them. Where envfarm deliberately differs:
- tests run with no network: outbound connections are black-holed (they time out, as
  on the harness's machines for unroutable addresses) and names do not resolve
  (`network`, see `swe_tasks.network`); tests known to need the internet are listed in
  `network_tests` so a failure of theirs is explained, not blamed on the task;
- conda packages are installed with pip (same names), and `environment.yml` files are
  read for their pip-installable dependencies;
- the image's /testbed has no git history, so repositories that take their version from
  git (setuptools_scm) get `SETUPTOOLS_SCM_PRETEND_VERSION` (`scm_pretend_version`).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from swe_tasks.instance import SWEInstance

DEFAULT_INSTALL = (
    'pip install -e ".[test,tests,testing]"; '  # missing extras only warn
    "for f in requirements-test.txt requirements-tests.txt test-requirements.txt "
    "requirements/test.txt requirements/tests.txt requirements/testing.txt; "
    'do if [ -f "$f" ]; then pip install -r "$f"; fi; done'
)
PYTEST = "python -m pytest -p no:cacheprovider -rA"
BASE_PYTHON = "3.11"


class RepoSpec(BaseModel):
    """Install and test recipe of one repository version. Paths are relative to /testbed.

    The image installs, in this order (as the SWE-bench harness does): `packages`, the
    first existing file of `requirements` / `environment_yml`, `pip_packages`, then in
    /testbed `pre_install` and `install`.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    python: str = Field(BASE_PYTHON, description="Python version the repo needs (major.minor).")
    packages: list[str] = Field(default_factory=list,
                                description="Packages of the harness's conda env (pip names).")
    requirements: list[str] = Field(
        default_factory=list,
        description="Requirement files; the first that exists is pip-installed.")
    environment_yml: list[str] = Field(
        default_factory=list,
        description="conda environment files; the first that exists is read for its deps.")
    pre_install: list[str] = Field(default_factory=list,
                                   description="Shell steps in /testbed before install.")
    pip_packages: list[str] = Field(default_factory=lambda: ["pytest"],
                                    description="Pinned packages pip-installed before the repo.")
    install: list[str] = Field(default_factory=lambda: [DEFAULT_INSTALL],
                               description="Shell steps that install the repo, run in /testbed.")
    post_inject: list[str] = Field(
        default_factory=list,
        description="Steps run after an instance's code lands in /testbed (e.g. build_ext).",
    )
    test_command: str = Field(PYTEST, description="pytest invocation; report and ids appended.")
    runner: Literal["pytest", "django", "sympy", "python"] = Field(
        "pytest", description="The test runner the harness uses (`harness_test_cmd`).")
    harness_test_cmd: str | None = Field(
        None, description="The SWE-bench harness's own test command, verbatim (reference).")
    test_timeout_s: float = Field(1800.0, gt=0, description="Limit of one test run.")
    env: dict[str, str] = Field(default_factory=dict,
                                description="Environment of the image build and test runs.")
    network: Literal["none", "blackhole", "httpbin"] = Field(
        "blackhole", description="`none`: connects fail at once (no route); `blackhole`: they "
        "time out and names fail to resolve at once, as offline harness runs assume; "
        "`httpbin`: the black hole, with a local httpbin as httpbin.org (swe_tasks.network).")
    network_tests: list[str] = Field(
        default_factory=list,
        description="Test ids (or id prefixes) that need the internet and fail here.")
    build_tools: bool = Field(
        False, description="Build on the Python layer (compilers, headers, fresh pip) even "
        "when the base's Python would do; SWE-bench specs set it, as its images have them.")
    test_user: str | None = Field(None, description="Run tests as this user (harness: nonroot).")
    cpus: float | None = Field(None, gt=0, description="CPUs the harness gives the tests.")

    @classmethod
    def from_install_config(cls, cfg: dict[str, Any]) -> RepoSpec:
        """A spec from a SWE-rebench `install_config` (python, install, pip_packages, ...)."""
        install = cfg.get("install") or "pip install -e ."
        pre = list(cfg.get("pre_install") or [])
        pip = list(cfg.get("pip_packages") or [])
        reqs = cfg.get("reqs_path") or []
        steps = [f"pip install -r {r}" for r in ([reqs] if isinstance(reqs, str) else reqs)]
        steps += [install] if isinstance(install, str) else list(install)
        packages = cfg.get("packages") or []
        if isinstance(packages, str):  # "requirements.txt" is covered by reqs_path
            packages = [] if packages.endswith((".txt", ".yml")) else packages.split()
        test_cmd = str(cfg.get("test_cmd") or PYTEST)
        if "pytest" not in test_cmd:
            test_cmd = PYTEST
        return cls(python=str(cfg.get("python") or BASE_PYTHON), packages=list(packages),
                   pre_install=pre, pip_packages=pip or ["pytest"], install=steps,
                   test_command=test_cmd, env=dict(cfg.get("env_vars") or {}))


def _specs() -> dict[tuple[str, str], RepoSpec]:
    from swe_tasks.specs import load_all

    return load_all()


SPECS: dict[tuple[str, str], RepoSpec] = _specs()
"""(repo, version) -> spec, from the data files (plus what `register` adds)."""


def register(repo: str, version: str, spec: RepoSpec) -> None:
    """Add or replace the spec of one repo version."""
    SPECS[(repo, version)] = spec


def spec_for(instance: SWEInstance) -> RepoSpec:
    """The spec that builds and tests `instance`; see the module docstring."""
    if instance.install_config:
        return RepoSpec.from_install_config(instance.install_config)
    if instance.version is not None and (instance.repo, instance.version) in SPECS:
        return SPECS[(instance.repo, instance.version)]
    return RepoSpec()
