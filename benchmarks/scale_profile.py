"""Measure the real Docker backend once and store its latencies as data for the simulator.

`python benchmarks/scale_profile.py` starts `--n` sandboxes from the base image, one after
the other, and times what an episode does to one: start (backend.start → first command
answered), commands (`true`, a redirect into a file, a `cat`), a file write and read
through the archive API, and close. Failures (SandboxError) are counted per operation.
The samples go to benchmarks/results/sim_profile.json; `SimBackend(profile=...)` draws
from them (inverse CDF of the measured samples), so the simulated cluster waits as long
as this machine's engine did.

The model's per-call latency comes from benchmarks/results/policy_client.md (the vLLM
client on CPU, measured by `make bench-policy`): it is cited here, not re-measured.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

OUT = Path(__file__).parent / "results" / "sim_profile.json"

POLICY_CALL = {
    "source": "benchmarks/results/policy_client.md (make bench-policy, 2026-11-22): whole "
              "act() call of the vLLM client against vLLM on CPU, 64 calls",
    "p50_s": 0.58072, "p95_s": 2.08303, "mean_s": 0.7409,
}


def measure(n: int, commands: int) -> dict:
    from sandbox import Limits, SandboxError, base_image, make_backend

    backend = make_backend("docker", run=f"scale-profile-{os.getpid()}")
    image = base_image()
    out: dict[str, list[float]] = {"start_s": [], "exec_s": [], "write_s": [], "read_s": [],
                                   "close_s": []}
    failures = {k: 0 for k in ("start", "exec", "close")}
    attempts = {k: 0 for k in ("start", "exec", "close")}
    for i in range(n):
        attempts["start"] += 1
        t = time.perf_counter()
        try:
            box = backend.start(image, Limits(timeout_s=30))
            box.exec("true")
        except SandboxError:
            failures["start"] += 1
            continue
        out["start_s"].append(time.perf_counter() - t)
        try:
            for j in range(commands):
                cmd = ("true", f"echo step{j} > /tmp/f{j % 4}", f"cat /tmp/f{j % 4}")[j % 3]
                attempts["exec"] += 1
                t = time.perf_counter()
                try:
                    box.exec(cmd)
                except SandboxError:
                    failures["exec"] += 1
                    continue
                out["exec_s"].append(time.perf_counter() - t)
            t = time.perf_counter()
            box.write_file("/tmp/answer.txt", f"word{i}\n")
            out["write_s"].append(time.perf_counter() - t)
            t = time.perf_counter()
            box.read_file("/tmp/answer.txt", max_bytes=4096)
            out["read_s"].append(time.perf_counter() - t)
        finally:
            attempts["close"] += 1
            t = time.perf_counter()
            try:
                box.close()
                out["close_s"].append(time.perf_counter() - t)
            except SandboxError:
                failures["close"] += 1
        print(f"{i + 1}/{n} start {out['start_s'][-1]:.3f} s", file=sys.stderr)
    summary = {k: {"n": len(v), "p50": statistics.median(v), "p90": _q(v, 0.9)}
               for k, v in out.items() if v}
    return {
        "measured_at": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": f"{os.cpu_count()} cores, {platform.system()} {platform.release()}",
        "load_avg_end": os.getloadavg(),
        "backend": "docker", "image": image,
        "how": f"{n} sandboxes one after the other; {commands} commands each "
               "(true / echo > file / cat), one archive write and read, close",
        "failures": failures, "attempts": attempts,
        "summary": summary,
        "samples": {k: [round(x, 6) for x in sorted(v)] for k, v in out.items()},
        "policy_call": POLICY_CALL,
    }


def _q(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=30, help="sandboxes to start")
    ap.add_argument("--commands", type=int, default=30, help="commands per sandbox")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    profile = measure(args.n, args.commands)
    args.out.write_text(json.dumps(profile, indent=1) + "\n")
    for k, v in profile["summary"].items():
        print(f"{k:8s} n={v['n']:4d} p50={v['p50'] * 1000:8.2f} ms p90={v['p90'] * 1000:8.2f} ms")
    print(f"failures {profile['failures']} of {profile['attempts']}; wrote {args.out}")


if __name__ == "__main__":
    main()
