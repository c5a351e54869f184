"""The live view of a rollout: episodes done / running / retried, status counts, mean
reward per env, throughput and ETA, redrawn as episodes finish; and warnings (a silent
model server, an engine that does not answer, an interruption) printed above it as
they happen."""

from __future__ import annotations

import collections
import logging
import time

from rich.console import Console, Group
from rich.live import Live
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from envs.status import INFRA_ERROR, OK, TASK_ERROR
from orchestrator.records import OK_STATUSES, EpisodeRecord

log = logging.getLogger("envfarm.rollout")


class RolloutProgress:
    """A context manager; `finished()`, `retried()` and `warn()` feed it. When disabled,
    nothing is drawn and warnings go to the `envfarm.rollout` logger."""

    def __init__(self, run_id: str, total: int, enabled: bool = True) -> None:
        self.run_id, self.total, self.enabled = run_id, total, enabled
        self.statuses: collections.Counter[str] = collections.Counter()
        self.rewards: dict[str, list[float]] = collections.defaultdict(list)
        self.retries = 0
        self.started = time.monotonic()
        self._console = Console(stderr=True, soft_wrap=True)
        self._bar = Progress(TextColumn("[bold]{task.description}"), BarColumn(),
                             MofNCompleteColumn(), TimeRemainingColumn())
        self._task = self._bar.add_task(run_id, total=total)
        self._live = Live(self._render(), console=self._console, refresh_per_second=4,
                          transient=False)

    def __enter__(self) -> RolloutProgress:  # noqa: PYI034
        if self.enabled:
            self._live.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.enabled:
            self._live.update(self._render())
            self._live.stop()
            if not self._console.is_terminal:
                self._console.line()  # a pipe gets the last frame without its newline

    def finished(self, record: EpisodeRecord) -> None:
        self.statuses[record.status] += 1
        if record.status in OK_STATUSES and record.reward is not None:
            self.rewards[record.env_id].append(record.reward)
        self._bar.advance(self._task)
        self._refresh()

    def retried(self, record: EpisodeRecord) -> None:
        self.retries += 1
        self._refresh()

    def warn(self, message: str) -> None:
        """A line above the live view (stderr), at once; a log warning when disabled."""
        if self.enabled:
            self._console.print(f"[yellow]{time.strftime('%H:%M:%S')} {message}[/]",
                                markup=True, highlight=False)
        else:
            log.warning("%s", message)

    def _refresh(self) -> None:
        if self.enabled:
            self._live.update(self._render())

    def _render(self) -> Group:
        done = sum(self.statuses.values())
        minutes = max(time.monotonic() - self.started, 1e-6) / 60
        table = Table(show_header=True, header_style="bold", box=None, pad_edge=False)
        for column in ("status", "episodes"):
            table.add_column(column)
        for status, count in sorted(self.statuses.items()):
            color = ("green" if status == OK else "red" if status in (INFRA_ERROR, TASK_ERROR)
                     else "yellow")
            table.add_row(f"[{color}]{status}[/]", str(count))
        table.add_row("retried (infra)", str(self.retries))
        for env_id, rewards in sorted(self.rewards.items()):
            table.add_row(f"mean reward {env_id}", f"{sum(rewards) / len(rewards):.3f}")
        table.add_row("throughput", f"{done / minutes:.1f} episodes/min")
        return Group(self._bar, table)
