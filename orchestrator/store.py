"""The trajectory store: runs, episodes and model calls in SQL.

SQLite (WAL) by default, PostgreSQL by URL; the schema is migrated by Alembic on open.
Writes are idempotent on (run, task, sample index): an episode already stored with a
trainable status is never written twice, and an `infra_error` placeholder is replaced
by a later successful attempt. That is what makes `rollout --resume` lose nothing and
duplicate nothing after the driver was killed at any point.
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from catalogue import make_engine, store_url
from orchestrator.records import (
    OK_STATUSES,
    CallData,
    EpisodeRecord,
    pack_floats,
    pack_ids,
    unpack_floats,
    unpack_ids,
)

_MIGRATIONS = Path(__file__).parent / "migrations"

_md = sa.MetaData()
runs = sa.Table(
    "runs", _md,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("config", sa.JSON()),
    sa.Column("envfarm_version", sa.String(32)),
    sa.Column("state", sa.String(16)),
    sa.Column("policy", sa.String(255)),
    sa.Column("created_at", sa.DateTime(timezone=True)),
    sa.Column("updated_at", sa.DateTime(timezone=True)),
)
episodes = sa.Table(
    "episodes", _md,
    sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
    *(sa.Column(name, type_) for name, type_ in [
        ("run_id", sa.String(64)), ("task_id", sa.String(255)), ("sample_index", sa.Integer()),
        ("env_id", sa.String(128)), ("status", sa.String(32)), ("reward", sa.Float()),
        ("reward_details", sa.JSON()), ("messages", sa.JSON()), ("token_ids", sa.LargeBinary()),
        ("loss_mask", sa.LargeBinary()), ("token_logprobs", sa.LargeBinary()),
        ("teacher_logprobs", sa.LargeBinary()), ("prefix_consistent", sa.Boolean()),
        ("num_turns", sa.Integer()), ("timings", sa.JSON()), ("error", sa.Text()),
        ("attempts", sa.Integer()), ("worker", sa.String(128)),
        ("created_at", sa.DateTime(timezone=True)),
    ]),
)
calls = sa.Table(
    "calls", _md,
    sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
    sa.Column("episode_id", sa.Integer()),
    sa.Column("idx", sa.Integer()),
    sa.Column("prompt_ids", sa.LargeBinary()),
    sa.Column("completion_ids", sa.LargeBinary()),
    sa.Column("logprobs", sa.LargeBinary()),
    sa.Column("finish_reason", sa.String(16)),
)
"""Mirrors of the head migration; the migrations, not these, create the tables."""


def envfarm_version() -> str:
    try:
        return importlib.metadata.version("envfarm")
    except importlib.metadata.PackageNotFoundError:
        return "0+unknown"


def policy_label(config: dict[str, Any]) -> str | None:
    """Who acted in a run, from its config: the policy type, with the served model when the
    config names one (`oracle`, `noop`, `vllm`, `vllm:Qwen3-8B`); None when it says nothing.
    Dynamic sampling reads the history of one label (`pass_rates(policy=...)`)."""
    policy = config.get("policy") if isinstance(config, dict) else None
    if not isinstance(policy, dict) or not policy.get("type"):
        return None
    model = policy.get("model")
    return f"{policy['type']}:{model}"[:255] if model else str(policy["type"])[:255]


def _now() -> datetime:
    return datetime.now(UTC)


def _migrate(engine: Engine) -> None:
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(_MIGRATIONS))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")


_TOKEN_COLUMNS = ("run_id", "task_id", "sample_index", "env_id", "status", "reward",
                  "token_ids", "loss_mask", "token_logprobs", "teacher_logprobs",
                  "prefix_consistent", "num_turns", "timings")


def _in_run(query: sa.Select, run_id: str, statuses: tuple[str, ...] | None) -> sa.Select:
    """`query` narrowed to the run (and statuses)."""
    query = query.where(episodes.c.run_id == run_id)
    if statuses is not None:
        query = query.where(episodes.c.status.in_(statuses))
    return query


def _episode_query(query: sa.Select, run_id: str, statuses: tuple[str, ...] | None) -> sa.Select:
    """`query` narrowed to the run (and statuses), in (task, sample) order."""
    return _in_run(query, run_id, statuses).order_by(episodes.c.task_id, episodes.c.sample_index)


def _episode_row(rec: EpisodeRecord, attempts: int) -> dict[str, Any]:
    return {
        "run_id": rec.run_id, "task_id": rec.task_id, "sample_index": rec.sample_index,
        "env_id": rec.env_id, "status": rec.status, "reward": rec.reward,
        "reward_details": rec.reward_details, "messages": rec.messages,
        "token_ids": pack_ids(rec.token_ids), "loss_mask": pack_ids(rec.loss_mask),
        "token_logprobs": pack_floats(rec.token_logprobs),
        "teacher_logprobs": pack_floats(rec.teacher_logprobs),
        "prefix_consistent": rec.prefix_consistent, "num_turns": rec.num_turns,
        "timings": rec.timings, "error": rec.error, "attempts": attempts, "worker": rec.worker,
        "created_at": _now()}


def _call_row(episode_id: int, idx: int, call: CallData) -> dict[str, Any]:
    return {"episode_id": episode_id, "idx": idx, "prompt_ids": pack_ids(call.prompt_ids),
            "completion_ids": pack_ids(call.completion_ids),
            "logprobs": pack_floats(call.logprobs), "finish_reason": call.finish_reason}


class Store:
    """Runs, episodes and calls behind one engine. Thread-safe (one connection per call)."""

    def __init__(self, url: str | None = None) -> None:
        self.url = store_url(url)
        self.engine = make_engine(self.url)
        _migrate(self.engine)

    # -- runs ------------------------------------------------------------------------------
    def create_run(self, run_id: str, config: dict[str, Any], *, policy: str | None = None
                   ) -> None:
        """Record a new run with its resolved config and who acts in it (`policy`, default
        `policy_label(config)`). Raises ValueError if it exists."""
        with self.engine.begin() as conn:
            if conn.execute(sa.select(runs.c.id).where(runs.c.id == run_id)).first():
                raise ValueError(f"run {run_id!r} exists; resume it with --resume {run_id}")
            conn.execute(runs.insert().values(
                id=run_id, config=config, envfarm_version=envfarm_version(), state="running",
                policy=policy or policy_label(config), created_at=_now(), updated_at=_now()))

    def get_run(self, run_id: str) -> dict[str, Any]:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(runs).where(runs.c.id == run_id)).mappings().first()
        if row is None:
            raise KeyError(f"no run {run_id!r} in {self.url}")
        return dict(row)

    def list_runs(self) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(runs).order_by(runs.c.created_at.desc())).mappings()
            return [dict(r) for r in rows]

    def set_run_state(self, run_id: str, state: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(runs.update().where(runs.c.id == run_id)
                         .values(state=state, updated_at=_now()))

    # -- episodes --------------------------------------------------------------------------
    def save_episode(self, rec: EpisodeRecord) -> bool:
        """Store `rec` unless its (run, task, sample) is already stored trainable.

        Returns True when written. An `infra_error` row is a placeholder: a later
        attempt replaces it (with its calls) in the same transaction."""
        with self.engine.begin() as conn:
            return self._save(conn, rec)

    def save_episodes(self, records: Iterable[EpisodeRecord]) -> int:
        """Store several episodes in one transaction, each by `save_episode`'s rules
        (an episode already stored trainable is skipped, an `infra_error` placeholder
        replaced; a key twice in `records` is taken as if saved one after the other).

        Returns how many were written, counted as `save_episode` calls in order would.
        Why: one writer saving one episode per transaction spends most of its time on
        per-statement and per-commit work; a batch is one lookup of the keys, one
        multi-row insert and one commit (benchmarks/results/scale.md). All or nothing:
        on an error none is stored."""
        records = list(records)
        if not records:
            return 0
        with self.engine.begin() as conn:
            existing = self._existing(conn, records)
            chosen: dict[tuple[str, str, int], tuple[EpisodeRecord, int]] = {}
            replaced: list[int] = []
            written = 0
            for rec in records:
                key = (rec.run_id, rec.task_id, rec.sample_index)
                before = chosen.get(key)
                if before is not None:
                    if before[0].status != "infra_error":
                        continue
                    chosen[key] = (rec, rec.attempts + before[1])
                elif key in existing:
                    row_id, status, attempts = existing[key]
                    if status != "infra_error":
                        continue
                    replaced.append(row_id)
                    chosen[key] = (rec, rec.attempts + attempts)
                else:
                    chosen[key] = (rec, rec.attempts)
                written += 1
            if replaced:
                conn.execute(calls.delete().where(calls.c.episode_id.in_(replaced)))
                conn.execute(episodes.delete().where(episodes.c.id.in_(replaced)))
            kept = list(chosen.values())
            if not kept:
                return written
            ids = conn.execute(episodes.insert().returning(
                episodes.c.id, sort_by_parameter_order=True),
                [_episode_row(rec, attempts) for rec, attempts in kept]).scalars().all()
            call_rows = [_call_row(episode_id, i, c) for episode_id, (rec, _) in zip(ids, kept)
                         for i, c in enumerate(rec.calls)]
            if call_rows:
                conn.execute(calls.insert(), call_rows)
        return written

    @staticmethod
    def _existing(conn: sa.Connection, records: list[EpisodeRecord]
                  ) -> dict[tuple[str, str, int], tuple[int, str, int]]:
        """(run, task, sample) -> (row id, status, attempts) of the stored rows of `records`."""
        found: dict[tuple[str, str, int], tuple[int, str, int]] = {}
        by_run: dict[str, set[str]] = {}
        for rec in records:
            by_run.setdefault(rec.run_id, set()).add(rec.task_id)
        for run_id, task_ids in by_run.items():
            ordered = sorted(task_ids)
            for i in range(0, len(ordered), 500):
                rows = conn.execute(sa.select(
                    episodes.c.id, episodes.c.task_id, episodes.c.sample_index,
                    episodes.c.status, episodes.c.attempts).where(
                    (episodes.c.run_id == run_id) & episodes.c.task_id.in_(ordered[i:i + 500])))
                for r in rows:
                    found[(run_id, r.task_id, r.sample_index)] = (r.id, r.status, r.attempts)
        return found

    @staticmethod
    def _save(conn: sa.Connection, rec: EpisodeRecord) -> bool:
        key = (episodes.c.run_id == rec.run_id) & (episodes.c.task_id == rec.task_id) & (
            episodes.c.sample_index == rec.sample_index)
        existing = conn.execute(sa.select(episodes.c.id, episodes.c.status, episodes.c.attempts)
                                .where(key)).first()
        attempts = rec.attempts
        if existing is not None:
            if existing.status != "infra_error":
                return False
            attempts += existing.attempts
            conn.execute(calls.delete().where(calls.c.episode_id == existing.id))
            conn.execute(episodes.delete().where(episodes.c.id == existing.id))
        episode_id = conn.execute(episodes.insert().values(
            **_episode_row(rec, attempts))).inserted_primary_key[0]
        if rec.calls:
            conn.execute(calls.insert(), [_call_row(episode_id, i, c)
                                          for i, c in enumerate(rec.calls)])
        return True

    def done_keys(self, run_id: str) -> set[tuple[str, int]]:
        """(task, sample) pairs of `run_id` that need no more attempts."""
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(episodes.c.task_id, episodes.c.sample_index)
                                .where((episodes.c.run_id == run_id)
                                       & (episodes.c.status != "infra_error")))
            return {(r.task_id, r.sample_index) for r in rows}

    def episodes(self, run_id: str, *, statuses: tuple[str, ...] | None = OK_STATUSES,
                 with_calls: bool = True, batch_size: int = 500) -> Iterator[EpisodeRecord]:
        """The run's episodes in (task, sample) order, streamed in batches."""
        query = _episode_query(sa.select(episodes), run_id, statuses)
        with self.engine.connect() as conn:
            result = conn.execution_options(stream_results=True).execute(query).mappings()
            while batch := result.fetchmany(batch_size):
                by_id = {row["id"]: self._record(row) for row in batch}
                if with_calls:
                    for c in conn.execute(sa.select(calls).where(calls.c.episode_id.in_(by_id))
                                          .order_by(calls.c.episode_id, calls.c.idx)):
                        by_id[c.episode_id].calls.append(CallData(
                            unpack_ids(c.prompt_ids), unpack_ids(c.completion_ids),
                            [v for v in unpack_floats(c.logprobs)], c.finish_reason))
                yield from by_id.values()

    def token_rows(self, run_id: str, *, statuses: tuple[str, ...] | None = OK_STATUSES,
                   batch_size: int = 500) -> Iterator[sa.Row]:
        """The run's episodes as `episodes` orders them, for the token exports: one
        streamed query, no messages, no calls, token arrays left as stored blobs (read
        them with `records.ids_array` / `floats_array`). Columns are row attributes."""
        query = _episode_query(sa.select(*(episodes.c[name] for name in _TOKEN_COLUMNS)),
                               run_id, statuses)
        with self.engine.connect() as conn:
            result = conn.execution_options(stream_results=True).execute(query)
            while batch := result.fetchmany(batch_size):
                yield from batch

    def has_teacher_scores(self, run_id: str, *,
                           statuses: tuple[str, ...] | None = OK_STATUSES) -> bool:
        """Whether any of the run's episodes (with `statuses`) has teacher logprobs: one
        EXISTS query, so an export can fix its columns before it reads a row."""
        scored = _in_run(sa.select(episodes.c.id), run_id, statuses).where(
            episodes.c.teacher_logprobs.is_not(None))
        with self.engine.connect() as conn:
            return bool(conn.execute(sa.select(sa.exists(scored))).scalar())

    def set_teacher_logprobs(self, episode_id: int, values: list[float | None]) -> None:
        with self.engine.begin() as conn:
            conn.execute(episodes.update().where(episodes.c.id == episode_id)
                         .values(teacher_logprobs=pack_floats(values)))

    def status_counts(self, run_id: str) -> dict[str, int]:
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(episodes.c.status, sa.func.count())
                                .where(episodes.c.run_id == run_id).group_by(episodes.c.status))
            return {status: n for status, n in rows}

    def reward_summary(self, run_id: str) -> list[dict[str, Any]]:
        """Per env: episodes, ok count, mean reward over trainable episodes."""
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(
                episodes.c.env_id, sa.func.count(),
                sa.func.sum(sa.case((episodes.c.status == "ok", 1), else_=0)),
                sa.func.avg(sa.case((episodes.c.status.in_(OK_STATUSES), episodes.c.reward))),
            ).where(episodes.c.run_id == run_id).group_by(episodes.c.env_id))
            return [{"env": env, "episodes": n, "ok": ok or 0, "mean_reward": mean}
                    for env, n, ok, mean in rows]

    def pass_rates(self, task_ids: list[str] | None = None, *, window: int | None = None,
                   policy: str | None = None, env_id: str | None = None
                   ) -> dict[str, tuple[int, float]]:
        """task -> (trainable episodes counted, mean reward): the recent history that dynamic
        sampling reads (skip tasks always solved or never solved).

        Args:
            task_ids: only these tasks (default: every task with history).
            window: count only each task's last `window` trainable episodes (newest first,
                by storage order); None: all of them.
            policy: only runs of this policy label (`policy_label`): `vllm:Qwen3-8B` matches
                that model exactly, `vllm` matches every vllm run; None: any policy. So an
                oracle validation run does not mark tasks solved for a model.
            env_id: only episodes of this env.
        """
        if window is not None and window < 1:
            raise ValueError("window must be at least 1 episode (None: the whole history)")
        ordered = sa.func.row_number().over(partition_by=episodes.c.task_id,
                                            order_by=episodes.c.id.desc())
        inner = sa.select(episodes.c.task_id, episodes.c.reward, ordered.label("recent")).where(
            episodes.c.status.in_(OK_STATUSES))
        if policy is not None:
            inner = inner.join(runs, runs.c.id == episodes.c.run_id).where(
                (runs.c.policy == policy) | runs.c.policy.like(
                    policy.replace("%", r"\%").replace("_", r"\_") + ":%", escape="\\"))
        if env_id is not None:
            inner = inner.where(episodes.c.env_id == env_id)
        if task_ids is not None:
            inner = inner.where(episodes.c.task_id.in_(task_ids))
        sub = inner.subquery()
        query = sa.select(sub.c.task_id, sa.func.count(), sa.func.avg(sub.c.reward)).group_by(
            sub.c.task_id)
        if window is not None:
            query = query.where(sub.c.recent <= window)
        with self.engine.connect() as conn:
            return {t: (n, float(mean or 0.0)) for t, n, mean in conn.execute(query)}

    @staticmethod
    def _record(row: Any) -> EpisodeRecord:
        teacher = row["teacher_logprobs"]
        return EpisodeRecord(
            id=row["id"], run_id=row["run_id"], task_id=row["task_id"],
            sample_index=row["sample_index"], env_id=row["env_id"], status=row["status"],
            reward=row["reward"], reward_details=row["reward_details"] or {},
            messages=row["messages"] or [], token_ids=unpack_ids(row["token_ids"]),
            loss_mask=unpack_ids(row["loss_mask"]),
            token_logprobs=unpack_floats(row["token_logprobs"]),
            teacher_logprobs=unpack_floats(teacher) if teacher else None,
            prefix_consistent=bool(row["prefix_consistent"]), num_turns=row["num_turns"],
            timings=row["timings"] or {}, error=row["error"], attempts=row["attempts"],
            worker=row["worker"])
