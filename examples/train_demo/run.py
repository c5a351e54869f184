"""`make train-demo`: the loop closes. A real model acts in the farm, its trajectories
train it, and the trained weights act better on tasks it never trained on.

Each iteration k:
  1. a local vLLM serves the current weights (raw logprobs, guided tool calls); after
     each update it reloads the new weights in place;
  2. held-out pass rate: `envfarm/echo-v0` on words never trained on;
  3. training rollouts: group sampling (`n` samples per task) on training words;
  4. `export(..., "verl")`: one Parquet row per episode (prompt_ids, response_ids,
     response_mask, response_logprobs, reward), exactly the tokens vLLM saw;
  5. trainer.py in `.venv-trainers` (verl's GRPO advantage and PPO policy loss, CPU
     torch, model tokens only) writes the next weights, and the next iteration's
     server serves them.
Before the first update the trainer's recomputed logprobs are compared with vLLM's
(the training-inference mismatch). The run ends with a plot (PNG), the curve, and
`held-out pass rate: BEFORE -> AFTER`.

Run from the repo root with the farm's venv: `.venv/bin/python -m examples.train_demo.run`.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from examples.train_demo import curve
from orchestrator.export import ExportFilter, export
from orchestrator.policy_spec import PolicySpec
from orchestrator.runner import RolloutConfig, RolloutRunner
from orchestrator.store import Store
from policies.local_server import PLAIN_CPU_ARGS, LocalVLLMServer
from policies.models import model_dir, model_info
from policies.presets import SAMPLING, preset

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
TRAINERS_PY = (
    Path(os.environ.get("ENVFARM_TRAINERS_VENV", ROOT / ".venv-trainers")) / "bin" / "python"
)
TRAINABLE = ("ok", "agent_timeout", "max_turns", "context_exceeded", "tampered", "agent_fault")

TRAIN_WORDS = (
    "apple", "river", "stone", "cloud", "tiger", "piano", "garden", "silver", "rocket",
    "candle", "forest", "planet", "butter", "window", "yellow", "dragon", "castle", "orange",
    "summer", "pencil", "basket", "winter", "monkey", "bridge", "jacket", "rabbit", "mirror",
    "violet", "copper", "meadow", "pepper", "harbor",
)  # fmt: skip
HELD_OUT_WORDS = (
    "lemon", "falcon", "marble", "island", "thunder", "velvet", "anchor", "blossom", "canyon",
    "ginger", "lantern", "nectar", "oyster", "puzzle", "saddle", "timber",
)  # fmt: skip
"""Disjoint from TRAIN_WORDS: the held-out pass rate measures what generalises."""


def log(msg: str) -> None:
    print(f"[train-demo {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def policy_spec(max_tokens: int) -> PolicySpec:
    """The policy every iteration uses: echo's prompt preset, RL sampling, guided calls."""
    return PolicySpec(type="vllm", model="smollm2", guided=True, timeout_s=300.0,
                      temperature=SAMPLING["temperature"], top_p=SAMPLING["top_p"],
                      max_tokens=max_tokens, logprobs_mode="raw_logprobs", **preset("echo"))


def rollout(store: Store, spec: PolicySpec, words: list[str], n: int, args: Any,
            max_tokens: int) -> tuple[str, float, dict[str, int], float]:
    """One run of echo tasks; returns (run id, pass rate, statuses, seconds)."""
    config = RolloutConfig(env="echo", task_ids=[f"echo-{w}" for w in words],
                           policy=spec.model_copy(update={"max_tokens": max_tokens}), n=n,
                           concurrency=args.concurrency, executor="threads",
                           max_turns=args.max_turns, max_attempts=2)
    t0 = time.monotonic()
    summary = RolloutRunner(config, store).run()
    rewards = [e.reward or 0.0 for e in store.episodes(summary.run_id, statuses=TRAINABLE,
                                                       with_calls=False)]
    rate = sum(rewards) / len(rewards) if rewards else 0.0
    return summary.run_id, rate, dict(summary.statuses), time.monotonic() - t0


def serve(weights: Path, logs: Path) -> LocalVLLMServer:
    """vLLM for the whole run; dev mode exposes `/collective_rpc` for weight reloads
    (bound to 127.0.0.1 like every local server)."""
    os.environ["VLLM_SERVER_DEV_MODE"] = "1"
    return LocalVLLMServer(
        weights,
        served_name="smollm2",
        max_model_len=model_info("smollm2").max_model_len,
        extra_args=[*PLAIN_CPU_ARGS, "--logprobs-mode", "raw_logprobs"],
        log_path=logs / "vllm.log",
    ).start()


class Running:
    """A server someone else started (`--url`); stopping it is theirs to do."""

    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")

    def stop(self) -> None:
        pass


def reload(server: LocalVLLMServer | Running, weights: Path) -> None:
    """The running server loads `weights` in place (vLLM's `reload_weights`, ~2 s instead
    of a ~100 s restart) and drops its prefix cache, whose keys and values the old
    weights computed."""
    rpc = {"method": "reload_weights", "kwargs": {"weights_path": str(weights)}}
    httpx.post(server.url + "/collective_rpc", json=rpc, timeout=600).raise_for_status()
    httpx.post(server.url + "/reset_prefix_cache", timeout=60).raise_for_status()


def _counts(statuses: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(statuses.items()))


def train_step(weights: Path, rows: Path, out: Path, report: Path, args: Any) -> dict[str, Any]:
    if not TRAINERS_PY.exists():
        sys.exit(
            f"{TRAINERS_PY} missing: the trainer needs verl's venv; run `make setup` "
            "(scripts/setup.d/trainers.sh)"
        )
    cmd = [str(TRAINERS_PY), "-P", str(HERE / "trainer.py"), "--weights", str(weights),
           "--rows", str(rows), "--out", str(out), "--report", str(report),
           "--lr", str(args.lr), "--epochs", str(args.epochs), "--micro", str(args.micro),
           "--train-layers", str(args.train_layers), "--threads", str(args.threads)]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.exit(f"trainer failed ({done.returncode}):\n{done.stderr[-4000:]}")
    return json.loads(report.read_text())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--iterations", type=int, default=3, help="updates (K)")
    ap.add_argument("--tasks", type=int, default=6, help="training tasks per iteration")
    ap.add_argument("--n", type=int, default=8, help="samples per training task (group)")
    ap.add_argument("--eval-n", type=int, default=2, help="samples per held-out task")
    ap.add_argument("--eval-every", type=int, default=0,
                    help="held-out pass rate every N iterations (0: before and after only)")
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--max-turns", type=int, default=1,
                    help="1: the reward is the first tool call's (a finish-first turn scores 0)")
    ap.add_argument("--max-tokens", type=int, default=64,
                    help="completion tokens per call (a one-line echo call takes about 42)")
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--epochs", type=int, default=1, help="optimizer steps per iteration")
    ap.add_argument("--train-layers", type=int, default=8, help="top decoder layers trained")
    ap.add_argument("--micro", type=int, default=16)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=ROOT / "build" / "train_demo")
    ap.add_argument("--plot", type=Path, default=None, help="PNG path (default OUT/curve.png)")
    ap.add_argument("--url", default=None, help="a running vLLM server (started with "
                    "VLLM_SERVER_DEV_MODE=1, serving the installed model) instead of a new one")
    args = ap.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run `finally`: stop the server

    started = time.monotonic()
    out: Path = args.out
    shutil.rmtree(out, ignore_errors=True)
    (out / "logs").mkdir(parents=True)
    store = Store(f"sqlite:///{out / 'store.db'}")
    weights = model_dir("smollm2")
    spec = policy_spec(args.max_tokens)
    rng = random.Random(args.seed)
    K = args.iterations
    log(f"model {weights}; {K} iterations of {args.tasks} training tasks x {args.n} samples; "
        f"held-out: {len(HELD_OUT_WORDS)} tasks x {args.eval_n}; out {out}")
    points: list[dict[str, Any]] = []
    t0 = time.monotonic()
    server = Running(args.url) if args.url else serve(weights, out / "logs")
    log(f"vLLM serving {weights.name} at {server.url} ({time.monotonic() - t0:.0f} s to start)")
    try:
        served = spec.model_copy(update={"urls": [server.url], "tokenizer": str(weights)})
        for k in range(K + 1):
            point: dict[str, Any] = {"iteration": k}
            points.append(point)
            if k in (0, K) or (args.eval_every and k % args.eval_every == 0):
                run_id, rate, statuses, secs = rollout(store, served, list(HELD_OUT_WORDS),
                                                       args.eval_n, args, args.max_tokens)
                point.update(held_out=rate, eval_run=run_id, eval_s=round(secs, 1))
                log(f"iter {k}: held-out pass rate {rate:.3f} ({_counts(statuses)}, "
                    f"{secs:.0f} s)")
            if k == K:
                break
            words = rng.sample(TRAIN_WORDS, args.tasks)
            run_id, rate, statuses, secs = rollout(store, served, words, args.n, args,
                                                   args.max_tokens)
            point.update(train=rate, train_run=run_id, rollout_s=round(secs, 1))
            log(f"iter {k}: training rollouts pass rate {rate:.3f} ({_counts(statuses)}, "
                f"{secs:.0f} s)")
            rows = out / f"rows-{k}.parquet"
            rep = export(store, run_id, "verl", rows, ExportFilter(statuses=TRAINABLE))
            nxt = out / f"weights-{k + 1}"
            report = train_step(weights, rows, nxt, out / f"train-{k}.json", args)
            point.update(rows=rep.rows, **{f"t_{key}": v for key, v in report.items()})
            if "mismatch_mean" in report:
                _print_mismatch(report, k)
            log(f"iter {k}: update on {report['train_rows']}/{rep.rows} rows "
                f"({report['groups_kept']}/{report['groups']} groups with signal), "
                f"{report['steps']} step(s), loss {report.get('loss', 0):+.4f}, "
                f"{report['train_s']:.0f} s")
            t0 = time.monotonic()
            reload(server, nxt)
            point["reload_s"] = round(time.monotonic() - t0, 1)
            if weights != model_dir("smollm2"):
                shutil.rmtree(weights, ignore_errors=True)  # keep the disk bounded
            weights = nxt
    finally:
        server.stop()
    elapsed = time.monotonic() - started
    (out / "curve.json").write_text(json.dumps(points, indent=2) + "\n")
    plot = args.plot or out / "curve.png"
    curve.plot(points, plot, TRAINERS_PY)
    print(curve.table(points))
    print(f"wall time {elapsed / 60:.1f} min; plot {plot}; curve {out / 'curve.json'}")
    print(f"held-out pass rate: {points[0]['held_out']:.2f} -> {points[-1]['held_out']:.2f}")
    return 0


def _print_mismatch(report: dict[str, Any], k: int) -> None:
    what = "before the first update" if k == 0 else f"at update {k + 1} (reloaded weights)"
    log(f"training-inference mismatch {what}: mean |Δ| = {report['mismatch_mean']:.3g}, "
        f"max |Δ| = {report['mismatch_max']:.3g} nats over {report['mismatch_tokens']} model "
        "tokens (trainer's recomputed logprob vs vLLM's stored one); grammar-forced tokens "
        f"{report['mismatch_forced_mean']:.3g} ({report['mismatch_forced_tokens']}), free "
        f"tokens {report['mismatch_free_mean']:.3g} ({report['mismatch_free_tokens']}). "
        "Guided decoding renormalises vLLM's logprobs over the tokens the grammar allows, "
        "so the PPO ratio uses old logprobs the trainer recomputes (as verl's actor does)")


if __name__ == "__main__":
    sys.exit(main())
