"""What defines a rollout run (`RolloutConfig`, stored with it) and what the runner plans
and reports (`WorkItem`, `RunSummary`). Kept apart from the runner so the run's data
reads on one page."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from envs import status as st
from envs.quotas import QuotaSpec
from orchestrator.context import ContextConfig
from orchestrator.policy_spec import PolicySpec
from sandbox import BackendConfig


class RolloutConfig(BaseModel):
    """Everything that defines a run; stored with it, so `resume` needs only the run id."""

    model_config = ConfigDict(extra="forbid")

    env: str = Field(description="Env id or short name (envfarm/terminal-v0, terminal).")
    task_ids: list[str] | None = Field(None, description="Tasks to run; None: from the catalogue.")
    task_filter: dict[str, Any] = Field(
        default_factory=dict, description="Catalogue filter (repo, status, limit) when no task_ids.")
    policy: PolicySpec = Field(default_factory=PolicySpec, description="Who acts.")
    backend: BackendConfig | None = Field(
        None, description="Sandbox engine (docker, gvisor, podman, sim, ...); None: "
        "$ENVFARM_BACKEND or docker, resolved and stored when the run is created.")
    n: int = Field(1, ge=1, description="Samples per task (group size for GRPO-style advantages).")
    concurrency: int = Field(4, ge=1, description="Episodes in flight per worker.")
    workers: int = Field(1, ge=1, description="Ray actors (ignored by the thread executor).")
    executor: Literal["ray", "threads"] = Field("ray", description="Where episodes run.")
    ray_address: str | None = Field(None, description="Ray cluster address; None: local Ray.")
    ray_node_resource: str | None = Field(
        None, description="Custom Ray resource that marks sandbox worker nodes (cluster).")
    batch_wait_s: float = Field(
        0.25, ge=0, description="Ray: how long an actor holds a finished episode for more "
        "to join it in one reply (fewer driver calls per episode; slots refill that much "
        "later).")
    max_turns: int | None = Field(None, ge=1, description="Override of the env's turn limit.")
    max_attempts: int = Field(5, ge=1, description="Attempts per episode on infrastructure errors.")
    retry_backoff_s: float = Field(
        5.0, ge=0, description="First retry delay; doubles each attempt up to the cap. With "
        "the defaults an episode is retried over 75 s: an engine restart is ridden out.")
    retry_backoff_max_s: float = Field(60.0, ge=0, description="Cap of one retry delay.")
    engine_wait_s: float = Field(
        300.0, ge=0, description="While the engine does not answer, dispatch waits up to this "
        "long and failures cost no attempt (local runs).")
    stop_grace_s: float = Field(
        15.0, ge=0, description="After SIGINT/SIGTERM, how long running episodes may finish "
        "and be stored before their sandboxes are removed.")
    stall_report_s: float = Field(
        15.0, gt=0, description="Report when no episode has finished for this long.")
    env_kwargs: dict[str, Any] = Field(default_factory=dict, description="Env constructor args.")
    imports: list[str] = Field(default_factory=list, description="Modules that register envs.")
    seed: int = Field(0, description="Base seed; episode seed = seed + sample index.")
    skip_solved_or_hopeless: bool = Field(
        False, description="Dynamic sampling: skip tasks whose past pass rate is 0 or 1.")
    min_history: int = Field(4, ge=1, description="Past samples needed before a task is skipped.")
    max_tasks_per_repo: int | None = Field(None, ge=1, description="Per-source quota.")
    repo_priority: dict[str, int] = Field(
        default_factory=dict, description="Higher runs first; then grouped by image.")
    tool_quotas: dict[str, QuotaSpec] = Field(
        default_factory=dict, description="Caps on named tools/verifiers (e.g. browser), "
        "held across all workers of the run.")
    context: ContextConfig | None = Field(
        None, description="Summarize and archive long histories (off by default).")
    warm_pool_size: int = Field(
        0, ge=0, description="Warm sandboxes kept per image and configuration in each worker.")
    prebuild_ahead: int = Field(
        0, ge=0, description="Images each worker builds ahead of its queue, in the "
        "background while episodes run (env.prepare_image); 0: each is built when its "
        "first episode starts.")
    image_budget_gb: float | None = Field(
        None, gt=0, description="Disk budget for the images each worker builds ahead: "
        "with prebuild_ahead, each build is followed by LRU eviction among them down to "
        "it (never an image in use or one the queue needs next); None: no eviction.")

    def retry_delay_s(self, attempt: int) -> float:
        """The delay before attempt `attempt + 1`."""
        return min(self.retry_backoff_s * 2 ** (attempt - 1), self.retry_backoff_max_s)


@dataclass
class WorkItem:
    task_id: str
    sample_index: int
    image_key: str = ""
    priority: int = 0
    attempt: int = 1
    not_before: float = 0.0


@dataclass
class RunSummary:
    run_id: str
    stored: int = 0
    retried: int = 0
    skipped: int = 0
    elapsed_s: float = 0.0
    statuses: dict[str, int] = field(default_factory=dict)
    interrupted: str | None = None
    """The signal that stopped the run (SIGINT, SIGTERM), or None when it ran to the end."""
    unfinished: int = 0
    """Episodes not stored because the run was interrupted (run them with --resume)."""
    sandboxes_removed: int = 0

    @property
    def all_failed(self) -> bool:
        """Whether episodes were stored and none has a reward (all task or infra errors)."""
        return bool(self.statuses) and all(s in st.NOT_SCORED for s in self.statuses)
