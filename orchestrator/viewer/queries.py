"""The viewer's reads: each query touches the indexed columns it needs and never the
message or token blobs of more than one page of episodes.

Lists use keyset pagination on the episode id (`id > after`), so page 1,000 costs what
page 1 costs. Text search is a LIKE over the stored messages JSON, scanned in id
windows under a time budget: a rare word in a 100K-episode run returns what it found
so far and a cursor to go on, instead of holding the server for seconds.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from envs.status import TRAINABLE
from orchestrator.store import calls, episodes, runs

LIST_COLUMNS = (episodes.c.id, episodes.c.task_id, episodes.c.sample_index, episodes.c.env_id,
                episodes.c.status, episodes.c.reward, episodes.c.num_turns, episodes.c.attempts,
                episodes.c.created_at, episodes.c.timings,
                sa.func.substr(episodes.c.error, 1, 200).label("error"))
RUN_COLUMNS = tuple(runs.c[name] for name in (
    "id", "config", "envfarm_version", "state", "created_at", "updated_at"))
EPISODE_COLUMNS = tuple(episodes.c[name] for name in (
    "id", "run_id", "task_id", "sample_index", "env_id", "status", "reward", "reward_details",
    "messages", "token_ids", "loss_mask", "token_logprobs", "teacher_logprobs",
    "prefix_consistent", "num_turns", "timings", "error", "attempts", "worker", "created_at"))
"""Columns the first store schema has: the viewer never migrates, so it reads only these
and shows stores written by any envfarm version."""
SOLVED = 1.0 - 1e-9
"""A trainable episode with reward ≥ this counts as passed."""


@dataclass(frozen=True)
class EpisodeFilter:
    """What the episode table shows; every field optional."""

    env: str | None = None
    task: str | None = None
    statuses: tuple[str, ...] = ()
    min_reward: float | None = None
    max_reward: float | None = None
    sample: int | None = None
    text: str | None = None

    def where(self, run_id: str, *, rowid_scan: bool = False) -> list[Any]:
        """SQL conditions. `rowid_scan` (SQLite only) hides the run column from the
        planner, so it walks the primary key from the keyset cursor and stops after a
        page, instead of sorting every row of the run by id (see `_rowid_scan`)."""
        c = episodes.c
        run = sa.literal_column("+episodes.run_id") if rowid_scan else c.run_id
        conds: list[Any] = [run == run_id]
        if self.env:
            conds.append(c.env_id == self.env)
        if self.task:
            conds.append(c.task_id == self.task)
        if self.statuses:
            conds.append(c.status.in_(self.statuses))
        if self.min_reward is not None:
            conds.append(c.reward >= self.min_reward)
        if self.max_reward is not None:
            conds.append(c.reward <= self.max_reward)
        if self.sample is not None:
            conds.append(c.sample_index == self.sample)
        return conds

    @property
    def index_only_count(self) -> bool:
        """Whether the match count reads the (run_id, status) index alone."""
        return not (self.env or self.task or self.sample is not None
                    or self.min_reward is not None or self.max_reward is not None)


def _rowid_scan(engine: Engine, filt: EpisodeFilter) -> bool:
    """SQLite: walk the primary key unless an index narrows the rows better (a task, or
    one status: the (run_id, status) index holds the ids in order)."""
    return engine.dialect.name == "sqlite" and not filt.task and len(filt.statuses) != 1


COUNT_CAP = 10_000
"""Matches counted at most, when counting would read the table (filters other than
status): the page says "10,000+"."""


@dataclass
class Page:
    """One page of episodes, with the cursors to the next and previous ones."""

    rows: list[dict[str, Any]]
    next_after: int | None = None
    prev_before: int | None = None
    total: int | None = None
    total_capped: bool = False
    """More than COUNT_CAP match; `total` is COUNT_CAP + 1."""
    scanned_upto: int | None = None
    """Text search: episodes with id ≤ this were searched (None: the whole run)."""
    search_done: bool = True
    search_ms: float = 0.0


@dataclass
class RunSummary:
    run: dict[str, Any]
    counts: dict[str, int]
    total: int
    by_env: list[dict[str, Any]] = field(default_factory=list)
    by_source: list[dict[str, Any]] = field(default_factory=list)
    histogram: list[tuple[float, float, int]] = field(default_factory=list)
    timeline: list[tuple[str, int]] = field(default_factory=list)


def list_runs(engine: Engine) -> list[dict[str, Any]]:
    """Every run, newest first, with its episode counts by status."""
    with engine.connect() as conn:
        rows = [dict(r) for r in conn.execute(
            sa.select(runs.c.id, runs.c.state, runs.c.envfarm_version, runs.c.created_at,
                      runs.c.updated_at, runs.c.config).order_by(runs.c.created_at.desc())
        ).mappings()]
        counts: dict[str, dict[str, int]] = {}
        for run_id, status, n in conn.execute(
                sa.select(episodes.c.run_id, episodes.c.status, sa.func.count())
                .group_by(episodes.c.run_id, episodes.c.status)):
            counts.setdefault(run_id, {})[status] = n
    for r in rows:
        r["counts"] = counts.get(r["id"], {})
        r["total"] = sum(r["counts"].values())
        config = r.pop("config") or {}
        r["env"] = config.get("env")
        r["policy"] = (config.get("policy") or {}).get("type")
    return rows


def get_run(engine: Engine, run_id: str) -> dict[str, Any] | None:
    with engine.connect() as conn:
        row = conn.execute(sa.select(*RUN_COLUMNS).where(runs.c.id == run_id)).mappings().first()
    return dict(row) if row else None


def run_version(engine: Engine, run_id: str) -> tuple[int, int | None]:
    """(episodes, newest episode id): changes whenever the run gains or replaces one,
    so summaries computed for a version stay valid while it holds. Index-only."""
    with engine.connect() as conn:
        n, top = conn.execute(sa.select(sa.func.count(), sa.func.max(episodes.c.id))
                              .where(episodes.c.run_id == run_id)).one()
    return int(n), top


def run_summary(engine: Engine, run_id: str, *, with_sources: bool = True,
                bins: int = 20) -> RunSummary | None:
    """Counts by status, pass rate per env and per task source, reward histogram and
    episodes per minute of `run_id` (None when there is no such run).

    One grouped scan (env, status, reward bin) yields the counts, the per-env rates and
    the histogram; the timeline is a second; the per-source rates a third, only when the
    store holds a task catalogue. With the index on (run_id, env_id, status, reward,
    created_at) all three read the index alone."""
    run = get_run(engine, run_id)
    if run is None:
        return None
    c = episodes.c
    width = 1.0 / bins
    cell = _floor(c.reward / width, engine)
    with engine.connect() as conn:
        cells = conn.execute(
            sa.select(c.env_id, c.status, cell, sa.func.count(), sa.func.sum(c.reward),
                      sa.func.sum(sa.case((c.reward >= SOLVED, 1), else_=0)),
                      sa.func.min(c.reward), sa.func.max(c.reward))
            .where(c.run_id == run_id).group_by(c.env_id, c.status, cell)).all()
        counts: dict[str, int] = {}
        envs: dict[str, list[float]] = {}
        found: dict[int, int] = {}
        lo = hi = None
        for env, status, b, n, total, passed, low, high in cells:
            counts[status] = counts.get(status, 0) + n
            acc = envs.setdefault(env, [0, 0, 0, 0.0])
            acc[0] += n
            if status in TRAINABLE:
                acc[1] += n
                acc[2] += passed or 0
                acc[3] += total or 0.0
                if b is not None:
                    found[b] = found.get(b, 0) + n
                    lo = low if lo is None else min(lo, low)
                    hi = high if hi is None else max(hi, high)
        by_env = [_rate(env, n, scored, passed, total / scored if scored else None)
                  for env, (n, scored, passed, total) in sorted(envs.items())]
        if lo is None:
            histogram: list[tuple[float, float, int]] = []
        elif lo < 0 or hi > 1:
            histogram = _histogram(conn, run_id, bins, lo, hi)
        else:
            found[bins - 1] = found.get(bins - 1, 0) + found.pop(bins, 0)
            histogram = [(i * width, (i + 1) * width, found.get(i, 0)) for i in range(bins)]
        by_source: list[dict[str, Any]] = []
        if with_sources:
            from catalogue import tasks_table as tasks

            trainable = c.status.in_(TRAINABLE)
            source = sa.func.coalesce(tasks.c.source, "(not in the catalogue)")
            by_source = [_rate(src, *rest) for src, *rest in conn.execute(
                sa.select(source, sa.func.count(),
                          sa.func.sum(sa.case((trainable, 1), else_=0)),
                          sa.func.sum(sa.case((trainable & (c.reward >= SOLVED), 1), else_=0)),
                          sa.func.avg(sa.case((trainable, c.reward))))
                .select_from(episodes.outerjoin(tasks, tasks.c.id == c.task_id))
                .where(c.run_id == run_id).group_by(source))]
        timeline = _timeline(conn, run_id)
    return RunSummary(run=run, counts=counts, total=sum(counts.values()), by_env=by_env,
                      by_source=sorted(by_source, key=lambda r: -r["episodes"]),
                      histogram=histogram, timeline=timeline)


def _rate(key: Any, n: int, scored: int | None, passed: int | None,
          mean: float | None) -> dict[str, Any]:
    scored, passed = int(scored or 0), int(passed or 0)
    return {"key": key, "episodes": n, "scored": scored, "passed": passed,
            "pass_rate": passed / scored if scored else None, "mean_reward": mean}


def _histogram(conn: Any, run_id: str, bins: int, lo: float,
               hi: float) -> list[tuple[float, float, int]]:
    """(low, high, count) of trainable rewards in `bins` equal bins over [min(0, lo),
    max(1, hi)] (rewards outside [0, 1]); the top edge is inclusive."""
    c = episodes.c
    where = (c.run_id == run_id) & c.status.in_(TRAINABLE) & c.reward.is_not(None)
    lo, hi = min(0.0, float(lo)), max(1.0, float(hi))
    width = (hi - lo) / bins
    index = _floor((c.reward - lo) / width, conn)
    found = dict(conn.execute(sa.select(index, sa.func.count()).where(where).group_by(index)).all())
    found[bins - 1] = found.get(bins - 1, 0) + found.pop(bins, 0)
    return [(lo + i * width, lo + (i + 1) * width, int(found.get(i, 0))) for i in range(bins)]


def _floor(expr: Any, bind: Any) -> Any:
    """floor(expr) as an integer for expr ≥ 0: SQLite's CAST truncates (and its floor()
    is optional), PostgreSQL's CAST rounds."""
    if bind.dialect.name == "sqlite":
        return sa.cast(expr, sa.Integer)
    return sa.cast(sa.func.floor(expr), sa.Integer)


def _timeline(conn: Any, run_id: str) -> list[tuple[str, int]]:
    """Stored episodes per minute ("YYYY-MM-DD HH:MM", count), in time order."""
    c = episodes.c
    if conn.dialect.name == "sqlite":
        minute = sa.func.substr(sa.type_coerce(c.created_at, sa.String), 1, 16)
    else:
        minute = sa.func.to_char(sa.func.date_trunc("minute", c.created_at), "YYYY-MM-DD HH24:MI")
    rows = conn.execute(sa.select(minute, sa.func.count()).where(c.run_id == run_id)
                        .group_by(minute).order_by(minute))
    return [(str(m), int(n)) for m, n in rows]


def list_episodes(engine: Engine, run_id: str, filt: EpisodeFilter, *, after: int | None = None,
                  before: int | None = None, limit: int = 50,
                  count: bool = True) -> Page:
    """One page of the run's episodes in id order, after `after` or before `before`."""
    if filt.text:
        return search_episodes(engine, run_id, filt, after=after, limit=limit)
    conds = filt.where(run_id, rowid_scan=_rowid_scan(engine, filt))
    c = episodes.c
    query = sa.select(*LIST_COLUMNS).where(*conds)
    if before is not None:
        query = query.where(c.id < before).order_by(c.id.desc())
    else:
        query = query.where(c.id > (after or 0)).order_by(c.id)
    with engine.connect() as conn:
        rows = [dict(r) for r in conn.execute(query.limit(limit + 1)).mappings()]
        more = len(rows) > limit
        rows = rows[:limit]
        if before is not None:
            rows.reverse()
        page = Page(rows)
        if rows:
            first, last = rows[0]["id"], rows[-1]["id"]
            later = more if before is None else _exists(conn, conds, c.id > last)
            earlier = more if before is not None else (
                after is not None and _exists(conn, conds, c.id < first))
            page.next_after = last if later else None
            page.prev_before = first if earlier else None
        if count:
            plain = filt.where(run_id)
            if filt.index_only_count:
                page.total = conn.execute(sa.select(sa.func.count()).where(*plain)).scalar()
            else:
                page.total = conn.execute(sa.select(sa.func.count()).select_from(
                    sa.select(c.id).where(*plain).limit(COUNT_CAP + 1).subquery())).scalar()
                page.total_capped = page.total > COUNT_CAP
    return page


def _exists(conn: Any, conds: list[Any], extra: Any) -> bool:
    return bool(conn.execute(sa.select(sa.exists(sa.select(episodes.c.id)
                                                 .where(*conds, extra)))).scalar())


def search_episodes(engine: Engine, run_id: str, filt: EpisodeFilter, *, after: int | None = None,
                    limit: int = 50, window: int = 2000, budget_s: float = 0.15) -> Page:
    """Episodes whose stored messages contain `filt.text` (case-insensitive for ASCII),
    scanned from `after` in windows of `window` ids until `limit` matches or `budget_s`.

    The text is matched in its JSON-escaped form, as the messages are stored, so quotes,
    newlines and non-ASCII text match too."""
    c = episodes.c
    conds = filt.where(run_id, rowid_scan=_rowid_scan(engine, filt))
    needle = json.dumps(filt.text)[1:-1]
    text = sa.cast(c.messages, sa.Text)
    match = text.contains(needle, autoescape=True) if engine.dialect.name == "sqlite" else \
        text.icontains(needle, autoescape=True)
    started = time.monotonic()
    cursor, found, done = after or 0, [], False
    with engine.connect() as conn:
        while len(found) < limit:
            upper = conn.execute(sa.select(sa.func.max(sa.literal_column("id"))).select_from(
                sa.select(c.id).where(*conds, c.id > cursor).order_by(c.id).limit(window)
                .subquery())).scalar()
            if upper is None:
                done = True
                break
            rows = conn.execute(sa.select(*LIST_COLUMNS)
                                .where(*conds, c.id > cursor, c.id <= upper, match)
                                .order_by(c.id).limit(limit - len(found))).mappings().all()
            found.extend(dict(r) for r in rows)
            cursor = found[-1]["id"] if len(found) >= limit else upper
            if time.monotonic() - started > budget_s:
                break
        if not done and len(found) < limit:
            done = not _exists(conn, conds, c.id > cursor)
    page = Page(found, search_ms=(time.monotonic() - started) * 1000)
    page.search_done = done
    page.scanned_upto = None if done else cursor
    page.next_after = None if done else cursor
    page.prev_before = None
    return page


def get_episode(engine: Engine, run_id: str, episode_id: int) -> dict[str, Any] | None:
    """The whole episode row plus its calls' sizes, the run's previous and next episode
    ids, and its group's samples."""
    c = episodes.c
    with engine.connect() as conn:
        row = conn.execute(sa.select(*EPISODE_COLUMNS).where(c.id == episode_id, c.run_id == run_id)
                           ).mappings().first()
        if row is None:
            return None
        ep = dict(row)
        in_run = EpisodeFilter().where(run_id, rowid_scan=conn.dialect.name == "sqlite")
        ep["neighbours"] = (
            conn.execute(sa.select(c.id).where(*in_run, c.id < episode_id)
                         .order_by(c.id.desc()).limit(1)).scalar(),
            conn.execute(sa.select(c.id).where(*in_run, c.id > episode_id)
                         .order_by(c.id).limit(1)).scalar())
        ep["group"] = [dict(r) for r in conn.execute(
            sa.select(c.id, c.sample_index, c.status, c.reward)
            .where(c.run_id == run_id, c.task_id == ep["task_id"]).order_by(c.sample_index)
        ).mappings()]
    ep["calls"] = call_sizes(engine, episode_id)
    return ep


def get_group(engine: Engine, run_id: str, task_id: str) -> list[dict[str, Any]]:
    """Every sample of one task in the run, with its messages, in sample order."""
    c = episodes.c
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(
            sa.select(c.id, c.task_id, c.sample_index, c.env_id, c.status, c.reward,
                      c.num_turns, c.messages, c.reward_details, c.error, c.timings)
            .where(c.run_id == run_id, c.task_id == task_id).order_by(c.sample_index)
        ).mappings()]


def list_groups(engine: Engine, run_id: str, *, after: str | None = None, limit: int = 50,
                variance: str | None = None) -> tuple[list[dict[str, Any]], str | None]:
    """Per task of the run: samples, scored samples, min/mean/max reward; keyset on the
    task id. `variance` "none" keeps groups whose scored rewards are all equal (no
    GRPO signal), "some" those that differ."""
    c = episodes.c
    scored = sa.case((c.status.in_(TRAINABLE), c.reward))
    lo, hi = sa.func.min(scored), sa.func.max(scored)
    query = (sa.select(c.task_id, sa.func.count().label("samples"),
                       sa.func.count(scored).label("scored"), lo.label("min_reward"),
                       sa.func.avg(scored).label("mean_reward"), hi.label("max_reward"))
             .where(c.run_id == run_id, c.task_id > (after or "")).group_by(c.task_id)
             .order_by(c.task_id))
    if variance == "none":
        query = query.having(lo == hi)
    elif variance == "some":
        query = query.having(lo < hi)
    with engine.connect() as conn:
        rows = [dict(r) for r in conn.execute(query.limit(limit + 1)).mappings()]
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, (rows[-1]["task_id"] if more and rows else None)


def call_sizes(engine: Engine, episode_id: int) -> list[dict[str, Any]]:
    """Per model call of the episode: index, prompt and completion token counts, finish."""
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(
            sa.select(calls.c.idx, calls.c.finish_reason,
                      (sa.func.length(calls.c.prompt_ids) / 4).label("prompt_tokens"),
                      (sa.func.length(calls.c.completion_ids) / 4).label("completion_tokens"))
            .where(calls.c.episode_id == episode_id).order_by(calls.c.idx)).mappings()]


def token_arrays(engine: Engine, run_id: str, episode_id: int) -> dict[str, Any] | None:
    """The episode's stored token blobs (ids, mask, logprobs, teacher) and its config."""
    c = episodes.c
    with engine.connect() as conn:
        row = conn.execute(sa.select(c.id, c.task_id, c.sample_index, c.status, c.reward,
                                     c.token_ids, c.loss_mask, c.token_logprobs,
                                     c.teacher_logprobs, c.prefix_consistent)
                           .where(c.id == episode_id, c.run_id == run_id)).mappings().first()
    return dict(row) if row else None
