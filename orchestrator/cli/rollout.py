"""`envfarm rollout` and `envfarm runs`: run episodes into the store, resume, inspect."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from orchestrator.cli.console import console

runs_app = typer.Typer(help="Stored runs.", no_args_is_help=True)


def rollout(
    env: str = typer.Option(None, "--env", help="Env id or short name (envfarm envs list)."),
    policy: str = typer.Option("oracle", help="oracle | noop | vllm | chat"),
    vllm_url: list[str] = typer.Option([], "--vllm-url", help="Model server URL (repeatable)."),
    model: str = typer.Option(None, help="Served model name."),
    tokenizer: str = typer.Option(None, help="Tokenizer dir for token-in/token-out."),
    local_model: str = typer.Option(None, "--local-model", help="Installed model to serve "
                                    "locally for the run (no --vllm-url needed)."),
    guided: bool = typer.Option(False, "--guided/--no-guided", help="Constrain turns to "
                                "well-formed tool calls (vLLM structured outputs)."),
    model_timeout: float = typer.Option(120.0, "--model-timeout", min=1.0,
                                        help="Seconds a model server may take per call."),
    task: list[str] = typer.Option([], "--task", help="Task id (repeatable); default: catalogue."),
    repo: str = typer.Option(None, help="Catalogue filter: repository."),
    status: str = typer.Option(None, help="Catalogue filter: validation status."),
    limit: int = typer.Option(None, min=1, help="Catalogue filter: at most this many tasks."),
    n: int = typer.Option(1, "--n", min=1, help="Samples per task."),
    concurrency: int = typer.Option(4, min=1, help="Episodes in flight per worker."),
    workers: int = typer.Option(1, min=1, help="Ray actors."),
    executor: str = typer.Option("ray", help="ray | threads"),
    backend: str = typer.Option(None, "--backend", help="Sandbox engine: docker | gvisor | "
                                "podman | sim ... (default $ENVFARM_BACKEND, else docker)."),
    ray_address: str = typer.Option(None, "--ray-address", help="Ray cluster; default local."),
    ray_node_resource: str = typer.Option(None, help="Ray resource marking sandbox workers."),
    warm_pool: int = typer.Option(0, min=0, help="Warm sandboxes per image in each worker."),
    prebuild_ahead: int = typer.Option(0, "--prebuild-ahead", min=0, help="Images each worker "
                                       "builds ahead of its queue while episodes run."),
    image_budget_gb: float = typer.Option(None, "--image-budget-gb", min=0.001, help="Disk "
                                          "budget for the images each worker builds ahead: "
                                          "LRU eviction among them after each build."),
    env_arg: list[str] = typer.Option([], "--env-arg", help="Env kwarg KEY=VALUE (JSON value)."),
    max_turns: int = typer.Option(None, min=1, help="Override the env's turn limit."),
    max_attempts: int = typer.Option(5, min=1, help="Attempts per episode on infrastructure "
                                     "errors (retried with backoff up to a minute apart)."),
    stop_grace: float = typer.Option(15.0, min=0.0, help="On Ctrl-C/SIGTERM, seconds running "
                                     "episodes may finish before their sandboxes go."),
    skip_solved: bool = typer.Option(False, help="Skip tasks whose pass rate is 0 or 1."),
    store: str = typer.Option(None, help="SQLAlchemy URL (default ENVFARM_STORE / envfarm.db)."),
    out: Path = typer.Option(None, help="Also export the run as JSONL into this directory."),
    resume: str = typer.Option(None, "--resume", help="Finish a stored run by id."),
) -> None:
    """Run episodes (oracle, noop or a model) and store trajectories and rewards.

    Checks first (env, its arguments, tasks, engine, model server) and creates no run when
    one fails. Ctrl-C or SIGTERM stops cleanly: finished episodes stay stored, the run's
    sandboxes are removed, and `--resume RUN_ID` finishes it. Exits non-zero when every
    episode failed."""
    from orchestrator.policy_spec import PolicySpec
    from orchestrator.runner import RolloutConfig, RolloutRunner
    from orchestrator.store import Store
    from sandbox import BackendConfig

    st = Store(store)
    if resume:
        runner = RolloutRunner.resume(resume, st)
    else:
        if not env:
            raise typer.BadParameter("--env is required (or --resume RUN_ID)")
        if executor not in ("ray", "threads"):
            raise typer.BadParameter(f"--executor is ray or threads, not {executor!r}")
        config = RolloutConfig(
            env=env, task_ids=task or None,
            task_filter={k: v for k, v in {"repo": repo, "status": status, "limit": limit}.items()
                         if v is not None},
            policy=PolicySpec(type=policy, urls=vllm_url, model=model, tokenizer=tokenizer,
                              local_model=local_model, guided=guided, timeout_s=model_timeout),
            backend=BackendConfig(type=backend) if backend else None,
            n=n, concurrency=concurrency, workers=workers, executor=executor,
            ray_address=ray_address, ray_node_resource=ray_node_resource,
            warm_pool_size=warm_pool, prebuild_ahead=prebuild_ahead,
            image_budget_gb=image_budget_gb, max_turns=max_turns, max_attempts=max_attempts,
            stop_grace_s=stop_grace, env_kwargs=_env_kwargs(env_arg),
            skip_solved_or_hopeless=skip_solved)
        runner = RolloutRunner(config, st)
    runner.check()
    console.print(f"run [bold]{runner.run_id}[/] → {st.url}")
    summary = runner.run()
    print_summary(st, summary.run_id, summary.elapsed_s, summary.retried)
    resume_cmd = f"envfarm rollout --resume {summary.run_id}" + (f" --store {store}" if store else "")
    if summary.interrupted:
        console.print(f"[yellow]interrupted ({summary.interrupted}): {summary.stored} episodes "
                      f"stored now, {summary.unfinished} not run; "
                      f"{summary.sandboxes_removed} sandboxes removed[/]")
        console.print(f"resume with: {resume_cmd}")
        raise typer.Exit(130 if summary.interrupted == "SIGINT" else 143)
    if out:
        from orchestrator.export import export

        report = export(st, summary.run_id, "jsonl", out / f"{summary.run_id}.jsonl")
        console.print(f"exported {report.rows} episodes to {report.path}")
    if summary.all_failed:
        from orchestrator.errors import RunFailed
        from orchestrator.runner import failure_causes

        total = sum(summary.statuses.values())
        raise RunFailed(f"every episode failed ({total}): {failure_causes(st, summary.run_id)}; "
                        f"fix the cause and run again (`{resume_cmd}` retries the infra_error ones)")


def _env_kwargs(pairs: list[str]) -> dict:
    import json

    kwargs = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise typer.BadParameter(f"--env-arg takes KEY=VALUE, got {pair!r}")
        try:
            kwargs[key] = json.loads(value)
        except json.JSONDecodeError:
            kwargs[key] = value
    return kwargs


def print_summary(st, run_id: str, elapsed_s: float | None = None, retried: int = 0) -> None:
    table = Table(title=f"run {run_id}")
    for column in ("env", "episodes", "ok", "mean reward"):
        table.add_column(column, justify="left" if column == "env" else "right")
    total = 0
    for row in st.reward_summary(run_id):
        total += row["episodes"]
        mean = "-" if row["mean_reward"] is None else f"{row['mean_reward']:.3f}"
        table.add_row(row["env"], str(row["episodes"]), str(row["ok"]), mean)
    console.print(table)
    counts = ", ".join(f"{k}: {v}" for k, v in sorted(st.status_counts(run_id).items()))
    line = f"statuses: {counts or 'none'} · infra retries: {retried}"
    if elapsed_s:
        line += f" · {total / elapsed_s * 60:.1f} episodes/min over {elapsed_s:.1f} s"
    console.print(line)


@runs_app.command("list")
def runs_list(store: str = typer.Option(None, help="SQLAlchemy URL.")) -> None:
    """Stored runs, newest first."""
    from orchestrator.store import Store

    st = Store(store)
    table = Table(title="runs")
    for column in ("run", "env", "policy", "state", "created", "episodes"):
        table.add_column(column)
    for run in st.list_runs():
        counts = st.status_counts(run["id"])
        table.add_row(run["id"], run["config"].get("env", ""),
                      run["config"].get("policy", {}).get("type", ""), run["state"],
                      str(run["created_at"])[:19], str(sum(counts.values())))
    console.print(table)


@runs_app.command("show")
def runs_show(run_id: str, store: str = typer.Option(None, help="SQLAlchemy URL.")) -> None:
    """Summary of one run: rewards per env and status counts."""
    from orchestrator.store import Store

    print_summary(Store(store), run_id)
