"""Image affinity, build-ahead and eviction, measured on a simulated schedule.

`python benchmarks/scale_images.py` draws a catalogue of environment images whose build
seconds and sizes are the ones measured here (benchmarks/results/swebench_validation.md,
"Environment images": 18 SWE-bench repository images built on this machine, own layer
size and build time), spreads episodes over them Zipf-like, and replays the schedule
through orchestrator.image_schedule.simulate for each policy. Appends a section to
benchmarks/results/scale.md.
"""

from __future__ import annotations

import argparse
import math
import random
import re
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from orchestrator.image_schedule import make_catalogue, simulate

MEASURED = ROOT / "benchmarks" / "results" / "swebench_validation.md"
RESULTS = ROOT / "benchmarks" / "results" / "scale.md"


def measured_images() -> list[tuple[float, float]]:
    """(build s, own MB) of every image in the validation results' image table."""
    rows = re.findall(r"^\| swe-[^|]+\| [\d.]+ \| (\d+) \| \d+ \| (\d+) \|$",
                      MEASURED.read_text(), flags=re.MULTILINE)
    if not rows:
        raise SystemExit(f"no image table in {MEASURED}")
    return [(float(b), float(s)) for b, s in rows]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=1000)
    ap.add_argument("--episodes", type=int, default=30000)
    ap.add_argument("--nodes", type=int, default=8)
    ap.add_argument("--slots", type=int, default=16, help="episodes at once per node")
    ap.add_argument("--budget-mb", type=float, default=2000, help="image disk per node")
    ap.add_argument("--episode-median-s", type=float, default=180)
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    measured = measured_images()
    catalogue, schedule = make_catalogue(args.images, args.episodes, measured, seed=1)
    rng = random.Random(2)
    episode_s = [rng.lognormvariate(math.log(args.episode_median_s), 0.8)
                 for _ in schedule]
    runs = [("fifo", 0), ("grouped", 0), ("affinity", 0), ("affinity", 2), ("affinity", 8)]
    results = []
    t = time.perf_counter()
    for policy, ahead in runs:
        results.append(simulate(catalogue, schedule, policy=policy, nodes=args.nodes,
                                slots=args.slots, budget_mb=args.budget_mb,
                                episode_s=episode_s, prebuild_ahead=ahead))
    sim_s = time.perf_counter() - t
    fifo = results[0]
    mean_build = sum(b for b, _ in measured) / len(measured)
    mean_mb = sum(s for _, s in measured) / len(measured)
    lines = [(f"\n## Images: affinity, build-ahead, eviction — "
             f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}"), "",
             (f"Simulated schedule (orchestrator/image_schedule.py, {sim_s:.1f} s for all "
             f"policies): {args.images} images, {args.episodes} episodes (Zipf-like over "
             f"images, random arrival), {args.nodes} nodes × {args.slots} slots, "
             f"{args.budget_mb:.0f} MB of image disk per node; image build time and size "
             f"drawn from the {len(measured)} images built here "
             f"(swebench_validation.md: mean {mean_build:.0f} s, {mean_mb:.0f} MB own layer); "
             f"episode run time log-normal, median {args.episode_median_s:.0f} s (assumed)."),
             "", ("| policy | prebuild ahead | cache hit rate | builds | build h | "
             "build h saved vs FIFO | h episodes waited on builds | makespan h | "
             "evictions |"), "|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        lines.append(f"| {r.policy} | {r.prebuild_ahead} | {100 * r.hit_rate:.1f}% | "
                     f"{r.builds} | {r.build_s / 3600:.1f} | "
                     f"{(fifo.build_s - r.build_s) / 3600:.1f} "
                     f"({100 * (1 - r.build_s / fifo.build_s):.0f}%) | "
                     f"{r.waited_s / 3600:.1f} | {r.makespan_s / 3600:.2f} | {r.evictions} |")
    best = results[-1]
    lines += ["", (f"Affinity with build-ahead {best.prebuild_ahead}: hit rate "
              f"{100 * best.hit_rate:.1f}% vs {100 * fifo.hit_rate:.1f}% FIFO; "
              f"{(fifo.build_s - best.build_s) / 3600:.1f} build hours saved "
              f"({100 * (1 - best.build_s / fifo.build_s):.0f}%), episode wait on builds "
              f"{best.waited_s / 3600:.1f} h vs {fifo.waited_s / 3600:.1f} h.")]
    text = "\n".join(lines) + "\n"
    with args.out.open("a") as f:
        f.write(text)
    print(text)


if __name__ == "__main__":
    main()
