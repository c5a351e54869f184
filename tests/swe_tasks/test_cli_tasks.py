"""`envfarm tasks` through typer's CliRunner on a real SQLite store."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from envs import register_env, unregister_env
from orchestrator.cli import app
from tests.swe_tasks.test_instance_import import _base

runner = CliRunner()
SEEN: list[tuple[str, int, int]] = []


def fake_validator(tasks, *, concurrency, runs, on_result):
    """A validator as the registry names it ('module:function'): every task is invalid,
    except ids ending in -broken, which are task errors with a log tail."""
    for t in tasks:
        SEEN.append((t.id, concurrency, runs))
        if t.id.endswith("-broken"):
            on_result(t.id, "task_error", "image will not build", log_tail="step 3/9\nE: FRM")
        else:
            on_result(t.id, "invalid", "reference fails")


def test_import_list_show_stats_and_validator_dispatch(tmp_path):
    store = f"sqlite:///{tmp_path / 'c.db'}"
    f = tmp_path / "x.jsonl"
    recs = [_base(instance_id=f"o__r-{i}") for i in range(3)] + [_base(instance_id="bad", patch="")]
    f.write_text("\n".join(json.dumps(r) for r in recs))
    res = runner.invoke(app, ["tasks", "import", str(f), "--store", store])
    assert res.exit_code == 0, res.output
    assert "imported 3" in res.output and "skipped 1" in res.output and "patch" in res.output
    res = runner.invoke(app, ["tasks", "list", "--store", store])
    assert res.exit_code == 0 and "o__r-2" in res.output and "of 3" in res.output
    res = runner.invoke(app, ["tasks", "show", "o__r-1", "--store", store])
    assert res.exit_code == 0 and "it breaks" in res.output
    assert runner.invoke(app, ["tasks", "show", "nope", "--store", store]).exit_code == 1
    res = runner.invoke(app, ["tasks", "stats", "--store", store])
    assert res.exit_code == 0 and "3 tasks" in res.output

    # The validator of a kind comes from the env registry: a test env declares one.
    spec = "tests.swe_tasks.test_cli_tasks:fake_validator"
    register_env("validate-test", "tests.envs.conftest:ShellEnv", tools=("bash",),
                 verifier="-", task_kind="swe-test-kind", validator=spec)
    try:
        res = runner.invoke(app, ["tasks", "validate", "--kind", "swe-test-kind", "--store", store])
        assert res.exit_code == 0 and "nothing to validate" in res.output  # no tasks of that kind
        res = runner.invoke(app, ["tasks", "import", str(f), "--store", store])
        assert "0 new, 0 changed, 3 unchanged" in res.output  # a re-import changes nothing
    finally:
        unregister_env("envfarm/validate-test-v0")
    res = runner.invoke(app, ["tasks", "validate", "--kind", "swe-test-kind", "--store", store])
    assert res.exit_code == 2 and "no env declares task kind 'swe-test-kind'" in res.output
    res = runner.invoke(app, ["tasks", "validate", "--kind", "webdev", "--store", store])
    assert res.exit_code == 2 and "has no validator" in res.output and "swe" in res.output



def test_validate_dispatches_through_the_registry_and_stores_task_errors(tmp_path):
    from catalogue import Catalogue, TaskRecord

    store = f"sqlite:///{tmp_path / 'c.db'}"
    with Catalogue(store) as cat:
        cat.upsert([TaskRecord(id=f"k-{name}", kind="swe-test-kind", source="t", data={})
                    for name in ("a", "broken")])
    register_env("validate-test", "tests.envs.conftest:ShellEnv", tools=("bash",), verifier="-",
                 task_kind="swe-test-kind",
                 validator="tests.swe_tasks.test_cli_tasks:fake_validator")
    SEEN.clear()
    try:
        res = runner.invoke(app, ["tasks", "validate", "--kind", "swe-test-kind", "--store", store,
                                  "--concurrency", "3", "--runs", "1"])
    finally:
        unregister_env("envfarm/validate-test-v0")
    assert res.exit_code == 0, res.output
    assert SEEN == [("k-a", 3, 1), ("k-broken", 3, 1)]
    assert "invalid: 1" in res.output and "task_error: 1" in res.output
    res = runner.invoke(app, ["tasks", "list", "--store", store])
    assert "reference fails" in res.output and "1 task(s) have status task_error" in res.output
    res = runner.invoke(app, ["tasks", "list", "--status", "task_error", "--store", store])
    assert "k-broken" in res.output and "k-a" not in res.output
    res = runner.invoke(app, ["tasks", "show", "k-broken", "--store", store])
    assert "image will not build" in res.output and "E: FRM" in res.output
    assert "rollouts skip this task" in res.output
    with Catalogue(store) as cat:  # rollouts leave task errors out
        assert cat.ids(kind="swe-test-kind", exclude_status=("task_error",)) == ["k-a"]


@pytest.mark.badinput
def test_import_reports_changed_repeated_and_invalid_ids(tmp_path):
    store = f"sqlite:///{tmp_path / 'c.db'}"
    first = tmp_path / "a.jsonl"
    first.write_text("\n".join(json.dumps(_base(instance_id=f"o__r-{i}")) for i in range(2)))
    assert runner.invoke(app, ["tasks", "import", str(first), "--store", store]).exit_code == 0
    second = tmp_path / "b.jsonl"
    recs = [_base(instance_id="o__r-0"), _base(instance_id="o__r-1", problem_statement="new"),
            _base(instance_id="o__r-2", problem_statement="one"),
            _base(instance_id="o__r-2", problem_statement="two"),
            _base(instance_id="x" * 300), _base(instance_id="tab\there")]
    second.write_text("\n".join(json.dumps(r) for r in recs))
    res = runner.invoke(app, ["tasks", "import", str(second), "--store", store])
    assert res.exit_code == 0, res.output
    out = " ".join(res.output.split())
    assert "skipped 2" in out and out.count("instance_id") >= 2  # both bad ids, with why
    assert "1 new, 1 changed, 1 unchanged (1 of them now from a new source)" in out
    assert "changed o__r-1: source, data.problem_statement" in out
    assert "id o__r-2 came 2 times with different records" in out
