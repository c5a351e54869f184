"""The catalogue and the store on a real PostgreSQL: the id limit the catalogue checks is
the one the server enforces, and the SQL of task errors, change logs and windowed pass
rates runs there as on SQLite."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from catalogue import MAX_ID_LENGTH, Catalogue, TaskRecord, make_engine
from orchestrator.records import EpisodeRecord
from orchestrator.store import Store

pytestmark = pytest.mark.badinput


def test_the_id_limit_is_postgresqls_and_is_checked_before_it(postgres_url):
    with Catalogue(postgres_url) as cat:
        longest = "p" * MAX_ID_LENGTH
        cat.upsert([TaskRecord(id=longest, kind="swe", source="s", data={"a": 1})])
        assert cat.get(longest).data == {"a": 1}
        too_long = "p" * (MAX_ID_LENGTH + 1)
        with pytest.raises(ValueError, match="at most 255"):
            TaskRecord(id=too_long, kind="swe", source="s", data={})
        # What the check prevents: the server refuses the row (and SQLite would not).
        row = Catalogue.row_for(TaskRecord(id=longest, kind="swe", source="s", data={}))
        with pytest.raises(sa.exc.DataError, match="too long"):
            cat.write_rows([row | {"id": too_long}])
        with pytest.raises(sa.exc.DataError):  # NUL: refused by the server, caught by the check
            cat.write_rows([row | {"id": "a\x00b"}])


def test_task_errors_and_change_logs_on_postgresql(postgres_url):
    with Catalogue(postgres_url) as cat:
        cat.upsert([TaskRecord(id=f"t-{i}", kind="terminal", source=f"/d/{i}", data={"i": i})
                    for i in range(3)])
        assert cat.mark_task_error("t-1", "image will not build", "E: FRM\n" * 3000)
        assert cat.ids(exclude_status=("task_error",)) == ["t-0", "t-2"]
        assert cat.get("t-1").status_log.endswith("E: FRM\n")
    with Catalogue(postgres_url) as cat:
        cat.upsert([TaskRecord(id="t-0", kind="terminal", source="/d/0", data={"i": 0, "j": 1}),
                    TaskRecord(id="t-1", kind="terminal", source="/d/1", data={"i": 1})])
        assert cat.changes.summary_lines()[:2] == ["0 new, 1 changed, 1 unchanged",
                                                   "changed t-0: data.j"]
        assert cat.get("t-1").status == "task_error"  # unchanged: still broken


def test_windowed_pass_rates_on_postgresql(postgres_url):
    store = Store(postgres_url)
    for run_id, policy, rewards in (("o", {"type": "oracle"}, [1.0] * 3),
                                    ("m", {"type": "vllm", "model": "a_b%"}, [0.0, 1.0, 0.0])):
        store.create_run(run_id, {"policy": policy})
        for i, reward in enumerate(rewards):
            store.save_episode(EpisodeRecord(run_id=run_id, task_id="t", sample_index=i,
                                             env_id="envfarm/echo-v0", status="ok", reward=reward))
    assert store.pass_rates(policy="vllm:a_b%")["t"] == (3, pytest.approx(1 / 3))
    assert store.pass_rates(policy="vllm", window=2)["t"] == (2, 0.5)
    assert store.pass_rates(policy="vllm:a") == {}
    assert store.pass_rates(window=1)["t"] == (1, 0.0)
    make_engine(postgres_url).dispose()
