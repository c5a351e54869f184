"""Task errors are stored with their cause and log tail and skipped by rollouts; every
write says what it changed; an old catalogue file is upgraded in place."""

from __future__ import annotations

import sqlalchemy as sa

from catalogue import SKIPPED_BY_ROLLOUTS, Catalogue, TaskRecord


def _rec(i: int, **data) -> TaskRecord:
    return TaskRecord(id=f"t-{i}", kind="terminal", source=f"/tasks/{i}",
                      data={"n": i, **data}, image_key="img")


def test_mark_task_error_keeps_cause_and_log_tail_and_rollouts_skip_it(tmp_path):
    with Catalogue(f"sqlite:///{tmp_path / 'c.db'}") as cat:
        cat.upsert([_rec(1), _rec(2), _rec(3)])
        log = "".join(f"step {i}\n" for i in range(5000)) + "E: Unable to locate package frm\n"
        assert cat.mark_task_error("t-2", "image will not build: Dockerfile line 3", log)
        assert not cat.mark_task_error("not-catalogued", "x")  # nothing to mark, no error
        t = cat.get("t-2")
        assert t.status == "task_error" and t.status_reason.startswith("image will not build")
        assert t.status_log.endswith("Unable to locate package frm\n")
        assert len(t.status_log) < 8100 and "earlier characters cut" in t.status_log
        assert [r.id for r in cat.query(exclude_status=SKIPPED_BY_ROLLOUTS)] == ["t-1", "t-3"]
        assert cat.count(exclude_status=SKIPPED_BY_ROLLOUTS) == 2
        assert cat.ids(status="task_error") == ["t-2"]
        cat.upsert([_rec(2)])  # the same task again: still broken
        assert cat.get("t-2").status == "task_error"
        cat.upsert([_rec(2, fixed=True)])  # a changed task: validation starts over
        fixed = cat.get("t-2")
        assert (fixed.status, fixed.status_reason, fixed.status_log) == ("unvalidated", None, None)


def test_change_log_names_new_changed_unchanged_and_repeated(tmp_path):
    with Catalogue(f"sqlite:///{tmp_path / 'c.db'}") as cat:
        cat.upsert([_rec(1), _rec(2)])
        assert (cat.changes.inserted, cat.changes.unchanged, cat.changes.updated) == (2, 0, [])
    with Catalogue(f"sqlite:///{tmp_path / 'c.db'}") as cat:
        moved = _rec(2).model_copy(update={"source": "/elsewhere/2"})
        changed = _rec(4).model_copy(update={"source": "/elsewhere/4", "data": {"n": 40}})
        cat.upsert([_rec(1), moved, _rec(3, a=1), _rec(3, a=2)], batch_size=2)
        log = cat.changes
        assert (log.inserted, log.unchanged, log.moved, log.updated) == (1, 2, 1, [])
        cat.upsert([_rec(4)])
        cat.upsert([changed])
        [change] = log.updated
        assert change.task_id == "t-4" and change.fields == ("source", "data.n")
        assert change.old_source == "/tasks/4" and change.new_source == "/elsewhere/4"
        assert log.repeated == {"t-3": 2, "t-4": 2}  # one id twice with different records
        lines = log.summary_lines()
        assert lines[0] == "2 new, 1 changed, 2 unchanged (1 of them now from a new source)"
        assert "changed t-4: source, data.n (was from /tasks/4)" in lines
        assert any("t-3 came 2 times" in line for line in lines)
        cat.upsert([_rec(1, extra="x")])
        assert log.updated[-1].fields == ("data.extra",)
        assert cat.get("t-3").data["a"] == 2  # the last one is kept


def test_a_catalogue_at_the_first_revision_is_upgraded_in_place(tmp_path):
    url = f"sqlite:///{tmp_path / 'old.db'}"
    from alembic import command
    from alembic.config import Config

    from catalogue.engine import _MIGRATIONS, make_engine

    engine = make_engine(url)
    cfg = Config()
    cfg.set_main_option("script_location", str(_MIGRATIONS))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0001_tasks")
        conn.execute(sa.text(
            "INSERT INTO tasks (id, kind, source, status, data, data_sha256, created_at, "
            "updated_at) VALUES ('old-1', 'swe', 's', 'valid', '{\"k\": 1}', 'h', "
            "'2026-01-01', '2026-01-01')"))
    engine.dispose()
    with Catalogue(url) as cat:
        old = cat.get("old-1")
        assert (old.status, old.data, old.status_log) == ("valid", {"k": 1}, None)
        assert cat.mark_task_error("old-1", "broken", "tail")
        assert cat.get("old-1").status_log == "tail"
