"""Synthesis over many packages: the environment-setup rate and what each package yields.

`python benchmarks/synthesis_many.py [--sources FILE] [--max-candidates K]` runs, per source
of the list (pkg==version, one a line), the environment setup (`swe_tasks.synth.env_setup`:
discovered test requirements and collection, retried on what pytest names) and then
`swe_tasks.synth.synthesize` (what `envfarm swe synthesize` runs), and records whether its
environment built and its test suite ran green twice (the environment-setup success, MiMo's
~70% anchor), what setup tried, candidates judged, valid instances, duplicates, time and
the image's own disk. Resumable: a package already in the results JSONL is skipped (and
`synthesize` itself resumes candidates); `--render-only` rewrites the report from it.
The report is benchmarks/results/synthesis_many.md, with a line
`environment setup: K of N packages` and a projection of 120K instances from the rates.
Run it niced: Docker builds on a shared machine.
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
sys.path[:] = [str(ROOT), *(p for p in sys.path if Path(p or ".").resolve() != ROOT / "benchmarks")]

RESULTS = ROOT / "benchmarks" / "results"
SOURCES = RESULTS / "synthesis_many_sources.txt"
TARGET = 120_000


def _image_mb(tag: str) -> tuple[float, float]:
    """(the image's size, its layers above the envfarm base) in MB."""
    import docker
    from sandbox.images import base_image

    client = docker.from_env()
    size = client.images.get(tag).attrs["Size"]
    base = client.images.get(base_image(client)).attrs["Size"]
    return round(size / 1e6, 1), round((size - base) / 1e6, 1)


def _sites(files: dict[str, str]) -> int:
    """Mutation sites of the package (each a possible candidate)."""
    from swe_tasks.synth import STRATEGIES
    from swe_tasks.synth.candidates import _sites as sites

    return sum(len(v) for v in sites(files, STRATEGIES).values())


def baseline_only(src, setup, out: Path):
    """The two clean runs of the suite and nothing else (saved where `synthesize` finds
    them): whether the environment is green, when there is no time to judge candidates."""
    from sandbox import DockerBackend, Limits, WarmPool
    from swe_tasks.repo_spec import spec_for
    from swe_tasks.synth.env_setup import pseudo_instance
    from swe_tasks.synth.pipeline import _baseline
    from swe_tasks.synth.source import all_files

    spec = spec_for(pseudo_instance(src, setup.install_config))
    limits = Limits(cpus=1.0, memory_mb=2048, pids=1024, network=False, timeout_s=600)
    with WarmPool(DockerBackend(run="swe-synth"), setup.image, 1, limits, workdir="/testbed",
                  max_starting=1) as pool:
        return _baseline(out, setup.image, pool, spec, all_files(src))


def run_one(source: str, out_dir: Path, max_candidates: int, workers: int) -> dict:
    from sandbox.errors import InfraError, TaskError
    from swe_tasks.synth import SynthConfig, synthesize
    from swe_tasks.synth.env_setup import SetupFailed, set_up
    from swe_tasks.synth.source import prepare, source_files

    out = out_dir / f"{source.replace('==', '-')}.jsonl"
    t = time.monotonic()
    row: dict = {"source": source, "env_ok": False, "max_candidates": max_candidates}
    try:
        src = prepare(source)
        row["sites"] = _sites(source_files(src))
        setup = set_up(src, out)
        row.update(setup_s=round(time.monotonic() - t, 1), collected=setup.collected,
                   attempts=[vars(a) for a in setup.attempts], notes=setup.notes[:12])
        row["image_mb"], row["layer_mb"] = _image_mb(setup.image)
        if max_candidates == 0:
            base = baseline_only(src, setup, out)
            row.update(env_ok=True, stage="ok", image=setup.image, passing=len(base.passing),
                       total=base.total, judged=0, statuses={}, valid=0, duplicates=0,
                       candidate_s=0.0, wall_s=round(time.monotonic() - t, 1))
            return row
        report = synthesize(source, out, SynthConfig(max_candidates=max_candidates,
                                                     workers=workers))
    except SetupFailed as exc:
        row.update(stage=exc.stage, error=str(exc)[:300], attempts=[vars(a) for a in exc.attempts])
    except TaskError as exc:  # no source
        row.update(stage="source", error=f"{type(exc).__name__}: {exc}"[:300])
    except InfraError as exc:  # the clean suite did not run twice (or Docker failed)
        row.update(stage="baseline", error=f"{type(exc).__name__}: {exc}"[:300])
    except Exception as exc:  # noqa: BLE001 — recorded, the next package goes on
        row.update(stage="other", error=f"{type(exc).__name__}: {exc}"[:300],
                   trace=traceback.format_exc(limit=4)[-800:])
    else:
        statuses = dict(report.statuses)
        row.update(env_ok=True, stage="ok", image=report.image,
                   passing=len(report.baseline.passing), total=report.baseline.total,
                   judged=sum(statuses.values()), statuses=statuses,
                   valid=report.instances, duplicates=statuses.get("duplicate", 0),
                   candidate_s=round(sum(report.candidate_s) / max(1, len(report.candidate_s)), 1))
    row["wall_s"] = round(time.monotonic() - t, 1)
    return row


def prefetch_one(source: str, out_dir: Path) -> dict:
    """Environment setup only (image + collection, no baseline): run ahead of the full run
    from the end of the list, so the full run finds the setup done; a setup that fails
    is that package's final row (the full run would fail the same way)."""
    from sandbox.errors import TaskError
    from swe_tasks.synth.env_setup import SetupFailed, set_up
    from swe_tasks.synth.source import prepare

    t = time.monotonic()
    row: dict = {"source": source, "env_ok": False, "prefetch": True}
    try:
        setup = set_up(prepare(source), out_dir / f"{source.replace('==', '-')}.jsonl")
    except SetupFailed as exc:
        row.update(stage=exc.stage, error=str(exc)[:300], attempts=[vars(a) for a in exc.attempts])
    except TaskError as exc:
        row.update(stage="source", error=f"{type(exc).__name__}: {exc}"[:300])
    else:
        row.update(stage="collects", collected=setup.collected,
                   attempts=[vars(a) for a in setup.attempts])
    row["wall_s"] = round(time.monotonic() - t, 1)
    return row


def merged(rows: list[dict], prefetched: list[dict]) -> tuple[list[dict], list[dict]]:
    """(final rows, packages whose setup collects but the full run did not reach)."""
    full = {r["source"] for r in rows}
    extra = [r for r in prefetched if r["source"] not in full]
    ahead = {r["source"]: r for r in prefetched if r["stage"] == "collects"}
    for r in rows:  # a setup done ahead is part of that package's time
        if r["source"] in ahead and r.get("setup_s", 0) < ahead[r["source"]]["wall_s"]:
            r["wall_s"] += ahead[r["source"]]["wall_s"] - r.get("setup_s", 0)
            r["setup_s"] = ahead[r["source"]]["wall_s"]
    return rows + [r for r in extra if r["stage"] != "collects"], [
        r for r in extra if r["stage"] == "collects"]


def cause(row: dict) -> str:
    """One line: why a package's environment did not work."""
    tried = [a["change"] for a in row.get("attempts", [])]
    last = (row.get("attempts") or [{}])[-1].get("outcome", "")
    text = row.get("error", "").splitlines()[0] if row.get("error") else ""
    line = f"{row['stage']}: " + (last or text)
    if len(tried) > 1:
        line += f" (after {len(tried)} attempts: {'; '.join(tried[1:])})"
    return line.replace("|", "/")[:300]


def projection(rows: list[dict], workers: int) -> list[str]:
    """120K instances from the measured rates (the assumptions are printed with it)."""
    ok = [r for r in rows if r["env_ok"]]
    if not ok:
        return []
    p = len(ok) / len(rows)
    judged = sum(r["judged"] for r in ok)
    valid = sum(r["valid"] for r in ok)
    if not valid:
        return []
    v = valid / judged
    dup = sum(r["duplicates"] for r in ok) / max(1, judged)
    cand_s = sum(r["candidate_s"] * r["judged"] for r in ok) / max(1, judged)
    fixed_min = sum(r["wall_s"] - r["judged"] * r["candidate_s"] / workers
                    for r in ok) / 60 / len(ok)
    fail_min = sum(r["wall_s"] for r in rows if not r["env_ok"]) / 60 / max(
        1, len(rows) - len(ok))
    layer = sum(r["layer_mb"] for r in ok) / len(ok)
    caps = sorted(min(r["sites"] * v, r["passing"]) for r in ok)
    per_pkg = max(1.0, caps[len(caps) // 2])
    pkgs = TARGET / per_pkg
    tried = pkgs / p
    core_h = (TARGET / v * cand_s + pkgs * fixed_min * 60 + (tried - pkgs) * fail_min * 60) / 3600
    wall_min = sum(r["wall_s"] for r in ok if r["judged"]) / 60  # packages that judged
    return [
        "## Projection: 120,000 instances", "",
        ("From this run's rates. Assumptions: a package gives at most min(its mutation sites x "
         "the measured yield, its passing tests) unique instances (failing-test signatures "
         "saturate: one per passing test is the cap assumed); every candidate costs what it "
         "cost here, one sandbox core each; a package's fixed cost (setup, baseline) and a "
         "failed package's cost as measured here; one image per package version. Times come "
         "from a shared 2-core machine under load (see the header), so they are upper bounds."),
        "",
        f"- environment setup success: {p:.2f} ({len(ok)} of {len(rows)}); MiMo's anchor 0.70",
        f"- valid per candidate: {v:.2f} ({valid} of {judged}; duplicates {dup:.2f} of judged)",
        f"- sandbox time per candidate: {cand_s:.0f} s (the suite twice, in a fresh sandbox)",
        (f"- fixed cost per package (prepare, discover, build, probe, baseline): "
         f"{fixed_min:.1f} min; a failed package: {fail_min:.1f} min"),
        (f"- instances per package: median {per_pkg:.0f} (the cap above); wall time here "
         f"{wall_min / max(1, valid):.2f} min per valid instance at {workers} workers, over "
         "the packages that judged candidates"),
        f"- packages needed: {pkgs:,.0f} with a working environment, {tried:,.0f} to try",
        (f"- compute: {core_h:,.0f} core-hours ({core_h / 1000:.1f} h on 1,000 cores), "
         f"{TARGET / v:,.0f} candidates judged"),
        (f"- disk: {layer:.0f} MB per environment image above the shared base -> "
         f"{pkgs * layer / 1e3:,.1f} GB for {pkgs:,.0f} images"),
    ]


def _shown(path: Path) -> str:
    return str(path.resolve().relative_to(ROOT)) if path.resolve().is_relative_to(ROOT) \
        else str(path)


def render(rows: list[dict], planned: int, args: argparse.Namespace,
           collects: list[dict] | None = None) -> str:
    ok = [r for r in rows if r["env_ok"]]
    collects = collects or []
    caps = sorted({r.get("max_candidates", args.max_candidates) for r in rows}, reverse=True)
    cap = " or ".join(map(str, caps or [args.max_candidates]))
    if 0 in caps:
        cap += " (0: the environment and its two clean suite runs only, no candidates, when time ran out)"
    lines = ["# Synthesis over many packages", "",
             (f"`benchmarks/synthesis_many.py` over `{_shown(args.sources)}` "
              f"({planned} sources), at most {cap} candidates per package, "
              f"{args.workers} workers; updated {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}"
              f" (2 shared cores, load {os.getloadavg()[0]:.1f}). Environment setup by "
              "`swe_tasks.synth.env_setup`: test requirements and collection discovered, "
              "`pytest --collect-only` retried on what it names (at most 6 builds)."), "",
             f"environment setup: {len(ok)} of {len(rows)} packages", "",
             ("`built + green`: the image built, the tests collect offline, and the whole suite "
              "ran twice to a report (tests failing on the clean tree, e.g. those needing the "
              "internet, are left out of every instance). The list is pure-Python packages "
              "chosen by hand, so this rate is for such sdists, not for arbitrary repositories "
              "as MiMo's ~70% is."
              + (" Every failure here is an sdist that ships no tests."
                 if rows and all(r["stage"] == "no tests" for r in rows if not r["env_ok"])
                 else "")), ""]
    if len(rows) < planned:
        lines += [(f"Partial: {len(rows)} of the {planned} listed packages were tried before "
                   "the session's deadline; the run resumes where it stopped."), ""]
    if collects:
        lines += [(f"Set up ahead of the full run (image built, tests collect; the two "
                   f"baseline runs not yet made, so not counted above): {len(collects)} more: "
                   + ", ".join(f"{r['source']} ({r['collected']} tests, "
                               f"{len(r['attempts'])} builds)" for r in collects) + "."), ""]
    lines += [("| package | built + green | stage failed | setup attempts | tests passing | "
               "candidates | judged | valid | duplicates | image MB (own) | minutes |"),
              "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        ok_ = r["env_ok"]
        tests = f"{r['passing']}/{r['total']}" if ok_ else ""
        disk = f"{r['image_mb']:.0f} ({r['layer_mb']:.0f})" if "layer_mb" in r else ""
        lines.append(
            f"| {r['source']} | {'yes' if ok_ else 'no'} | {'' if ok_ else r.get('stage', '')} "
            f"| {len(r.get('attempts', [])) or ''} | "
            f"{tests} | {r.get('sites', '')} | "
            f"{r.get('judged', '')} | {r.get('valid', '')} | {r.get('duplicates', '')} | "
            f"{disk} | "
            f"{r['wall_s'] / 60:.1f} |")
    lines += ["", ("`candidates`: mutation sites of the package (candidates it could give); "
                   "`judged`: those drawn and judged here; `minutes`: setup (also when done "
                   "ahead), baseline and judging.")]
    failed = [r for r in rows if not r["env_ok"]]
    if failed:
        lines += ["", "Failures (one line each):"] + [f"- {r['source']}: {cause(r)}"
                                                       for r in failed]
    noted = [r for r in rows if r.get("note")]
    if noted:
        lines += ["", "Notes:"] + [f"- {r['source']}: {r['note']}" for r in noted]
    tried = [r for r in rows + collects if r.get("attempts")]
    if tried:
        lines += ["", ("What setup tried, per package (each build: the change -> what "
                       "`pytest --collect-only` said):")] + [
            f"- {r['source']}: " + " | ".join(f"{a['change']} -> {a['outcome']}"
                                              for a in r["attempts"]).replace("\n", " ")
            for r in tried]
    if ok:
        valid = sum(r.get("valid", 0) for r in ok)
        judged = sum(r.get("judged", 0) for r in ok)
        lines += ["", (f"Over the packages whose environment worked: {valid} valid of {judged} "
                       f"judged ({valid / max(1, judged):.2f} per candidate).")]
        lines += [""] + projection(rows, args.workers)
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sources", type=Path, default=SOURCES)
    ap.add_argument("--max-candidates", type=int, default=8)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out-dir", type=Path, default=Path("/tmp/envfarm-synthesis-many-setup"))
    ap.add_argument("--results", type=Path, default=RESULTS / "synthesis_many.jsonl")
    ap.add_argument("--report", type=Path, default=RESULTS / "synthesis_many.md")
    ap.add_argument("--render-only", action="store_true", help="Rewrite the report only.")
    ap.add_argument("--prefetch-setup", action="store_true",
                    help="Only set up environments, from the end of the list (run beside "
                    "the full run: it then finds them done).")
    ap.add_argument("--prefetched", type=Path, default=RESULTS / "synthesis_many_setup.jsonl")
    args = ap.parse_args()
    sources = [s.strip() for s in args.sources.read_text().splitlines()
               if s.strip() and not s.startswith("#")]
    args.out_dir.mkdir(parents=True, exist_ok=True)
    rows = [json.loads(line) for line in args.results.read_text().splitlines()
            if line.strip()] if args.results.exists() else []
    rows = list({r["source"]: r for r in rows if r["source"] in sources}.values())  # last wins
    done = {r["source"] for r in rows}
    pre = [json.loads(line) for line in args.prefetched.read_text().splitlines()
           if line.strip()] if args.prefetched.exists() else []
    if args.prefetch_setup:
        for source in reversed(sources):
            if source in done | {r["source"] for r in pre}:
                continue
            print(f"== setup {source}", flush=True)
            pre.append(prefetch_one(source, args.out_dir))
            print(json.dumps(pre[-1]), flush=True)
            with args.prefetched.open("a") as f:
                f.write(json.dumps(pre[-1]) + "\n")
        return
    done |= {r["source"] for r in pre if r["stage"] != "collects"}  # failed setups are final
    for source in ([] if args.render_only else sources):
        if source in done:
            continue
        print(f"== {source}", flush=True)
        row = run_one(source, args.out_dir, args.max_candidates, args.workers)
        print(json.dumps(row), flush=True)
        rows.append(row)
        with args.results.open("a") as f:
            f.write(json.dumps(row) + "\n")
        final, collects = _final(rows, args)
        args.report.write_text(render(final, len(sources), args, collects))
    final, collects = _final(rows, args)
    args.report.write_text(render(final, len(sources), args, collects))
    print(args.report.read_text())


def _final(rows: list[dict], args: argparse.Namespace) -> tuple[list[dict], list[dict]]:
    pre = [json.loads(line) for line in args.prefetched.read_text().splitlines()
           if line.strip()] if args.prefetched.exists() else []
    return merged(rows, pre)


if __name__ == "__main__":
    main()
