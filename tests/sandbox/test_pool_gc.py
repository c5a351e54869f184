"""Warm pools hand each container out once; gc removes labelled leftovers only."""

from __future__ import annotations

import pytest

from sandbox import WarmPool
from sandbox.docker_backend import LABEL_OWNER, LABEL_RUN
from sandbox.gc import gc_containers

pytestmark = pytest.mark.docker


def test_warm_pool_never_hands_out_a_container_twice(docker_backend, base_image):
    seen: set[str] = set()
    with WarmPool(docker_backend, base_image, size=2) as pool:
        pool.wait_ready()
        for _ in range(5):
            box = pool.acquire()
            assert box.id not in seen
            seen.add(box.id)
            assert box.exec("echo ready").output == "ready\n"  # its shell is already open
            box.close()
        pool.wait_ready()
        assert pool.idle == 2 and not ({b.id for b in pool._idle} & seen)
    assert pool.idle == 0


def test_gc_removes_labelled_leftovers_and_nothing_else(docker_client, docker_backend, base_image):
    dead_owner = {LABEL_OWNER: "no-such-host-xyz:1", LABEL_RUN: "crashed"}
    # A leftover of this host whose owner process is gone: pid 2**22 + 1 cannot exist.
    import socket
    dead_here = {LABEL_OWNER: f"{socket.gethostname()}:{2**22 + 1}", LABEL_RUN: "crashed"}
    leftover = docker_client.containers.run(base_image, ["sleep", "infinity"], detach=True,
                                            labels=dead_here, network_mode="none")
    foreign = docker_client.containers.run(base_image, ["sleep", "infinity"], detach=True,
                                           labels=dead_owner, network_mode="none")
    unlabelled = docker_client.containers.run(base_image, ["sleep", "infinity"], detach=True,
                                              network_mode="none")
    live = docker_backend.start(base_image)
    try:
        report = gc_containers(docker_client)
        remaining = {c.id for c in docker_client.containers.list(all=True)}
        assert leftover.id not in remaining and leftover.short_id in report.removed
        assert {foreign.id, unlabelled.id, live.id} <= remaining
        assert live.exec("echo alive").output == "alive\n"
        gc_containers(docker_client, run="crashed")
        assert foreign.id not in {c.id for c in docker_client.containers.list(all=True)}
    finally:
        for c in (foreign, unlabelled):
            try:
                c.remove(force=True)
            except Exception:  # noqa: BLE001
                pass
        live.close()


def test_prewarm_serves_later_starts_of_the_same_configuration(docker_backend, base_image):
    from sandbox import Limits
    from sandbox.pool import REGISTRY, PooledBackend

    docker_backend = PooledBackend(docker_backend)  # what make_backend hands every env
    limits = Limits(memory_mb=321)  # a configuration no other test uses
    REGISTRY.enable(1)
    try:
        first = docker_backend.start(base_image, limits)  # cold: creates the pool
        key = next(k for k in REGISTRY._pools if "321" in k)
        pool = REGISTRY._pools[key][0]
        pool.wait_ready()
        warm_id = pool._idle[0].id
        second = docker_backend.start(base_image, limits)
        assert second.id == warm_id != first.id
        assert second.exec("echo warm").output == "warm\n"
        other = docker_backend.start(base_image, Limits(memory_mb=322))
        assert other.id not in (first.id, second.id)
        for box in (first, second, other):
            box.close()
    finally:
        REGISTRY.close_all()
        REGISTRY.size = 0
