"""Every export format read back and checked token for token against the store."""

from __future__ import annotations

import json
import random

import pyarrow.parquet as pq
import pytest
import torch

from orchestrator.export import ExportFilter, export
from orchestrator.records import CallData, EpisodeRecord
from orchestrator.store import Store


def token_episode(task: str, sample: int, rng: random.Random, reward: float,
                  status: str = "ok") -> EpisodeRecord:
    """An episode shaped as a token-in/token-out policy builds it: each call's prompt is
    the previous prompt + completion + observation delta."""
    ids = lambda n: [rng.randrange(1, 5000) for _ in range(n)]
    lps = lambda n: [round(-rng.random() * 3, 3) for _ in range(n)]
    prompt, merged, mask, logprobs, calls = ids(12), [], [], [], []
    merged += prompt
    mask += [0] * len(prompt)
    logprobs += [None] * len(prompt)
    for turn in range(3):
        completion, lp = ids(rng.randrange(3, 9)), None
        lp = lps(len(completion))
        calls.append(CallData(list(merged), completion, lp, "stop"))
        merged += completion
        mask += [1] * len(completion)
        logprobs += lp
        if turn < 2:
            delta = ids(rng.randrange(4, 10))
            merged += delta
            mask += [0] * len(delta)
            logprobs += [None] * len(delta)
    return EpisodeRecord(run_id="run", task_id=task, sample_index=sample, env_id="envfarm/x-v0",
                         status=status, reward=reward, token_ids=merged, loss_mask=mask,
                         token_logprobs=logprobs, calls=calls, num_turns=3,
                         messages=[{"role": "user", "content": f"task {task}"},
                                   {"role": "assistant", "content": "", "tool_calls": [
                                       {"id": "c1", "type": "function", "function": {
                                           "name": "bash", "arguments": '{"command": "ls"}'}}]},
                                   {"role": "tool", "tool_call_id": "c1", "content": "a.txt"}])


@pytest.fixture
def store(tmp_path):
    st = Store(f"sqlite:///{tmp_path / 'export.db'}")
    st.create_run("run", {"env": "x", "n": 2})
    rng = random.Random(7)
    for task in ("t1", "t2"):
        for sample in range(2):
            st.save_episode(token_episode(task, sample, rng, reward=float(sample)))
    st.save_episode(token_episode("t3", 0, rng, 1.0))  # an incomplete group
    st.save_episode(token_episode("t3", 1, rng, 0.0, status="infra_error"))
    return st


def stored(store):
    return {(e.task_id, e.sample_index): e for e in store.episodes("run")}


def test_verl_rows_are_the_stored_tokens_split_at_the_first_model_token(store, tmp_path):
    report = export(store, "run", "verl", tmp_path / "verl.parquet")
    rows = pq.read_table(tmp_path / "verl.parquet").to_pylist()
    assert report.rows == len(rows) == 5  # the infra_error episode is never exported
    for row in rows:
        e = stored(store)[(row["task_id"], row["sample_index"])]
        cut = e.loss_mask.index(1)
        assert row["prompt_ids"] == e.calls[0].prompt_ids == e.token_ids[:cut]
        assert row["prompt_ids"] + row["response_ids"] == e.token_ids
        assert row["response_mask"] == e.loss_mask[cut:]
        model_lps = [lp for lp, m in zip(row["response_logprobs"], row["response_mask"]) if m]
        assert model_lps == pytest.approx([lp for c in e.calls for lp in c.logprobs])
        assert row["reward"] == e.reward and row["num_turns"] == 3


def test_skyrl_step_rows_are_the_model_calls(store, tmp_path):
    export(store, "run", "skyrl", tmp_path / "skyrl.parquet")
    rows = pq.read_table(tmp_path / "skyrl.parquet").to_pylist()
    assert len(rows) == 5 * 3
    for row in rows:
        task, sample = row["trajectory_ids"].split(":")[1:]
        e = stored(store)[(task, int(sample))]
        call = e.calls[row["step"]]
        assert row["prompt_token_ids"] == call.prompt_ids
        assert row["response_ids"] == call.completion_ids
        assert row["rollout_logprobs"] == pytest.approx(call.logprobs)
        assert row["is_last_step"] == (row["step"] == 2)
        assert row["rewards"] == (e.reward if row["is_last_step"] else 0.0)


def test_atif_keeps_steps_tool_calls_observations_and_tokens(store, tmp_path):
    export(store, "run", "atif", tmp_path / "atif.jsonl")
    lines = [json.loads(line) for line in (tmp_path / "atif.jsonl").read_text().splitlines()]
    assert len(lines) == 5
    first = lines[0]
    assert first["schema_version"] == "ATIF-v1.4"
    user, agent = first["steps"]
    assert user["source"] == "user" and agent["source"] == "agent"
    assert agent["tool_calls"][0] == {"tool_call_id": "c1", "function_name": "bash",
                                      "arguments": {"command": "ls"}}
    assert agent["observation"]["results"][0]["content"] == "a.txt"
    e = stored(store)[("t1", 0)]
    assert agent["metrics"]["completion_token_ids"] == e.calls[0].completion_ids


def test_torch_batch_loads_without_envfarm_classes(store, tmp_path):
    export(store, "run", "torch", tmp_path / "batch.pt",
           ExportFilter(statuses=("ok",), group_complete=True))
    batch = torch.load(tmp_path / "batch.pt", weights_only=True)  # plain tensors and lists only
    assert batch["task_ids"] == ["t1", "t1", "t2", "t2"]  # t3's group is incomplete
    for i, (task, sample) in enumerate(zip(batch["task_ids"], batch["sample_indices"])):
        e = stored(store)[(task, sample)]
        n = int(batch["attention_mask"][i].sum())
        assert batch["input_ids"][i, :n].tolist() == e.token_ids
        assert batch["loss_mask"][i, :n].tolist() == e.loss_mask
        assert batch["rewards"][i].item() == e.reward


def test_filters_on_reward_and_jsonl_round_trip(store, tmp_path):
    report = export(store, "run", "jsonl", tmp_path / "wins.jsonl", ExportFilter(min_reward=1.0))
    lines = [json.loads(line) for line in (tmp_path / "wins.jsonl").read_text().splitlines()]
    assert report.rows == 3 and all(line["reward"] == 1.0 for line in lines)
    back = EpisodeRecord.from_dict(lines[0])
    assert back.token_ids == stored(store)[(back.task_id, back.sample_index)].token_ids


def test_episodes_without_tokens_are_counted_as_skipped(tmp_path):
    st = Store(f"sqlite:///{tmp_path / 'o.db'}")
    st.create_run("run", {"n": 1})
    st.save_episode(EpisodeRecord(run_id="run", task_id="t", sample_index=0, env_id="e",
                                  status="ok", reward=1.0))
    report = export(st, "run", "verl", tmp_path / "v.parquet")
    assert report.rows == 0 and report.skipped["no token data"] == 1
    assert "response_ids" in pq.read_schema(tmp_path / "v.parquet").names  # columns, no rows


def test_a_failed_export_writes_no_file(store, tmp_path):
    bad = token_episode("t9", 0, random.Random(1), 1.0)  # exported last, after good lines
    bad.messages[1]["tool_calls"][0]["function"]["arguments"] = "{not json"
    store.save_episode(bad)
    with pytest.raises(json.JSONDecodeError):
        export(store, "run", "atif", tmp_path / "run.atif.jsonl")
    assert not [p for p in tmp_path.iterdir() if "atif" in p.name]
