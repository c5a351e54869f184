"""The train-demo's update step (examples/train_demo/trainer.py, verl's core_algos in the
trainers' venv) on rows whose responses differ in length across micro-batches.

The batch pads responses to its longest and each micro-batch to its own; a run where every
completion hit the same token cap never showed the difference, a real run with shorter
completions did (the advantages and the ratio disagreed in width and the update crashed).
The rows are the SmolLM2 tokenizer's ids of real tool calls, rewarded so both groups carry
a signal."""

from __future__ import annotations

import json
import subprocess

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.conftest import missing
from tests.trainers.venvs import ROOT, TRAINERS_PY, require_python

pytestmark = [pytest.mark.trainers, pytest.mark.slow]


_COMPARE = """
import json, sys
from safetensors import safe_open
with safe_open(sys.argv[1] + "/model.safetensors", "pt") as a, \\
        safe_open(sys.argv[2] + "/model.safetensors", "pt") as b:
    top = max(int(k.split(".")[2]) for k in a.keys() if k.startswith("model.layers."))
    moved = f"model.layers.{top}.mlp.down_proj.weight"
    print(json.dumps({
        "top_layer": not a.get_tensor(moved).equal(b.get_tensor(moved)),
        "embeddings": not a.get_tensor("model.embed_tokens.weight").equal(
            b.get_tensor("model.embed_tokens.weight")),
    }))
"""


def _smollm2():
    from policies.models import ModelNotInstalledError, model_dir

    try:
        return model_dir("smollm2")
    except ModelNotInstalledError as exc:
        missing(str(exc))


def _rows(model_dir) -> list[dict]:
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    rows = []
    for group, word in enumerate(("lemon", "copper")):
        prompt = tok.encode(f"<|im_start|>user\nWrite the word {word} into /tmp/answer.txt"
                            "<|im_end|>\n<|im_start|>assistant\n").ids
        for k, (reply, reward) in enumerate((
            ((f"<tool_call>\n<function=bash>\n<parameter=command>\necho {word} > "
              "/tmp/answer.txt\n</parameter>\n</function>\n</tool_call><|im_end|>"), 1.0),
            ("<tool_call>\n<function=finish>\n</function>\n</tool_call><|im_end|>", 0.0),
        )):
            ids = tok.encode(reply).ids
            rows.append({"uid": f"{group}-{k}", "task_id": f"echo-{word}",
                         "prompt_ids": prompt, "response_ids": ids,
                         "response_mask": [1] * len(ids), "response_logprobs": [-1.0] * len(ids),
                         "reward": reward})
    return rows


def test_an_update_on_responses_of_different_lengths_writes_new_weights(tmp_path):
    python = require_python(TRAINERS_PY)
    weights = _smollm2()
    rows = _rows(weights)
    assert len({len(r["response_ids"]) for r in rows}) > 1
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "rows.parquet")
    out, report = tmp_path / "weights-1", tmp_path / "report.json"
    done = subprocess.run(
        [str(python), "-P", str(ROOT / "examples" / "train_demo" / "trainer.py"),
         "--weights", str(weights), "--rows", str(tmp_path / "rows.parquet"),
         "--out", str(out), "--report", str(report), "--micro", "1", "--train-layers", "1",
         "--lr", "1e-3"],
        capture_output=True, text=True, timeout=900, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    got = json.loads(report.read_text())
    assert got["groups_kept"] == 2 and got["train_rows"] == 4 and got["steps"] == 1
    assert got["trainable_params"] > 0 and got["grad_norm"] > 0
    # The top layer moved; the embeddings (frozen) did not (read in the trainers' venv).
    compare = subprocess.run([str(python), "-c", _COMPARE, str(weights), str(out)],
                             capture_output=True, text=True, timeout=300, check=True)
    changed = json.loads(compare.stdout.splitlines()[-1])
    assert changed["top_layer"] and not changed["embeddings"], changed
    assert (out / "tokenizer.json").is_file()
