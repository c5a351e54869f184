"""What one episode leaves behind, as plain data: it travels from a worker to the store
to the exporters unchanged. Token arrays are stored compactly (int32 ids, float32
logprobs with NaN where a token has none)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from envs.status import TRAINABLE

OK_STATUSES = TRAINABLE
"""Statuses an episode can be trained on (`envs.status.TRAINABLE`): never `infra_error`
or `task_error`."""


@dataclass
class CallData:
    """One model call exactly as the server saw and returned it."""

    prompt_ids: list[int]
    completion_ids: list[int]
    logprobs: list[float]
    finish_reason: str


@dataclass
class EpisodeRecord:
    """One episode: identity, outcome, conversation and tokens."""

    run_id: str
    task_id: str
    sample_index: int
    env_id: str
    status: str
    reward: float | None
    reward_details: dict[str, Any] = field(default_factory=dict)
    messages: list[dict[str, Any]] = field(default_factory=list)
    token_ids: list[int] = field(default_factory=list)
    loss_mask: list[int] = field(default_factory=list)
    token_logprobs: list[float | None] = field(default_factory=list)
    calls: list[CallData] = field(default_factory=list)
    prefix_consistent: bool = True
    num_turns: int = 0
    timings: dict[str, float] = field(default_factory=dict)
    error: str | None = None
    attempts: int = 1
    worker: str | None = None
    teacher_logprobs: list[float | None] | None = None
    id: int | None = None
    """Store row id, set when read back from the store."""

    @property
    def key(self) -> tuple[str, int]:
        return self.task_id, self.sample_index

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EpisodeRecord:
        data = dict(data)
        data["calls"] = [CallData(**c) if isinstance(c, dict) else c for c in data.get("calls", [])]
        return cls(**data)


def pack_ids(ids: list[int] | None) -> bytes | None:
    return None if ids is None else np.asarray(ids, dtype=np.int32).tobytes()


def unpack_ids(blob: bytes | None) -> list[int]:
    return ids_array(blob).tolist()


def ids_array(blob: bytes | None) -> np.ndarray:
    """Stored ids as an int32 view of the blob: no copy, no per-token Python ints."""
    return np.frombuffer(blob or b"", dtype=np.int32)


def floats_array(blob: bytes | None) -> np.ndarray:
    """Stored floats as a float32 view of the blob, NaN where the value was None."""
    return np.frombuffer(blob or b"", dtype=np.float32)


def pack_floats(values: list[float | None] | None) -> bytes | None:
    if values is None:
        return None
    return np.asarray([math.nan if v is None else v for v in values], dtype=np.float32).tobytes()


def unpack_floats(blob: bytes | None) -> list[float | None]:
    floats = floats_array(blob)
    values = floats.astype(object)  # Python floats, vectorized
    values[np.isnan(floats)] = None
    return values.tolist()
