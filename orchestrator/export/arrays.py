"""Token arithmetic and Arrow columns shared by the formats: where a response starts, the
teacher advantage, and list columns built from numpy (no Python object per token)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt


def split_prompt(loss_mask: npt.ArrayLike, n_tokens: int) -> int:
    """Index where the response starts: the first token the model sampled (loss mask 1),
    or `n_tokens` when it sampled none. Takes a list or the stored array alike."""
    hits = np.flatnonzero(np.asarray(loss_mask) == 1)
    return int(hits[0]) if hits.size else n_tokens


def teacher_advantages(teacher: npt.ArrayLike, student: npt.ArrayLike,
                       loss_mask: npt.ArrayLike) -> np.ndarray:
    """Per-token `teacher - student` logprob on model tokens where both exist, 0 elsewhere
    (MOPD), as float32 computed in float64. A missing logprob is None (lists) or NaN
    (stored arrays). Raises ValueError when the teacher scores cover other tokens."""
    t, s = np.asarray(teacher, dtype=np.float64), np.asarray(student, dtype=np.float64)
    mask = np.asarray(loss_mask)
    if not len(t) == len(s) == len(mask):
        raise ValueError(f"teacher logprobs cover {len(t)} tokens but the episode has "
                         f"{len(s)}; score the run again with `envfarm teachers score`")
    scored = (mask == 1) & ~np.isnan(t) & ~np.isnan(s)
    return np.subtract(t, s, out=np.zeros_like(t), where=scored).astype(np.float32)


def zero_nan(logprobs: np.ndarray) -> np.ndarray:
    """Logprobs with 0.0 where a token has none (stored as NaN: prompt and env tokens)."""
    return np.nan_to_num(logprobs, nan=0.0)


def arrow_column(values: list[Any], type_: Any) -> Any:
    """An Arrow column; list columns from numpy parts (None: a null entry) with one
    concatenate and an offsets array, not an Arrow scalar per token."""
    import pyarrow as pa

    if not pa.types.is_list(type_) and not pa.types.is_large_list(type_):
        return pa.array(values, type_)
    large = pa.types.is_large_list(type_)
    offsets = np.zeros(len(values) + 1, dtype=np.int64 if large else np.int32)
    np.cumsum([0 if v is None else len(v) for v in values], out=offsets[1:])
    dtype = type_.value_type.to_pandas_dtype()
    parts = [v for v in values if v is not None]
    flat = np.concatenate(parts).astype(dtype, copy=False) if parts else np.array([], dtype)
    nulls = pa.array([v is None for v in values]) if len(parts) < len(values) else None
    list_type = pa.LargeListArray if large else pa.ListArray
    return list_type.from_arrays(pa.array(offsets), pa.array(flat), mask=nulls)


def write_parquet(rows: list[dict[str, Any]], out: Path, metadata: dict[bytes, bytes]) -> None:
    """Rows as one Parquet table with `metadata` on its schema. List-of-number columns are
    built from numpy, avoiding per-int Python objects."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    if not rows:
        pq.write_table(pa.table({}).replace_schema_metadata(metadata), out)
        return
    columns = {}
    for name in rows[0]:
        values = [row.get(name) for row in rows]
        if isinstance(values[0], list):
            dtype = np.float32 if "logprob" in name or "advantage" in name else np.int32
            flat = [np.asarray(v, dtype=dtype) for v in values]
            offsets = np.zeros(len(flat) + 1, dtype=np.int64)
            np.cumsum([len(v) for v in flat], out=offsets[1:])
            data = np.concatenate(flat) if flat else np.array([], dtype=dtype)
            columns[name] = pa.LargeListArray.from_arrays(pa.array(offsets), pa.array(data))
        else:
            columns[name] = pa.array(values)
    pq.write_table(pa.table(columns).replace_schema_metadata(metadata), out)
