"""Real-model benchmark: SmolLM2-135M-Instruct on vLLM CPU driving `envfarm/echo-v0`.

`make bench-real-model` runs it. One local vLLM server (the installed model, raw
logprobs, no reasoning parser) serves every measurement of the run, so the ratios
compare like with like:

1. Episodes per minute by concurrency: the farm's rollout runner (threads executor,
   real Docker sandboxes, guided tool calls, the echo preset of policies/presets.py) at
   concurrency 1, 4 and 8; ratio against concurrency 1.
2. Client overhead per call: `act()` split into the HTTP round trip and the client's own
   work around it (observation delta, decoding, parsing), over the calls of (1).
3. Guided vs unguided latency: the same first turns (same seeds) with and without
   structured outputs; per-call latency, per-token latency and parse-error rate.

The machine is shared: the load average at the start and the end is written with the
table, since on 2 cores every figure scales with it.
"""

from __future__ import annotations

import argparse
import datetime
import os
import signal
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from envs.tools import BashTool, FinishTool
from orchestrator.policy_spec import PolicySpec
from orchestrator.runner import RolloutConfig, RolloutRunner
from orchestrator.store import Store
from policies import ChatFormat, Conversation, SamplingConfig, VLLMPolicy
from policies.local_server import PLAIN_CPU_ARGS, LocalVLLMServer
from policies.models import model_dir, model_info
from policies.presets import SAMPLING, preset

WORDS = ["lemon", "falcon", "marble", "island", "thunder", "velvet", "anchor", "blossom"]
TOOLS = [BashTool().schema(), FinishTool().schema()]


def rollouts(url: str, folder: Path, store: Store, concurrency: int, episodes: int
             ) -> dict[str, float]:
    spec = PolicySpec(type="vllm", urls=[url], model="smollm2", tokenizer=str(folder),
                      guided=True, temperature=SAMPLING["temperature"], top_p=SAMPLING["top_p"],
                      max_tokens=64, timeout_s=300.0, **preset("echo"))
    tasks = [f"echo-{w}" for w in WORDS[: max(1, episodes // 2)]]
    config = RolloutConfig(env="echo", task_ids=tasks, policy=spec, n=episodes // len(tasks),
                           concurrency=concurrency, executor="threads", max_turns=2,
                           max_attempts=2)
    t0 = time.monotonic()
    summary = RolloutRunner(config, store).run()
    elapsed = time.monotonic() - t0
    eps = list(store.episodes(summary.run_id, statuses=None))
    return {"episodes": len(eps), "elapsed_s": elapsed, "per_min": len(eps) / elapsed * 60,
            "pass": sum(e.reward or 0 for e in eps) / max(len(eps), 1),
            "policy_s": statistics.mean(e.timings.get("policy_s", 0) for e in eps),
            "env_s": statistics.mean(e.timings.get("env_s", 0) + e.timings.get("reset_s", 0)
                                     for e in eps)}


def first_turns(url: str, fmt: ChatFormat, guided: bool, seeds: range) -> list[dict[str, float]]:
    def one(seed: int) -> dict[str, float]:
        sampling = SamplingConfig(temperature=1.0, top_p=1.0, max_tokens_per_call=64, seed=seed)
        policy = VLLMPolicy(fmt, url, sampling, guided=guided, **preset("echo"))
        conv = Conversation([{"role": "user", "content": f"Write the word {WORDS[seed % 8]} "
                              "into /tmp/answer.txt, then call finish."}], tools=TOOLS)
        try:
            t0 = time.perf_counter()
            turn = policy.act(conv)
            total = time.perf_counter() - t0
        finally:
            policy.close()
        ok = bool(turn.tool_calls) and not turn.errors
        return {"total_s": total, "http_s": turn.timings["http_s"],
                "client_s": turn.timings["client_s"], "tokens": len(turn.completion_ids),
                "parsed": float(ok), "length": float(turn.finish_reason == "length")}

    with ThreadPoolExecutor(4) as pool:
        return list(pool.map(one, seeds))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=HERE / "results" / "real_model.md")
    ap.add_argument("--episodes", type=int, default=16, help="episodes per concurrency level")
    ap.add_argument("--samples", type=int, default=16, help="first turns per guided mode")
    args = ap.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run `finally`: stop the server
    folder = model_dir("smollm2")
    fmt = ChatFormat.from_dir(folder)
    load0 = os.getloadavg()
    work = ROOT / "build" / "bench_real_model"
    work.mkdir(parents=True, exist_ok=True)
    store = Store(f"sqlite:///{work / f'store-{int(time.time())}.db'}")
    t0 = time.monotonic()
    server = LocalVLLMServer(folder, served_name="smollm2",
                             max_model_len=model_info("smollm2").max_model_len,
                             extra_args=[*PLAIN_CPU_ARGS, "--logprobs-mode", "raw_logprobs"],
                             log_path=work / "vllm.log").start()
    start_s = time.monotonic() - t0
    try:
        levels = {c: rollouts(server.url, folder, store, c, args.episodes if c > 1 else 4)
                  for c in (1, 4, 8)}
        calls = {g: first_turns(server.url, fmt, g, range(args.samples)) for g in (False, True)}
    finally:
        server.stop()
    load1 = os.getloadavg()
    base = levels[1]["per_min"]
    lines = [
        "# Real model: SmolLM2-135M-Instruct on vLLM CPU driving envfarm/echo-v0",
        "",
        (f"Measured {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC by "
        "`benchmarks/real_model.py` on this 2-core machine, shared with other work: load "
        f"average {load0[0]:.1f} at the start, {load1[0]:.1f} at the end (every figure "
        f"scales with it). One vLLM server for the whole run (started in {start_s:.0f} s), "
        "float32, raw logprobs, `--max-num-seqs 8`; guided tool calls, temperature 1, "
        "64 tokens per call (a correct call is 42), echo preset (one worked example)."),
        "",
        "## Episodes per minute by concurrency (rollout runner, Docker sandboxes, 2 turns max)",
        "",
        ("| concurrency | episodes | wall s | episodes/min | vs concurrency 1 | pass rate "
        "| model s/episode | env s/episode |"),
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for c, r in levels.items():
        lines.append(f"| {c} | {r['episodes']} | {r['elapsed_s']:.0f} | {r['per_min']:.1f} | "
                     f"{r['per_min'] / base:.2f}x | {r['pass']:.2f} | {r['policy_s']:.1f} | "
                     f"{r['env_s']:.1f} |")
    http = [c for g in calls.values() for c in g]
    over = [c["client_s"] for c in http]
    rt = [c["http_s"] for c in http]
    lines += [
        "",
        "## Client overhead per call (VLLMPolicy.act around the HTTP round trip)",
        "",
        "| calls | median client s | median HTTP s | client / HTTP |",
        "|---:|---:|---:|---:|",
        (f"| {len(http)} | {statistics.median(over) * 1000:.1f} ms | "
        f"{statistics.median(rt):.2f} | {statistics.median(over) / statistics.median(rt):.2%} |"),
        "",
        f"## Guided vs unguided first turns ({args.samples} seeded samples each, 4 at once)",
        "",
        "| mode | median s/call | mean tokens | ms/token | parsed tool call | cut at 64 tokens |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    per_tok = {}
    for g, rows in calls.items():
        med = statistics.median(r["total_s"] for r in rows)
        toks = statistics.mean(r["tokens"] for r in rows)
        per_tok[g] = statistics.median(r["http_s"] / max(r["tokens"], 1) for r in rows)
        lines.append(f"| {'guided' if g else 'unguided'} | {med:.2f} | {toks:.1f} | "
                     f"{per_tok[g] * 1000:.0f} | "
                     f"{statistics.mean(r['parsed'] for r in rows):.0%} | "
                     f"{statistics.mean(r['length'] for r in rows):.0%} |")
    lines += ["", (f"Guided / unguided time per token: {per_tok[True] / per_tok[False]:.2f}x "
              "(the grammar's token mask is computed on the CPU each step)."), ""]
    args.out.write_text("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
