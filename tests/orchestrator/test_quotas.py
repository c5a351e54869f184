"""Quotas cap concurrency and start rate, in one process and across Ray workers."""

from __future__ import annotations

import itertools
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from envs.quotas import LocalQuotaBackend, Quotas, QuotaSpec

ROOT = Path(__file__).resolve().parents[2]


def run_holders(quotas: Quotas, name: str, n: int, hold_s: float) -> tuple[int, list[float]]:
    peak, active, starts, lock = [0], [0], [], threading.Lock()

    def holder() -> None:
        with quotas.hold(name):
            with lock:
                active[0] += 1
                peak[0] = max(peak[0], active[0])
                starts.append(time.monotonic())
            time.sleep(hold_s)
            with lock:
                active[0] -= 1

    threads = [threading.Thread(target=holder) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return peak[0], sorted(starts)


def test_concurrency_cap_holds_and_unconfigured_names_are_free():
    quotas = Quotas()
    quotas.configure({"browser": {"concurrency": 2}})
    peak, _ = run_holders(quotas, "browser", 8, 0.05)
    assert peak == 2
    free_peak, _ = run_holders(quotas, "other", 8, 0.05)
    assert free_peak > 2


def test_rate_cap_spaces_starts():
    quotas = Quotas()
    quotas.configure({"judge": QuotaSpec(per_second=20)})
    _, starts = run_holders(quotas, "judge", 6, 0.0)
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    assert min(gaps) >= 0.04  # 1/20 s apart, minus scheduling noise


@pytest.fixture(scope="module")
def ray_cluster():
    """One local Ray cluster for this module's Ray tests; its address lets other processes
    join it."""
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, namespace="envfarm")
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()


@pytest.mark.slow
def test_ray_backend_shares_one_cap_across_processes(ray_cluster):
    import ray

    from orchestrator.quotas import RayQuotaBackend

    @ray.remote(num_cpus=0)
    def worker(n: int) -> int:
        q = Quotas()
        q.configure({"browser": {"concurrency": 1}}, RayQuotaBackend())
        peak, _ = run_holders(q, "browser", n, 0.05)
        return peak

    # Two worker processes each run 3 holders; the actor lets one in at a time overall.
    start = time.monotonic()
    assert ray.get([worker.remote(3), worker.remote(3)]) == [1, 1]
    assert time.monotonic() - start >= 6 * 0.05


HOLDER = """
import sys, time, ray
from envs.quotas import Quotas
from orchestrator.quotas import RayQuotaBackend
ray.init(address=sys.argv[1], namespace="envfarm", log_to_driver=False)
q = Quotas()
q.configure({"killed-holder": {"concurrency": 1}}, RayQuotaBackend(lease_ttl_s=float(sys.argv[2])))
with q.hold("killed-holder"):
    print("held", flush=True)
    time.sleep(600)
"""


@pytest.mark.slow
def test_a_killed_holder_gives_its_slot_back_within_the_lease(ray_cluster, tmp_path):
    import ray

    from orchestrator.quotas import ACTOR_NAME, RayQuotaBackend

    ttl = 2.0
    script = tmp_path / "holder.py"
    script.write_text(HOLDER)
    holder = subprocess.Popen([sys.executable, str(script), ray_cluster, str(ttl)],
                              stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        assert holder.stdout.readline().strip() == "held"
        actor = ray.get_actor(ACTOR_NAME, namespace="envfarm")
        time.sleep(2 * ttl)  # alive and beating: it keeps the slot past its lease time
        assert ray.get(actor.held.remote("killed-holder")) == 1
        lease, _ = ray.get(actor.try_acquire.remote("killed-holder", 1, None, ttl))
        assert lease is None
        holder.send_signal(signal.SIGKILL)  # no release, no finally, no goodbye
        holder.wait(timeout=10)
        killed = time.monotonic()
        quotas = Quotas()
        quotas.configure({"killed-holder": {"concurrency": 1}}, RayQuotaBackend(lease_ttl_s=ttl))
        waited: list[float] = []

        def take() -> None:
            with quotas.hold("killed-holder"):
                waited.append(time.monotonic() - killed)

        taker = threading.Thread(target=take, daemon=True)  # a leaked slot would block it
        taker.start()
        taker.join(timeout=ttl + 5)
        assert waited, "the dead holder's slot never came back"
        assert waited[0] <= ttl + 1.0, f"slot came back after {waited[0]:.1f} s"
        assert ray.get(actor.held.remote("killed-holder")) == 0  # released again
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()


def test_keeper_leases_expire_renew_and_release():
    from orchestrator.quotas import QuotaKeeper

    keeper = QuotaKeeper()
    first, _ = keeper.try_acquire("q", 1, None, ttl_s=0.2)
    assert first and keeper.try_acquire("q", 1, None, ttl_s=0.2)[0] is None
    time.sleep(0.1)
    assert keeper.renew([("q", first)], ttl_s=0.2) == []
    time.sleep(0.15)
    assert keeper.held("q") == 1  # renewed: still held past its first expiry
    time.sleep(0.1)
    assert keeper.held("q") == 0 and keeper.renew([("q", first)]) == [first]  # lapsed
    second, _ = keeper.try_acquire("q", 1, None, ttl_s=5)
    keeper.release("q", first)  # a lapsed lease's late release frees nothing of others
    assert keeper.held("q") == 1
    keeper.release("q", second)
    assert keeper.held("q") == 0


def test_local_backend_releases_on_error():
    quotas = Quotas()
    quotas.configure({"x": {"concurrency": 1}}, LocalQuotaBackend())
    with pytest.raises(RuntimeError), quotas.hold("x"):
        raise RuntimeError("tool failed")
    with quotas.hold("x"):  # would block forever if the slot leaked
        pass


@pytest.mark.docker
def test_env_core_holds_a_tools_quota_while_it_runs(base_image):
    import gymnasium

    import envs  # noqa: F401
    from envs.quotas import QUOTAS
    from envs.tools import Tool, ToolResult

    seen: list[bool] = []

    class Probe(Tool):
        name, description, quota = "probe", "Says whether its quota is held.", "probe"

        def __call__(self, arguments, env):
            sem = QUOTAS.backend._semaphores["probe"]
            free = sem.acquire(blocking=False)
            if free:
                sem.release()
            seen.append(not free)
            return ToolResult("ok")

    QUOTAS.configure({"probe": {"concurrency": 1}}, LocalQuotaBackend())
    env = gymnasium.make("envfarm/echo-v0", disable_env_checker=True)
    try:
        env.reset(options={"task_id": "echo-q"})
        env.unwrapped.tools["probe"] = Probe()
        env.step({"content": "", "tool_calls": [{"name": "probe", "arguments": {}}]})
    finally:
        env.close()
        QUOTAS.configure({})
    assert seen == [True]
