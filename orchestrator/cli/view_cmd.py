"""`envfarm view [--store URL] [--host H] [--port N]`: browse the trajectory store."""

from __future__ import annotations

from pathlib import Path

import typer

from orchestrator.cli.console import console


def view(
    store: str = typer.Option(None, help="SQLAlchemy URL (default ENVFARM_STORE / envfarm.db)."),
    host: str = typer.Option("127.0.0.1", help="Interface to listen on (127.0.0.1: this "
                             "machine only; the viewer has no login)."),
    port: int = typer.Option(8765, help="Port to listen on."),
    artifacts: list[Path] = typer.Option(
        [], "--artifacts", help="Folder whose files (web-dev videos, screenshots) may be "
        "served (repeatable; default $ENVFARM_ARTIFACTS or ./artifacts)."),
    tokenizer: str = typer.Option(
        None, help="Tokenizer dir for the token view (default: the run's policy tokenizer)."),
) -> None:
    """Open a read-only web view of runs, episodes, tokens and groups in the store."""
    import uvicorn

    from orchestrator.viewer import ViewerConfig, create_app

    settings = {"store": store, "tokenizer": tokenizer}
    if artifacts:
        settings["artifacts_roots"] = artifacts
    app = create_app(ViewerConfig(**settings))
    console.print(f"envfarm view on http://{host}:{port}/  (read-only; Ctrl-C stops)")
    uvicorn.run(app, host=host, port=port, log_level="warning")
