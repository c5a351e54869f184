"""The store on real SQLite: idempotent writes, infra placeholders, exact token arrays."""

from __future__ import annotations

import pytest

from orchestrator.records import CallData, EpisodeRecord
from orchestrator.store import Store


@pytest.fixture
def store(tmp_path):
    return Store(f"sqlite:///{tmp_path / 'store.db'}")


def record(task: str, sample: int, status: str = "ok", reward: float | None = 1.0) -> EpisodeRecord:
    return EpisodeRecord(
        run_id="r1", task_id=task, sample_index=sample, env_id="envfarm/echo-v0", status=status,
        reward=reward, messages=[{"role": "user", "content": "hi"}],
        token_ids=[5, 6, 7, 8, 9], loss_mask=[0, 0, 1, 1, 0],
        token_logprobs=[None, None, -0.25, -1.5, None],
        calls=[CallData([5, 6], [7, 8], [-0.25, -1.5], "stop")], num_turns=1)


def test_writes_are_idempotent_on_run_task_sample(store):
    store.create_run("r1", {"env": "echo", "n": 2})
    assert store.save_episode(record("t1", 0))
    assert not store.save_episode(record("t1", 0, reward=0.0))  # a duplicate is refused
    assert store.save_episode(record("t1", 1))
    rows = list(store.episodes("r1"))
    assert [(e.task_id, e.sample_index, e.reward) for e in rows] == [("t1", 0, 1.0), ("t1", 1, 1.0)]
    with pytest.raises(ValueError, match="--resume"):
        store.create_run("r1", {})


def test_an_infra_error_is_a_placeholder_that_a_later_attempt_replaces(store):
    store.create_run("r1", {})
    store.save_episode(record("t1", 0, status="infra_error", reward=None))
    assert store.done_keys("r1") == set()  # still to run
    assert list(store.episodes("r1")) == []  # never among trainable episodes
    assert store.save_episode(record("t1", 0))
    (episode,) = store.episodes("r1", statuses=None)
    assert episode.status == "ok" and episode.attempts == 2
    assert store.done_keys("r1") == {("t1", 0)}


def test_token_arrays_round_trip_exactly(store):
    store.create_run("r1", {})
    store.save_episode(record("t1", 0))
    (episode,) = store.episodes("r1")
    assert episode.token_ids == [5, 6, 7, 8, 9] and episode.loss_mask == [0, 0, 1, 1, 0]
    assert episode.token_logprobs == [None, None, -0.25, -1.5, None]
    assert episode.calls == [CallData([5, 6], [7, 8], [-0.25, -1.5], "stop")]
    store.set_teacher_logprobs(episode.id, [None, None, -0.5, -1.0, None])
    (episode,) = store.episodes("r1")
    assert episode.teacher_logprobs == [None, None, -0.5, -1.0, None]


def test_pass_rates_feed_dynamic_sampling(store):
    store.create_run("r1", {})
    for i, reward in enumerate([1.0, 1.0, 0.0]):
        store.save_episode(record("t1", i, reward=reward))
    store.save_episode(record("t2", 0, status="infra_error", reward=None))
    rates = store.pass_rates()
    assert rates["t1"][0] == 3 and rates["t1"][1] == pytest.approx(2 / 3)
    assert "t2" not in rates


def test_pass_rates_read_a_window_of_one_policys_recent_history(store):
    # An oracle validation run solved t1 long ago; then a model failed it 3 times and
    # solved it once. The model's recent history, not the oracle's, decides.
    runs = {"oracle": {"policy": {"type": "oracle"}},
            "m1": {"policy": {"type": "vllm", "model": "Qwen3-8B"}},
            "m2": {"policy": {"type": "vllm", "model": "Qwen3-8B"}},
            "other": {"policy": {"type": "vllm", "model": "other_model"}}}
    history = [("oracle", [1.0, 1.0, 1.0, 1.0]), ("m1", [0.0, 0.0]), ("m2", [0.0, 1.0]),
               ("other", [1.0])]
    for run_id, rewards in history:
        store.create_run(run_id, runs[run_id])
        for i, reward in enumerate(rewards):
            rec = record("t1", i, reward=reward)
            rec.run_id = run_id
            store.save_episode(rec)
    assert store.get_run("m1")["policy"] == "vllm:Qwen3-8B"
    assert store.pass_rates()["t1"] == (9, pytest.approx(6 / 9))  # everything, as before
    assert store.pass_rates(policy="oracle")["t1"] == (4, 1.0)
    assert store.pass_rates(policy="vllm:Qwen3-8B")["t1"] == (4, 0.25)
    assert store.pass_rates(policy="vllm:Qwen3-8B", window=2)["t1"] == (2, 0.5)  # newest two
    assert store.pass_rates(policy="vllm")["t1"] == (5, pytest.approx(2 / 5))  # every model
    assert store.pass_rates(policy="vllm:other_model", window=3)["t1"] == (1, 1.0)
    assert store.pass_rates(policy="vllm:Qwen3", window=3) == {}  # no prefix match on models
    assert store.pass_rates(policy="vllm_", window=3) == {}  # LIKE wildcards are literal
    assert store.pass_rates(window=1, env_id="envfarm/echo-v0")["t1"] == (1, 1.0)
    assert store.pass_rates(env_id="envfarm/other-v0") == {}
    with pytest.raises(ValueError, match="window"):
        store.pass_rates(window=0)


def test_an_older_store_gets_each_runs_policy_on_upgrade(tmp_path):
    import sqlalchemy as sa
    from alembic import command
    from alembic.config import Config

    from catalogue import make_engine
    from orchestrator.store import _MIGRATIONS

    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = make_engine(url)
    cfg = Config()
    cfg.set_main_option("script_location", str(_MIGRATIONS))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0001_store")
        conn.execute(sa.text(
            "INSERT INTO runs (id, config, envfarm_version, state, created_at, updated_at) "
            "VALUES ('old', '{\"policy\": {\"type\": \"vllm\", \"model\": \"m\"}}', '0', 'done', "
            "'2026-01-01', '2026-01-01'), ('bare', '{}', '0', 'done', '2026-01-01', '2026-01-01')"))
    engine.dispose()
    store = Store(url)
    assert store.get_run("old")["policy"] == "vllm:m" and store.get_run("bare")["policy"] is None
