"""`envfarm export RUN --format FORMAT --out PATH`; the formats and their help come from the
exporter registry (`orchestrator.export.EXPORTERS`)."""

from __future__ import annotations

from pathlib import Path

import typer

from orchestrator.cli.console import console


def help_text() -> str:
    from orchestrator.export import formats_help

    lines = formats_help().replace("\n", "\n\n")
    return ("Export a run's trajectories for a trainer (never infra_error or task_error "
            "episodes). An existing --out is replaced only when it is an earlier export of "
            f"the same format (or with --force); never the store.\n\nFormats:\n\n{lines}")


def _format_names() -> str:
    from orchestrator.export import EXPORTERS

    return " | ".join(EXPORTERS)


def export_cmd(
    run_id: str = typer.Argument(..., help="Run id (envfarm runs list)."),
    fmt: str = typer.Option("jsonl", "--format", help=_format_names()),
    out: Path = typer.Option(..., help="Output file."),
    status: list[str] = typer.Option(["ok"], "--status", help="Statuses to keep (repeatable)."),
    min_reward: float = typer.Option(None, help="Keep episodes with reward ≥ this."),
    max_reward: float = typer.Option(None, help="Keep episodes with reward ≤ this."),
    group_complete: bool = typer.Option(False, help="Only tasks with all n samples present."),
    force: bool = typer.Option(False, "--force", help="Replace an --out that is not an "
                               "earlier export of this format."),
    store: str = typer.Option(None, help="SQLAlchemy URL."),
) -> None:
    """Export a run's trajectories for a trainer."""
    from orchestrator.export import ExportFilter, export
    from orchestrator.store import Store

    report = export(Store(store), run_id, fmt, out,
                    ExportFilter(tuple(status), min_reward, max_reward, group_complete),
                    force=force)
    console.print(f"{report.rows} rows from {report.episodes} episodes → {report.path}")
    for reason, count in report.skipped.items():
        console.print(f"[yellow]skipped {count}: {reason}[/]")
