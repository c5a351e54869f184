"""Synthesis over a list of sources, with the environment-setup report a farm needs.

`synthesize_many(sources, out_dir, config)` runs `synthesize` per source (one after the
other; candidates are judged `config.workers` at a time, on Ray when
`config.ray_address` is set), writing `out_dir/<source>.jsonl` each, and keeps
`out_dir/setup_report.jsonl`: one line per source with whether its environment was set up
and its tests ran green, the stage that failed, what setup tried, candidates, instances
and time. A source that fails is recorded and the next goes on. Resumable as `synthesize`
is: a rerun skips decided candidates and reuses each source's setup and baseline.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from sandbox.errors import InfraError, TaskError
from swe_tasks.synth.env_setup import SetupFailed
from swe_tasks.synth.pipeline import SynthConfig, SynthReport, synthesize

REPORT = "setup_report.jsonl"


@dataclass
class SourceOutcome:
    """One source's line of the setup report."""

    source: str
    out: str
    env_ok: bool = False
    stage: str = "ok"
    error: str = ""
    attempts: list[dict] = field(default_factory=list)
    statuses: dict[str, int] = field(default_factory=dict)
    instances: int = 0
    judged_now: int = 0
    wall_s: float = 0.0


def read_sources(path: Path) -> list[str]:
    """Sources of a list file: one a line; blank lines and `#` comments skipped."""
    return [ln.split("#", 1)[0].strip() for ln in path.read_text().splitlines()
            if ln.split("#", 1)[0].strip()]


def out_path(out_dir: Path, source: str) -> Path:
    """The instances file of `source` in `out_dir` (a file-safe name)."""
    return out_dir / (re.sub(r"[^A-Za-z0-9._-]+", "-", source).strip("-.") + ".jsonl")


def synthesize_many(sources: list[str], out_dir: Path, config: SynthConfig | None = None,
                    on_source: Callable[[SourceOutcome], None] | None = None,
                    **kwargs) -> list[SourceOutcome]:
    """See the module docstring; `kwargs` go to `synthesize` (backend, rewriter, ...)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    rows: dict[str, SourceOutcome] = {}
    report = out_dir / REPORT
    if report.exists():
        for line in report.read_text().splitlines():
            row = SourceOutcome(**json.loads(line))
            rows[row.source] = row
    for source in sources:
        t0 = time.monotonic()
        row = SourceOutcome(source, str(out_path(out_dir, source)))
        try:
            done: SynthReport = synthesize(source, Path(row.out), config, **kwargs)
        except SetupFailed as exc:
            row.stage, row.error = exc.stage, str(exc)[:500]
            row.attempts = [asdict(a) for a in exc.attempts]
        except TaskError as exc:
            row.stage, row.error = "source", str(exc)[:500]
        except InfraError as exc:  # the clean suite did not run twice, or Docker failed
            row.stage, row.error = "baseline", str(exc)[:500]
        else:
            row.env_ok = True
            row.attempts = [asdict(a) for a in done.setup.attempts] if done.setup else []
            row.statuses, row.instances = dict(done.statuses), done.instances
            row.judged_now = done.judged_now
        row.wall_s = round(time.monotonic() - t0, 1)
        rows[source] = row
        report.write_text("".join(json.dumps(asdict(r)) + "\n" for r in rows.values()))
        if on_source:
            on_source(row)
    return [rows[s] for s in sources]
