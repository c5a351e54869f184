"""`envfarm demo`: the main job on the embedded default (see orchestrator.demo)."""

from __future__ import annotations

from pathlib import Path

import typer


def demo(
    out: Path = typer.Option(Path("out/demo"), help="Store, exports and artifacts go here."),
    env: list[str] = typer.Option([], "--env", help="Only these envs (repeatable)."),
    n: int = typer.Option(2, help="Samples per task."),
    executor: str = typer.Option("ray", help="ray | threads"),
    model: bool = typer.Option(True, help="Also run the tiny model and the real model "
                               "(SmolLM2) through vLLM if installed."),
    model_n: int = typer.Option(8, "--model-n", min=1,
                                help="Real model (SmolLM2): samples per task (the group)."),
) -> None:
    """Oracle rollouts over every env kind's examples, the tiny model, the real model's
    sampled groups, exports, summaries."""
    from orchestrator.demo import run_demo

    rows = run_demo(out, envs=env or None, n=n, executor=executor, with_model=model,
                    model_n=model_n)
    if any("infra_error" in r.statuses for r in rows):
        raise typer.Exit(1)
