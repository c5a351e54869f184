"""The verl export read back against the store: teacher columns, row groups, schema."""

from __future__ import annotations

import math
import random

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from orchestrator.export import ExportFilter, export, split_prompt, teacher_advantages
from orchestrator.export import verl as verl_export
from orchestrator.records import EpisodeRecord
from orchestrator.store import Store


def episode(task: str, sample: int, rng: random.Random, teacher: bool = True) -> EpisodeRecord:
    """Prompt, then model and env tokens mixed; some model tokens lack a logprob."""
    n = rng.randrange(8, 30)
    mask = [0] * 4 + [rng.choice([0, 1]) for _ in range(n - 5)] + [1]
    logprobs = [-rng.random() * 4 if m and rng.random() < 0.9 else None for m in mask]
    logprobs[-1] = -math.inf  # kept as verl_row kept it: nan_to_num's float32 minimum
    return EpisodeRecord(
        run_id="run", task_id=task, sample_index=sample, env_id="envfarm/x-v0", status="ok",
        reward=rng.choice([0.0, 1.0, None]), token_ids=[rng.randrange(50000) for _ in mask],
        loss_mask=mask, token_logprobs=logprobs, num_turns=2, timings={"env_s": 0.5},
        teacher_logprobs=[-rng.random() * 4 if rng.random() < 0.8 else None for _ in mask]
        if teacher else None)


def stored(store: Store) -> dict[tuple[str, int], EpisodeRecord]:
    return {e.key: e for e in store.episodes("run", with_calls=False)}


def response_start(e: EpisodeRecord) -> int:
    return split_prompt(e.loss_mask, len(e.token_ids))


def zeroed(values: list[float | None]) -> list[float]:
    """What the export writes for a logprob list: float32, 0.0 where none."""
    arr = np.nan_to_num(np.array(values, dtype=np.float32), nan=0.0)
    return arr.tolist()


@pytest.fixture
def store(tmp_path) -> Store:
    st = Store(f"sqlite:///{tmp_path / 'verl.db'}")
    st.create_run("run", {"n": 2})
    rng = random.Random(3)
    for task in ("a", "b", "c", "d", "e"):
        for sample in range(2 if task != "c" else 1):
            st.save_episode(episode(task, sample, rng))
    return st


def test_rows_are_the_stored_tokens_with_teacher_columns(store, tmp_path):
    report = export(store, "run", "verl", tmp_path / "v.parquet")
    rows = pq.read_table(tmp_path / "v.parquet").to_pylist()
    assert report.rows == len(rows) == 9
    for row in rows:
        e = stored(store)[(row["task_id"], row["sample_index"])]
        cut = response_start(e)
        assert row["uid"] == f"run:{e.task_id}" and row["reward"] == float(e.reward or 0.0)
        assert row["prompt_ids"] == e.token_ids[:cut] and row["response_ids"] == e.token_ids[cut:]
        assert row["response_mask"] == e.loss_mask[cut:]
        assert row["response_logprobs"] == zeroed(e.token_logprobs[cut:])
        assert row["teacher_logprobs"] == zeroed(e.teacher_logprobs[cut:])
        expected = teacher_advantages(e.teacher_logprobs, e.token_logprobs, e.loss_mask)
        assert row["teacher_advantages"] == expected[cut:].tolist()
        assert row["num_turns"] == 2 and row["metrics"] == '{"env_s": 0.5}'


def test_schema_stays_what_trainers_read(store, tmp_path):
    export(store, "run", "verl", tmp_path / "v.parquet")
    ids, floats = pa.large_list(pa.int32()), pa.list_(pa.float32())
    assert pq.read_schema(tmp_path / "v.parquet") == pa.schema([
        ("uid", pa.string()), ("run_id", pa.string()), ("task_id", pa.string()),
        ("sample_index", pa.int64()), ("env_id", pa.string()), ("status", pa.string()),
        ("prompt_ids", ids), ("response_ids", ids), ("response_mask", ids),
        ("response_logprobs", floats), ("reward", pa.float64()), ("num_turns", pa.int64()),
        ("metrics", pa.string()), ("teacher_logprobs", floats),
        ("teacher_advantages", pa.large_list(pa.float32()))])


def test_row_groups_and_complete_groups_keep_store_order(store, tmp_path, monkeypatch):
    monkeypatch.setattr(verl_export, "BATCH", 3)  # several row groups from 9 rows
    report = export(store, "run", "verl", tmp_path / "v.parquet",
                    ExportFilter(group_complete=True))
    assert pq.ParquetFile(tmp_path / "v.parquet").metadata.num_row_groups == 3
    table = pq.read_table(tmp_path / "v.parquet")
    keys = list(zip(table["task_id"].to_pylist(), table["sample_index"].to_pylist()))
    assert keys == [(t, s) for t in "abde" for s in range(2)]  # c's group is incomplete
    assert report.rows == report.episodes == 8


@pytest.mark.parametrize("scored_first", [True, False])
def test_an_episode_without_teacher_scores_gets_nulls(tmp_path, scored_first):
    st = Store(f"sqlite:///{tmp_path / 'mixed.db'}")
    st.create_run("run", {"n": 2})
    rng = random.Random(5)
    st.save_episode(episode("a", 0, rng, teacher=scored_first))
    st.save_episode(episode("a", 1, rng, teacher=not scored_first))
    rows = pq.read_table(export(st, "run", "verl", tmp_path / "v.parquet").path).to_pylist()
    scored, unscored = rows if scored_first else rows[::-1]
    e = stored(st)[(scored["task_id"], scored["sample_index"])]
    assert scored["teacher_logprobs"] == zeroed(e.teacher_logprobs[response_start(e):])
    assert scored["teacher_advantages"] is not None
    assert unscored["teacher_logprobs"] is None and unscored["teacher_advantages"] is None
    e = stored(st)[(unscored["task_id"], unscored["sample_index"])]
    assert unscored["response_ids"] == e.token_ids[response_start(e):]


def test_a_run_without_teacher_scores_has_no_teacher_columns(tmp_path):
    st = Store(f"sqlite:///{tmp_path / 'plain.db'}")
    st.create_run("run", {"n": 1})
    st.save_episode(episode("a", 0, random.Random(5), teacher=False))
    names = pq.read_schema(export(st, "run", "verl", tmp_path / "v.parquet").path).names
    assert "teacher_logprobs" not in names and "teacher_advantages" not in names


def test_a_failed_export_keeps_the_earlier_file_and_leaves_nothing_else(store, tmp_path,
                                                                          monkeypatch):
    monkeypatch.setattr(verl_export, "BATCH", 3)  # row groups are written before it fails
    out = tmp_path / "v.parquet"
    export(store, "run", "verl", out)
    earlier = out.read_bytes()
    store.set_teacher_logprobs(stored(store)[("e", 1)].id, [-1.0])  # fewer scores than tokens
    with pytest.raises(ValueError, match="envfarm teachers score"):
        export(store, "run", "verl", out)
    assert out.read_bytes() == earlier
    assert [p.name for p in tmp_path.iterdir() if "v.parquet" in p.name] == ["v.parquet"]


def test_the_split_and_advantage_rules_on_plain_values():
    assert split_prompt([0, 0, 1, 0, 1], 5) == 2
    assert split_prompt(np.array([0, 0], dtype=np.int32), 2) == 2  # nothing sampled: all prompt
    teacher, student = [-1.0, -2.0, None, -1.0, -0.5], [None, -3.0, -1.0, -2.5, -0.5]
    mask = [0, 1, 1, 1, 0]
    expected = [0.0, 1.0, 0.0, 1.5, 0.0]  # model tokens with both logprobs only
    assert teacher_advantages(teacher, student, mask).tolist() == expected
    as_stored = [np.array(v, dtype=np.float32) for v in (teacher, student)]  # None: NaN
    assert teacher_advantages(*as_stored, np.array(mask, dtype=np.int32)).tolist() == expected


def test_torch_export_names_the_fix_for_stale_teacher_scores(store, tmp_path):
    store.set_teacher_logprobs(stored(store)[("e", 1)].id, [-1.0])  # fewer scores than tokens
    with pytest.raises(ValueError, match="envfarm teachers score"):
        export(store, "run", "torch", tmp_path / "t.pt")
