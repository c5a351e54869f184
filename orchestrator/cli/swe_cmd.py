"""`envfarm swe synthesize SOURCE --out FILE`: verified SWE instances by bug injection.

SOURCE is a PyPI sdist spec (`toolz==0.12.1`), a downloaded sdist (`./cachetools-5.5.0.tar.gz`,
`.zip`), a local folder, a local git repository or a git URL / GitHub slug; anything else is
one line naming what is accepted. `--sources FILE` runs a list of sources (one a line) into
the folder `--out`, with an environment-setup report per source (`setup_report.jsonl`;
see `swe_tasks.synth.many`). Each source's environment is set up first: test requirements
and collection discovered, retried on what pytest names (`swe_tasks.synth.env_setup`).
`--ray-address local` judges candidates as Ray tasks. The run is resumable: run the same command again and decided candidates are skipped
(see `swe_tasks.synth.pipeline`). `--catalogue` upserts the instances as kind-"swe" tasks,
marked valid (each was checked: its FAIL_TO_PASS tests fail twice on the buggy tree and pass
on the clean one, its PASS_TO_PASS tests pass on both).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from orchestrator.cli.console import console

app = typer.Typer(help="SWE task synthesis.", no_args_is_help=True)


@app.command("synthesize")
def synthesize_cmd(
    source: Annotated[str | None, typer.Argument(help="pkg==version (PyPI sdist), a local "
                                                 "sdist file or folder, a git repo path or "
                                                 "URL.")] = None,
    out: Annotated[Path, typer.Option("--out", help="Instances JSONL (appended; resumable); "
                                      "with --sources, a folder.")] = Path("synth.jsonl"),
    sources: Annotated[Path | None, typer.Option("--sources", help="A file of sources, one a "
                                                 "line: each into --out/<source>.jsonl.")] = None,
    max_candidates: int = typer.Option(200, help="How many candidate bugs to judge."),
    workers: int = typer.Option(2, help="Candidates judged at once (one fresh sandbox each)."),
    seed: int = typer.Option(0, help="Seed of the candidate order."),
    strategy: Annotated[list[str] | None, typer.Option("--strategy",
                                                       help="Only these strategies.")] = None,
    rev: str = typer.Option("HEAD", help="Revision of a git SOURCE."),
    catalogue: bool = typer.Option(False, "--catalogue", help="Upsert instances into the store."),
    store: str | None = typer.Option(None, "--store", help="SQLAlchemy URL of the catalogue."),
    model_url: str | None = typer.Option(None, help="OpenAI-compatible URL: model rewrites "
                                         "and issue texts (off without it)."),
    model: str = typer.Option("default", help="Model name at --model-url."),
    model_candidates: int = typer.Option(0, help="Whole-function model rewrites to try."),
    ray_address: str | None = typer.Option(None, help="Judge candidates as Ray tasks at this "
                                           "address (`local`: start one); default threads."),
) -> None:
    """Inject bugs into SOURCE, keep those its tests catch, write SWE-bench instances."""
    from swe_tasks.synth import ChatModel, SynthConfig, synthesize

    if (source is None) == (sources is None):
        raise typer.BadParameter("give one SOURCE or --sources FILE")
    config = SynthConfig(max_candidates=max_candidates, workers=workers, seed=seed,
                         strategies=strategy or None, rev=rev, model_candidates=model_candidates,
                         ray_address=ray_address)
    chat = ChatModel(model_url, model) if model_url else None
    if sources is not None:
        _many(sources, out, config, chat, store if catalogue else False)
        return
    columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn(), TextColumn("{task.fields[counts]}"))
    with Progress(*columns, console=console) as bar:
        task = bar.add_task("preparing (image, baseline)", total=None, counts="")

        def progress(done: int, total: int, counts: Counter) -> None:
            shown = " ".join(f"{k}={v}" for k, v in sorted(counts.items()))
            bar.update(task, description="judging candidates", completed=done, total=total,
                       counts=shown)

        report = synthesize(source, out, config, rewriter=chat, writer=chat, progress=progress)
    table = Table(title=f"synthesis of {source}")
    table.add_column("status")
    table.add_column("candidates", justify="right")
    for status, n in sorted(report.statuses.items(), key=lambda kv: -kv[1]):
        table.add_row(status, str(n))
    console.print(table)
    console.print(f"baseline: {len(report.baseline.passing)}/{report.baseline.total} tests pass "
                  f"({report.baseline.duration_s:.1f} s); image {report.image}")
    console.print(f"{report.instances} instances in {out}; judged {report.judged_now} now in "
                  f"{report.wall_s:.0f} s ({report.candidates_per_min:.1f}/min)")
    if catalogue:
        from swe_tasks.catalogue import Catalogue
        from swe_tasks.synth.pipeline import catalogue_records

        with Catalogue(store) as cat:
            n = cat.upsert(catalogue_records(out, source))
        console.print(f"{n} instances upserted into the catalogue")


def _many(sources: Path, out: Path, config, chat, store: str | None | bool) -> None:
    """--sources: every source into the folder `out`, then the setup table; with
    --catalogue (`store` not False) every source's instances upserted."""
    from swe_tasks.synth.many import read_sources, synthesize_many

    listed = read_sources(sources)

    def said(row) -> None:
        state = "ok" if row.env_ok else f"failed at {row.stage}"
        console.print(f"{row.source}: {state}; {row.instances} instances, {row.judged_now} "
                      f"judged now, {row.wall_s:.0f} s")

    rows = synthesize_many(listed, out, config, on_source=said, rewriter=chat, writer=chat)
    table = Table(title=f"environment setup: {sum(r.env_ok for r in rows)} of {len(rows)} "
                  "sources")
    for col in ("source", "env + green", "stage failed", "setup tries", "instances", "why"):
        table.add_column(col)
    for r in rows:
        why = (r.attempts[-1]["outcome"] if r.attempts else r.error)[:80] if not r.env_ok else ""
        table.add_row(r.source, "yes" if r.env_ok else "no", "" if r.env_ok else r.stage,
                      str(len(r.attempts)), str(r.instances), why)
    console.print(table)
    console.print(f"report: {out / 'setup_report.jsonl'}")
    if store is not False:
        from swe_tasks.catalogue import Catalogue
        from swe_tasks.synth.pipeline import catalogue_records

        with Catalogue(store or None) as cat:
            n = sum(cat.upsert(catalogue_records(Path(r.out), r.source)) for r in rows
                    if r.env_ok)
        console.print(f"{n} instances upserted into the catalogue")
