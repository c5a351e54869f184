"""The demo's real-model part in small (one echo task, groups of 2, guided and unguided)
on the shared server: every figure of its table recomputed from the store by another
route, the prompt configuration stored with the run and seen by the server, and the
demo's behaviour when the model is missing (one line with the fix; a failure under CI).
"""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest
from rich.console import Console

from orchestrator import demo_model
from orchestrator.store import Store
from policies import ChatFormat
from policies.presets import preset

N = 2


@pytest.fixture(scope="module")
def demo(smollm2_server, base_image, tmp_path_factory):
    out = tmp_path_factory.mktemp("demo-real")
    store = Store(f"sqlite:///{out / 'demo.db'}")
    rows = demo_model.run_real_model(store, out, n=N, executor="threads",
                                     url=smollm2_server.url, tasks={"echo": ["echo-lemon"]})
    return store, rows, out


@pytest.mark.realmodel
@pytest.mark.vllm
@pytest.mark.docker
def test_table_numbers_are_the_stores(demo):
    store, rows, out = demo
    assert [(r.env, r.mode, r.tasks, r.n) for r in rows] == [
        ("echo", "guided", 1, N), ("echo", "unguided", 1, N)]
    for r in rows:
        eps = list(store.episodes(r.run_id, statuses=None))
        assert len(eps) == N and r.episodes == N, [e.error for e in eps]
        assert sum(r.statuses.values()) == N
        rewards = [e.reward for e in eps]
        assert r.pass1 == pytest.approx(sum(rewards) / N)
        assert r.passn == (1.0 if any(rewards) else 0.0)  # pass@n of one group of n
        calls = [c for e in eps for c in e.calls]
        assert r.model_turns == len(calls)  # every model turn is a stored call
        assert r.tokens_per_episode == pytest.approx(
            sum(len(c.completion_ids) for c in calls) / N)
        assert r.turns_per_episode == pytest.approx(sum(e.num_turns for e in eps) / N)
        assert r.model_s == pytest.approx(sum(e.timings["policy_s"] for e in eps) / N)
        informative = len(set(rewards)) > 1
        assert (r.groups_kept, r.groups_skipped) == (int(informative), int(not informative))
        kept = pq.read_table(out / f"real-echo-{r.mode}.parquet").num_rows
        assert kept == (N if informative else 0)
        assert r.per_min > 0
    guided = rows[0]
    cut = sum(c.finish_reason == "length" for e in store.episodes(guided.run_id, statuses=None)
              for c in e.calls)
    assert guided.parse_errors <= cut, "a guided turn that was not cut failed to parse"
    text = _render(rows)
    for r in rows:
        assert f"{r.parse_errors}/{r.model_turns}" in text
        assert f"{r.pass1:.2f}" in text and f"{r.groups_kept}/{r.groups_skipped}" in text
    assert f"pass@{N}" in text
    lines = demo_model.summary_lines(rows)
    assert any(line.startswith("parse errors unguided") for line in lines)
    assert lines[-1].startswith(f"dynamic sampling: skipped {sum(r.groups_skipped for r in rows)}")


@pytest.mark.realmodel
@pytest.mark.vllm
@pytest.mark.docker
def test_prompt_configuration_is_stored_with_the_run_and_is_what_the_server_saw(
        demo, smollm2_dir):
    """Issue 13 item 2: the system prompt and few-shot examples are policy configuration:
    the run's stored config carries them, and the first prompt the server received
    holds them (the episode's record starts with them)."""
    store, rows, _ = demo
    want = preset("echo")
    fmt = ChatFormat.from_dir(smollm2_dir)
    for r in rows:
        policy = store.get_run(r.run_id)["config"]["policy"]
        assert policy["system_prompt"] == want["system_prompt"]
        assert policy["few_shot"] == want["few_shot"]
        assert policy["guided"] == (r.mode == "guided")
        ep = next(iter(store.episodes(r.run_id, statuses=None)))
        prompt = fmt.decode(ep.calls[0].prompt_ids)
        assert want["system_prompt"] in prompt
        assert "echo apple > /tmp/answer.txt" in prompt  # the worked example
        assert ep.messages[0] == {"role": "system", "content": want["system_prompt"]}


@pytest.mark.docker
def test_missing_model_is_one_line_with_the_fix_and_fails_under_ci(
        tmp_path, base_image, monkeypatch, capsys):
    """No vLLM venv: the oracle part still runs and stores its episodes; the real-model
    part says what is missing and how to fix it; under CI=true the demo then fails."""
    from orchestrator.demo import run_demo

    monkeypatch.setenv("ENVFARM_VLLM_PYTHON", str(tmp_path / "no-venv" / "python"))
    monkeypatch.setenv("CI", "true")
    with pytest.raises(SystemExit) as exc:
        run_demo(tmp_path / "out", envs=["echo"], n=1, executor="threads")
    assert "real-model part must run" in str(exc.value) and "make setup" in str(exc.value)
    printed = capsys.readouterr().out
    assert "real model: skipped" in printed and "make setup" in printed
    store = Store(f"sqlite:///{tmp_path / 'out' / 'demo.db'}")
    (run,) = store.list_runs()
    assert store.status_counts(run["id"]) == {"ok": 2}


def _render(rows) -> str:
    console = Console(record=True, width=300)
    console.print(demo_model.table(rows))
    return console.export_text()
