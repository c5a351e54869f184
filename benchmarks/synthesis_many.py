"""Synthesis over many packages: the environment-setup rate and what each package yields.

`python benchmarks/synthesis_many.py [--sources FILE] [--max-candidates K]` runs
`swe_tasks.synth.synthesize` (what `envfarm swe synthesize` runs) over each source of the
list (pkg==version, one a line), one after the other, and records per package whether its
environment built and its test suite ran green twice (the environment-setup success, MiMo's
~70% anchor), candidates judged, valid instances, duplicates and time. Resumable: a package
already in the results JSONL is skipped (and `synthesize` itself resumes candidates).
The report, rewritten after every package, is benchmarks/results/synthesis_many.md, with a
line `environment setup: K of N packages`. Run it niced: Docker builds on a shared machine.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

RESULTS = ROOT / "benchmarks" / "results"
SOURCES = RESULTS / "synthesis_many_sources.txt"


def run_one(source: str, out_dir: Path, max_candidates: int, workers: int) -> dict:
    from sandbox.errors import InfraError, TaskError
    from swe_tasks.synth import SynthConfig, synthesize

    name = source.replace("==", "-")
    out = out_dir / f"{name}.jsonl"
    t = time.monotonic()
    row: dict = {"source": source, "env_ok": False}
    try:
        report = synthesize(source, out, SynthConfig(max_candidates=max_candidates,
                                                     workers=workers))
    except TaskError as exc:  # no source, or the image would not build
        row.update(stage="environment", error=f"{type(exc).__name__}: {exc}"[:300])
    except InfraError as exc:  # the clean suite did not run (or Docker failed)
        row.update(stage="test suite", error=f"{type(exc).__name__}: {exc}"[:300])
    except Exception as exc:  # noqa: BLE001 — recorded, the next package goes on
        row.update(stage="other", error=f"{type(exc).__name__}: {exc}"[:300],
                   trace=traceback.format_exc(limit=4)[-800:])
    else:
        statuses = dict(report.statuses)
        row.update(env_ok=True, stage="ok", image=report.image,
                   baseline_tests=len(getattr(report.baseline, "passing", []) or []),
                   judged=sum(statuses.values()), statuses=statuses,
                   valid=report.instances, duplicates=statuses.get("duplicate", 0))
    row["wall_s"] = round(time.monotonic() - t, 1)
    return row


def render(rows: list[dict], planned: int, args: argparse.Namespace) -> str:
    ok = [r for r in rows if r["env_ok"]]
    lines = ["# Synthesis over many packages", "",
             (f"`benchmarks/synthesis_many.py` over `{args.sources.relative_to(ROOT)}` "
             f"({planned} sources), at most {args.max_candidates} candidates per package, "
             f"{args.workers} workers; updated {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}"
             f" (2 shared cores, load {os.getloadavg()[0]:.1f})."), "",
             f"environment setup: {len(ok)} of {len(rows)} packages", ""]
    if len(rows) < planned:
        lines += [(f"Partial: {len(rows)} of the {planned} listed packages were tried before "
                  "the session's deadline; the run resumes where it stopped."), ""]
    lines += [("| package | environment + green suite | stage failed | judged | valid | "
              "duplicates | minutes |"), "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['source']} | {'yes' if r['env_ok'] else 'no'} | "
                     f"{'' if r['env_ok'] else r.get('stage', '')} | {r.get('judged', '')} | "
                     f"{r.get('valid', '')} | {r.get('duplicates', '')} | "
                     f"{r['wall_s'] / 60:.1f} |")
    failed = [r for r in rows if not r["env_ok"]]
    if failed:
        lines += ["", "Failures:"] + [f"- {r['source']}: {r.get('error', '')}" for r in failed]
    if ok:
        valid = sum(r.get("valid", 0) for r in ok)
        judged = sum(r.get("judged", 0) for r in ok)
        lines += ["", (f"Over the packages whose environment worked: {valid} valid of {judged} "
                  f"judged ({valid / max(1, judged):.2f} per candidate).")]
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sources", type=Path, default=SOURCES)
    ap.add_argument("--max-candidates", type=int, default=8)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out-dir", type=Path, default=Path("/tmp/envfarm-synthesis-many"))
    ap.add_argument("--results", type=Path, default=RESULTS / "synthesis_many.jsonl")
    ap.add_argument("--report", type=Path, default=RESULTS / "synthesis_many.md")
    args = ap.parse_args()
    sources = [s.strip() for s in args.sources.read_text().splitlines()
               if s.strip() and not s.startswith("#")]
    args.out_dir.mkdir(parents=True, exist_ok=True)
    rows = [json.loads(line) for line in args.results.read_text().splitlines()
            if line.strip()] if args.results.exists() else []
    done = {r["source"] for r in rows}
    for source in sources:
        if source in done:
            continue
        print(f"== {source}", flush=True)
        row = run_one(source, args.out_dir, args.max_candidates, args.workers)
        print(json.dumps(row), flush=True)
        rows.append(row)
        with args.results.open("a") as f:
            f.write(json.dumps(row) + "\n")
        args.report.write_text(render(rows, len(sources), args))
    args.report.write_text(render(rows, len(sources), args))
    print(args.report.read_text())


if __name__ == "__main__":
    main()
