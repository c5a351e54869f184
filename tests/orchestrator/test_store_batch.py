"""`Store.save_episodes` on real SQLite and PostgreSQL: a batch keeps `save_episode`'s
idempotence (an episode already stored trainable is skipped, an infra_error placeholder
replaced, a key twice in one batch written once) and is all or nothing."""

from __future__ import annotations

import pytest

from orchestrator.records import CallData, EpisodeRecord
from orchestrator.store import Store
from tests.catalogue.conftest import postgres_server, postgres_url  # noqa: F401 — fixtures


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request, tmp_path) -> Store:
    if request.param == "sqlite":
        return Store(f"sqlite:///{tmp_path / 'store.db'}")
    return Store(request.getfixturevalue("postgres_url"))


def record(task: str, sample: int = 0, status: str = "ok", reward: float | None = 1.0,
           attempts: int = 1) -> EpisodeRecord:
    return EpisodeRecord(
        run_id="r1", task_id=task, sample_index=sample, env_id="envfarm/echo-v0",
        status=status, reward=reward, messages=[{"role": "user", "content": task}],
        token_ids=[1, 2, 3], loss_mask=[0, 1, 1], token_logprobs=[None, -0.5, -0.25],
        calls=[CallData([1], [2, 3], [-0.5, -0.25], "stop")], num_turns=1, attempts=attempts)


def stored(store: Store) -> dict[tuple[str, int], tuple[str, float | None, int, int]]:
    return {(e.task_id, e.sample_index): (e.status, e.reward, e.attempts, len(e.calls))
            for e in store.episodes("r1", statuses=None)}


def test_a_batch_with_an_already_stored_episode_writes_only_the_new_ones(store: Store) -> None:
    store.create_run("r1", {"env": "echo"})
    assert store.save_episode(record("t1"))
    assert store.save_episode(record("t2", status="infra_error", reward=None))
    written = store.save_episodes([
        record("t1", reward=0.0),  # already stored trainable: refused
        record("t2", attempts=1),  # replaces the infra_error placeholder
        record("t3"), record("t3", reward=0.0),  # twice in one batch: the first wins
        record("t4", status="infra_error", reward=None), record("t4", reward=0.5),
    ])
    assert written == 4  # t2, t3, t4's placeholder, then t4 replacing it
    assert stored(store) == {
        ("t1", 0): ("ok", 1.0, 1, 1), ("t2", 0): ("ok", 1.0, 2, 1),
        ("t3", 0): ("ok", 1.0, 1, 1), ("t4", 0): ("ok", 0.5, 2, 1)}
    assert store.save_episodes([record("t1"), record("t3")]) == 0  # a resent batch: nothing


def test_a_failing_batch_stores_none_of_it(store: Store) -> None:
    store.create_run("r1", {"env": "echo"})
    bad = record("t2")
    bad.task_id = None  # type: ignore[assignment] — NOT NULL fails inside the transaction
    with pytest.raises(Exception):  # noqa: B017 — whichever integrity error the driver raises
        store.save_episodes([record("t1"), bad])
    assert stored(store) == {}
