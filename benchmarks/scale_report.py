"""The scale benchmark's tables: one measured level (`Level`), its row, and the section
appended to benchmarks/results/scale.md."""

from __future__ import annotations

import json
import os
import platform
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Level:
    """One measured run."""

    label: str
    target: int
    episodes: int
    store: str
    elapsed_s: float = 0.0
    stored: int = 0
    statuses: dict[str, int] = field(default_factory=dict)
    retried: int = 0
    max_inflight: int = 0
    mean_inflight: float = 0.0
    driver_cpu_s: float = 0.0
    loop_cpu_s: float = 0.0
    store_cpu_s: float = 0.0
    store_wall_s: float = 0.0
    rss_start: int = 0
    rss_peak: int = 0
    ray_calls: int = 0
    """Actor calls the executor made (exchanges): each carries and returns several episodes."""
    commits: int = 0
    """Store transactions the runner's writer committed (each holds several episodes)."""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def per_episode_ms(self) -> float:
        return 1000 * self.driver_cpu_s / max(1, self.stored)

    @property
    def loop_ms(self) -> float:
        return 1000 * self.loop_cpu_s / max(1, self.stored)

    @property
    def store_ms(self) -> float:
        return 1000 * self.store_cpu_s / max(1, self.stored)


def mib(n: float) -> str:
    return f"{n / 2**20:.0f}"


def level_row(lv: Level) -> str:
    rest = max(0.0, lv.driver_cpu_s - lv.loop_cpu_s - lv.store_cpu_s)
    n = max(1, lv.stored)
    return (f"| {lv.target} | {lv.mean_inflight:.0f} / {lv.max_inflight} | {lv.stored} | "
            f"{lv.store} | {lv.elapsed_s:.0f} | {lv.stored / lv.elapsed_s:.1f} | "
            f"**{lv.per_episode_ms - lv.store_ms:.2f}** | {lv.loop_ms:.2f} | "
            f"{1000 * rest / n:.2f} | {lv.store_ms:.2f} | {lv.per_episode_ms:.2f} | "
            f"{lv.ray_calls / n:.2f} | {lv.commits / n:.2f} | "
            f"{mib(lv.rss_start)} → {mib(lv.rss_peak)} |")


def render(args: Any, profile_path: Path, started: str, load0: tuple, load1: tuple,
           up_s: float, levels: list[Level], writes: dict[str, dict[int, float]],
           wait_costs: dict, rec: Level | None, cluster_rss: dict[int, int]) -> str:
    profile = json.loads(profile_path.read_text())["summary"]
    out = [(f"\n## Run {started} — {os.cpu_count()} cores, {platform.system()} "
           f"{platform.release()}"), "",
           (f"Ray: head + {args.nodes} worker nodes (`ray start` each, up in {up_s:.0f} s), one "
           f"threaded actor per node; the real `RolloutRunner` (executor ray: episodes go to "
           f"and come back from each actor in batches, one exchange call at a time) and "
           f"store (writer thread, batched transactions). "
           f"Episodes: `envfarm/sim-agent-v0`, {args.turns} bash turns + finish, the model's "
           f"measured latency (p50 0.58 s, p95 2.08 s) × {args.think_scale} before each, "
           f"waited in the scripted policy's act(); "
           f"engine `sim` drawing from sim_profile.json (start p50 "
           f"{profile['start_s']['p50']:.2f} s, command p50 {1000 * profile['exec_s']['p50']:.1f} "
           f"ms, close p50 {profile['close_s']['p50']:.2f} s). Load average {load0[0]:.1f} "
           f"before, {load1[0]:.1f} after (2 cores shared with other sessions: wall-clock "
           "figures are pessimistic; CPU figures are this process's own)."), "",
           ("Driver CPU per stored episode, in ms (user + system, from getrusage): **without "
           "store** = the loop thread + the executor's pump threads and Ray's client "
           "threads; store = the writer thread's SQL (timed per batch). Ray calls and "
           "commits per episode: actor exchanges and store transactions over episodes."), "",
           ("| running target | in flight (steady mean / max) | episodes | store | wall s | "
           "episodes/s | **driver ms/episode without store** | loop thread | pumps + Ray "
           "client threads | store writes | total | Ray calls / episode | commits / episode "
           "| driver RSS MiB (start → peak) |"),
           "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    out += [level_row(lv) for lv in levels]
    out += ["", ("Where the driver's CPU goes, ms per episode: pump threads (the executor's "
                 "exchange loops, Python) and the process's OS threads by name (dead threads "
                 "drop out; Python threads carry the process's name):")]
    out += [(f"- {lv.target} running, {lv.store}: pumps {lv.extra.get('pumps_ms', 0):.2f}; "
             + ", ".join(f"{name} {ms:.2f}" for name, ms in sorted(
                 lv.extra.get("threads_ms", {}).items(), key=lambda kv: -kv[1])[:8]))
            for lv in levels]
    sq = sorted((lv for lv in levels if lv.store == "SQLite"), key=lambda lv: lv.target)
    if len(sq) >= 2:
        lo, hi = sq[0], sq[-1]
        ratio = (hi.per_episode_ms - hi.store_ms) / max(1e-9, lo.per_episode_ms - lo.store_ms)
        out += ["", (f"Growth {lo.target} → {hi.target} running: driver CPU per episode "
                f"(without store) × {ratio:.2f} "
                f"({'flat or better: linear total cost' if ratio <= 1.1 else 'grows'}).")]
    if cluster_rss:
        out += ["", "Ray cluster memory (every process of head and nodes, workers included) "
                "with all slots busy: " + ", ".join(f"{mib(v)} MiB at {k} running"
                                                    for k, v in sorted(cluster_rss.items()))
                + "."]
    out += ["", write_table(writes), "",
            "The loop's cost to learn what finished, µs per iteration (one finished among N "
            "in flight; same run): " + "; ".join(
                f"N={n}: `cf.wait` over all {old:.0f} µs, completion queue {new:.1f} µs"
                for n, (old, new) in wait_costs.items()) + "."]
    if rec is not None:
        x = rec.extra
        ok = (x.get("missing") == 0 and x.get("duplicated") == 0
              and x.get("attempts_more") == 0 and x.get("attempts_2") == x.get("on_node"))
        first = x.get("first_failure_s")
        out += ["", (f"Recovery: {rec.target} running over {args.nodes} nodes; the node of "
                f"actor 0 SIGKILLed ({x.get('processes')} processes) with "
                f"**{x.get('on_node')} episodes on it**. First failure seen by the driver "
                f"{first if first is None else round(first, 1)} s after the kill, last "
                f"{x.get('last_failure_s') and round(x['last_failure_s'], 1)} s. Store after "
                f"the run: {x.get('distinct')} of {rec.episodes} episodes "
                f"({x.get('missing')} missing), {x.get('duplicated')} duplicated, "
                f"{x.get('attempts_2')} stored at attempt 2, {x.get('attempts_more')} "
                f"beyond; not ok: {x.get('not_ok')}. Verdict: "
                f"{'every episode of the dead node retried once, none lost or duplicated' if ok else 'see the counts'}.")]
    return "\n".join(out) + "\n"




def write_table(writes: dict[str, dict[int, float]],
                cpu: dict[str, dict[int, float]] | None = None) -> str:
    """One writer's episodes/s by records per transaction, with ratios to one by one (and
    the writer's CPU ms per episode, when measured)."""
    sizes = sorted({size for rates in writes.values() for size in rates})
    head = ("Store writes, one writer, records of this run written back to back (same run, "
            "same records): episodes/s by episodes per transaction (1 = `save_episode`, the "
            "writer before batching; more = `save_episodes`), ratio to one by one"
            + ("; then the writer's CPU ms per episode" if cpu else "") + ".\n\n"
            "| store | " + " | ".join(f"{s} per commit" for s in sizes)
            + (" | " + " | ".join(f"CPU ms/ep, {s}" for s in sizes) if cpu else "")
            + " |\n|---|" + "---|" * (len(sizes) * (2 if cpu else 1)))
    rows = []
    for name, rates in writes.items():
        one = rates.get(1) or 1e-9
        row = f"| {name} | " + " | ".join(
            f"{rates[s]:.0f}" + ("" if s == 1 else f" (× {rates[s] / one:.1f})")
            for s in sizes)
        if cpu:
            row += " | " + " | ".join(f"{cpu[name].get(s, 0):.2f}" for s in sizes)
        rows.append(row + " |")
    return head + "\n" + "\n".join(rows)
