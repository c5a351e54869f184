"""The `envfarm` command line. Each verb group lives in its own module and is added here.

Every verb runs inside one error handler (`orchestrator.cli.errors.HandledGroup`): an
expected error is one line, `error: <what>; <fix>`, on stderr with a non-zero exit; the
traceback only with `--debug` (anywhere on the command line) or `ENVFARM_DEBUG=1`.
"""

from __future__ import annotations

import os
import sys

import typer

from orchestrator.cli.errors import DEBUG_ENV, HandledGroup

app = typer.Typer(
    name="envfarm",
    cls=HandledGroup,
    help="Verified multi-turn environments for agentic RL, sandboxed in Docker.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _root(debug: bool = typer.Option(
        False, "--debug", help="Show tracebacks of errors (also ENVFARM_DEBUG=1).")) -> None:
    """Verified multi-turn environments for agentic RL, sandboxed in Docker."""
    if debug:
        os.environ[DEBUG_ENV] = "1"


def _register() -> None:
    from orchestrator.cli import (
        cluster,
        demo_cmd,
        doctor,
        export_cmd,
        images,
        rollout,
        sandbox_cmd,
        serve_cmd,
        swe_cmd,
        tasks,
        teachers_cmd,
        view_cmd,
    )
    from orchestrator.cli import envs as envs_cmd

    app.command("doctor")(doctor.doctor)
    app.add_typer(images.app, name="images")
    app.add_typer(sandbox_cmd.app, name="sandbox")
    app.command("rollout")(rollout.rollout)
    app.add_typer(rollout.runs_app, name="runs")
    app.command("export", help=export_cmd.help_text())(export_cmd.export_cmd)
    app.command("demo")(demo_cmd.demo)
    app.add_typer(teachers_cmd.app, name="teachers")
    app.add_typer(tasks.app, name="tasks")
    app.add_typer(envs_cmd.app, name="envs")
    from orchestrator.cli import tasks_dir  # noqa: F401  (adds `tasks import-dir`)
    app.add_typer(cluster.app, name="cluster")
    app.add_typer(swe_cmd.app, name="swe")
    app.command("serve")(serve_cmd.serve)
    app.command("view")(view_cmd.view)


_register()


def main(argv: list[str] | None = None) -> None:
    """The console script. `--debug` is accepted anywhere (`envfarm rollout … --debug`)."""
    args = list(sys.argv[1:] if argv is None else argv)
    if "--debug" in args:
        args = [a for a in args if a != "--debug"]
        os.environ[DEBUG_ENV] = "1"
    app(args=args, prog_name="envfarm")
