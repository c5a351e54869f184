"""Environment setup of a source: build its image, check its tests collect, retry on what failed.

A release installs its runtime dependencies only; its tests need more (`discover`), and
what static reading misses shows up when pytest collects them. `set_up` builds the image
from an SWE-rebench style `install_config` (the package, then the discovered test
requirements, each install tolerant: one that cannot be had is named and skipped), runs
`pytest --collect-only` in an offline sandbox, and from its output decides one next step:
- `No module named 'X'` -> install X's distribution (`IMPORT_TO_DIST`), each at most once;
- `unrecognized arguments: --cov` (a plugin the config's addopts expects) -> the plugin,
  else drop the config's addopts;
- a conftest or plugin written for an older pytest (a hook's `path` argument, ...) ->
  pytest<8, then pytest<7;
- no tests collected -> wider `python_files` patterns;
- modules that still fail to import -> `--ignore` them (the rest of the suite runs).
At most `max_attempts` builds; every attempt is recorded (what changed, what happened).
Steps added by a retry go last, so the image layers before them come from the cache.
The install_config travels with every instance (`spec_for` reads it), so an episode's
image is this one, built by content, with the network only at build time.
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import asdict, dataclass, field
from pathlib import Path

from sandbox import DockerBackend, ImageBuilder, Limits
from sandbox.errors import ImageBuildError, TaskError
from swe_tasks.environment import ensure_image
from swe_tasks.instance import SWEInstance
from swe_tasks.repo_spec import BASE_PYTHON, PYTEST, spec_for
from swe_tasks.synth.discover import (
    IMPORT_TO_DIST,
    WIDE_PATTERNS,
    Discovery,
    discover,
    dist_name,
    files_to_read,
)
from swe_tasks.synth.source import SourceRepo, all_files, file_text

SETUP_VERSION = 1
OPTION_PLUGINS = {"--cov": "pytest-cov", "-n": "pytest-xdist", "--timeout": "pytest-timeout",
                  "--benchmark": "pytest-benchmark", "--mypy": "pytest-mypy",
                  "--flake8": "pytest-flake8", "--doctest-plus": "pytest-doctestplus",
                  "--asyncio-mode": "pytest-asyncio", "--reruns": "pytest-rerunfailures",
                  "--hypothesis": "hypothesis", "--randomly": "pytest-randomly",
                  "--mpl": "pytest-mpl", "--remote-data": "pytest-remotedata"}
_MISSING = re.compile(r"No module named '([\w.]+)'")
_OLD_PYTEST = re.compile(r"PluginValidationError|unknown hook|pytest_ignore_collect|"
                         r"pytest_collect_file|py\.path|has no attribute 'fspath'|"
                         r"unexpected keyword argument '(path|fspath)'")
_UNKNOWN_OPT = re.compile(r"unrecognized arguments: (\S+)")
_COLLECT_ERR = re.compile(r"ERROR collecting (\S+\.py)")
_TELLING = ((r"No module named|unrecognized arguments|PluginValidationError|ImportError|"
             r"AttributeError|TypeError|ERROR collecting"), r"[Ee]rror")
_COLLECTED = re.compile(r"(\d+) tests? collected|collected (\d+) items?")


class SetupFailed(TaskError):
    """The environment could not be set up; `stage` names where, `attempts` what was tried."""

    def __init__(self, stage: str, message: str, attempts: list[Attempt]) -> None:
        super().__init__(message)
        self.stage, self.attempts = stage, attempts


@dataclass
class Attempt:
    change: str
    outcome: str


@dataclass
class Plan:
    """The mutable recipe: what the next build installs and how pytest is called."""

    requirements: list[str]
    rounds: list[list[str]] = field(default_factory=list)
    pytest_pin: str = ""
    python_files: list[str] | None = None
    testpaths: list[str] | None = None
    ignores: list[str] = field(default_factory=list)
    clear_addopts: bool = False

    def tried(self) -> set[str]:
        return {dist_name(r) for r in self.requirements + [x for rd in self.rounds for x in rd]}


@dataclass
class EnvSetup:
    """A working environment: its install_config, image and the attempts that got there."""

    install_config: dict
    image: str
    attempts: list[Attempt]
    collected: int
    notes: list[str]


def tolerant_install(reqs: list[str]) -> str:
    """One pip step that installs `reqs`, else each it can, naming those it cannot."""
    quoted = " ".join(shlex.quote(r) for r in reqs)
    return (f"pip install {quoted} || for r in {quoted}; do pip install \"$r\" || "
            "echo \"envfarm: could not install $r\"; done")


def install_config(plan: Plan) -> dict:
    """The SWE-rebench `install_config` of `plan` (see `RepoSpec.from_install_config`)."""
    steps = ["pip install -e . || pip install ."]
    steps += [tolerant_install(r) for r in [plan.requirements, *plan.rounds] if r]
    cmd = PYTEST
    if plan.clear_addopts:
        cmd += " -o addopts=''"
    if plan.python_files:
        cmd += " -o " + shlex.quote("python_files=" + " ".join(plan.python_files))
    if plan.testpaths:
        cmd += " -o " + shlex.quote("testpaths=" + " ".join(plan.testpaths))
    cmd += "".join(f" --ignore={shlex.quote(p)}" for p in plan.ignores)
    return {"python": BASE_PYTHON, "pip_packages": ["pytest" + plan.pytest_pin],
            "install": steps, "test_cmd": cmd}


def discover_source(src: SourceRepo) -> Discovery:
    paths = sorted(all_files(src))
    texts = {p: file_text(src, p) for p in files_to_read(paths)}
    return discover(texts, paths)


def pseudo_instance(src: SourceRepo, config: dict | None) -> SWEInstance:
    """The clean tree as an instance: its image key and install_config are every
    synthesized instance's."""
    return SWEInstance(instance_id=f"{src.name}__clean", repo=src.repo, base_commit=src.commit,
                       patch="diff --git a/x b/x\n", FAIL_TO_PASS=["clean"],
                       version=f"{src.name}-{src.version}", environment_setup_commit=src.commit,
                       install_config=config)


def _probe(backend: DockerBackend, image: str, cmd: str) -> tuple[int | None, str]:
    """pytest --collect-only in an offline sandbox: (exit code, output tail)."""
    sandbox = backend.start(image, Limits(cpus=1.0, memory_mb=2048, pids=1024, network=False,
                                          timeout_s=600), workdir="/testbed")
    try:
        res = sandbox.exec(f"cd /testbed && {cmd} --collect-only -q --rootdir=/testbed "
                           "> /tmp/probe.log 2>&1; rc=$?; tail -c 12000 /tmp/probe.log; "
                           "exit $rc", timeout_s=300)
        return (None if res.timed_out else res.exit_code), res.output
    finally:
        sandbox.close()


def next_step(plan: Plan, found: Discovery, rc: int | None, output: str) -> str | None:
    """Change `plan` by what the failed probe's output names; the change made, or None."""
    tried = plan.tried()
    missing = []
    for mod in dict.fromkeys(m.split(".")[0] for m in _MISSING.findall(output)):
        dist = IMPORT_TO_DIST.get(mod, mod)
        if mod not in found.own_modules and dist_name(dist) not in tried:
            missing.append(dist)
    if missing:
        plan.rounds.append(missing)
        return "install " + " ".join(missing) + " (No module named ...)"
    if rc == 4 and (opt := _UNKNOWN_OPT.search(output)):
        plugin = OPTION_PLUGINS.get(opt.group(1).split("=")[0])
        if plugin and dist_name(plugin) not in tried:
            plan.rounds.append([plugin])
            return f"install {plugin} (unrecognized {opt.group(1)})"
        if not plan.clear_addopts:
            plan.clear_addopts = True
            return f"drop the config's addopts (unrecognized {opt.group(1)})"
    if _OLD_PYTEST.search(output) and plan.pytest_pin != "<7":
        plan.pytest_pin = "<8" if not plan.pytest_pin else "<7"
        return f"pytest{plan.pytest_pin} (conftest or plugin for an older pytest)"
    if rc == 5 and plan.python_files is None:
        plan.python_files = list(WIDE_PATTERNS)
        return "collect " + " ".join(WIDE_PATTERNS) + " (no tests collected)"
    broken = [p for p in dict.fromkeys(_COLLECT_ERR.findall(output)) if p not in plan.ignores]
    if rc in (1, 2) and broken and len(plan.ignores) + len(broken) < len(found.test_files):
        plan.ignores += broken
        return "ignore " + " ".join(broken) + " (still fail to import)"
    return None


def _cache_path(out: Path) -> Path:
    return out.with_name(out.name + ".setup.json")


def set_up(src: SourceRepo, out: Path, *, builder: ImageBuilder | None = None,
           backend: DockerBackend | None = None, max_attempts: int = 6) -> EnvSetup:
    """See the module docstring. Reuses `out.setup.json` when it is for this commit.
    Raises SetupFailed (a TaskError) with the attempts; SandboxError if Docker fails."""
    builder = builder or ImageBuilder()
    cached = _cache_path(out)
    if cached.exists():
        saved = json.loads(cached.read_text())
        if saved.get("commit") == src.commit and saved.get("version") == SETUP_VERSION:
            config = saved["install_config"]
            image = ensure_image(pseudo_instance(src, config), builder)
            return EnvSetup(config, image, [Attempt(**a) for a in saved["attempts"]],
                            saved["collected"], saved["notes"])
    found = discover_source(src)
    attempts: list[Attempt] = []
    if not found.has_tests:
        raise SetupFailed("no tests", "the source carries no test modules (test*.py, "
                          "*_test.py, tests.py); nothing can judge a bug", attempts)
    backend = backend or DockerBackend(run="swe-synth")
    plan = Plan(list(found.requirements), python_files=found.python_files,
                testpaths=found.testpaths)
    change = f"discovered: {len(found.requirements)} test requirements" + (
        f" ({', '.join(dist_name(r) for r in found.requirements)})" if found.requirements else "")
    for _ in range(max_attempts):
        config = install_config(plan)
        pseudo = pseudo_instance(src, config)
        try:
            image = ensure_image(pseudo, builder, spec_for(pseudo))
        except ImageBuildError as exc:
            attempts.append(Attempt(change, "image build failed: " + _tail(exc.log or str(exc))))
            raise SetupFailed("environment", f"the image did not build: {exc}", attempts) from None
        rc, output = _probe(backend, image, config["test_cmd"])
        counted = [int(a or b) for a, b in _COLLECTED.findall(output)]
        if rc == 0 and counted:
            attempts.append(Attempt(change, f"{counted[-1]} tests collected"))
            result = EnvSetup(config, image, attempts, counted[-1], found.notes)
            cached.parent.mkdir(parents=True, exist_ok=True)
            cached.write_text(json.dumps({"commit": src.commit, "version": SETUP_VERSION,
                                          **{k: v for k, v in asdict(result).items()
                                             if k != "image"}}))
            return result
        attempts.append(Attempt(change, f"collection exit {rc}: {_tail(output)}"))
        change = next_step(plan, found, rc, output)
        if change is None:
            break
    raise SetupFailed("test suite", f"the tests do not collect (exit {rc}) after "
                      f"{len(attempts)} attempts: {_tail(output)}", attempts)


def _tail(text: str, n: int = 160) -> str:
    """The most telling line of an output: a named cause, else an error, else the last."""
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    for pattern in _TELLING:
        hits = [ln for ln in lines if re.search(pattern, ln)]
        if hits:
            return hits[-1][:n]
    return (lines or [""])[-1][:n]
