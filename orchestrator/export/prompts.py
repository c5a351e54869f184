"""`prompts`: a run's tasks as a training dataset for ONLINE RL, read as it is by verl's
`RLHFDataset` and SkyRL's `PromptDataset`.

One row per task: `prompt` (the episode's opening messages: system and user) and the
columns both trainers route on: verl's `agent_name: envfarm` (envfarm's agent loop,
`orchestrator.adapters.verl_loop`), `data_source`, `reward_model`; SkyRL's `env_class`
(the envfarm env id, registered by `orchestrator.adapters.skyrl`); `extra_info` with
`env`, `task_id`, `index`. The trainer then samples fresh episodes (in process or through
`envfarm serve`); the reward is envfarm's verifier's. The `verl` format, by contrast,
holds finished episodes' tokens for offline use.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orchestrator.export.base import (
    MARK_KEY,
    Exporter,
    ExportFilter,
    ExportReport,
    parquet_mark,
    register_exporter,
)

if TYPE_CHECKING:
    from orchestrator.store import Store

AGENT_NAME = "envfarm"


@register_exporter
class PromptsExporter(Exporter):
    name = "prompts"
    help = ("a task per row: its opening messages as `prompt`, verl's `agent_name` and "
            "SkyRL's `env_class` (Parquet; online RL datasets for verl and SkyRL)")
    suffix = ".parquet"
    needs = "records"

    def write(self, store: Store, run_id: str, filt: ExportFilter, path: Path,
              report: ExportReport) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        rows: list[dict[str, Any]] = []
        seen: set[str] = set()
        for e in self.records(store, run_id, filt):
            report.episodes += 1
            if e.task_id in seen:
                continue
            seen.add(e.task_id)
            prompt = opening_messages(e.messages)
            if not prompt:
                report.skipped["no opening messages"] += 1
                continue
            rows.append(prompt_row(e.env_id, e.task_id, len(rows), prompt))
        table = pa.Table.from_pylist(rows, schema=prompts_schema())
        pq.write_table(table.replace_schema_metadata({MARK_KEY: self.name.encode()}), path)
        report.rows = len(rows)

    def recognizes(self, path: Path) -> bool:
        return parquet_mark(path, self.name, ("prompt", "agent_name", "extra_info"))


def opening_messages(messages: list[dict[str, Any]]) -> list[dict[str, str]]:
    """The messages before the first assistant turn, as role/content strings."""
    out = []
    for m in messages:
        if m.get("role") == "assistant":
            break
        content = m.get("content")
        out.append({"role": str(m.get("role")),
                    "content": content if isinstance(content, str) else json.dumps(content)})
    return out


def prompt_row(env_id: str, task_id: str, index: int,
               prompt: list[dict[str, str]]) -> dict[str, Any]:
    return {"data_source": env_id, "prompt": prompt, "agent_name": AGENT_NAME,
            "env_class": env_id,
            "ability": "agent",
            "reward_model": {"style": "envfarm", "ground_truth": ""},
            "extra_info": {"env": env_id, "task_id": task_id, "index": index}}


def prompts_schema() -> Any:
    import pyarrow as pa

    message = pa.struct([("role", pa.string()), ("content", pa.string())])
    return pa.schema([
        ("data_source", pa.string()), ("prompt", pa.list_(message)),
        ("agent_name", pa.string()), ("env_class", pa.string()), ("ability", pa.string()),
        ("reward_model", pa.struct([("style", pa.string()), ("ground_truth", pa.string())])),
        ("extra_info", pa.struct([("env", pa.string()), ("task_id", pa.string()),
                                  ("index", pa.int64())])),
    ])
