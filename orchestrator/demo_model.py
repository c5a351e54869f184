"""The demo's real-model part: SmolLM2 (installed by `make setup`) samples groups of
`n` episodes per task on the tasks a 135M model has a chance at, as an RL rollout
step would, and a table says what a trainer would get from them.

One local vLLM server serves every run (its start is part of the demo's time). Each
env runs with guided tool calls and its prompt preset (`policies.presets`, stored with
the run); echo runs once more unguided, so the parse-error rate is shown with and
without guidance. Per run: pass@1 and pass@n (the unbiased estimator over each task's
group), the parse-error rate of model turns, tokens and turns per episode, episodes per
minute, model time against env time, and dynamic sampling: groups whose rewards are all
0 or all 1 carry no GRPO advantage, so they are left out of the run's verl export and
counted. Every figure is computed from the store (`model_row`), so the table is what a
trainer reading the store would see.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from math import comb
from pathlib import Path
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table

from orchestrator.cli.console import console
from orchestrator.export import ExportFilter, export
from orchestrator.policy_spec import PolicySpec
from orchestrator.records import OK_STATUSES, EpisodeRecord
from orchestrator.runner import RolloutConfig, RolloutRunner
from orchestrator.store import Store
from policies.presets import SAMPLING, preset

MODEL = "smollm2"

TASKS: dict[str, list[str]] = {
    "echo": ["echo-lemon", "echo-falcon"],
    "terminal": ["harbor/hello-file"],
    "general": ["search-1-1-d1-o0", "search-5-1-d1-o0"],
}
"""Tasks the model has a chance at: one shell command, or a one-hop search answered
from the snippet (both shown once in the preset's worked example)."""

MAX_TURNS = {"echo": 3, "terminal": 3, "general": 4}
UNGUIDED = ("echo",)
"""Envs run a second time without guidance (the parse-error comparison)."""


def in_ci() -> bool:
    """`CI` set to anything but empty/0/false (as tests/conftest.py reads it)."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def missing() -> str | None:
    """What is not installed for the real model, with the fix; None when all is there."""
    from policies.local_server import vllm_python
    from policies.models import ModelNotInstalledError, model_dir

    if not vllm_python().exists():
        return f"vLLM venv missing ({vllm_python()}): run `make setup`"
    try:
        model_dir(MODEL)
    except ModelNotInstalledError as exc:
        return str(exc)
    return None


@dataclass
class ModelRow:
    """One run of the real model: what a trainer would get from its groups."""

    env: str
    mode: str
    """guided | unguided"""
    run_id: str
    tasks: int
    n: int
    episodes: int
    """Scored episodes (infra and task errors left out, as a trainer leaves them)."""
    pass1: float
    passn: float
    model_turns: int
    parse_errors: int
    tokens_per_episode: float
    """Tokens the model generated (loss mask 1), mean per episode."""
    turns_per_episode: float
    model_s: float
    """Mean seconds per episode waiting on the model (policy.act)."""
    env_s: float
    """Mean seconds per episode in the env (reset and steps: sandbox, tools, verifier)."""
    groups_kept: int
    groups_skipped: int
    """Groups all 0 or all 1: no advantage, left out of the export (dynamic sampling)."""
    statuses: dict[str, int] = field(default_factory=dict)
    elapsed_s: float = 0.0
    export: str = ""

    @property
    def parse_error_rate(self) -> float:
        return self.parse_errors / self.model_turns if self.model_turns else 0.0

    @property
    def per_min(self) -> float:
        return self.episodes / self.elapsed_s * 60 if self.elapsed_s else 0.0


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k of one task with `c` successes in `n` samples (Chen et al. 2021)."""
    if k > n:
        raise ValueError(f"pass@{k} needs at least {k} samples, got {n}")
    return 1.0 if n - c < k else 1.0 - comb(n - c, k) / comb(n, k)


def model_turns(ep: EpisodeRecord) -> list[dict[str, Any]]:
    """The assistant messages the model generated (few-shot examples have no `generation`)."""
    return [m for m in ep.messages if m.get("role") == "assistant" and "generation" in m]


def unparsed(message: dict[str, Any]) -> bool:
    """A model turn without one well-formed tool call (a parse error, prose, a cut turn)."""
    return bool(message.get("parse_errors")) or not message.get("tool_calls")


def groups(episodes: list[EpisodeRecord]) -> dict[str, list[float]]:
    by_task: dict[str, list[float]] = {}
    for ep in episodes:
        by_task.setdefault(ep.task_id, []).append(float(ep.reward or 0.0))
    return by_task


def informative(rewards: list[float]) -> bool:
    """Whether a group has a GRPO advantage at all (not all rewards equal)."""
    return len(set(rewards)) > 1


def model_row(store: Store, run_id: str, env: str, mode: str, n: int,
              elapsed_s: float) -> ModelRow:
    """The row of one run, from the store alone."""
    eps = [e for e in store.episodes(run_id, statuses=OK_STATUSES) if e.reward is not None]
    by_task = groups(eps)
    turns = [m for e in eps for m in model_turns(e)]
    count = max(len(eps), 1)
    k = min([n, *(len(r) for r in by_task.values())])
    return ModelRow(
        env=env, mode=mode, run_id=run_id, tasks=len(by_task), n=n, episodes=len(eps),
        pass1=_mean([pass_at_k(len(r), int(sum(r)), 1) for r in by_task.values()]),
        passn=_mean([pass_at_k(len(r), int(sum(r)), k) for r in by_task.values()]),
        model_turns=len(turns), parse_errors=sum(unparsed(m) for m in turns),
        tokens_per_episode=sum(sum(e.loss_mask) for e in eps) / count,
        turns_per_episode=sum(e.num_turns for e in eps) / count,
        model_s=sum(e.timings.get("policy_s", 0.0) for e in eps) / count,
        env_s=sum(e.timings.get("reset_s", 0.0) + e.timings.get("env_s", 0.0)
                  for e in eps) / count,
        groups_kept=sum(informative(r) for r in by_task.values()),
        groups_skipped=sum(not informative(r) for r in by_task.values()),
        statuses=store.status_counts(run_id), elapsed_s=elapsed_s)  # fmt: skip


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def spec(url: str, tokenizer: str | Path, env: str, *, guided: bool) -> PolicySpec:
    """The policy of every demo run: RL sampling, the env's preset, short turns."""
    return PolicySpec(type="vllm", urls=[url], model=MODEL, tokenizer=str(tokenizer),
                      guided=guided, temperature=SAMPLING["temperature"],
                      top_p=SAMPLING["top_p"], max_tokens=SAMPLING["max_tokens"],
                      timeout_s=300.0, **preset(env))


def run_group(store: Store, out: Path, url: str, tokenizer: str | Path, env: str,
              tasks: list[str], *, n: int, guided: bool, executor: str = "threads"
              ) -> ModelRow:
    """Sample `n` episodes per task, store them, export the informative groups."""
    mode = "guided" if guided else "unguided"
    console.rule(f"real model · {env} · {mode} · {len(tasks)} task(s) × {n}")
    config = RolloutConfig(env=env, task_ids=tasks, policy=spec(url, tokenizer, env, guided=guided),
                           n=n, concurrency=8, executor=executor, max_turns=MAX_TURNS.get(env, 3),
                           max_attempts=2)
    t0 = time.monotonic()
    summary = RolloutRunner(config, store).run()
    row = model_row(store, summary.run_id, env, mode, n, time.monotonic() - t0)
    row.export = _export_kept(store, row, out / f"real-{env}-{mode}.parquet")
    return row


def _export_kept(store: Store, row: ModelRow, path: Path) -> str:
    """The run's verl rows without the groups dynamic sampling skips."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    report = export(store, row.run_id, "verl", path, ExportFilter(statuses=OK_STATUSES))
    if not report.rows:
        return f"{path.name} (0)"
    eps = [e for e in store.episodes(row.run_id, statuses=OK_STATUSES, with_calls=False)
           if e.reward is not None]
    kept = [t for t, rewards in groups(eps).items() if informative(rewards)]
    table = pq.read_table(path)
    table = table.filter(pc.is_in(table["task_id"], value_set=_str_array(kept)))
    pq.write_table(table, path)
    return f"{path.name} ({table.num_rows})"


def _str_array(values: list[str]):
    import pyarrow as pa

    return pa.array(values, type=pa.string())


def run_real_model(store: Store, out: Path, *, n: int = 8, executor: str = "threads",
                   envs: list[str] | None = None, url: str | None = None,
                   tasks: dict[str, list[str]] | None = None,
                   unguided: tuple[str, ...] = UNGUIDED) -> list[ModelRow]:
    """Every env of `tasks` guided (and `unguided` ones again without guidance).

    With no `url` a local server for the installed model is started for these runs and
    stopped after them (its log kept in `out`); its start counts in the demo's time.

    Raises:
        ModelNotInstalledError, ServerStartError: the setup has not installed the model,
            or vLLM would not start (the message holds its log tail).
    """
    from policies.models import model_dir

    tasks = {e: t for e, t in (tasks or TASKS).items() if not envs or e in envs}
    if not tasks:
        return []
    folder = model_dir(MODEL)
    base = PolicySpec(type="vllm", local_model=MODEL, urls=[url] if url else [])
    rows = []
    t0 = time.monotonic()
    if not url:
        console.rule(f"starting vLLM CPU with {MODEL} (log in {out})")
    with base.served(log_dir=out) as served:
        ready_s = time.monotonic() - t0
        if not url:
            console.print(f"vLLM ready in {ready_s:.0f} s at {served.urls[0]}")
        for env, env_tasks in tasks.items():
            rows.append(run_group(store, out, served.urls[0], folder, env, env_tasks, n=n,
                                  guided=True, executor=executor))
            if env in unguided:
                rows.append(run_group(store, out, served.urls[0], folder, env, env_tasks[:1],
                                      n=n, guided=False, executor=executor))
    console.print(f"real-model part: {time.monotonic() - t0:.0f} s, of which the vLLM start "
                  f"{ready_s:.0f} s and the rollouts {sum(r.elapsed_s for r in rows):.0f} s")
    return rows


TABLE_WIDTH = 180
"""Printed at least this wide (a pipe is 80 columns: 13 columns would be cut to '…')."""


def wide(width: int) -> Console:
    """A console at least `width` columns wide, writing where the CLI's console does."""
    return Console(width=max(console.width, width), soft_wrap=True)


def table(rows: list[ModelRow]) -> Table:
    """The real-model table: one row per run."""
    n = max((r.n for r in rows), default=0)
    t = Table(title=f"real model · {MODEL} · groups of {n}", box=box.SIMPLE_HEAD,
              caption="pass@n: unbiased estimator per task group · parse err: model turns "
                      "without one well-formed tool call (guided: turns cut at the token "
                      "limit) · skip: groups all 0 or all 1 (no advantage), left out of the "
                      "export")
    columns = ("env", "mode", "tasks×n", "pass@1", f"pass@{n}", "parse err", "tokens/ep",
               "turns/ep", "ep/min", "model s/ep", "env s/ep", "groups kept/skip", "export")
    for c in columns:
        t.add_column(c, justify="left" if c in ("env", "mode", "export") else "right")
    for r in rows:
        t.add_row(r.env, r.mode, f"{r.tasks}×{r.n}", f"{r.pass1:.2f}", f"{r.passn:.2f}",
                  f"{r.parse_errors}/{r.model_turns} ({r.parse_error_rate:.0%})",
                  f"{r.tokens_per_episode:.1f}", f"{r.turns_per_episode:.1f}",
                  f"{r.per_min:.1f}", f"{r.model_s:.1f}", f"{r.env_s:.1f}",
                  f"{r.groups_kept}/{r.groups_skipped}", r.export)
    return t


def summary_lines(rows: list[ModelRow]) -> list[str]:
    """Parse errors with and without guidance, and what dynamic sampling skipped."""
    lines = []
    for mode in ("guided", "unguided"):
        turns = sum(r.model_turns for r in rows if r.mode == mode)
        errors = sum(r.parse_errors for r in rows if r.mode == mode)
        if turns:
            lines.append(f"parse errors {mode}: {errors}/{turns} model turns "
                         f"({errors / turns:.0%})")
    skipped = sum(r.groups_skipped for r in rows)
    total = skipped + sum(r.groups_kept for r in rows)
    lines.append(f"dynamic sampling: skipped {skipped} of {total} groups (all 0 or all 1)")
    return lines


def print_table(rows: list[ModelRow]) -> None:
    wide(TABLE_WIDTH).print(table(rows))
    for line in summary_lines(rows):
        console.print(line)
