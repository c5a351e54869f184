"""Write benchmarks/results/train_demo.md from a finished `make train-demo` run.

Reads the run's folder (build/train_demo: curve.json, train-K.json, the PNG) and the
console log the run printed, and copies the plot next to the table, so the results
file quotes the run's own figures and nothing else.

    .venv/bin/python benchmarks/train_demo_report.py --run build/train_demo --log run.log
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", type=Path, required=True)
    ap.add_argument("--log", type=Path, required=True, help="the run's console output")
    ap.add_argument("--out", type=Path, default=HERE / "results" / "train_demo.md")
    ap.add_argument("--note", default="", help="a paragraph on the conditions of the run")
    args = ap.parse_args()
    points = json.loads((args.run / "curve.json").read_text())
    log = [ln for ln in args.log.read_text().splitlines() if ln.startswith("[train-demo")]
    tail = args.log.read_text().splitlines()
    curve_at = next(i for i, ln in enumerate(tail) if ln.startswith("iteration  held-out"))
    png = args.out.with_suffix(".png")
    shutil.copy(args.run / "curve.png", png)
    first = json.loads((args.run / "train-0.json").read_text())
    lines = [
        "# make train-demo: SmolLM2-135M learns envfarm/echo-v0 on CPU",
        "",
        f"Load average at the end of the run: {os.getloadavg()[0]:.1f} (2 cores). {args.note}",
        "",
        f"![pass rate per iteration]({png.name})",
        "",
        "## The run's curve and last line",
        "",
        "```",
        *tail[curve_at:],
        "```",
        "",
        "## Per iteration",
        "",
        ("| iteration | held-out | training rollouts | rows trained / exported | groups with "
        "signal | loss | update s | rollouts s |"),
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for p in points:
        held = f"{p['held_out']:.3f}" if "held_out" in p else "-"
        train = f"{p['train']:.3f}" if "train" in p else "-"
        rows = f"{p['t_train_rows']} / {p['rows']}" if "rows" in p else "-"
        groups = f"{p['t_groups_kept']} / {p['t_groups']}" if "t_groups" in p else "-"
        loss = f"{p['t_loss']:+.4f}" if "t_loss" in p else "-"
        upd = f"{p['t_train_s']:.0f}" if "t_train_s" in p else "-"
        roll = f"{p['rollout_s']:.0f}" if "rollout_s" in p else "-"
        lines.append(f"| {p['iteration']} | {held} | {train} | {rows} | {groups} | {loss} | "
                     f"{upd} | {roll} |")
    lines += [
        "",
        "## Training-inference mismatch before the first update",
        "",
        ("| model tokens | mean abs delta | max abs delta | grammar-forced tokens (mean) | "
        "free tokens (mean) |"),
        "|---:|---:|---:|---:|---:|",
        (f"| {first['mismatch_tokens']} | {first['mismatch_mean']:.3g} | "
        f"{first['mismatch_max']:.3g} | {first['mismatch_forced_mean']:.3g} "
        f"({first['mismatch_forced_tokens']}) | {first['mismatch_free_mean']:.3g} "
        f"({first['mismatch_free_tokens']}) |"),
        "",
        ("These turns are guided: vLLM applies the grammar's token mask to the logits before "
        "its sampler, so its logprobs (raw mode included) are renormalised over the tokens "
        "the grammar allows (a forced token comes back as 0.0), and the trainer's "
        "unmasked recomputation differs by design. That is why the PPO ratio is taken "
        "against the old logprobs the trainer recomputes (as verl's actor does). For "
        "unguided turns the same export and trainer agree with vLLM "
        "(tests/realmodel/test_end_to_end.py asserts mean < 1e-3)."),
        "",
        "## The run's log",
        "",
        "```",
        *log,
        "```",
        "",
    ]
    args.out.write_text("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
