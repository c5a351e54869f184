"""The token view over a rollout by the real vLLM server (tiny model): what the page
shows is exactly the ids and logprobs the server returned."""

from __future__ import annotations

import html
import json
import re

import pytest
from fastapi.testclient import TestClient

from orchestrator.policy_spec import PolicySpec
from orchestrator.runner import RolloutConfig, RolloutRunner
from orchestrator.store import Store
from orchestrator.viewer import ViewerConfig, create_app
from orchestrator.viewer.tokens import load_decoder
from tests.viewer.conftest import shown_bytes

pytestmark = [pytest.mark.vllm, pytest.mark.docker]


def test_token_page_matches_a_model_rollout(vllm_server, base_image, tmp_path):
    trained = json.loads((vllm_server.model_dir / "tools.json").read_text())
    store = Store(f"sqlite:///{tmp_path / 'runs.db'}")
    policy = PolicySpec(type="vllm", urls=[vllm_server.url], tokenizer=str(vllm_server.model_dir),
                        tool_schemas=trained["tools"], max_tokens=300, temperature=0.3)
    config = RolloutConfig(env="echo", task_ids=["echo-alpha"], n=1, policy=policy,
                           env_kwargs={"system_prompt": trained["system"],
                                       "prompt": "Inspect the repository and run the tests."},
                           executor="threads", max_turns=3)
    summary = RolloutRunner(config, store, show_progress=False).run()
    ep = next(store.episodes(summary.run_id, statuses=None))
    assert ep.token_ids and any(ep.loss_mask), "the model produced tokens"
    client = TestClient(create_app(ViewerConfig(store=store.url)))
    page = client.get(f"/runs/{summary.run_id}/episodes/{ep.id}/tokens").text
    spans = re.findall(r'<span class="m(\d)(?: sp)?" data-id="(\d+)">(.*?)</span>',
                       page, re.DOTALL)
    assert [int(i) for _, i, _ in spans] == ep.token_ids
    assert [int(m) for m, _, _ in spans] == ep.loss_mask
    marks = re.findall(r'<i class="call" title="model call (\d+): prompt (\d+) tokens', page)
    assert [(int(i), int(n)) for i, n in marks] == [
        (i, len(c.prompt_ids)) for i, c in enumerate(ep.calls)]  # where each completion begins
    decoder = load_decoder(str(vllm_server.model_dir))
    text = b"".join(shown_bytes(inner) for *_, inner in spans)
    assert text.decode() == decoder.tok.decode(ep.token_ids, skip_special_tokens=False)
    data = json.loads(html.unescape(re.search(
        r'<script type="application/json" id="token-data">(.*?)</script>', page, re.DOTALL).group(1)))
    for shown, stored in zip(data["lp"], ep.token_logprobs, strict=True):
        assert (shown is None and stored is None) or abs(shown - stored) < 1e-4
