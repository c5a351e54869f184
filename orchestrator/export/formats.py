"""The formats built from `EpisodeRecord`s: jsonl, atif, skyrl and torch (verl reads raw
token rows: `orchestrator.export.verl`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orchestrator.export.arrays import split_prompt, teacher_advantages, write_parquet
from orchestrator.export.base import (
    MARK_KEY,
    Exporter,
    ExportFilter,
    ExportReport,
    parquet_mark,
    register_exporter,
)
from orchestrator.records import EpisodeRecord

if TYPE_CHECKING:
    from orchestrator.store import Store


def _first_json_line(path: Path, limit: int = 64 << 20) -> Any:
    """The first line of `path` parsed as JSON, or None (not text, not JSON, too long)."""
    try:
        with path.open("rb") as fh:
            line = fh.readline(limit)
        return json.loads(line)
    except (OSError, ValueError):
        return None


class _JsonLines(Exporter):
    """A line per episode; `row` makes the line."""

    suffix = ".jsonl"

    def row(self, e: EpisodeRecord) -> dict[str, Any]:
        raise NotImplementedError

    def write(self, store: Store, run_id: str, filt: ExportFilter, path: Path,
              report: ExportReport) -> None:
        with path.open("w") as fh:
            for e in self.records(store, run_id, filt):
                report.episodes += 1
                fh.write(json.dumps(self.row(e)) + "\n")
                report.rows += 1


@register_exporter
class JsonlExporter(_JsonLines):
    name = "jsonl"
    help = "the whole stored record, a line per episode (anything else)"
    needs = "records+calls"

    def row(self, e: EpisodeRecord) -> dict[str, Any]:
        return e.to_dict()

    def recognizes(self, path: Path) -> bool:
        first = _first_json_line(path)
        return isinstance(first, dict) and {"run_id", "task_id", "sample_index", "status"} <= set(first)


@register_exporter
class AtifExporter(_JsonLines):
    name = "atif"
    help = "an episode as ATIF-v1.4 JSON, a line each (inspection, SFT, interchange)"
    needs = "records+calls"

    def row(self, e: EpisodeRecord) -> dict[str, Any]:
        return atif_trajectory(e)

    def recognizes(self, path: Path) -> bool:
        first = _first_json_line(path)
        return isinstance(first, dict) and str(first.get("schema_version", "")).startswith("ATIF")


@register_exporter
class SkyrlExporter(Exporter):
    name = "skyrl"
    help = ("a model call (step) per row, Parquet (histories that are not one prefix, "
            "e.g. context summaries)")
    suffix = ".parquet"
    needs = "records+calls"

    def write(self, store: Store, run_id: str, filt: ExportFilter, path: Path,
              report: ExportReport) -> None:
        rows: list[dict[str, Any]] = []
        for e in self.records(store, run_id, filt):
            report.episodes += 1
            if not e.token_ids:
                report.skipped["no token data"] += 1
                continue
            rows.extend(skyrl_rows(e))
        write_parquet(rows, path, {MARK_KEY: self.name.encode()})
        report.rows = len(rows)

    def recognizes(self, path: Path) -> bool:
        return parquet_mark(path, self.name, ("trajectory_ids", "prompt_token_ids"))


@register_exporter
class TorchExporter(Exporter):
    name = "torch"
    help = "padded tensors and masks in one torch.save file, loadable without envfarm"
    suffix = ".pt"
    needs = "records"

    def write(self, store: Store, run_id: str, filt: ExportFilter, path: Path,
              report: ExportReport) -> None:
        import torch

        tokened = []
        for e in self.records(store, run_id, filt):
            report.episodes += 1
            if not e.token_ids:
                report.skipped["no token data"] += 1
            else:
                tokened.append(e)
        torch.save(torch_batch(tokened), path)
        report.rows = len(tokened)

    def recognizes(self, path: Path) -> bool:
        import zipfile

        if not zipfile.is_zipfile(path):
            return False
        try:
            import torch

            batch = torch.load(path, weights_only=True, mmap=True)
        except Exception:  # noqa: BLE001 — not a torch file
            return False
        return isinstance(batch, dict) and {"input_ids", "loss_mask", "task_ids"} <= set(batch)


def skyrl_rows(e: EpisodeRecord) -> list[dict[str, Any]]:
    last = len(e.calls) - 1
    return [{
        "trajectory_ids": f"{e.run_id}:{e.task_id}:{e.sample_index}", "step": i,
        "prompt_token_ids": c.prompt_ids, "response_ids": c.completion_ids,
        "loss_masks": [1] * len(c.completion_ids), "rollout_logprobs": c.logprobs,
        "rewards": float(e.reward or 0.0) if i == last else 0.0, "is_last_step": i == last,
        "task_id": e.task_id, "env_id": e.env_id, "status": e.status,
    } for i, c in enumerate(e.calls)]


def atif_trajectory(e: EpisodeRecord) -> dict[str, Any]:
    """ATIF-v1.4: user/system messages are steps; a tool result is its call's observation."""
    steps: list[dict[str, Any]] = []
    calls = iter(e.calls)
    by_call: dict[str, dict[str, Any]] = {}
    for msg in e.messages:
        role = msg.get("role")
        if role == "tool":
            step = by_call.get(msg.get("tool_call_id", ""))
            target = step if step is not None else (steps[-1] if steps else None)
            if target is not None:
                target.setdefault("observation", {"results": []})["results"].append(
                    {"source_call_id": msg.get("tool_call_id"), "content": msg.get("content", "")})
            continue
        step: dict[str, Any] = {"step_id": len(steps) + 1,
                                "source": "agent" if role == "assistant" else role,
                                "message": msg.get("content") or ""}
        if role == "assistant":
            if msg.get("reasoning_content"):
                step["reasoning_content"] = msg["reasoning_content"]
            tool_calls = []
            for tc in msg.get("tool_calls") or []:
                fn = tc.get("function", tc)
                args = fn.get("arguments", {})
                tool_calls.append({"tool_call_id": tc.get("id"), "function_name": fn.get("name"),
                                   "arguments": json.loads(args) if isinstance(args, str) else args})
                by_call[tc.get("id", "")] = step
            if tool_calls:
                step["tool_calls"] = tool_calls
            call = next(calls, None) if e.calls else None
            if call is not None:
                step["metrics"] = {"prompt_tokens": len(call.prompt_ids),
                                   "completion_tokens": len(call.completion_ids),
                                   "prompt_token_ids": call.prompt_ids,
                                   "completion_token_ids": call.completion_ids,
                                   "logprobs": call.logprobs}
        steps.append(step)
    return {
        "schema_version": "ATIF-v1.4",
        "session_id": f"{e.run_id}:{e.task_id}:{e.sample_index}",
        "agent": {"name": "envfarm", "version": "0.1.0"},
        "steps": steps,
        "final_metrics": {
            "total_prompt_tokens": sum(len(c.prompt_ids) for c in e.calls),
            "total_completion_tokens": sum(len(c.completion_ids) for c in e.calls),
            "total_steps": len(steps),
            "extra": {"reward": e.reward, "status": e.status, "env_id": e.env_id,
                      "reward_details": e.reward_details},
        },
    }


def torch_batch(episodes: list[EpisodeRecord]) -> dict[str, Any]:
    """Right-padded tensors over the merged sequences; plain lists for ids."""
    import torch

    width = max((len(e.token_ids) for e in episodes), default=0)

    def pad(rows: list[list[Any]], value: float, dtype: Any) -> Any:
        out = torch.full((len(rows), width), value, dtype=dtype)
        for i, r in enumerate(rows):
            if len(r):
                out[i, : len(r)] = torch.tensor(r, dtype=dtype)
        return out

    batch: dict[str, Any] = {
        "input_ids": pad([e.token_ids for e in episodes], 0, torch.long),
        "attention_mask": pad([[1] * len(e.token_ids) for e in episodes], 0, torch.long),
        "loss_mask": pad([e.loss_mask for e in episodes], 0, torch.long),
        "logprobs": pad([[v or 0.0 for v in e.token_logprobs] for e in episodes], 0.0,
                        torch.float32),
        "prompt_lengths": torch.tensor(
            [split_prompt(e.loss_mask, len(e.token_ids)) for e in episodes], dtype=torch.long),
        "rewards": torch.tensor([float(e.reward or 0.0) for e in episodes]),
        "task_ids": [e.task_id for e in episodes],
        "sample_indices": [e.sample_index for e in episodes],
    }
    if episodes and all(e.teacher_logprobs is not None for e in episodes):
        batch["teacher_logprobs"] = pad([[v or 0.0 for v in e.teacher_logprobs] for e in episodes],
                                        0.0, torch.float32)
        batch["teacher_advantages"] = pad(
            [teacher_advantages(e.teacher_logprobs, e.token_logprobs, e.loss_mask)
             for e in episodes], 0.0, torch.float32)
    return batch
