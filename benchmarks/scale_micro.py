"""Micro-measurements beside the scale benchmark: the loop's cost to learn what finished
(`cf.wait` over everything vs a completion queue) and Ray's own driver CPU per actor
call (the floor a one-call-per-episode executor cannot go below)."""

from __future__ import annotations

import resource
import time
from pathlib import Path
from typing import Any


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


def ray_floor(profile: Path, calls: int = 3000, in_flight: int = 200) -> dict[str, float]:
    """Driver CPU per Ray actor call (submit + `.future()` + result), ms, with a payload
    the size of an EpisodeJob out and an episode record back, `in_flight` at once."""
    import concurrent.futures as cf

    import ray

    from orchestrator.executors import failed_record
    from orchestrator.jobs import EpisodeJob
    from orchestrator.policy_spec import PolicySpec

    job = EpisodeJob(run_id="r", env_id="envfarm/sim-agent-v0", task_id="sim-w1",
                     sample_index=0, policy=PolicySpec(), env_kwargs={"turns": 8},
                     backend={"type": "sim", "options": {"profile": str(profile)}})
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
