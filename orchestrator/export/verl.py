"""verl rows, one per episode, from the stored blobs straight to Arrow: no EpisodeRecord,
no per-token Python objects, memory bounded by one batch of episodes."""

from __future__ import annotations

import json
from collections import Counter
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orchestrator.export.arrays import arrow_column, split_prompt, teacher_advantages, zero_nan
from orchestrator.export.base import (
    MARK_KEY,
    Exporter,
    ExportFilter,
    ExportReport,
    exported_statuses,
    parquet_mark,
    passing,
    register_exporter,
)
from orchestrator.records import floats_array, ids_array

if TYPE_CHECKING:
    from orchestrator.store import Store

BATCH = 1000
"""Episodes per verl row group: bounds memory (~50 MB of blobs at 3.5K tokens each)."""


@register_exporter
class VerlExporter(Exporter):
    name = "verl"
    help = ("an episode per row: prompt_ids, response_ids, response_mask, response_logprobs, "
            "reward (Parquet; verl-style multi-turn RL)")
    suffix = ".parquet"
    needs = "token_rows"

    def write(self, store: Store, run_id: str, filt: ExportFilter, path: Path,
              report: ExportReport) -> None:
        import pyarrow.parquet as pq

        statuses = exported_statuses(filt)
        # The columns are fixed before the first row: a run where only some episodes are
        # scored gets teacher columns, null for the unscored ones.
        schema = verl_schema(teacher=store.has_teacher_scores(run_id, statuses=statuses))
        rows = passing(store.token_rows(run_id, statuses=statuses), store, run_id, filt)
        with pq.ParquetWriter(path, schema.with_metadata({MARK_KEY: b"verl"})) as writer:
            while batch := list(islice(rows, BATCH)):
                report.episodes += len(batch)
                kept = [r for r in batch if _has_verl_row(r, report.skipped)]
                if kept:
                    writer.write_table(verl_table(kept, schema))
                    report.rows += len(kept)

    def recognizes(self, path: Path) -> bool:
        return parquet_mark(path, self.name, ("prompt_ids", "response_ids", "response_mask"))


def _has_verl_row(row: Any, skipped: Counter) -> bool:
    """Whether a stored episode makes a verl row; if not, counts why in `skipped`."""
    if not row.token_ids:
        skipped["no token data"] += 1
    elif not row.prefix_consistent:
        skipped["history not a prefix (use skyrl)"] += 1
    else:
        return True
    return False


def verl_schema(teacher: bool) -> Any:
    """The verl columns. Types are those earlier exports had (logprobs `list`, ids and
    advantages `large_list`), so readers see the same schema."""
    import pyarrow as pa

    ids = pa.large_list(pa.int32())
    fields = [("uid", pa.string()), ("run_id", pa.string()), ("task_id", pa.string()),
              ("sample_index", pa.int64()), ("env_id", pa.string()), ("status", pa.string()),
              ("prompt_ids", ids), ("response_ids", ids), ("response_mask", ids),
              ("response_logprobs", pa.list_(pa.float32())), ("reward", pa.float64()),
              ("num_turns", pa.int64()), ("metrics", pa.string())]
    if teacher:
        fields += [("teacher_logprobs", pa.list_(pa.float32())),
                   ("teacher_advantages", pa.large_list(pa.float32()))]
    return pa.schema(fields)


def verl_table(rows: list[Any], schema: Any) -> Any:
    """One Arrow table of verl rows; each episode is split where the model's first
    sampled token is (`split_prompt`)."""
    import pyarrow as pa

    ids = [ids_array(r.token_ids) for r in rows]
    masks = [ids_array(r.loss_mask) for r in rows]
    logprobs = [floats_array(r.token_logprobs) for r in rows]
    cuts = [split_prompt(m, len(i)) for i, m in zip(ids, masks, strict=True)]
    columns: dict[str, list[Any]] = {
        "uid": [f"{r.run_id}:{r.task_id}" for r in rows], "run_id": [r.run_id for r in rows],
        "task_id": [r.task_id for r in rows], "sample_index": [r.sample_index for r in rows],
        "env_id": [r.env_id for r in rows], "status": [r.status for r in rows],
        "prompt_ids": [i[:c] for i, c in zip(ids, cuts)],
        "response_ids": [i[c:] for i, c in zip(ids, cuts)],
        "response_mask": [m[c:] for m, c in zip(masks, cuts)],
        "response_logprobs": [zero_nan(lp[c:]) for lp, c in zip(logprobs, cuts)],
        "reward": [float(r.reward or 0.0) for r in rows], "num_turns": [r.num_turns for r in rows],
        "metrics": [json.dumps(r.timings or {}) for r in rows],
    }
    if "teacher_logprobs" in schema.names:
        teacher = [floats_array(r.teacher_logprobs) if r.teacher_logprobs else None for r in rows]
        columns["teacher_logprobs"] = [
            None if t is None else zero_nan(t[c:]) for t, c in zip(teacher, cuts)]
        columns["teacher_advantages"] = [
            None if t is None else teacher_advantages(t, lp, m)[c:]
            for t, lp, m, c in zip(teacher, logprobs, masks, cuts)]
    return pa.Table.from_arrays(
        [arrow_column(columns[f.name], f.type) for f in schema], schema=schema)
