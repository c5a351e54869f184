"""Orchestrator benchmark: what the machinery around an env costs.

1. Overhead per env step: `env.step` of a bash `true` call (action parsing, tool
   dispatch, truncation, status) minus the raw `sandbox.exec("true")`, on one live
   sandbox. Target: <= 2 ms.
2. Episodes per minute of the oracle workload on envfarm/echo-v0 at several
   concurrencies (threads executor; each episode starts and removes a container).
3. Store write throughput and export of 10K trajectories to verl Parquet (target <= 10 s),
   beside the old row-by-row path (benchmarks/_export_baseline.py) timed in the same run,
   alternating, with a check that both write the same table.

Usage: .venv/bin/python benchmarks/orchestrator.py [--concurrency 1 8 32 64] [--episodes 64]
       [--only step throughput export] [--out benchmarks/results/orchestrator.md]

With --out (what `make bench-orchestrator` passes) the tables and the figures quoted
elsewhere (README) are written to that file, so the two cannot drift apart.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

# benchmarks/ holds a sandbox.py: keep the folder off sys.path so `sandbox` is the package.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [str(_HERE.parent), *(p for p in sys.path if Path(p or ".").resolve() != _HERE)]

from rich.console import Console
from rich.table import Table

console = Console(record=True, width=None if sys.stdout.isatty() else 120)
PARTS = ["step", "throughput", "export"]
FIGURES: list[str] = []
"""One line per headline figure, for the results file."""


def step_overhead(samples: int) -> tuple[float, float]:
    import gymnasium

    import envs  # noqa: F401

    env = gymnasium.make("envfarm/echo-v0", disable_env_checker=True, max_turns=samples + 10)
    env.reset(options={"task_id": "echo-bench"})
    sandbox = env.unwrapped.sandbox
    raw, stepped = [], []
    action = {"content": "", "tool_calls": [{"name": "bash", "arguments": {"command": "true"}}]}
    for _ in range(samples):
        t = time.perf_counter()
        sandbox.exec("true")
        raw.append(time.perf_counter() - t)
        t = time.perf_counter()
        env.step(action)
        stepped.append(time.perf_counter() - t)
    env.close()
    return statistics.median(raw) * 1e3, statistics.median(stepped) * 1e3


def throughput(concurrency: int, episodes: int, store_url: str) -> tuple[float, dict]:
    from orchestrator.runner import RolloutConfig, RolloutRunner
    from orchestrator.store import Store

    tasks = [f"echo-b{i}" for i in range(episodes)]
    config = RolloutConfig(env="echo", task_ids=tasks, executor="threads",
                           concurrency=concurrency)
    started = time.perf_counter()
    summary = RolloutRunner(config, Store(store_url), show_progress=False).run()
    minutes = (time.perf_counter() - started) / 60
    return episodes / minutes, summary.statuses


def synthetic(i: int, rng: random.Random):
    from orchestrator.records import CallData, EpisodeRecord

    merged, mask, lps, calls = [rng.randrange(50000) for _ in range(300)], [0] * 300, [None] * 300, []
    for _ in range(8):
        completion = [rng.randrange(50000) for _ in range(120)]
        lp = [-rng.random() for _ in completion]
        calls.append(CallData(list(merged), completion, lp, "stop"))
        merged += completion + [rng.randrange(50000) for _ in range(200)]
        mask += [1] * 120 + [0] * 200
        lps += lp + [None] * 200
    return EpisodeRecord(run_id="bench", task_id=f"t{i // 4}", sample_index=i % 4,
                         env_id="envfarm/echo-v0", status="ok", reward=float(i % 2),
                         token_ids=merged, loss_mask=mask, token_logprobs=lps, calls=calls,
                         num_turns=8, messages=[{"role": "user", "content": "x" * 500}])


def store_and_export(n: int, tmp: Path, rounds: int = 2) -> dict[str, float | bool]:
    """Store `n` synthetic episodes, then export them `rounds` times by each path,
    alternating so that load from other work falls on both alike; best time of each."""
    import pyarrow.parquet as pq

    from benchmarks._export_baseline import export_verl as export_old
    from orchestrator.export import export
    from orchestrator.store import Store

    store = Store(f"sqlite:///{tmp / 'bench.db'}")
    store.create_run("bench", {"n": 4})
    rng = random.Random(0)
    records = [synthetic(i, rng) for i in range(n)]
    started = time.perf_counter()
    for rec in records:
        store.save_episode(rec)
    write_rate = n / (time.perf_counter() - started)
    del records
    new_s, old_s = [], []
    for _ in range(rounds):
        started = time.perf_counter()
        report = export(store, "bench", "verl", tmp / "new.parquet")
        new_s.append(time.perf_counter() - started)
        started = time.perf_counter()
        old_rows = export_old(store, "bench", tmp / "old.parquet")
        old_s.append(time.perf_counter() - started)
    assert report.rows == old_rows == n
    new, old = pq.read_table(tmp / "new.parquet"), pq.read_table(tmp / "old.parquet")
    same = new.schema.equals(old.schema) and new.combine_chunks().equals(old.combine_chunks())
    return {"write_rate": write_rate, "new_s": min(new_s), "old_s": min(old_s), "same": same,
            "new_mb": (tmp / "new.parquet").stat().st_size / 1e6,
            "old_mb": (tmp / "old.parquet").stat().st_size / 1e6}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32, 64])
    parser.add_argument("--episodes", type=int, default=64)
    parser.add_argument("--export-episodes", type=int, default=10_000)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--only", nargs="+", choices=PARTS, default=PARTS,
                        help="Run only these parts.")
    parser.add_argument("--out", type=Path, help="Write the results file (markdown) here.")
    args = parser.parse_args()
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    load_before = " ".join(f"{x:.2f}" for x in os.getloadavg())
    console.print(f"load average before: {load_before}")

    if "step" in args.only:
        print_step(args.steps)

    with tempfile.TemporaryDirectory() as tmp:
        if "throughput" in args.only:
            print_throughput(args.concurrency, args.episodes, tmp)
        if "export" in args.only:
            print_export(args.export_episodes, Path(tmp))
    load_after = " ".join(f"{x:.2f}" for x in os.getloadavg())
    console.print(f"load average after: {load_after}")
    if args.out:
        write_results(args.out, started, load_before, load_after)


def write_results(out: Path, started: str, load_before: str, load_after: str) -> None:
    """The results file: machine, load, the tables as printed, and the headline figures."""
    mem_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    tables = console.export_text(styles=False)
    out.write_text(
        "# Orchestrator benchmark (benchmarks/orchestrator.py)\n\n"
        f"{started}, {os.cpu_count()} cores, {mem_gib:.0f} GiB, SQLite, threads executor, "
        "envfarm/echo-v0 (each episode starts and removes a real container); load average "
        f"{load_before} before, {load_after} after. Written by `make bench-orchestrator`.\n\n"
        f"```\n{tables.rstrip()}\n```\n\nFigures (quote these):\n"
        + "".join(f"- {line}\n" for line in FIGURES))
    console.print(f"results written to {out}")


def print_step(samples: int) -> None:
    raw_ms, step_ms = step_overhead(samples)
    table = Table(title="orchestrator overhead per env step (median)")
    for column in ("raw sandbox.exec", "env.step (bash true)", "overhead", "target"):
        table.add_column(column, justify="right")
    overhead = step_ms - raw_ms
    FIGURES.append(f"env-step overhead: {overhead:.2f} ms over the raw sandbox command "
                   f"({raw_ms:.2f} ms; target 2 ms)")
    table.add_row(f"{raw_ms:.3f} ms", f"{step_ms:.3f} ms", f"{overhead:.3f} ms",
                  "≤ 2 ms " + ("[green]met[/]" if overhead <= 2 else "[red]not met[/]"))
    console.print(table)


def print_throughput(concurrencies: list[int], episodes: int, tmp: str) -> None:
    table = Table(title=f"oracle episodes/minute, envfarm/echo-v0, {episodes} episodes")
    for column in ("concurrency", "episodes/min", "vs concurrency 1", "statuses"):
        table.add_column(column, justify="right")
    base = None
    rates = {}
    for c in concurrencies:
        rate, statuses = throughput(c, episodes, f"sqlite:///{tmp}/tp{c}.db")
        base = base or rate
        rates[c] = rate
        table.add_row(str(c), f"{rate:.1f}", f"{rate / base:.2f}×", str(statuses))
    console.print(table)
    best = max(rates, key=rates.__getitem__)
    FIGURES.append(f"oracle throughput: {rates[best]:.0f} episodes/min at concurrency {best} "
                   f"({rates[best] / base:.2f}× concurrency {concurrencies[0]})")


def print_export(episodes: int, tmp: Path) -> None:
    r = store_and_export(episodes, tmp)
    table = Table(title=f"store and export, {episodes} trajectories of ~3.5K tokens")
    for column in ("store writes", "verl export", "old path", "old/new", "same table",
                   "file (old)", "target"):
        table.add_column(column, justify="right")
    table.add_row(f"{r['write_rate']:.0f} episodes/s", f"{r['new_s']:.1f} s", f"{r['old_s']:.1f} s",
                  f"{r['old_s'] / r['new_s']:.1f}×", "yes" if r["same"] else "[red]NO[/]",
                  f"{r['new_mb']:.0f} MB ({r['old_mb']:.0f} MB)",
                  "export ≤ 10 s " + ("[green]met[/]" if r["new_s"] <= 10 else "[red]not met[/]"))
    console.print(table)
    FIGURES.append(f"verl export of {episodes} trajectories: {r['new_s']:.1f} s (old path "
                   f"{r['old_s']:.1f} s, same run); store writes {r['write_rate']:.0f} episodes/s")


if __name__ == "__main__":
    main()
