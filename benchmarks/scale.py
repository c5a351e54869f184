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
  sustains (records of the same size, back to back);
- recovery: one node SIGKILLed with ~300 episodes on it; each of those is retried once
  and stored once (nothing lost, nothing duplicated).

The table goes to benchmarks/results/scale.md (appended, one section per run); the last
line printed is `driver overhead per episode: X ms at 1000 running`.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import os
import platform
import resource
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.append(str(ROOT / "benchmarks"))

from scale_cluster import NODE_RESOURCE, LocalRayCluster, rss_bytes

from orchestrator.records import EpisodeRecord
from orchestrator.runner import RolloutConfig, RolloutRunner
from orchestrator.store import Store
from sandbox import BackendConfig

PROFILE = ROOT / "benchmarks" / "results" / "sim_profile.json"
RESULTS = ROOT / "benchmarks" / "results" / "scale.md"


class MeteredStore(Store):
    """The real store, with each episode write timed (thread CPU and wall clock)."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.writes = 0
        self.write_cpu_s = 0.0
        self.write_wall_s = 0.0

    def save_episode(self, rec: EpisodeRecord) -> bool:
        c, w = time.thread_time(), time.perf_counter()
        try:
            return super().save_episode(rec)
        finally:
            self.write_cpu_s += time.thread_time() - c
            self.write_wall_s += time.perf_counter() - w
            self.writes += 1


class MeteredRunner(RolloutRunner):
    """The real runner; dispatch also samples how many episodes are in flight."""

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


def sim_config(cluster: LocalRayCluster, *, nodes: int, running: int, episodes: int,
               prefix: str, turns: int, think_scale: float, seed: int) -> RolloutConfig:
    return RolloutConfig(
        env="sim-agent", imports=["orchestrator.sim_agent"],
        task_ids=[f"sim-{prefix}{i}" for i in range(episodes)],
        executor="ray", ray_address=cluster.address, ray_node_resource=NODE_RESOURCE,
        workers=nodes, concurrency=max(1, running // nodes),
        env_kwargs={"turns": turns, "think_scale": think_scale},
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
    cpu0, wall0 = resource.getrusage(resource.RUSAGE_SELF), time.monotonic()
    store.writes = 0
    store.write_cpu_s = store.write_wall_s = 0.0
    with RssSampler() as rss:
        level.rss_start = rss.peak
        if side:
            side.start()
        summary = runner.run()
        if side:
            side.join()
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    level.elapsed_s = time.monotonic() - wall0
    level.driver_cpu_s = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
    level.store_cpu_s, level.store_wall_s = store.write_cpu_s, store.write_wall_s
    level.rss_peak = rss.peak
    level.stored, level.statuses, level.retried = summary.stored, summary.statuses, summary.retried
    level.max_inflight = runner.max_inflight
    level.loop_cpu_s = runner.loop_cpu_s
    level.mean_inflight = steady_inflight(runner.inflight_samples)
    level.extra["run_id"] = runner.run_id
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
    """Keeps its executor (to see each actor's load) and logs each retry's time."""

    executor: Any = None
    retries: list[tuple[float, str]]

    def _executor(self) -> Any:
        self.retries = []
        self.executor = super()._executor()
        return self.executor

    def _handle(self, item: Any, record: EpisodeRecord, pending: Any, summary: Any,
                progress: Any) -> None:
        if record.status == "infra_error":
            self.retries.append((time.monotonic(), (record.error or "")[:120]))
        super()._handle(item, record, pending, summary, progress)


def wait_step_cost(n: int, rounds: int = 200) -> tuple[float, float]:
    """µs per loop iteration to learn what finished, with `n` futures in flight and one
    finished: `cf.wait` over all of them (the loop before) vs the completion queue."""
    import concurrent.futures as cf
    import queue

    futures = [cf.Future() for _ in range(n)]
    finished: queue.SimpleQueue = queue.SimpleQueue()
    for f in futures:
        f.add_done_callback(finished.put)
    futures[0].set_result(None)
    t = time.perf_counter()
    for _ in range(rounds):
        cf.wait(list(futures), timeout=0, return_when=cf.FIRST_COMPLETED)
    old = (time.perf_counter() - t) / rounds * 1e6
    t = time.perf_counter()
    for _ in range(rounds):
        finished.put(futures[0])
        done = [finished.get(timeout=0.25)]
        while True:
            try:
                done.append(finished.get_nowait())
            except queue.Empty:
                break
    new = (time.perf_counter() - t) / rounds * 1e6
    return old, new


class Echo:
    """A threaded actor that hands back what it gets: Ray's own cost per call."""

    def call(self, payload: Any) -> Any:
        return payload


def ray_floor(calls: int = 3000, in_flight: int = 200) -> dict[str, float]:
    """Driver CPU per Ray actor call (submit + `.future()` + result), ms, with a payload
    the size of an EpisodeJob out and an episode record back, `in_flight` at once."""
    import concurrent.futures as cf

    import ray

    from orchestrator.executors import failed_record
    from orchestrator.jobs import EpisodeJob
    from orchestrator.policy_spec import PolicySpec

    job = EpisodeJob(run_id="r", env_id="envfarm/sim-agent-v0", task_id="sim-w1",
                     sample_index=0, policy=PolicySpec(), env_kwargs={"turns": 8},
                     backend={"type": "sim", "options": {"profile": str(PROFILE)}})
    record = failed_record(job, RuntimeError("x")).to_dict()
    record["messages"] = [{"role": "assistant", "content": "", "tool_calls": [
        {"id": f"c{i}", "type": "function", "function": {
            "name": "bash", "arguments": {"command": f"echo step{i} > /tmp/step{i}"}}}]}
        for i in range(10)] + [{"role": "tool", "content": "ok"}] * 10
    actor = ray.remote(Echo).options(max_concurrency=in_flight, num_cpus=0).remote()
    ray.get(actor.call.remote(1))
    out = {}
    for name, payload in (("empty", None), ("job out, record back", (job, record))):
        c0 = resource.getrusage(resource.RUSAGE_SELF)
        pending: set[cf.Future] = set()
        for _ in range(calls):
            if len(pending) >= in_flight:
                _done, pending = cf.wait(pending, return_when=cf.FIRST_COMPLETED)
            pending.add(actor.call.remote(payload).future())
        cf.wait(pending)
        c1 = resource.getrusage(resource.RUSAGE_SELF)
        cpu = (c1.ru_utime - c0.ru_utime) + (c1.ru_stime - c0.ru_stime)
        out[name] = 1000 * cpu / calls
    ray.kill(actor)
    return out


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


def max_write_rate(store: Store, source_run: str, n: int) -> float:
    """Episodes/s one writer sustains: `n` records of `source_run`, written back to back
    under a new run (the runner's writer does exactly this, one transaction each)."""
    records = list(store.episodes(source_run, with_calls=True))[:n]
    run_id = f"writes-{time.time_ns()}"
    store.create_run(run_id, {"bench": "scale writes"})
    t = time.perf_counter()
    for rec in records:
        rec.run_id = run_id
        store.save_episode(rec)
    return len(records) / (time.perf_counter() - t)


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


def mib(n: float) -> str:
    return f"{n / 2**20:.0f}"


def level_row(lv: Level) -> str:
    rest = max(0.0, lv.driver_cpu_s - lv.loop_cpu_s - lv.store_cpu_s)
    n = max(1, lv.stored)
    return (f"| {lv.target} | {lv.mean_inflight:.0f} / {lv.max_inflight} | {lv.stored} | "
            f"{lv.store} | {lv.elapsed_s:.0f} | {lv.stored / lv.elapsed_s:.1f} | "
            f"**{lv.per_episode_ms - lv.store_ms:.2f}** | {lv.loop_ms:.2f} | "
            f"{1000 * rest / n:.2f} | {lv.store_ms:.2f} | {lv.per_episode_ms:.2f} | "
            f"{mib(lv.rss_start)} → {mib(lv.rss_peak)} |")


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
    ap.add_argument("--floor-only", action="store_true",
                    help="only measure Ray's own cost per actor call (one node)")
    args = ap.parse_args()
    if args.floor_only:
        with LocalRayCluster(nodes=1):
            floor = ray_floor()
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
        writes = {"SQLite": max_write_rate(sqlite, top.extra["run_id"], 2000)}
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
                    writes["PostgreSQL"] = max_write_rate(pg, lv.extra["run_id"], 2000)
                    pg.engine.dispose()
        rec = None
        if args.recovery:
            per_node, episodes = (int(x) for x in args.recovery.split(":"))
            rec = recovery(cluster, sqlite, nodes=args.nodes, per_node=per_node,
                           episodes=episodes, **common)
            print(level_row(rec), rec.extra, flush=True)
    load1 = os.getloadavg()
    report = render(args, started, load0, load1, up_s, levels, writes, wait_costs, rec,
                    cluster_rss)
    with args.out.open("a") as f:
        f.write(report)
    print(report)
    at = next((lv for lv in levels if lv.target == 1000 and lv.store == "SQLite"), top)
    print(f"store writes: {at.store_ms:.2f} ms of driver CPU per episode more "
          f"({writes['SQLite']:.0f} writes/s max on SQLite)")
    print(f"driver overhead per episode: {at.per_episode_ms - at.store_ms:.2f} ms at "
          f"{at.target} running")


def render(args: Any, started: str, load0: tuple, load1: tuple, up_s: float,
           levels: list[Level], writes: dict[str, float], wait_costs: dict,
           rec: Level | None, cluster_rss: dict[int, int]) -> str:
    import json

    profile = json.loads(PROFILE.read_text())["summary"]
    out = [(f"\n## Run {started} — {os.cpu_count()} cores, {platform.system()} "
           f"{platform.release()}"), "",
           (f"Ray: head + {args.nodes} worker nodes (`ray start` each, up in {up_s:.0f} s), one "
           f"threaded actor per node; the real `RolloutRunner` (executor ray) and store. "
           f"Episodes: `envfarm/sim-agent-v0`, {args.turns} bash turns + finish, the model's "
           f"measured latency (p50 0.58 s, p95 2.08 s) × {args.think_scale} before each; "
           f"engine `sim` drawing from sim_profile.json (start p50 "
           f"{profile['start_s']['p50']:.2f} s, command p50 {1000 * profile['exec_s']['p50']:.1f} "
           f"ms, close p50 {profile['close_s']['p50']:.2f} s). Load average {load0[0]:.1f} "
           f"before, {load1[0]:.1f} after (2 cores shared with other sessions: wall-clock "
           "figures are pessimistic; CPU figures are this process's own)."), "",
           ("Driver CPU per stored episode, in ms (user + system, from getrusage): **without "
           "store** = the loop thread + Ray's client threads; store = the writer thread's "
           "SQL (timed per write)."), "",
           ("| running target | in flight (steady mean / max) | episodes | store | wall s | "
           "episodes/s | **driver ms/episode without store** | loop thread | Ray client "
           "threads | store writes | total | driver RSS MiB (start → peak) |"),
           "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    out += [level_row(lv) for lv in levels]
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
    out += ["", "Store writes, one writer (the runner's writer thread), records of this run "
            "written back to back, one transaction each: " + ", ".join(
                f"{k} {v:.0f} episodes/s" for k, v in writes.items()) + ".", "",
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


if __name__ == "__main__":
    main()
