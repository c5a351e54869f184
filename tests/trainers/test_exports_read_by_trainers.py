"""envfarm's exports read by their consumers' own code: verl's RLHFDataset and GRPO /
PPO functions, SkyRL's generator-output validation, Harbor's ATIF models and task
loader. A format change that breaks a consumer fails here."""

from __future__ import annotations

import json
import math

import pytest

from orchestrator.export import ExportFilter, export
from orchestrator.runner import RolloutConfig, RolloutRunner
from orchestrator.store import Store
from tests.orchestrator.test_vllm_rollout import model_env, model_policy
from tests.trainers import consumers
from tests.trainers.venvs import HARBOR_PY, TRAINERS_PY, run_in

pytestmark = [pytest.mark.trainers, pytest.mark.vllm, pytest.mark.docker]
STATUSES = ("ok", "agent_timeout", "max_turns", "context_exceeded", "tampered", "agent_fault")


@pytest.fixture(scope="module")
def exported(vllm_server, base_image, tmp_path_factory):
    """A real model rollout (2 tasks x 2 samples) and every export of it."""
    root = tmp_path_factory.mktemp("consumers")
    store = Store(f"sqlite:///{root / 'runs.db'}")
    config = RolloutConfig(env="echo", task_ids=["echo-alpha", "echo-beta"], n=2,
                           policy=model_policy(vllm_server, temperature=1.0),
                           env_kwargs=model_env(vllm_server), concurrency=4,
                           executor="threads", max_turns=3)
    run = RolloutRunner(config, store, show_progress=False).run()
    paths = {}
    for fmt, name in (("verl", "rows.parquet"), ("prompts", "prompts.parquet"),
                      ("skyrl", "steps.parquet"), ("atif", "atif.jsonl")):
        paths[fmt] = root / name
        export(store, run.run_id, fmt, paths[fmt], ExportFilter(statuses=STATUSES))
    episodes = list(store.episodes(run.run_id, statuses=STATUSES))
    return paths, episodes


def test_verl_reads_the_prompts_and_trains_on_the_rows_with_its_own_functions(
        exported, vllm_server):
    paths, episodes = exported
    out = json.loads(run_in(TRAINERS_PY, consumers.VERL, str(paths["verl"]),
                            str(paths["prompts"]), str(vllm_server.model_dir)).splitlines()[-1])
    dataset = out["dataset"]
    assert sorted(d["task_id"] for d in dataset) == ["echo-alpha", "echo-beta"]
    assert {d["agent_name"] for d in dataset} == {"envfarm"}
    first = {e.task_id: e for e in episodes if e.sample_index == 0}
    for d in dataset:
        opening = [m for m in first[d["task_id"]].messages if m["role"] != "assistant"][:2]
        assert [m["content"] for m in d["raw_prompt"]] == [m["content"] for m in opening]

    verl = out["verl"]
    by_key = {(e.task_id, e.sample_index): e for e in episodes}
    by_uid: dict[str, list[int]] = {}
    for i, row in enumerate(verl["rows"]):
        by_uid.setdefault(row["uid"], []).append(i)
        episode = by_key[(row["task_id"], row["sample_index"])]
        assert row["mask_sum"] == sum(len(c.completion_ids) for c in episode.calls)
        assert row["reward"] == episode.reward
    for i, row in enumerate(verl["rows"]):  # advantages live on the model's tokens only
        for a, m in zip(verl["adv"][i], verl["mask"][i]):
            if not m:
                assert a == 0.0
    for uid, rows in by_uid.items():  # GRPO: reward minus the group mean, over its std
        rewards = [verl["rows"][i]["reward"] for i in rows]
        mean = sum(rewards) / len(rewards)
        std = math.sqrt(sum((r - mean) ** 2 for r in rewards) / (len(rewards) - 1)) \
            if len(rewards) > 1 else 0.0
        for i, r in zip(rows, rewards):
            first_token = next(j for j, m in enumerate(verl["mask"][i]) if m)
            assert verl["adv"][i][first_token] == pytest.approx((r - mean) / (std + 1e-6),
                                                                abs=1e-4)
    # same policy: ratio 1, nothing clipped, loss = -(token-mean of the advantages)
    tokens = [(a, m) for ra, rm in zip(verl["adv"], verl["mask"]) for a, m in zip(ra, rm)]
    mean_adv = sum(a for a, m in tokens if m) / sum(m for _, m in tokens)
    assert verl["loss_same"] == pytest.approx(-mean_adv, abs=1e-5)
    assert verl["clipfrac_same"] == 0.0
    if any(a > 0 for a, m in tokens if m):
        assert verl["clipfrac_up"] > 0.0


def test_skyrl_accepts_the_step_rows(exported):
    paths, episodes = exported
    out = json.loads(run_in(TRAINERS_PY, consumers.SKYRL, str(paths["skyrl"])).splitlines()[-1])
    with_calls = [e for e in episodes if e.calls]
    assert out["rows"] == sum(len(e.calls) for e in with_calls)
    assert out["trajectories"] == out["last_steps"] == len(with_calls)


def test_harbor_validates_the_atif_trajectories_and_reads_the_task_folders(exported):
    from envs.terminal.task import load_task
    from tests.conftest import require_data

    paths, episodes = exported
    harbor_tasks = require_data("terminal-bench", "harbor")
    dirs = sorted(str(d) for d in harbor_tasks.iterdir() if (d / "task.toml").exists())
    out = json.loads(run_in(HARBOR_PY, consumers.HARBOR, str(paths["atif"]), *dirs)
                     .splitlines()[-1])
    assert len(out["trajectories"]) == len(episodes)
    assert all(t["steps"] >= 2 for t in out["trajectories"])
    for t in out["tasks"]:  # envfarm reads a Harbor folder as Harbor does
        ours = load_task(t["dir"])
        assert ours.instruction.strip() == t["instruction"].strip()
        assert ours.agent_timeout_s == pytest.approx(t["agent_timeout_sec"])
        assert ours.verifier_timeout_s == pytest.approx(t["verifier_timeout_sec"])
