"""The trainer side of the reference loop: verl rows in, one GRPO-style update, weights out.

Runs in the trainers' virtualenv (`.venv-trainers`: verl 0.9.1, CPU torch,
transformers), never in the farm's; it reads only the Parquet file that
`envfarm export --format verl` wrote, as a trainer would. One call = one update::

    .venv-trainers/bin/python -P trainer.py --weights DIR --rows rows.parquet \
        --out DIR --report r.json

Steps:
  1. Read the rows (prompt_ids, response_ids, response_mask, response_logprobs,
     reward, task_id): the exact tokens vLLM saw and returned, nothing re-tokenized.
  2. Recompute log p(token) of every model token (response_mask = 1) with the
     current weights in float32 at temperature 1 and compare it with vLLM's stored
     logprob: the training-inference mismatch, split into tokens the grammar forced
     (vLLM logprob 0) and free ones.
  3. GRPO advantages by verl's own `core_algos.compute_grpo_outcome_advantage`
     (outcome reward normalised within the task's group). Groups whose rewards are
     all equal carry no signal and are dropped first (dynamic sampling).
  4. PPO-clip loss by verl's own `core_algos.compute_policy_loss_vanilla` over model
     tokens only (token-mean). The old logprobs of the ratio are those the trainer
     recomputed in step 2, before any step, as verl's actor does: under guided
     decoding vLLM's logprobs (raw mode included) are renormalised over the tokens
     the grammar allows, so a ratio against them would be below 1 wherever the
     grammar narrowed the choice (at the bash/finish choice too) and PPO's clip would
     drop exactly the negative-advantage gradient the model must learn from. For
     unguided turns the two agree (tests/realmodel asserts a mean below 1e-3).
  5. AdamW step(s) on the top `--train-layers` decoder layers (0: all), then the
     weights are saved as safetensors beside the tokenizer and template files,
     ready for vLLM to reload.

CPU speed: every episode of a group starts with the same system prompt, tools and
few-shot example, so that shared prefix runs through the model once per mini-batch
(with gradient) and its keys/values are shared by the rows; logits are computed
only where a model token is predicted. The gradient is the same as running each
row in full.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

WEIGHT_FILES = {"model.safetensors", "config.json"}
"""Written by save_pretrained; every other file of the weights folder is copied over."""


def read_rows(path: Path) -> list[dict[str, Any]]:
    import pyarrow.parquet as pq

    cols = ["uid", "task_id", "prompt_ids", "response_ids", "response_mask",
            "response_logprobs", "reward"]  # fmt: skip
    return pq.read_table(path, columns=cols).to_pylist()


def shared_prefix(rows: list[dict[str, Any]]) -> int:
    """Tokens every row starts with, stopping before each row's last prompt token (the
    first model token is then always predicted from a position that is not shared)."""
    first = rows[0]["prompt_ids"]
    n = min(len(r["prompt_ids"]) for r in rows) - 1
    for r in rows[1:]:
        ids = r["prompt_ids"]
        i = 0
        while i < n and ids[i] == first[i]:
            i += 1
        n = i
    return max(n, 0)


class Batch:
    """Rows as [B, T] response tensors (T = longest response) and right-padded suffixes
    (everything after the shared prefix)."""

    def __init__(self, rows: list[dict[str, Any]], prefix: int) -> None:
        self.rows, self.prefix = rows, prefix
        B = len(rows)
        T = max(len(r["response_ids"]) for r in rows)
        seqs = [list(r["prompt_ids"]) + list(r["response_ids"]) for r in rows]
        S = max(len(s) for s in seqs) - prefix
        self.prefix_ids = torch.tensor(seqs[0][:prefix], dtype=torch.long)[None]
        self.ids = torch.zeros(B, S, dtype=torch.long)
        self.attn = torch.zeros(B, prefix + S, dtype=torch.long)
        self.mask = torch.zeros(B, T)
        self.old = torch.zeros(B, T)
        self.target = torch.zeros(B, T, dtype=torch.long)
        for i, (r, seq) in enumerate(zip(rows, seqs, strict=True)):
            n = len(r["response_ids"])
            self.ids[i, : len(seq) - prefix] = torch.tensor(seq[prefix:])
            self.attn[i, : len(seq)] = 1
            self.mask[i, :n] = torch.tensor(r["response_mask"], dtype=torch.float32)
            self.old[i, :n] = torch.tensor(r["response_logprobs"], dtype=torch.float32)
            self.target[i, :n] = torch.tensor(r["response_ids"])
        # Where each model token is predicted from: suffix index (prompt length + t - 1 - prefix).
        self.where = self.mask.nonzero()  # [N, 2]: (row, response position)
        plen = torch.tensor([len(r["prompt_ids"]) for r in rows])
        self.src = plen[self.where[:, 0]] + self.where[:, 1] - 1 - prefix

    def select(self, idx: list[int]) -> Batch:
        return Batch([self.rows[i] for i in idx], self.prefix)


def token_logprobs(model: Any, b: Batch) -> torch.Tensor:
    """log p(token) at every model token of `b`, as [B, T] (0 elsewhere); with grad when
    grad is enabled. The shared prefix is run once and its keys/values broadcast."""
    from transformers import DynamicCache

    cache = None
    if b.prefix:
        pre = model.model(input_ids=b.prefix_ids, use_cache=True).past_key_values
        cache = DynamicCache()
        n = b.ids.shape[0]
        for layer, lay in enumerate(pre.layers):
            cache.update(lay.keys.expand(n, -1, -1, -1), lay.values.expand(n, -1, -1, -1), layer)
    hidden = model.model(
        input_ids=b.ids, attention_mask=b.attn, past_key_values=cache, use_cache=cache is not None
    ).last_hidden_state
    h = hidden[b.where[:, 0], b.src]  # [N, H]: only where a model token is predicted
    logp = torch.log_softmax(model.lm_head(h).float(), dim=-1)
    tok = b.target[b.where[:, 0], b.where[:, 1]]
    picked = logp.gather(1, tok[:, None])[:, 0]
    out = torch.zeros_like(b.mask)
    return out.index_put((b.where[:, 0], b.where[:, 1]), picked)


def grpo_advantages(core: Any, b: Batch) -> torch.Tensor:
    """verl's GRPO advantage: the reward sits on each row's last model token."""
    scores = torch.zeros_like(b.mask)
    last = b.mask.shape[1] - 1 - torch.argmax(b.mask.flip(1), dim=1)
    scores[torch.arange(len(b.rows)), last] = torch.tensor(
        [float(r["reward"] or 0.0) for r in b.rows]
    )
    index = np.array([r["task_id"] for r in b.rows], dtype=object)
    adv, _ = core.compute_grpo_outcome_advantage(scores, b.mask, index)
    return adv


def loss_config(clip: float) -> Any:
    from omegaconf import OmegaConf

    return OmegaConf.create(
        {
            "clip_ratio": clip,
            "clip_ratio_low": clip,
            "clip_ratio_high": clip,
            "clip_ratio_c": 3.0,
            "global_batch_info": {},
        }
    )


def save(model: Any, weights: Path, out: Path) -> None:
    """Weights as safetensors plus every non-weight file of `weights` (tokenizer,
    template, generation config), written whole: a .partial folder renamed into place."""
    tmp = out.with_name(out.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp, safe_serialization=True)
    for f in weights.iterdir():
        if f.is_file() and f.name not in WEIGHT_FILES and not (tmp / f.name).exists():
            shutil.copy(f, tmp / f.name)
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)


def freeze_below(model: Any, train_layers: int) -> int:
    """Train the top `train_layers` decoder layers and the final norm only (0: all);
    frozen layers keep no activations for backward. Returns trainable parameters."""
    layers = model.model.layers
    if 0 < train_layers < len(layers):
        model.requires_grad_(False)
        for layer in layers[-train_layers:]:
            layer.requires_grad_(True)
        model.model.norm.requires_grad_(True)
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def mismatch(new: torch.Tensor, b: Batch) -> dict[str, torch.Tensor]:
    """|logp_trainer - logp_vllm| over model tokens, split where vLLM's logprob is 0
    (a token the grammar forced: under guided decoding vLLM's logprobs, raw mode
    included, are renormalised over the tokens the grammar allows)."""
    m = b.mask.bool()
    delta = (new - b.old).abs()
    forced = m & (b.old == 0.0)
    return {"all": delta[m], "free": delta[m & ~forced], "forced": delta[forced]}


def summarize(report: dict[str, Any], parts: list[dict[str, torch.Tensor]], prefix: str) -> None:
    for key in ("all", "free", "forced"):
        d = torch.cat([p[key] for p in parts]) if parts else torch.zeros(0)
        name = prefix if key == "all" else f"{prefix}_{key}"
        report[f"{name}_mean"] = float(d.mean()) if d.numel() else 0.0
        report[f"{name}_max"] = float(d.max()) if d.numel() else 0.0
        report[f"{name}_tokens"] = int(d.numel())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="one GRPO-style update from verl rows")
    ap.add_argument("--weights", type=Path, required=True, help="HF folder to start from")
    ap.add_argument("--rows", type=Path, required=True, help="envfarm verl export (Parquet)")
    ap.add_argument("--out", type=Path, help="HF folder to write (required unless --check)")
    ap.add_argument("--report", type=Path, required=True, help="JSON metrics written here")
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--epochs", type=int, default=1, help="optimizer steps over the batch")
    ap.add_argument("--micro", type=int, default=16, help="rows per forward/backward")
    ap.add_argument(
        "--train-layers",
        type=int,
        default=0,
        help="train only the top N decoder layers (0: the whole model)",
    )
    ap.add_argument("--clip", type=float, default=0.2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--mismatch-all",
        action="store_true",
        help="measure the mismatch over every row, not only the trained ones",
    )
    ap.add_argument(
        "--check",
        action="store_true",
        help="only read the rows and report the mismatch (no update, nothing saved)",
    )
    args = ap.parse_args(argv)
    if args.out is None and not args.check:
        ap.error("--out is required unless --check")

    from transformers import AutoModelForCausalLM
    from verl.trainer.ppo import core_algos

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    t0 = time.perf_counter()
    rows = read_rows(args.rows)
    report: dict[str, Any] = {"rows": len(rows), "core_algos": "verl.trainer.ppo.core_algos"}
    report["response_tokens"] = sum(len(r["response_ids"]) for r in rows)
    groups: dict[str, set[float]] = {}
    for r in rows:
        groups.setdefault(r["task_id"], set()).add(float(r["reward"] or 0.0))
    keep = {t for t, rs in groups.items() if len(rs) > 1}  # dynamic sampling
    train = [] if args.check else [r for r in rows if r["task_id"] in keep]
    report.update(groups=len(groups), groups_kept=len(keep), train_rows=len(train))
    model = AutoModelForCausalLM.from_pretrained(args.weights, dtype=torch.float32)
    model.config.use_cache = False
    model.eval()  # no dropout in this model; eval keeps kernels as at inference
    report["trainable_params"] = freeze_below(model, args.train_layers)

    # Training-inference mismatch over every row, before any update (no gradient).
    if args.check or args.mismatch_all or not train:
        parts = []
        with torch.no_grad():
            for s in range(0, len(rows), args.micro):
                chunk = rows[s : s + args.micro]
                b = Batch(chunk, shared_prefix(chunk))
                parts.append(mismatch(token_logprobs(model, b), b))
        summarize(report, parts, "mismatch")
        report["mismatch_s"] = round(time.perf_counter() - t0, 1)

    report["steps"], losses, clipfracs, parts = 0, [], [], []
    if train:
        cfg = loss_config(args.clip)
        params = [p for p in model.parameters() if p.requires_grad]
        opt = torch.optim.AdamW(params, lr=args.lr, weight_decay=0.0)
        full = Batch(train, shared_prefix(train))
        adv = grpo_advantages(core_algos, full)  # over the whole batch: groups intact
        total = float(full.mask.sum())
        olds: dict[int, torch.Tensor] = {}
        for epoch in range(args.epochs):
            opt.zero_grad()
            for c0 in range(0, len(train), args.micro):
                idx = list(range(c0, min(c0 + args.micro, len(train))))
                b = full.select(idx)
                logp = token_logprobs(model, b)
                if epoch == 0:
                    # old_log_prob recomputed by the trainer before any step, as verl's
                    # actor does; vLLM's stored logprobs are compared with it (mismatch).
                    olds[c0] = logp.detach()
                    parts.append(mismatch(olds[c0], b))
                # The micro-batch pads to its own longest response, the batch to its.
                micro_adv = adv[idx][:, : b.mask.shape[1]]
                loss, metrics = core_algos.compute_policy_loss_vanilla(
                    olds[c0], logp, micro_adv, b.mask, "token-mean", cfg
                )
                weight = float(b.mask.sum()) / max(total, 1.0)  # token-mean over the batch
                (loss * weight).backward()
                losses.append(float(loss) * weight)
                clipfracs.append(float(metrics.get("actor/pg_clipfrac", 0.0)))
            report["grad_norm"] = float(torch.nn.utils.clip_grad_norm_(params, 1.0))
            opt.step()
            report["steps"] += 1
        report["loss"] = sum(losses) / max(report["steps"], 1)
        report["clip_frac"] = sum(clipfracs) / max(len(clipfracs), 1)
        if "mismatch_mean" not in report:
            summarize(report, parts, "mismatch")
        save(model, args.weights, args.out)
    elif not args.check:
        save(model, args.weights, args.out)  # nothing to learn from: the same weights
    report["train_s"] = round(time.perf_counter() - t0, 1)
    report = {
        k: (round(v, 6) if isinstance(v, float) and math.isfinite(v) else v)
        for k, v in report.items()
    }
    args.report.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
