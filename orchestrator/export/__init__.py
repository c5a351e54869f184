"""Export stored episodes in the formats trainers read. Each format is a small class in
this package, registered by name (`EXPORTERS`); the CLI builds `--format`'s help from it.

| format | one row is | for |
|---|---|---|
| `verl`  | an episode: `prompt_ids`, `response_ids`, `response_mask`, `response_logprobs`, `reward` (Parquet) | verl-style multi-turn RL |
| `skyrl` | a model call (step): `prompt_token_ids`, `response_ids`, `loss_masks`, `rollout_logprobs`, `rewards`, `trajectory_ids`, `is_last_step` (Parquet) | histories that are not one prefix (context summarization) |
| `atif`  | an episode as ATIF-v1.4 JSON (steps, tool calls, observations, token ids, logprobs) | inspection, SFT, interchange |
| `torch` | padded tensors + masks in one `torch.save` file, loadable without envfarm | custom trainers |
| `jsonl` | the whole stored record | anything else |

Token data is exported exactly as stored: no re-tokenization anywhere. Episodes that
have no token data (oracle or chat-API policies) are skipped by the token formats and
counted as such. `infra_error` and `task_error` episodes are never exported.

Safety (`export.guard`): the run must exist; `out` is never the store and never an
existing file that is not an earlier export of the same format (unless `force`); the
file appears only whole (a temporary sibling renamed into place).
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from orchestrator.errors import ConfigError
from orchestrator.export import formats as _formats  # noqa: F401 — registers the formats
from orchestrator.export import prompts as _prompts  # noqa: F401 — registers prompts
from orchestrator.export import verl as _verl  # noqa: F401 — registers verl
from orchestrator.export.arrays import split_prompt, teacher_advantages
from orchestrator.export.base import (
    EXPORTERS,
    Exporter,
    ExportFilter,
    ExportReport,
    exported_statuses,
    formats_help,
    get_exporter,
    register_exporter,
    select,
)
from orchestrator.export.formats import atif_trajectory, skyrl_rows, torch_batch
from orchestrator.export.guard import check_out

if TYPE_CHECKING:
    from orchestrator.store import Store

FORMATS = tuple(EXPORTERS)
"""The built-in format names (the registry may hold more: `EXPORTERS`)."""

__all__ = [
    "EXPORTERS", "FORMATS", "ExportFilter", "ExportReport", "Exporter", "atif_trajectory",
    "export", "formats_help", "get_exporter", "register_exporter", "select", "skyrl_rows",
    "split_prompt", "teacher_advantages", "torch_batch",
]


def export(store: Store, run_id: str, fmt: str, out: Path | str,
           filt: ExportFilter | None = None, *, force: bool = False) -> ExportReport:
    """Write the run's selected episodes to `out` in `fmt`; returns what was written.

    Raises ConfigError (nothing written) for an unknown format or run, an `out` that is
    the store, or an existing `out` that is not an earlier export of `fmt` (unless
    `force`). `out` appears only whole: a failed export (it raises) leaves no partial
    file and an earlier `out` as it was."""
    exporter = get_exporter(fmt)
    filt = filt or ExportFilter()
    try:
        store.get_run(run_id)
    except KeyError:
        raise ConfigError(f"no run {run_id!r} in {store.url}",
                          "list the stored runs with `envfarm runs list`") from None
    out = Path(out)
    check_out(out, exporter, store_url=store.url, force=force)
    exported_statuses(filt)  # an unknown or unexportable status fails before any file
    out.parent.mkdir(parents=True, exist_ok=True)
    report = ExportReport(out)
    with _atomic_path(out) as path:
        exporter.write(store, run_id, filt, path, report)
    return report


@contextmanager
def _atomic_path(out: Path) -> Iterator[Path]:
    """A temporary sibling of `out` to write; renamed onto `out` when the block succeeds,
    removed when it raises. Same directory, so the rename is atomic."""
    tmp = out.with_name(f".{out.name}.{secrets.token_hex(4)}.tmp")
    try:
        yield tmp
        tmp.replace(out)
    finally:
        tmp.unlink(missing_ok=True)
