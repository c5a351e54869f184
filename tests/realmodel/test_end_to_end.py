"""The real model end to end: envfarm rollouts of SmolLM2 on `envfarm/echo-v0` (real
sandboxes) -> the store -> the verl export -> the trainer of `make train-demo`, in verl's
own venv, reads the same tokens and recomputes the same logprobs vLLM returned.

The rollouts here are unguided: then vLLM's raw logprobs are the model's own distribution
and the training-inference mismatch must be near 0 (a gap would mean the export or the
template is wrong). Under guided decoding vLLM renormalises them over the tokens the
grammar allows (test_tokens.py shows it), so the two differ by design."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from orchestrator.export import ExportFilter, export
from orchestrator.policy_spec import PolicySpec
from orchestrator.runner import RolloutConfig, RolloutRunner
from orchestrator.store import Store
from policies.presets import SAMPLING, preset
from tests.conftest import missing
from tests.realmodel.conftest import ROOT

pytestmark = [pytest.mark.realmodel, pytest.mark.vllm, pytest.mark.docker]

TRAINABLE = ("ok", "agent_timeout", "max_turns", "context_exceeded", "tampered", "agent_fault")
TRAINERS_PY = ROOT / ".venv-trainers" / "bin" / "python"


@pytest.fixture(scope="module")
def run(smollm2_server, base_image, tmp_path_factory) -> tuple[Store, str, Path]:
    """Two echo tasks x 3 samples, two turns each at most; the run and its verl rows."""
    out = tmp_path_factory.mktemp("realmodel-e2e")
    store = Store(f"sqlite:///{out / 'store.db'}")
    policy = PolicySpec(type="vllm", urls=[smollm2_server.url], model="smollm2",
                        tokenizer=str(smollm2_server.model_dir), guided=False,
                        temperature=SAMPLING["temperature"], top_p=SAMPLING["top_p"],
                        max_tokens=48, timeout_s=300.0, **preset("echo"))
    config = RolloutConfig(env="echo", task_ids=["echo-lemon", "echo-falcon"], policy=policy,
                           n=3, concurrency=6, executor="threads", max_turns=2, max_attempts=2)
    summary = RolloutRunner(config, store).run()
    rows = out / "rows.parquet"
    export(store, summary.run_id, "verl", rows, ExportFilter(statuses=TRAINABLE))
    return store, summary.run_id, rows


def test_rollout_stores_the_tokens_the_server_saw(run):
    """Every stored episode: each call's prompt is a prefix of the merged sequence, its
    completion follows at mask 1 with vLLM's logprobs, and the config records the policy."""
    store, run_id, _ = run
    episodes = list(store.episodes(run_id, statuses=TRAINABLE))
    assert len(episodes) == 6
    assert store.get_run(run_id)["config"]["policy"]["logprobs_mode"] == "raw_logprobs"
    for ep in episodes:
        assert ep.calls, f"{ep.task_id}: no model call stored"
        for call in ep.calls:
            n, c = len(call.prompt_ids), len(call.completion_ids)
            assert ep.token_ids[:n] == list(call.prompt_ids)
            assert ep.token_ids[n : n + c] == list(call.completion_ids)
            assert ep.loss_mask[n : n + c] == [1] * c
            assert ep.token_logprobs[n : n + c] == pytest.approx(list(call.logprobs))
        assert sum(ep.loss_mask) == sum(len(call.completion_ids) for call in ep.calls)


def test_verl_rows_are_the_stored_tokens(run):
    store, run_id, rows = run
    table = pq.read_table(rows).to_pylist()
    episodes = {(e.task_id, e.sample_index): e for e in store.episodes(run_id, statuses=TRAINABLE)}
    assert len(table) == len(episodes) == 6
    for row in table:
        ep = episodes[(row["task_id"], row["sample_index"])]
        assert row["prompt_ids"] + row["response_ids"] == list(ep.token_ids)
        assert row["prompt_ids"] == list(ep.calls[0].prompt_ids)
        assert sum(row["response_mask"]) == sum(ep.loss_mask)
        assert row["reward"] == ep.reward


def test_the_trainer_reads_the_same_tokens_and_logprobs(run, smollm2_server):
    """trainer.py --check (verl's venv, float32 torch) recomputes log p of every model
    token from the weights vLLM serves: the mismatch is that of two float32 kernels."""
    _, _, rows = run
    if not TRAINERS_PY.exists():
        missing(f"{TRAINERS_PY} missing; run `make setup` (scripts/setup.d/trainers.sh)")
    report = rows.with_name("check.json")
    done = subprocess.run(
        [str(TRAINERS_PY), "-P", str(ROOT / "examples" / "train_demo" / "trainer.py"),
         "--weights", str(smollm2_server.model_dir), "--rows", str(rows),
         "--report", str(report), "--check"],
        capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    got = json.loads(report.read_text())
    table = pq.read_table(rows).to_pylist()
    assert got["rows"] == len(table)
    assert got["mismatch_tokens"] == sum(sum(r["response_mask"]) for r in table)
    assert got["response_tokens"] == sum(len(r["response_ids"]) for r in table)
    assert got["mismatch_mean"] < 1e-3, got
    assert got["mismatch_max"] < 5e-2, got
