"""Viewer benchmark: server time of `envfarm view`'s pages over a run of 100K episodes.

Builds (once, cached by its size) a SQLite store with one synthetic run of `--episodes`
episodes (`orchestrator.viewer.synthetic`: real Store API for the first rows, bulk
inserts of the same rows for the rest; SWE/terminal/web-dev details, every status,
4-10 messages and 300 tokens with mask, logprobs and teacher scores each), then
requests each page through the app in-process and reads its `Server-Timing` (time in
the app: queries + rendering). p50/p95 over `--repeat` requests of varied targets.

Also measured in the same run:
- the run page with its summary cache off (every request recomputes the aggregates);
- baseline: OFFSET pagination to the same deep page as the keyset link;
- the same pages after adding the index the viewer asks for (`--with-index` step).

Usage: .venv/bin/python benchmarks/viewer.py [--episodes 100000] [--repeat 40]
       [--db /tmp/envfarm-viewer-bench.db] [--out benchmarks/results/viewer.md]
"""

from __future__ import annotations

import argparse
import gzip
import os
import random
import statistics
import sys
import time
from pathlib import Path

_HERE = Path(__file__).resolve().parent
sys.path[:] = [str(_HERE.parent), *(p for p in sys.path if Path(p or ".").resolve() != _HERE)]

import sqlalchemy as sa

RUN = "run-bench"
INDEX = ("CREATE INDEX IF NOT EXISTS ix_episodes_run_summary ON episodes "
         "(run_id, env_id, status, reward, created_at)")
"""The index proposed to the store's owners: every run-page aggregate becomes an
index-only scan, and env/status/reward filters find their rows without the table."""


def build(db: Path, episodes: int) -> float:
    from orchestrator.store import Store
    from orchestrator.viewer import synthetic

    if db.exists():
        return 0.0
    tmp = db.with_suffix(".building")
    for p in (tmp, Path(f"{tmp}-wal"), Path(f"{tmp}-shm")):
        p.unlink(missing_ok=True)
    started = time.perf_counter()
    store = Store(f"sqlite:///{tmp}")
    synthetic.write_run(store, RUN, episodes, n=8, teacher=True, per_minute=1000, config={
        "env": "mixed", "n": 8, "policy": {"type": "vllm",
                                           "tokenizer": str(_HERE.parent / "tests" /
                                                            "fixtures" / "tiny_model")}})
    with store.engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    store.engine.dispose()
    tmp.rename(db)
    return time.perf_counter() - started


LONG_RUN, LONG_TOKENS = "run-bench-long", 32_000


def add_long_episode(db: Path) -> None:
    """One 32K-token episode (a long SWE trajectory) in its own run, once."""
    from orchestrator.store import Store
    from orchestrator.viewer import synthetic

    store = Store(f"sqlite:///{db}")
    if not any(r["id"] == LONG_RUN for r in store.list_runs()):
        store.create_run(LONG_RUN, {"env": "swe", "policy": {
            "type": "vllm", "tokenizer": str(_HERE.parent / "tests" / "fixtures" / "tiny_model")}})
        store.save_episode(synthetic.make_record(random.Random(1), LONG_RUN, "task-long", 0,
                                                 "envfarm/swe-v0", tokens=LONG_TOKENS,
                                                 teacher=True))
    store.engine.dispose()


def server_ms(client, url: str) -> tuple[float, int, int]:
    r = client.get(url)
    if r.status_code != 200:
        raise SystemExit(f"{url}: HTTP {r.status_code}: {r.text[:300]}")
    ms = float(r.headers["server-timing"].split("dur=")[1])
    return ms, len(r.content), len(gzip.compress(r.content))


def measure(client, urls: list[str]) -> dict:
    times, sizes, gz = [], [], []
    for url in urls:
        ms, size, zipped = server_ms(client, url)
        times.append(ms)
        sizes.append(size)
        gz.append(zipped)
    times.sort()
    p95 = times[min(len(times) - 1, round(0.95 * (len(times) - 1)))]
    return {"p50": statistics.median(times), "p95": p95, "max": times[-1],
            "kb": statistics.median(sizes) / 1024, "gz_kb": statistics.median(gz) / 1024,
            "n": len(times)}


def scenarios(engine, repeat: int, rng: random.Random) -> dict[str, list[str]]:
    with engine.connect() as conn:
        ids = [i for (i,) in conn.execute(sa.text(
            "SELECT id FROM episodes WHERE run_id = :r ORDER BY id"), {"r": RUN})]
        long_id = conn.execute(sa.text("SELECT id FROM episodes WHERE run_id = :r"),
                               {"r": LONG_RUN}).scalar()
    pick = lambda: rng.choice(ids)
    base = f"/runs/{RUN}"
    filters = ["status=ok", "env=envfarm/swe-v0&status=ok", "min_reward=0.2&max_reward=0.8",
               "sample=3", "status=infra_error", "env=envfarm/webdev-v0&min_reward=0.5",
               "task=task-004242", "status=tampered&status=agent_fault"]
    return {
        "runs index `/`": ["/"] * repeat,
        "run page (summary cached)": [base] * repeat,
        "episode list, no filter, page 1": [f"{base}/episodes"] * repeat,
        "episode list, filtered (8 filter sets)": [
            f"{base}/episodes?{filters[i % len(filters)]}" for i in range(repeat)],
        "episode list, filtered, deep keyset page": [
            f"{base}/episodes?status=ok&after={pick()}" for _ in range(repeat)],
        "text search, common word": [f"{base}/episodes?q=deadlock"] * repeat,
        "text search, absent word (budgeted scan)": [f"{base}/episodes?q=zzqqxx"] * repeat,
        "episode page": [f"{base}/episodes/{pick()}" for _ in range(repeat)],
        "tokens page (300 tokens)": [f"{base}/episodes/{pick()}/tokens" for _ in range(repeat)],
        "groups page": [f"{base}/groups"] * repeat,
        f"tokens page of a {LONG_TOKENS // 1000}K-token episode (first 20K shown)": [
            f"/runs/{LONG_RUN}/episodes/{long_id}/tokens"] * max(5, repeat // 4),
        "group page (8 samples)": [
            f"{base}/groups/task-{rng.randrange(len(ids) // 8):06d}" for _ in range(repeat)],
    }


def offset_baseline(engine, repeat: int) -> tuple[float, float]:
    """p95 ms of OFFSET vs keyset for the same deep page of `status=ok` (query only)."""
    from orchestrator.store import episodes as t
    from orchestrator.viewer.queries import LIST_COLUMNS, EpisodeFilter

    conds = EpisodeFilter(statuses=("ok",)).where(RUN)
    with engine.connect() as conn:
        n = conn.execute(sa.select(sa.func.count()).where(*conds)).scalar()
        offset = int(n * 0.9)
        after = conn.execute(sa.select(t.c.id).where(*conds).order_by(t.c.id)
                             .offset(offset - 1).limit(1)).scalar()
        res = {"offset": [], "keyset": []}
        for _ in range(repeat):
            for kind, q in (("offset", sa.select(*LIST_COLUMNS).where(*conds).order_by(t.c.id)
                             .offset(offset).limit(50)),
                            ("keyset", sa.select(*LIST_COLUMNS).where(*conds, t.c.id > after)
                             .order_by(t.c.id).limit(50))):
                started = time.perf_counter()
                rows = conn.execute(q).all()
                res[kind].append((time.perf_counter() - started) * 1e3)
                assert len(rows) == 50
    p95 = lambda xs: sorted(xs)[round(0.95 * (len(xs) - 1))]
    return p95(res["offset"]), p95(res["keyset"])


def run_pass(url: str, repeat: int, label: str) -> list[tuple[str, dict]]:
    from fastapi.testclient import TestClient

    from orchestrator.viewer import ViewerConfig, create_app, readonly_engine

    engine = readonly_engine(url)
    client = TestClient(create_app(ViewerConfig(store=url, warm_runs=0)))
    uncached = TestClient(create_app(ViewerConfig(store=url, cache_summaries=False)))
    for warm in ("/", f"/runs/{RUN}", f"/runs/{RUN}/episodes/1",
                 f"/runs/{RUN}/episodes/1/tokens", f"/runs/{RUN}/groups"):
        client.get(warm)  # templates compiled, tokenizer loaded, page cache warm
    rows = []
    first = server_ms(uncached, f"/runs/{RUN}")
    rows.append((f"{label}: run page, summary computed (first view)",
                 {"p50": first[0], "p95": first[0], "max": first[0], "kb": first[1] / 1024,
                  "gz_kb": first[2] / 1024, "n": 1}))
    rows.append((f"{label}: run page, summary recomputed every time",
                 measure(uncached, [f"/runs/{RUN}"] * max(5, repeat // 4))))
    for name, urls in scenarios(engine, repeat, random.Random(0)).items():
        rows.append((f"{label}: {name}", measure(client, urls)))
    import re

    page = client.get(f"/runs/{RUN}/episodes?q=zzqqxx").text
    partial = re.search(r"episodes up to #(\d+) searched", page)
    upto = int(partial.group(1)) if partial else 2**62  # else: the whole run in one request
    with engine.connect() as conn:
        searched, nbytes = conn.execute(sa.text(
            "SELECT count(*), sum(length(messages)) FROM episodes WHERE run_id = :r AND id <= :u"),
            {"r": RUN, "u": upto}).one()
    SEARCHED.append((label, searched, nbytes / 2**20, partial is not None))
    return rows


SEARCHED: list[tuple[str, int, float, bool]] = []
"""(pass, episodes searched by one absent-word request, MiB of messages read)."""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--episodes", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=40)
    ap.add_argument("--db", type=Path, default=None)
    ap.add_argument("--out", type=Path, default=_HERE / "results" / "viewer.md")
    args = ap.parse_args()
    db = args.db or Path(f"/tmp/envfarm-viewer-bench-{args.episodes}.db")
    built_s = build(db, args.episodes)
    add_long_episode(db)
    url = f"sqlite:///{db}"
    size_mb = db.stat().st_size / 2**20
    load = os.getloadavg()[0]
    from orchestrator.viewer import readonly_engine

    engine = readonly_engine(url)
    offset_ms, keyset_ms = offset_baseline(engine, max(5, args.repeat // 2))
    rows = run_pass(url, args.repeat, "schema as is")
    writable = sa.create_engine(f"sqlite:///{db}")
    with writable.begin() as conn:
        started = time.perf_counter()
        conn.exec_driver_sql(INDEX)
        index_s = time.perf_counter() - started
    writable.dispose()
    indexed = run_pass(url, args.repeat, "with ix_episodes_run_summary")
    with sa.create_engine(f"sqlite:///{db}").begin() as conn:  # leave the store as built
        conn.exec_driver_sql("DROP INDEX IF EXISTS ix_episodes_run_summary")
    static = sum((Path(__file__).parent.parent / "orchestrator" / "viewer" / "static" / f)
                 .stat().st_size for f in ("viewer.css", "viewer.js"))
    report(args, db, size_mb, built_s, load, rows + indexed, offset_ms, keyset_ms, index_s,
           static)


def report(args, db, size_mb, built_s, load, rows, offset_ms, keyset_ms, index_s,
           static) -> None:
    built = (f"built in {built_s:.0f} s" if built_s else "store reused from an earlier run")
    lines = [
        "# Viewer benchmark (benchmarks/viewer.py)", "",
        (f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {os.cpu_count()} cores, "
         f"load average {load:.2f} at the start, SQLite file {size_mb:.0f} MiB: one run of "
         f"{args.episodes:,} episodes, 8 samples per task ({built}), and one run holding a "
         f"{LONG_TOKENS // 1000}K-token episode."), "",
        ("Server time = the app's own `Server-Timing` (queries + rendering), requests "
         f"in-process, {args.repeat} per row unless n says otherwise. Goal: p95 ≤ 300 ms. "
         "Page weight = HTML bytes (gzip in brackets); every page also loads "
         f"viewer.css + viewer.js, {static / 1024:.1f} KiB together, once."), "",
        "| page | n | p50 ms | p95 ms | max ms | ≤ 300 ms | HTML KiB (gzip) |",
        "|---|---:|---:|---:|---:|:-:|---:|",
    ]
    for name, m in rows:
        lines.append(f"| {name} | {m['n']} | {m['p50']:.1f} | {m['p95']:.1f} | {m['max']:.1f} | "
                     f"{'yes' if m['p95'] <= 300 else '**no**'} | {m['kb']:.1f} ({m['gz_kb']:.1f}) |")
    lines += [
        "",
        (f"Baseline, same run: the `status=ok` page 90% deep, query only: OFFSET p95 "
         f"{offset_ms:.1f} ms, keyset (`id > after`) p95 {keyset_ms:.1f} ms "
         f"({offset_ms / max(keyset_ms, 1e-6):.0f}× faster)."), "",
        (f"Proposed index (`{INDEX}`): built in {index_s:.1f} s on this store; the "
         "\"with ix_episodes_run_summary\" rows are the same requests after it."), "",
    ]
    for label, searched, mib, partial in SEARCHED:
        lines.append(f"Search, {label}: one request for an absent word searched {searched:,} "
                     f"episodes ({mib:.1f} MiB of stored messages) within its 150 ms budget"
                     + (", then offered `search on →` from there." if partial else
                        ": the whole run."))
        lines.append("")
    lines += [
        ("Notes. The run page's aggregates are computed once per run version (episode count, "
        "newest id): at `envfarm view` start, in the background, for the 5 newest runs, and "
        "at most every 10 s while a run is live; the \"summary computed\" rows are that "
        "background cost, the \"cached\" row what a user waits for. Without the proposed "
        "index it reads every row of the run (a table scan); with it, the index alone. The "
        "store file was in the page cache (a cold disk is slower). Stores made by real "
        "rollouts have the same schema and shape; these episodes are synthetic "
        "(orchestrator/viewer/synthetic.py)."),
    ]
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
