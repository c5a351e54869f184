"""SWE task synthesis: mutation strategies on small sources, then end to end on a real package.

Unit part (no Docker): every strategy's candidates apply with `git apply`, change exactly
one function (everything outside that function's lines byte-identical), compile, and their
fix restores the original.

End to end (Docker, slow): toolz 0.12.1's sdist from PyPI; its environment image is built
once; the first candidates (fixed seed) are judged in fresh sandboxes; the instances are
checked against the repository (buggy commit = clean + bug, patch = its reverse), the run
resumes without judging anything twice, the CLI puts them in the catalogue, and through
`envfarm/swe-v0` the gold patch scores 1.0 and doing nothing 0.0 on three of them.
At least 50 unique valid instances come out of the first 110 candidates (62 measured).

Environment setup: discovery on real sdists from PyPI (test requirements, collection, no
tests at all), the retry rules on pytest's own messages, and the whole loop on iso8601
(its tests import pytz through hypothesis, which nothing declares: the retry installs it).
"""

from __future__ import annotations

import ast
import difflib
import json
import re
import subprocess
from pathlib import Path

import pytest

from sandbox.errors import TaskError
from swe_tasks.synth import STRATEGIES, Candidate, SynthConfig, generate, synthesize
from swe_tasks.synth.discover import Discovery
from swe_tasks.synth.env_setup import Plan, SetupFailed, discover_source, next_step, set_up
from swe_tasks.synth.instances import template_statement
from swe_tasks.synth.patching import changed_functions, functions
from swe_tasks.synth.rewriter import rewrite_candidates

SRC = '''"""A small module with a bit of everything."""
import math

LIMIT = 10  # module level: never mutated


def clamp(x, lo, hi):
    """Clamp x into [lo, hi]."""
    if x < lo and lo is not None:
        return lo
    if x > hi or hi is None:  # upper bound
        return hi
    return x


class Box:
    def area(self, w, h):
        total = w * h + 1
        total -= 1
        return max(total, 0)

    def first(self, items):
        for item in items[1:]:
            if not item:
                continue
            return item
        return None if items else False


def pairs(xs):
    return [(a, b) for a, b in zip(xs, xs[1:])]


def spread(values, k=2):
    return math.fsum(v ** k for v in values) / len(values) - LIMIT % 3
'''


def _apply(tmp: Path, name: str, text: str, patch: str) -> str:
    root = tmp / name
    root.mkdir()
    (root / "m.py").write_text(text)
    proc = subprocess.run(["git", "apply", "-"], cwd=root, input=patch, text=True,
                          capture_output=True, check=False)
    assert proc.returncode == 0, proc.stderr + patch
    return (root / "m.py").read_text()


def _func_span(text: str, qualname: str) -> tuple[int, int]:
    func = dict(functions(ast.parse(text)))[qualname]
    return func.lineno, func.end_lineno


@pytest.mark.parametrize("strategy", STRATEGIES, ids=lambda s: s.name)
def test_each_strategy_patches_exactly_one_function(strategy, tmp_path):
    cands = list(generate({"m.py": SRC}, strategies=(strategy,), limit=6))
    assert cands, f"{strategy.name} proposed nothing on the sample"
    for i, cand in enumerate(cands):
        assert cand.strategy == strategy.name and cand.path == "m.py"
        new = _apply(tmp_path, f"{strategy.name}-{i}", SRC, cand.patch)
        compile(new, "m.py", "exec")
        assert changed_functions(SRC, new) == [cand.function]
        lo, hi = _func_span(SRC, cand.function)
        matcher = difflib.SequenceMatcher(a=SRC.split("\n"), b=new.split("\n"), autojunk=False)
        for tag, a1, a2, _, _ in matcher.get_opcodes():
            if tag != "equal":
                assert lo <= a1 + 1 and a2 <= hi, (cand.description, cand.patch)
        assert _apply(tmp_path, f"{strategy.name}-{i}-fix", new, cand.fix) == SRC


def test_candidates_are_deterministic_and_spread():
    first = [c.key for c in generate({"m.py": SRC}, seed=3, limit=20)]
    assert first == [c.key for c in generate({"m.py": SRC}, seed=3, limit=20)]
    assert len(set(first)) == 20
    cands = list(generate({"m.py": SRC}, seed=3, limit=20))
    assert len({c.strategy for c in cands}) == len(STRATEGIES)
    assert len({c.function for c in cands}) >= 5


class Plus1Rewriter:
    """A FunctionRewriter that returns `x + 1` where the function returned `x`."""

    def rewrite(self, path: str, qualname: str, source: str) -> str | None:
        new = re.sub(r"return x$", "return x + 1", source, flags=re.MULTILINE)
        return new if new != source else None


def test_model_rewrites_become_one_function_candidates(tmp_path):
    (cand,) = rewrite_candidates({"m.py": SRC}, Plus1Rewriter(), limit=5)
    assert (cand.function, cand.strategy) == ("clamp", "llm_rewrite")
    new = _apply(tmp_path, "rw", SRC, cand.patch)
    assert changed_functions(SRC, new) == ["clamp"] and "return x + 1" in new


def test_problem_statement_names_the_failing_tests_not_the_fix():
    text = template_statement("toolz", {"t/test_a.py::test_x": "AssertionError: assert 2 == 3",
                                        "t/test_a.py::test_y": ""})
    assert "t/test_a.py::test_x" in text and "assert 2 == 3" in text and "2 tests" in text


# -- end to end on a real package ----------------------------------------------------------

SOURCE = "toolz==0.12.1"
CANDIDATES = 110
MIN_VALID = 50  # the bar; the first 110 candidates of seed 0 gave 62 when measured


@pytest.fixture(scope="module")
def synthesized(tmp_path_factory, docker_backend, base_image):
    out = tmp_path_factory.mktemp("synth") / "toolz.jsonl"
    config = SynthConfig(max_candidates=CANDIDATES, workers=2)
    report = synthesize(SOURCE, out, config, backend=docker_backend)
    return out, config, report


def _records(out: Path) -> list[dict]:
    return [json.loads(line) for line in out.read_text().splitlines()]


def _git(repo: str, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True,
                          check=True).stdout


@pytest.mark.docker
@pytest.mark.slow
def test_synthesis_yields_verified_instances(synthesized, tmp_path):
    out, _, report = synthesized
    records = _records(out)
    assert report.instances == len(records) >= MIN_VALID, report.statuses
    assert report.judged_now == CANDIDATES == sum(report.statuses.values())
    assert len(report.baseline.passing) >= 150  # toolz 0.12.1 has 180 tests
    decisions = _records(Path(str(out) + ".decisions.jsonl"))
    assert len(decisions) == CANDIDATES and len({d["key"] for d in decisions}) == CANDIDATES
    signatures = set()
    for rec in records:
        assert rec["test_patch"] == "" and rec["FAIL_TO_PASS"] and rec["PASS_TO_PASS"]
        assert not set(rec["FAIL_TO_PASS"]) & set(rec["PASS_TO_PASS"])
        assert set(rec["FAIL_TO_PASS"]) | set(rec["PASS_TO_PASS"]) <= set(report.baseline.passing)
        signatures.add(tuple(sorted(rec["FAIL_TO_PASS"])))
        clean, repo = rec["environment_setup_commit"], rec["repo"]
        assert _git(repo, "rev-parse", f"{rec['base_commit']}^").strip() == clean
        path = rec["synthesis"]["file"]
        # The gold patch applied to the buggy tree gives back the clean file, byte for byte.
        buggy_text = _git(repo, "show", f"{rec['base_commit']}:{path}")
        fixed = _apply(tmp_path, rec["instance_id"], buggy_text, rec["patch"].replace(
            f"a/{path}", "a/m.py").replace(f"b/{path}", "b/m.py"))
        assert fixed == _git(repo, "show", f"{clean}:{path}")
        assert rec["FAIL_TO_PASS"][0] in rec["problem_statement"]
    assert len(signatures) == len(records)  # deduplicated by failing-test signature


@pytest.mark.docker
@pytest.mark.slow
def test_rerun_resumes_without_judging_again(synthesized, docker_backend):
    out, config, report = synthesized
    again = synthesize(SOURCE, out, config, backend=docker_backend)
    assert again.judged_now == 0 and again.instances == report.instances
    assert len(_records(out)) == report.instances


@pytest.mark.docker
@pytest.mark.slow
def test_instances_run_in_swe_env_from_the_catalogue(synthesized, tmp_path, docker_backend):
    import gymnasium
    from typer.testing import CliRunner

    import envs  # noqa: F401  (registers envfarm/*)
    from envs.swe import patch_command
    from orchestrator.cli import app
    from swe_tasks.catalogue import Catalogue

    out, _, _ = synthesized
    store = f"sqlite:///{tmp_path / 'catalogue.db'}"
    res = CliRunner().invoke(app, ["swe", "synthesize", SOURCE, "--out", str(out),
                                   "--max-candidates", str(CANDIDATES), "--catalogue",
                                   "--store", store])
    assert res.exit_code == 0, res.output
    records = {r["instance_id"]: r for r in _records(out)}
    with Catalogue(store) as cat:
        tasks = cat.query(kind="swe")
    assert {t.id for t in tasks} == set(records)
    assert {(t.status, t.repo) for t in tasks} == {("valid", next(iter(records.values()))["repo"])}

    env = gymnasium.make("envfarm/swe-v0", catalogue_url=store, backend=docker_backend,
                         max_turns=5)
    try:
        for task_id in sorted(records)[:3]:
            for actions, want in (
                ([_bash(patch_command(records[task_id]["patch"])), _FINISH], 1.0),
                ([_FINISH], 0.0),
            ):
                env.reset(options={"task_id": task_id})
                for action in actions:
                    _, reward, terminated, _truncated, info = env.step(action)
                assert terminated and (reward, info["status"]) == (want, "ok"), \
                    info["reward_details"].get("reason")
    finally:
        env.close()


def _bash(command: str) -> dict:
    return {"content": "", "tool_calls": [{"name": "bash", "arguments": {"command": command}}]}


_FINISH = {"content": "done", "tool_calls": [{"name": "finish", "arguments": {}}]}


def test_candidate_key_is_the_patch_hash():
    cand = next(generate({"m.py": SRC}, limit=1))
    assert isinstance(cand, Candidate) and cand.as_dict()["key"] == cand.key and len(cand.key) == 64


# -- environment setup --------------------------------------------------------------------

def _prepared(spec: str):
    from swe_tasks.synth.source import prepare

    try:
        return prepare(spec)
    except TaskError as exc:
        from tests.conftest import missing

        missing(f"cannot fetch {spec} from PyPI ({exc}); needs the network once (then cached)")


def test_discovery_on_real_sdists():
    funcy = discover_source(_prepared("funcy==2.0"))  # test_requirements.txt
    assert "whatever==0.7" in funcy.requirements and funcy.testpaths == ["tests"]
    iso = discover_source(_prepared("iso8601==2.1.0"))  # tests inside the package, poetry dev
    assert iso.requirements == ["hypothesis"] and iso.testpaths == ["iso8601"]
    attrs = discover_source(_prepared("attrs==23.2.0"))  # [tests] extra; tox lint envs left out
    assert {"zope.interface", "hypothesis", "pympler"} <= set(attrs.requirements)
    assert not {"pyright", "pre-commit", "towncrier"} & set(attrs.requirements)
    assert attrs.pytest_config == "pyproject.toml" and "attr" in attrs.own_modules
    wcwidth = discover_source(_prepared("wcwidth==0.2.13"))  # requirements-tests{36,37,39}
    assert "pytest>=7.4.2" in wcwidth.requirements and "pytest==6.2.5" not in wcwidth.requirements
    bare = discover_source(_prepared("sortedcontainers==2.4.0"))  # its sdist has no tests
    assert not bare.has_tests


def test_a_root_module_named_as_the_package_is_its_source():
    from swe_tasks.synth.source import source_files

    assert set(source_files(_prepared("parse==1.20.1"))) == {"parse.py"}  # not setup.py
    assert not [p for p in source_files(_prepared("toolz==0.12.1")) if "/" not in p]


def test_next_step_reads_what_collection_names():
    found = Discovery(own_modules={"pkg"}, test_files=["tests/test_a.py", "tests/test_b.py"])
    plan = Plan(["hypothesis"])
    out = "E   ModuleNotFoundError: No module named 'yaml.constructor'\nNo module named 'pkg'"
    assert next_step(plan, found, 2, out) and plan.rounds == [["PyYAML"]]
    assert next_step(plan, found, 4, "error: unrecognized arguments: --cov=pkg") \
        and plan.rounds[-1] == ["pytest-cov"]
    assert next_step(plan, found, 4, "error: unrecognized arguments: --weird") \
        and plan.clear_addopts
    hook = "PluginValidationError: unknown hook 'pytest_ignore_collect' ... 'path'"
    assert next_step(plan, found, 1, hook) and plan.pytest_pin == "<8"
    assert next_step(plan, found, 5, "no tests ran") and "tests.py" in plan.python_files
    assert next_step(plan, found, 2, "ERROR collecting tests/test_b.py") \
        and plan.ignores == ["tests/test_b.py"]
    assert next_step(plan, found, 2, "ERROR collecting tests/test_a.py") is None  # none left


@pytest.mark.docker
@pytest.mark.slow
def test_env_setup_retries_until_the_tests_collect(tmp_path, docker_backend, base_image):
    src = _prepared("iso8601==2.1.0")
    setup = set_up(src, tmp_path / "iso.jsonl", backend=docker_backend)
    assert setup.collected >= 40 and len(setup.attempts) == 2, setup.attempts
    assert setup.attempts[1].change.startswith("install pytz")
    assert "testpaths=iso8601" in setup.install_config["test_cmd"]
    again = set_up(src, tmp_path / "iso.jsonl", backend=docker_backend)  # from setup.json
    assert (again.image, again.attempts) == (setup.image, setup.attempts)
    with pytest.raises(SetupFailed) as err:
        set_up(_prepared("docopt==0.6.2"), tmp_path / "docopt.jsonl", backend=docker_backend)
    assert err.value.stage == "no tests"


TINY = {
    "pyproject.toml": ('[build-system]\nrequires = ["setuptools"]\n'
                       'build-backend = "setuptools.build_meta"\n'
                       '[project]\nname = "tinycalc"\nversion = "1.0"\n'),
    "tinycalc/__init__.py": ("def add(a, b):\n    return a + b\n\n\n"
                             "def clamp(x, lo, hi):\n    if x < lo:\n        return lo\n"
                             "    if x > hi:\n        return hi\n    return x\n"),
    "tests/test_calc.py": ("from tinycalc import add, clamp\n\n\n"
                           "def test_add():\n    assert add(2, 3) == 5\n\n\n"
                           "def test_clamp_low():\n    assert clamp(-1, 0, 9) == 0\n\n\n"
                           "def test_clamp_high():\n    assert clamp(10, 0, 9) == 9\n\n\n"
                           "def test_clamp_inside():\n    assert clamp(4, 0, 9) == 4\n"),
}


def _folder(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


@pytest.mark.docker
@pytest.mark.slow
def test_cli_over_a_list_of_sources_on_ray_resumes(tmp_path, base_image):
    import ray
    from typer.testing import CliRunner

    from orchestrator.cli import app

    tiny = _folder(tmp_path / "tinycalc", TINY)
    bare = _folder(tmp_path / "notests", {"notests/__init__.py": "X = 1\n"})
    listing = tmp_path / "sources.txt"
    listing.write_text(f"# one that works, one with no tests\n{tiny}\n{bare}\n")
    out = tmp_path / "out"
    args = ["swe", "synthesize", "--sources", str(listing), "--out", str(out),
            "--max-candidates", "4", "--ray-address", "local"]

    def report() -> list[dict]:
        return [json.loads(line) for line in (out / "setup_report.jsonl").read_text().splitlines()]

    try:
        res = CliRunner().invoke(app, args)
        assert res.exit_code == 0, res.output
        first = report()
        assert [(r["env_ok"], r["stage"]) for r in first] == [(True, "ok"), (False, "no tests")]
        assert first[0]["judged_now"] == 4 == sum(first[0]["statuses"].values())
        assert first[0]["instances"] >= 1, first[0]["statuses"]
        assert "environment setup: 1 of 2 sources" in res.output
        store = f"sqlite:///{tmp_path / 'catalogue.db'}"
        res = CliRunner().invoke(app, [*args, "--catalogue", "--store", store])  # resumes
        assert res.exit_code == 0, res.output
        assert f"{first[0]['instances']} instances upserted" in res.output
        again = report()
        assert again[0]["judged_now"] == 0 and again[0]["instances"] == first[0]["instances"]
        assert len(_records(Path(first[0]["out"]))) == first[0]["instances"]
    finally:
        ray.shutdown()
