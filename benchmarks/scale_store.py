"""The store's side of the scale benchmark: a throwaway PostgreSQL server (fsync on, as
in production), one writer's episodes/s by records per transaction, and the check that a
run stored every episode once (recovery)."""

from __future__ import annotations

import collections
import contextlib
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

from orchestrator.records import EpisodeRecord
from orchestrator.store import Store


def check_store(store: Store, run_id: str, expected: int) -> dict[str, int]:
    """Distinct episodes stored, rows with a duplicate key, and attempts histogram."""
    import sqlalchemy as sa

    with store.engine.connect() as conn:
        rows = conn.execute(sa.text(
            "SELECT task_id, sample_index, attempts, status FROM episodes WHERE run_id = :r"),
            {"r": run_id}).all()
    keys = collections.Counter((r.task_id, r.sample_index) for r in rows)
    attempts = collections.Counter(r.attempts for r in rows)
    return {"rows": len(rows), "distinct": len(keys), "missing": expected - len(keys),
            "duplicated": sum(n - 1 for n in keys.values() if n > 1),
            "attempts_1": attempts.get(1, 0), "attempts_2": attempts.get(2, 0),
            "attempts_more": sum(n for a, n in attempts.items() if a > 2),
            "not_ok": sum(1 for r in rows if r.status != "ok")}


def write_rates(store: Store, source_run: str | list[EpisodeRecord], n: int,
                sizes: tuple[int, ...] = (1, 16, 64, 256), rounds: int = 2,
                cpu: dict[int, float] | None = None) -> dict[int, float]:
    """Episodes/s one writer sustains, by records per transaction: `n` records of
    `source_run` (a run id, or the records) per size, written back to back under a new
    run; size 1 is `save_episode` (one transaction each: the writer before batching),
    others `save_episodes` (what the runner's writer does with whatever waits, up to
    256). Sizes take turns over `rounds` rounds, so a change of machine load weighs on
    each alike. With `cpu`, it also gets each size's writer CPU ms per episode (thread
    time: what load on a shared machine changes least)."""
    records = (list(store.episodes(source_run, with_calls=True))[:n]
               if isinstance(source_run, str) else source_run[:n])
    per_round = max(1, len(records) // rounds)
    spent = dict.fromkeys(sizes, 0.0)
    spent_cpu = dict.fromkeys(sizes, 0.0)
    written = dict.fromkeys(sizes, 0)
    for r in range(rounds):
        part = records[r * per_round:(r + 1) * per_round]
        for size in sizes:
            run_id = f"writes-{size}-{r}-{time.time_ns()}"
            store.create_run(run_id, {"bench": "scale writes", "batch": size})
            for rec in part:
                rec.run_id = run_id
            t, c = time.perf_counter(), time.thread_time()
            if size == 1:
                for rec in part:
                    store.save_episode(rec)
            else:
                for i in range(0, len(part), size):
                    store.save_episodes(part[i:i + size])
            spent[size] += time.perf_counter() - t
            spent_cpu[size] += time.thread_time() - c
            written[size] += len(part)
    if cpu is not None:
        cpu.update({size: 1000 * spent_cpu[size] / max(1, written[size]) for size in sizes})
    return {size: written[size] / max(spent[size], 1e-9) for size in sizes}


def sim_records(n: int, profile: Path) -> list[EpisodeRecord]:
    """`n` records of real sim-agent episodes (8 turns, run in this process at no latency;
    16 episodes run, their records copied under new task ids)."""
    import dataclasses

    from orchestrator.executors import execute
    from orchestrator.jobs import EpisodeJob
    from orchestrator.policy_spec import PolicySpec

    base = []
    for i in range(16):
        job = EpisodeJob(
            run_id="writes", env_id="envfarm/sim-agent-v0", task_id=f"sim-w{i}",
            sample_index=0, imports=["orchestrator.sim_agent"],
            policy=PolicySpec(type="scripted", script="orchestrator.sim_agent:scripted_policy"),
            env_kwargs={"turns": 8, "think_scale": 0.0},
            backend={"type": "sim", "options": {"profile": str(profile), "time_scale": 0.0}})
        base.append(EpisodeRecord.from_dict(execute(job)))
    return [dataclasses.replace(base[i % 16], task_id=f"sim-w{i}", calls=list(base[i % 16].calls))
            for i in range(n)]


def writes_only(profile: Path, n: int, rounds: int
                ) -> tuple[dict[str, dict[int, float]], dict[str, dict[int, float]]]:
    """The write table alone (no cluster): SQLite and PostgreSQL, `rounds` rounds."""
    import tempfile

    records = sim_records(n, profile)
    rates: dict[str, dict[int, float]] = {}
    cpus: dict[str, dict[int, float]] = {}
    with tempfile.TemporaryDirectory(prefix="envfarm-writes-") as tmp:
        cpus["SQLite"] = {}
        rates["SQLite"] = write_rates(Store(f"sqlite:///{tmp}/w.db"), records, n,
                                      rounds=rounds, cpu=cpus["SQLite"])
    with postgres() as url:
        if url is not None:
            pg = Store(url)
            cpus["PostgreSQL"] = {}
            rates["PostgreSQL"] = write_rates(pg, records, n, rounds=rounds,
                                              cpu=cpus["PostgreSQL"])
            pg.engine.dispose()
    return rates, cpus


@contextlib.contextmanager
def postgres() -> Iterator[str | None]:
    """A throwaway PostgreSQL server (fsync on, as in production) on a Unix socket; None
    when the server binaries are not installed (scripts/setup.d/postgres.sh)."""
    import glob
    import shutil
    import tempfile

    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"))
    if not found:
        yield None
        return
    bindir = Path(found[-1]).parent
    root = Path(tempfile.mkdtemp(prefix="envfarm-scale-pg-"))
    data, sock = root / "data", root / "sock"
    sock.mkdir()

    def as_owner(cmd: list[str]) -> list[str]:
        return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd

    if os.geteuid() == 0:
        shutil.chown(root, "postgres")
        shutil.chown(sock, "postgres")
    server = None
    try:
        subprocess.run(as_owner([str(bindir / "initdb"), "-D", str(data), "-U", "postgres",
                                 "--auth=trust", "-E", "UTF8"]), check=True, capture_output=True)
        server = subprocess.Popen(as_owner([str(bindir / "postgres"), "-D", str(data), "-k",
                                            str(sock), "-p", "5439", "-c", "listen_addresses=",
                                            "-c", "max_connections=50"]),
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        url = f"postgresql+psycopg://postgres@/scale?host={sock}&port=5439"
        import psycopg

        deadline = time.monotonic() + 60
        while True:
            try:
                with psycopg.connect(f"postgresql://postgres@/postgres?host={sock}&port=5439",
                                     autocommit=True) as conn:
                    conn.execute("CREATE DATABASE scale")
                break
            except psycopg.OperationalError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        yield url
    finally:
        if server is not None:
            server.terminate()
            try:
                server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                server.kill()
        shutil.rmtree(root, ignore_errors=True)
