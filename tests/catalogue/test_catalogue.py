"""The catalogue on a real SQLite file: migrations, all-or-nothing batches, queries."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from pydantic import ValidationError

from catalogue import Catalogue, TaskRecord, store_url


def _rec(i: int, kind: str = "swe", repo: str | None = "o/r", **kw) -> TaskRecord:
    return TaskRecord(id=f"t-{i:05d}", kind=kind, source="test.jsonl", repo=repo,
                      image_key=f"img-{i % 3}", data={"n": i, "text": "x" * 10}, **kw)


@pytest.fixture()
def cat(tmp_path):
    with Catalogue(f"sqlite:///{tmp_path / 'store.db'}") as c:
        yield c


def test_open_migrates_a_fresh_file_and_reopens_without_work(tmp_path):
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    Catalogue(url).close()
    eng = sa.create_engine(url)
    insp = sa.inspect(eng)
    assert "tasks" in insp.get_table_names()
    indexed = {tuple(ix["column_names"]) for ix in insp.get_indexes("tasks")}
    assert {("kind",), ("repo",), ("image_key",), ("status",)} <= indexed
    with eng.connect() as conn:
        assert conn.execute(sa.text("select version_num from envfarm_tasks_version")).scalar_one() \
            == "0002_task_error"
    eng.dispose()
    with Catalogue(url) as again:  # already at head: opens, keeps nothing extra
        assert again.count() == 0


def test_store_url_follows_env(monkeypatch):
    monkeypatch.setenv("ENVFARM_STORE", "sqlite:////tmp/x.db")
    assert store_url() == "sqlite:////tmp/x.db"
    assert store_url("sqlite:///y.db") == "sqlite:///y.db"
    monkeypatch.delenv("ENVFARM_STORE")
    assert store_url() == "sqlite:///envfarm.db"


def test_upsert_get_query_count(cat):
    assert cat.upsert([_rec(i) for i in range(10)] + [_rec(99, kind="terminal", repo=None)]) == 11
    assert cat.count() == 11 and cat.count(kind="swe") == 10 and cat.count(kind="terminal") == 1
    got = cat.get("t-00003")
    assert got.data == {"n": 3, "text": "xxxxxxxxxx"} and got.image_key == "img-0"
    assert [r.id for r in cat.query(kind="swe", limit=3, offset=2)] == ["t-00002", "t-00003", "t-00004"]
    assert len(cat.query(repo="o/r")) == 10
    with pytest.raises(KeyError, match="not in the catalogue"):
        cat.get("nope")


def test_status_kept_on_identical_reimport_reset_on_changed_data(cat):
    cat.upsert([_rec(1), _rec(2)])
    cat.set_status("t-00001", "invalid", "F2P passes before the fix")
    cat.set_status("t-00002", "valid")
    changed = _rec(2).model_copy(update={"data": {"n": 2, "text": "changed"}})
    cat.upsert([_rec(1), changed])
    one, two = cat.get("t-00001"), cat.get("t-00002")
    assert (one.status, one.status_reason) == ("invalid", "F2P passes before the fix")
    assert two.status == "unvalidated" and two.data["text"] == "changed"
    assert cat.count(status="invalid") == 1
    with pytest.raises(KeyError):
        cat.set_status("missing", "valid")
    with pytest.raises(ValueError):
        cat.set_status("t-00001", "great")


def test_failing_batch_leaves_no_trace(cat):
    cat.upsert([_rec(i) for i in range(3)])

    def records():
        yield from (_rec(i) for i in range(100, 104))
        yield TaskRecord(id="bad", kind="swe", source="s", data={"x": object()})  # not JSON

    with pytest.raises(TypeError):
        cat.upsert(records(), batch_size=100)
    assert cat.count() == 3  # nothing of the failed batch landed


def test_batches_commit_independently(cat):
    def records():
        yield from (_rec(i) for i in range(4))
        yield TaskRecord(id="bad", kind="swe", source="s", data={"x": object()})

    with pytest.raises(TypeError):
        cat.upsert(records(), batch_size=2)
    assert cat.count() == 4  # two whole batches landed, the third did not


def test_record_validation():
    # Kinds are open (the env registry says which exist) but must look like a kind name.
    assert TaskRecord(id="x", kind="my-new-kind", source="s", data={}).kind == "my-new-kind"
    for kind in ("", "Swe", "has space", "x" * 40):
        with pytest.raises(ValidationError):
            TaskRecord(id="x", kind=kind, source="s", data={})
    with pytest.raises(ValidationError):
        TaskRecord(id="x", kind="swe", source="s", data={}, surprise=1)


def test_sample_iter_stats(cat):
    cat.upsert([_rec(i, repo=f"o/r{i % 2}") for i in range(50)])
    s1 = cat.sample(10, repo="o/r1", seed=7)
    assert len(s1) == 10 and all(r.repo == "o/r1" for r in s1)
    assert [r.id for r in s1] == [r.id for r in cat.sample(10, repo="o/r1", seed=7)]
    assert len(cat.sample(1000, repo="o/r0")) == 25
    assert [r.id for r in cat.iter(chunk=7)] == [f"t-{i:05d}" for i in range(50)]
    assert cat.stats(by=("repo",)) == [("o/r0", 25), ("o/r1", 25)]
    assert cat.delete(["t-00000", "t-00001"]) == 2 and cat.count() == 48


def test_sample_ids_dense_and_sparse_filters_are_exact_and_unique(cat):
    recs = [_rec(i, kind="swe" if i % 10 else "terminal", repo=f"o/r{i % 50}") for i in range(2000)]
    cat.upsert(recs)
    cat.delete([f"t-{i:05d}" for i in range(0, 2000, 7)])  # holes in the rowid range
    alive = {r.id: r for r in recs if int(r.id[2:]) % 7}
    for flt, n in (({"kind": "swe"}, 500), ({"repo": "o/r3"}, 10), ({}, 1900), ({"kind": "swe"}, 5000)):
        ids = cat.sample_ids(n, seed=1, **flt)
        want = {i for i, r in alive.items() if all(getattr(r, k) == v for k, v in flt.items())}
        assert len(ids) == len(set(ids)) == min(n, len(want)) and set(ids) <= want
        assert ids == cat.sample_ids(n, seed=1, **flt)
