"""The farm's main job on the embedded default (`make demo`, `envfarm demo`).

Local Ray, a SQLite store, Docker sandboxes: the oracle policy over the bundled example
tasks of every env kind, then the tiny model through a real vLLM server when
`.venv-vllm` exists, then the real model (SmolLM2, `orchestrator.demo_model`) sampling
groups on the tasks it has a chance at, then exports, then the summary tables.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

from rich.table import Table

from orchestrator.cli.console import console
from orchestrator.export import ExportFilter, export
from orchestrator.policy_spec import PolicySpec
from orchestrator.runner import RolloutConfig, RolloutRunner
from orchestrator.store import Store

_TERMINAL_EXAMPLE = Path(__file__).resolve().parents[1] / "envs" / "terminal" / "example"

EXAMPLES: dict[str, list[str]] = {
    "echo": ["echo-hello", "echo-farm"],
    "terminal": ["harbor/hello-file"],
    "general": ["search-1-1-d2-o0", "apps-shop-1"],
    "webdev": ["counter", "todo-list"],
    "swe": ["envfarm__wordstats-1"],
}
"""Bundled example tasks per env: they need no catalogue and no network."""



def catalogue_examples(store_url: str, envs: list[str] | None = None) -> None:
    """Put the bundled terminal and SWE examples into the demo store's catalogue, where a
    rollout's preflight looks for tasks of catalogued kinds (a task id is never a folder
    path: catalogue.ids), as `envfarm tasks import-dir` / `tasks import` would."""
    from catalogue import Catalogue
    from envs.task_kinds import terminal_folder
    from swe_tasks.example import example_instance

    records = []
    if not envs or "terminal" in envs:
        records.append(terminal_folder(_TERMINAL_EXAMPLE / "hello-file"))
    if not envs or "swe" in envs:
        records.append(example_instance().to_task("swe_tasks.example"))
    if records:
        with Catalogue(store_url) as cat:
            cat.upsert(records)

ALL_STATUSES = ("ok", "agent_timeout", "max_turns", "context_exceeded")


@dataclass
class DemoRow:
    env: str
    policy: str
    run_id: str
    episodes: int
    statuses: dict[str, int]
    mean_reward: float | None
    per_min: float
    export: str


def _run(store: Store, env: str, tasks: list[str], policy: PolicySpec, out: Path, n: int,
         executor: str, **kwargs) -> DemoRow:
    config = RolloutConfig(env=env, task_ids=tasks, policy=policy, n=n, executor=executor,
                           concurrency=4, **kwargs)
    runner = RolloutRunner(config, store)
    console.rule(f"{env} · {policy.type} · {len(tasks)} task(s) × {n}")
    summary = runner.run()
    rewards = [e.reward for e in store.episodes(summary.run_id) if e.reward is not None]
    fmt = "verl" if policy.type == "vllm" else "jsonl"
    path = out / f"{env}-{policy.type}.{'parquet' if fmt == 'verl' else 'jsonl'}"
    report = export(store, summary.run_id, fmt, path, ExportFilter(statuses=ALL_STATUSES))
    total = sum(summary.statuses.values())
    return DemoRow(env, policy.type, summary.run_id, total, summary.statuses,
                   sum(rewards) / len(rewards) if rewards else None,
                   total / max(summary.elapsed_s, 1e-6) * 60, f"{path.name} ({report.rows})")


def run_demo(out: Path, *, envs: list[str] | None = None, n: int = 2, executor: str = "ray",
             with_model: bool = True, model_n: int = 8) -> list[DemoRow]:
    """Every part in turn, then the tables. Under `CI=true` a real model that is not
    installed fails the demo (SystemExit 1, after the other parts ran): CI runs the setup,
    and a silently missing part would hide a broken install."""
    from orchestrator import demo_model

    out.mkdir(parents=True, exist_ok=True)
    store = Store(f"sqlite:///{out / 'demo.db'}")
    rows: list[DemoRow] = []
    real: list[demo_model.ModelRow] = []
    missing: str | None = None
    started = time.monotonic()
    catalogue_examples(store.url, envs)
    try:
        for env, tasks in EXAMPLES.items():
            if envs and env not in envs:
                continue
            rows.append(_run(store, env, tasks, PolicySpec(type="oracle"), out, n, executor))
        if with_model:
            rows.extend(_model_rows(store, out, n, executor))
            missing = demo_model.missing()
            if missing:
                console.print(f"[yellow]real model: skipped, {missing}[/]")
            else:
                real, missing = _real_model(store, out, model_n, executor, envs)
                rows.extend(_as_demo_row(r) for r in real)
    finally:
        if executor == "ray":
            import ray

            ray.shutdown()
    _print(rows, time.monotonic() - started, store.url)
    if real:
        demo_model.print_table(real)
    if missing and demo_model.in_ci():
        raise SystemExit(f"CI=true: the real-model part must run: {missing}")
    return rows


def _real_model(store: Store, out: Path, n: int, executor: str, envs: list[str] | None):
    """The real-model runs, or none and why (a server that would not start is reported
    in one line, not a traceback, and the oracle parts keep their table)."""
    from orchestrator import demo_model
    from policies.local_server import ServerStartError

    try:
        return demo_model.run_real_model(store, out, n=n, executor=executor, envs=envs), None
    except ServerStartError as exc:
        console.print(f"[red]real model: vLLM did not start:[/] {str(exc)[-1500:]}")
        return [], f"vLLM did not start (log in {out})"


def _as_demo_row(r) -> DemoRow:
    return DemoRow(r.env, f"smollm2 {r.mode}", r.run_id, r.episodes, r.statuses, r.pass1,
                   r.per_min, r.export)


def _model_rows(store: Store, out: Path, n: int, executor: str) -> list[DemoRow]:
    from policies.local_server import LocalVLLMServer, vllm_python

    model_dir = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "tiny_model"
    if not vllm_python().exists() or not model_dir.is_dir():
        console.print("[yellow]vLLM not installed (.venv-vllm): skipping the model run[/]")
        return []
    trained = json.loads((model_dir / "tools.json").read_text())
    console.rule("starting the vLLM CPU server with the tiny model")
    with LocalVLLMServer(model_dir, max_model_len=2048) as server:
        policy = PolicySpec(type="vllm", urls=[server.url], tokenizer=str(model_dir),
                            max_tokens=300, tool_schemas=trained["tools"])
        env_kwargs = {"system_prompt": trained["system"],
                      "prompt": "Inspect the repository and run the tests."}
        return [_run(store, "echo", ["echo-model"], policy, out, n, executor,
                     env_kwargs=env_kwargs, max_turns=4)]


def _print(rows: list[DemoRow], elapsed_s: float, url: str) -> None:
    table = Table(title=f"envfarm demo · {elapsed_s:.0f} s",
                  caption=f"store {url} · exports beside it")
    for column in ("env", "policy", "episodes", "statuses", "reward", "per min", "export"):
        table.add_column(column, justify="right" if column in ("episodes", "reward",
                                                                "per min") else "left")
    for r in rows:
        statuses = ", ".join(f"{k} {v}" for k, v in sorted(r.statuses.items()))
        mean = "-" if r.mean_reward is None else f"{r.mean_reward:.2f}"
        table.add_row(r.env, r.policy, str(r.episodes), statuses, mean, f"{r.per_min:.1f}",
                      r.export)
    from orchestrator.demo_model import wide

    wide(120).print(table)
