"""`envfarm serve`: run the env server (see `orchestrator.serve`)."""

from __future__ import annotations

import os

import typer

from orchestrator.cli.console import console


def serve(
    host: str = typer.Option("127.0.0.1", help="Address to bind (0.0.0.0 only with --token)."),
    port: int = typer.Option(8770, help="Port to listen on."),
    token: str = typer.Option(None, envvar="ENVFARM_SERVE_TOKEN",
                              help="Bearer token clients must send."),
    idle_timeout: float = typer.Option(600.0, help="Seconds before an idle session is closed."),
    max_sessions: int = typer.Option(256, help="Open sessions at once."),
    max_request_bytes: int = typer.Option(4_000_000, help="Largest request body."),
    run: str = typer.Option(None, help="envfarm.run label of the sandboxes (for gc)."),
) -> None:
    """Serve the envs over HTTP: /v1/envs, /v1/sessions, /v1/sessions/{id}/step."""
    import uvicorn

    from orchestrator.serve import ServeConfig, create_app

    if host not in ("127.0.0.1", "localhost", "::1") and not token:
        raise typer.BadParameter("binding beyond loopback needs --token (or "
                                 "ENVFARM_SERVE_TOKEN): anyone reaching the port could run "
                                 "commands in sandboxes", param_hint="--host")
    config = ServeConfig(token=token, idle_timeout_s=idle_timeout, max_sessions=max_sessions,
                         max_request_bytes=max_request_bytes, run=run)
    console.print(f"envfarm serve on http://{host}:{port} (OpenAPI at /docs, pid {os.getpid()})")
    uvicorn.run(create_app(config), host=host, port=port, log_level="warning")
