"""Scale, measured: the real runner, Ray and the store at 10K queued and 1K running.

`make bench-scale` (or `python benchmarks/scale.py`) starts a Ray cluster of several
nodes on this machine (benchmarks/scale_cluster.py: one `ray start` per node), and runs
the real `RolloutRunner` on it with the simulated engine (sandbox/sim_backend.py, its
latencies drawn from benchmarks/results/sim_profile.json, measured on this machine's
Docker) and the scripted agent of orchestrator/sim_agent.py (8 bash turns, the model's
measured per-call latency before each). It measures:

- driver overhead per episode: the driver process's CPU time (user + system, every
  thread: the dispatch loop, Ray's client threads, the store writes) over the run, per
  stored episode; and the same without the store's share (the store is timed on its own);
- how that grows from 100 to 1,000 running (each level's share of episodes in flight);
- the driver's memory (resident set, peak and with 10K episodes queued);
- store writes per second on SQLite and PostgreSQL: in the run, and the most one writer
  sustains (records of the same size, back to back), one transaction per episode vs
  batched (benchmarks/scale_store.py);
- Ray calls and store commits per episode (both batched);
- recovery: one node SIGKILLed with ~300 episodes on it; each of those is retried once
  and stored once (nothing lost, nothing duplicated).

The table goes to benchmarks/results/scale.md (appended, one section per run); the last
line printed is `driver overhead per episode: X ms at 1000 running`.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import threading
import time
from pathlib import Path
from typing import Any, Self

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.append(str(ROOT / "benchmarks"))

from scale_cluster import NODE_RESOURCE, LocalRayCluster, rss_bytes
from scale_micro import ray_floor, wait_step_cost
from scale_report import Level, level_row, render, write_table
from scale_store import check_store, postgres, write_rates, writes_only

from orchestrator.policy_spec import PolicySpec
from orchestrator.records import EpisodeRecord
from orchestrator.runner import RolloutConfig, RolloutRunner
from orchestrator.store import Store
from sandbox import BackendConfig

PROFILE = ROOT / "benchmarks" / "results" / "sim_profile.json"
RESULTS = ROOT / "benchmarks" / "results" / "scale.md"


class MeteredStore(Store):
    """The real store, with each batch of episode writes timed (thread CPU and wall clock)."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.writes = 0
        self.commits = 0
        self.write_cpu_s = 0.0
        self.write_wall_s = 0.0

    def save_episodes(self, records: list[EpisodeRecord]) -> int:
        c, w = time.thread_time(), time.perf_counter()
        try:
            return super().save_episodes(records)
        finally:
            self.write_cpu_s += time.thread_time() - c
            self.write_wall_s += time.perf_counter() - w
            self.writes += len(records)
            self.commits += 1


class MeteredRunner(RolloutRunner):
    """The real runner; dispatch also samples how many episodes are in flight, and the
    executor is kept (its load per actor, its count of actor calls)."""

    executor: Any = None

    def _executor(self) -> Any:
        self.executor = super()._executor()
        return self.executor

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.max_inflight = 0
        self.inflight_samples: list[tuple[float, int]] = []
        self.inflight_now = 0
        self.loop_cpu_s = 0.0

    def run(self) -> Any:
        start = time.thread_time()
        try:
            return super().run()
        finally:
            self.loop_cpu_s = time.thread_time() - start

    def _dispatch(self, executor: Any, pending: Any, inflight: Any) -> None:
        super()._dispatch(executor, pending, inflight)
        self.inflight_now = len(inflight)
        self.max_inflight = max(self.max_inflight, self.inflight_now)
        self.inflight_samples.append((time.monotonic(), self.inflight_now))


def thread_cpu_s() -> dict[str, float]:
    """CPU seconds of this process's OS threads, summed by thread name (Python threads
    share the process's name; Ray's own threads carry theirs)."""
    tick = os.sysconf("SC_CLK_TCK")
    out: dict[str, float] = {}
    for task in Path("/proc/self/task").iterdir():
        try:
            stat = (task / "stat").read_text()
        except OSError:
            continue
        name = stat[stat.index("(") + 1:stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2:].split()
        out[name] = out.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / tick
    return out


class RssSampler:
    """The driver's resident set, sampled every 0.2 s in a thread."""

    def __init__(self) -> None:
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            self.peak = max(self.peak, rss_bytes(os.getpid()))

    def __enter__(self) -> Self:
        self.peak = rss_bytes(os.getpid())
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def sim_config(cluster: LocalRayCluster, *, nodes: int, running: int, episodes: int,
               prefix: str, turns: int, think_scale: float, seed: int) -> RolloutConfig:
    return RolloutConfig(
        env="sim-agent", imports=["orchestrator.sim_agent"],
        task_ids=[f"sim-{prefix}{i}" for i in range(episodes)],
        executor="ray", ray_address=cluster.address, ray_node_resource=NODE_RESOURCE,
        workers=nodes, concurrency=max(1, running // nodes),
        env_kwargs={"turns": turns, "think_scale": think_scale},
        policy=PolicySpec(type="scripted", script="orchestrator.sim_agent:scripted_policy"),
        backend=BackendConfig(type="sim", options={"profile": str(PROFILE), "seed": seed}),
        max_attempts=3, retry_backoff_s=1.0, retry_backoff_max_s=2.0, stall_report_s=600,
        seed=seed)


def run_level(cluster: LocalRayCluster, store: MeteredStore, level: Level, *, nodes: int,
              turns: int, think_scale: float, during: Any = None,
              runner_cls: type[MeteredRunner] = MeteredRunner) -> MeteredRunner:
    """Run one level; `during(runner)` runs in a thread while it goes (node kills)."""
    config = sim_config(cluster, nodes=nodes, running=level.target, episodes=level.episodes,
                        prefix=level.label.replace(" ", "").replace("/", ""), turns=turns,
                        think_scale=think_scale, seed=len(level.label))
    runner = runner_cls(config, store, show_progress=False)
    side = threading.Thread(target=during, args=(runner,), daemon=True) if during else None
    threads0 = thread_cpu_s()
    cpu0, wall0 = resource.getrusage(resource.RUSAGE_SELF), time.monotonic()
    store.writes = store.commits = 0
    store.write_cpu_s = store.write_wall_s = 0.0
    with RssSampler() as rss:
        level.rss_start = rss.peak
        if side:
            side.start()
        summary = runner.run()
        if side:
            side.join()
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    threads1 = thread_cpu_s()
    level.extra["threads_ms"] = {
        name: 1000 * (t - threads0.get(name, 0.0)) / max(1, summary.stored)
        for name, t in threads1.items() if t - threads0.get(name, 0.0) > 0.005}
    level.extra["pumps_ms"] = 1000 * sum(getattr(runner.executor, "pump_cpu_s", [])) / max(
        1, summary.stored)
    level.elapsed_s = time.monotonic() - wall0
    level.driver_cpu_s = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
    level.store_cpu_s, level.store_wall_s = store.write_cpu_s, store.write_wall_s
    level.rss_peak = rss.peak
    level.stored, level.statuses, level.retried = summary.stored, summary.statuses, summary.retried
    level.max_inflight = runner.max_inflight
    level.loop_cpu_s = runner.loop_cpu_s
    level.mean_inflight = steady_inflight(runner.inflight_samples)
    level.extra["run_id"] = runner.run_id
    level.ray_calls = getattr(runner.executor, "exchanges", 0)
    level.commits = store.commits
    return runner


def steady_inflight(samples: list[tuple[float, int]]) -> float:
    """Mean episodes in flight over the middle 60% of the run (ramp up and tail excluded)."""
    if not samples:
        return 0.0
    t0, t1 = samples[0][0], samples[-1][0]
    lo, hi = t0 + 0.2 * (t1 - t0), t0 + 0.8 * (t1 - t0)
    mid = [n for t, n in samples if lo <= t <= hi] or [n for _, n in samples]
    return sum(mid) / len(mid)


class RecoveryRunner(MeteredRunner):
    """Logs each retry's time."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.retries: list[tuple[float, str]] = []

    def _handle(self, item: Any, record: EpisodeRecord, pending: Any, summary: Any,
                progress: Any) -> None:
        if record.status == "infra_error":
            self.retries.append((time.monotonic(), (record.error or "")[:120]))
        super()._handle(item, record, pending, summary, progress)


def recovery(cluster: LocalRayCluster, store: MeteredStore, *, nodes: int, per_node: int,
             episodes: int, turns: int, think_scale: float) -> Level:
    """Kill the node of actor 0 once every slot is busy; check retries and the store."""
    import ray

    level = Level(f"recovery {per_node}/node", per_node * nodes, episodes, store.url.split(":")[0])
    info: dict[str, Any] = {}

    def kill_when_full(runner: RecoveryRunner) -> None:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline and runner.inflight_now < 0.98 * level.target:
            time.sleep(0.2)
        time.sleep(3.0)  # every slot busy for a while: episodes mid-turn
        executor = runner.executor
        node_of = ray.get([a.node_id.remote() for a in executor.actors], timeout=60)
        victim = node_of[0]
        info["on_node"] = sum(n for n, node in zip(executor.load, node_of) if node == victim)
        info["actors_on_node"] = sum(1 for node in node_of if node == victim)
        index = cluster.node_index(victim)
        info["killed_at"] = time.monotonic()
        info["processes"] = cluster.kill_node(index)

    runner = run_level(cluster, store, level, nodes=nodes, turns=turns,
                       think_scale=think_scale, during=kill_when_full, runner_cls=RecoveryRunner)
    assert isinstance(runner, RecoveryRunner)
    killed = info.get("killed_at", 0.0)
    after = [t - killed for t, _ in runner.retries if t >= killed]
    info["first_failure_s"] = min(after) if after else None
    info["last_failure_s"] = max(after) if after else None
    info.update(check_store(store, runner.run_id, episodes))
    level.extra.update(info)
    return level


def main() -> None:
    ap = argparse.ArgumentParser(description="Scale benchmark (see the module docstring).")
    ap.add_argument("--nodes", type=int, default=4, help="Ray worker nodes (one actor each)")
    ap.add_argument("--levels", default="100:300,300:900,1000:10000",
                    help="running:episodes pairs, SQLite store")
    ap.add_argument("--postgres", default="1000:3000", help="running:episodes on PostgreSQL "
                    "('' to skip)")
    ap.add_argument("--recovery", default="300:3600", help="per-node running:episodes for "
                    "the node kill ('' to skip)")
    ap.add_argument("--turns", type=int, default=8, help="tool turns per episode")
    ap.add_argument("--think-scale", type=float, default=1.0, help="model latency multiplier")
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--writes-only", type=int, default=0, metavar="ROUNDS",
                    help="only the store-write table (no cluster): sim-agent records, "
                    "SQLite and PostgreSQL, sizes taking turns over ROUNDS rounds")
    ap.add_argument("--floor-only", action="store_true",
                    help="only measure Ray's own cost per actor call (one node)")
    args = ap.parse_args()
    if args.writes_only:
        rates, cpus = writes_only(PROFILE, 1200, args.writes_only)
        text = (f"\n## Store writes alone — {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}"
                f" (`benchmarks/scale.py --writes-only {args.writes_only}`; load "
                f"{os.getloadavg()[0]:.1f})\n\nRecords of 1,200 real sim-agent episodes "
                f"(8 turns each), {args.writes_only} rounds with the sizes taking turns.\n\n"
                + write_table(rates, cpus) + "\n")
        with args.out.open("a") as f:
            f.write(text)
        print(text)
        return
    if args.floor_only:
        with LocalRayCluster(nodes=1):
            floor = ray_floor(PROFILE)
        text = ("\nRay's own driver CPU per actor call on this machine "
                f"({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, load "
                f"{os.getloadavg()[0]:.1f}; submit + `.future()` + result, 200 in flight): "
                + ", ".join(f"{k} {v:.2f} ms" for k, v in floor.items()) + ".\n")
        with args.out.open("a") as f:
            f.write(text)
        print(text)
        return
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    load0 = os.getloadavg()
    workdir = Path(f"/tmp/envfarm-scale-{os.getpid()}")
    workdir.mkdir(parents=True, exist_ok=True)
    pairs = [tuple(int(x) for x in p.split(":")) for p in args.levels.split(",") if p]
    levels: list[Level] = []
    wait_costs = {n: wait_step_cost(n) for n in (100, 1000, 10000)}
    common = {"turns": args.turns, "think_scale": args.think_scale}
    t0 = time.monotonic()
    with LocalRayCluster(nodes=args.nodes) as cluster:
        up_s = time.monotonic() - t0
        print(f"cluster up: head + {args.nodes} nodes in {up_s:.0f} s", flush=True)
        sqlite = MeteredStore(f"sqlite:///{workdir}/store.db")
        cluster_rss: dict[int, int] = {}

        def sample_cluster(target: int) -> Any:
            def during(runner: MeteredRunner) -> None:
                deadline = time.monotonic() + 600
                while time.monotonic() < deadline and runner.inflight_now < 0.98 * target:
                    time.sleep(0.5)
                time.sleep(2)
                cluster_rss[target] = cluster.rss_bytes()
            return during

        for running, episodes in pairs:
            lv = Level(f"sqlite {running}", running, episodes, "SQLite")
            run_level(cluster, sqlite, lv, nodes=args.nodes, during=sample_cluster(running),
                      **common)
            levels.append(lv)
            print(level_row(lv), flush=True)
        top = max(levels, key=lambda lv: lv.target)
        writes = {"SQLite": write_rates(sqlite, top.extra["run_id"], 1000)}
        if args.postgres:
            running, episodes = (int(x) for x in args.postgres.split(":"))
            with postgres() as url:
                if url is None:
                    print("PostgreSQL: server binaries missing, not measured", flush=True)
                else:
                    pg = MeteredStore(url)
                    lv = Level(f"pg {running}", running, episodes, "PostgreSQL")
                    run_level(cluster, pg, lv, nodes=args.nodes, **common)
                    levels.append(lv)
                    print(level_row(lv), flush=True)
                    writes["PostgreSQL"] = write_rates(pg, lv.extra["run_id"], 1000)
                    pg.engine.dispose()
        rec = None
        if args.recovery:
            per_node, episodes = (int(x) for x in args.recovery.split(":"))
            rec = recovery(cluster, sqlite, nodes=args.nodes, per_node=per_node,
                           episodes=episodes, **common)
            print(level_row(rec), rec.extra, flush=True)
    load1 = os.getloadavg()
    report = render(args, PROFILE, started, load0, load1, up_s, levels, writes, wait_costs,
                    rec, cluster_rss)
    with args.out.open("a") as f:
        f.write(report)
    print(report)
    at = next((lv for lv in levels if lv.target == 1000 and lv.store == "SQLite"), top)
    print(f"store writes: {at.store_ms:.2f} ms of driver CPU per episode more "
          f"(one writer on SQLite: {writes['SQLite'][1]:.0f} episodes/s one by one, "
          f"{max(writes['SQLite'].values()):.0f}/s batched)")
    print(f"driver overhead per episode: {at.per_episode_ms - at.store_ms:.2f} ms at "
          f"{at.target} running")


if __name__ == "__main__":
    main()
