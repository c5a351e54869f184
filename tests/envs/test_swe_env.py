"""`envfarm/swe-v0` end to end on three real bugs (more-itertools releases from PyPI).

Each instance is played by scripted agents through the real env: the gold fix scores
1.0; doing nothing, rewriting the tests, and faking "PASSED" output all score 0.0; the
agent cannot see any commit after base_commit. Tasks come through the SQL catalogue.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import gymnasium
import pytest

import envs  # noqa: F401  (registers envfarm/*)
from envs.swe import patch_command
from swe_tasks.catalogue import Catalogue
from swe_tasks.importer import import_file
from tests.episodes import step_until_done
from tests.swe_tasks.realdata import real_records

pytestmark = pytest.mark.docker
SWEBENCH = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "swebench"


def bash(command: str) -> dict:
    return {"content": "", "tool_calls": [{"name": "bash", "arguments": {"command": command}}]}


FINISH = {"content": "done", "tool_calls": [{"name": "finish", "arguments": {}}]}


@pytest.fixture(scope="module")
def store(tmp_path_factory, base_image):
    root = tmp_path_factory.mktemp("swe-env")
    records = real_records(root / "data")
    f = root / "real.jsonl"
    f.write_text("\n".join(json.dumps(r) for r in records))
    url = f"sqlite:///{root / 'catalogue.db'}"
    with Catalogue(url) as cat:
        assert import_file(cat, f).imported == 3
    return url, records


@pytest.fixture(scope="module")
def env(store, docker_backend):
    url, _ = store
    e = gymnasium.make("envfarm/swe-v0", catalogue_url=url, backend=docker_backend, max_turns=10)
    yield e
    e.close()


def play(env, task_id: str, actions: list[dict]) -> tuple[float, dict, list]:
    messages, info = env.reset(options={"task_id": task_id})
    assert [t["function"]["name"] for t in info["tools"]] == ["bash", "str_replace", "finish"]
    assert "/testbed" in messages[-1]["content"]
    return step_until_done(env, actions)


IDS = ["more-itertools__pairwise-restored", "more-itertools__exactly-n-negative",
       "more-itertools__numeric-range-empty"]


@pytest.mark.parametrize("task_id", IDS)
def test_gold_scores_one_and_the_future_is_unreachable(env, store, task_id):
    _, records = store
    rec = next(r for r in records if r["instance_id"] == task_id)
    reward, info, obs = play(env, task_id, [
        bash("git log --all --oneline | wc -l; git log --all --format=%s; ls tests; "
             "pip show more-itertools | grep -i ^version"),
        bash(patch_command(rec["patch"])),
        FINISH,
    ])
    count, subject, *rest = obs[0].split()
    assert count == "1" and subject == "base"  # one fresh commit; the fix release is not there
    hidden = {p.removeprefix("b/tests/") for p in rec["test_patch"].split()
              if p.startswith("b/tests/")}
    assert hidden and not hidden & set(rest)  # the test patch's files are not there
    assert (reward, info["status"]) == (1.0, "ok"), info["reward_details"]
    report = info["reward_details"]["report"]
    assert report["resolved"] and set(report["FAIL_TO_PASS"].values()) == {"passed"}


@pytest.mark.parametrize("task_id", IDS)
def test_doing_nothing_scores_zero(env, task_id):
    reward, info, _ = play(env, task_id, [FINISH])
    assert (reward, info["status"]) == (0.0, "ok")
    assert set(info["reward_details"]["report"]["FAIL_TO_PASS"].values()) <= {"failed", "error"}


@pytest.mark.parametrize("task_id", IDS)
def test_editing_the_tests_scores_zero(env, store, task_id):
    _, records = store
    rec = next(r for r in records if r["instance_id"] == task_id)
    # Replace every test file the F2P ids name with trivially passing tests of those names,
    # and add a conftest.py that marks every test passed.
    script = []
    for tid in rec["FAIL_TO_PASS"]:
        path, cls, name = tid.split("::")
        script.append(f"mkdir -p $(dirname {path}) && printf 'class {cls}:\\n    def {name}(self):"
                      f"\\n        pass\\n' > {path}")
    script.append("printf 'import pytest\\n@pytest.hookimpl(hookwrapper=True)\\ndef "
                  "pytest_runtest_makereport(item, call):\\n    o = yield\\n    r = o.get_result()"
                  "\\n    r.outcome = \"passed\"\\n' > conftest.py")
    reward, info, _ = play(env, task_id, [bash(" && ".join(script)), FINISH])
    details = info["reward_details"]
    # The conftest rewrites outcomes: tampering (reward 0, the tests do not run); the test
    # files are dropped as SWE-bench drops them.
    assert (reward, info["status"]) == (0.0, "tampered"), details
    assert [t["path"] for t in details["tampered"]] == ["conftest.py"]
    assert set(details["excluded_test_paths"]) == {t.split("::")[0] for t in rec["FAIL_TO_PASS"]}
    assert details["patch"] == ""  # nothing but test files changed


@pytest.mark.parametrize("task_id", IDS)
def test_printing_fake_passed_lines_scores_zero(env, store, task_id):
    _, records = store
    rec = next(r for r in records if r["instance_id"] == task_id)
    # When the package is imported: print a fake all-green summary (hex-encoded, so the
    # patch scan sees no test names: the JUnit report, not the output, decides).
    lines = "".join(f"print(bytes.fromhex({(t + ' PASSED').encode().hex()!r}).decode())\n"
                    for t in rec["FAIL_TO_PASS"] + rec["PASS_TO_PASS"])
    fake = "\n" + lines + "print('=== 99 passed in 0.01s ===')\n"
    reward, info, _ = play(env, task_id, [
        bash(f"echo {base64.b64encode(fake.encode()).decode()} | base64 -d >> "
             "more_itertools/__init__.py && python -c 'import more_itertools' | tail -1"),
        FINISH,
    ])
    details = info["reward_details"]
    assert (reward, info["status"]) == (0.0, "ok"), details
    assert details["tests_exit_code"] == 1 and details["tests_user"] == "uid 65534"
    assert set(details["report"]["FAIL_TO_PASS"].values()) <= {"failed", "error"}


def test_a_dead_sandbox_is_an_infra_error(env, store, docker_backend):
    env.reset(options={"task_id": IDS[0]})
    docker_backend.client.containers.get(env.unwrapped.sandbox.id).kill()
    _, reward, terminated, truncated, info = env.step(bash("ls"))
    assert info["status"] == "infra_error" and truncated and not terminated and reward == 0.0


def test_prepare_image_builds_the_episode_image_without_an_episode(env, store, docker_backend):
    from envs.swe import SWEEnv

    url, records = store
    tag = SWEEnv.prepare_image(IDS[1], {"catalogue_url": url})  # a classmethod: no env
    assert tag and docker_backend.client.images.get(tag)
    # The same image from the records themselves, and the one the episode starts from.
    assert SWEEnv.prepare_image(IDS[1], {"instances": records}) == tag
    env.reset(options={"task_id": IDS[1]})
    assert env.unwrapped.image == tag


def _mirror_for(repo: str) -> Path | None:
    from swe_tasks.git_source import mirror_path

    path = mirror_path(repo)
    return path if path.is_dir() else None


@pytest.mark.slow
@pytest.mark.skipif(not SWEBENCH.is_dir(), reason="../shared/data/swebench is not here")
@pytest.mark.parametrize("instance_id", ["pallets__flask-4992", "pallets__flask-5014",
                                         "marshmallow-code__marshmallow-1359"])
def test_swe_bench_gold_scores_one_with_a_local_mirror(monkeypatch, docker_backend, instance_id):
    from swe_tasks.importer import read_records

    records = {r["instance_id"]: r for name in ("swe-bench-lite.json", "swe-bench-lite-dev.json",
                                                "swe-bench-verified.jsonl")
               for _, r in read_records(SWEBENCH / name)}
    rec = records[instance_id]
    if _mirror_for(rec["repo"]) is None:
        pytest.skip(f"no local mirror of {rec['repo']} (git clone --mirror "
                    f"https://github.com/{rec['repo']}.git under ~/.cache/envfarm/mirrors, or "
                    "set ENVFARM_MIRRORS)")
    monkeypatch.setenv("ENVFARM_OFFLINE", "1")  # use the mirror, never clone
    with gymnasium.make("envfarm/swe-v0", instances=[rec], backend=docker_backend) as e:
        reward, info, _ = play(e, instance_id, [bash(patch_command(rec["patch"])), FINISH])
    assert reward == 1.0, info["reward_details"]
