"""`EpisodeJob`: what the runner hands a worker to run one episode, as typed data.

It crosses process lines (Ray pickles it) and is validated when built, so a worker never
unpacks an untyped dict. Everything an episode needs is here; nothing is read from the
driver's globals. `execute(job)` (orchestrator.executors) runs it.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from envs.quotas import QuotaSpec
from orchestrator.context import ContextConfig
from orchestrator.policy_spec import PolicySpec


class EpisodeJob(BaseModel):
    """One attempt of one episode: (run, task, sample index) and how to run it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    run_id: str = Field(description="The rollout run; also the sandboxes' `envfarm.run` label.")
    env_id: str = Field(description="Registered Gymnasium id, e.g. envfarm/terminal-v0.")
    task_id: str = Field(description="The task to reset the env with.")
    sample_index: int = Field(ge=0, description="Which of the run's n samples of the task.")
    attempt: int = Field(1, ge=1, description="1 for the first try; retries count up.")
    policy: PolicySpec = Field(description="Who acts; built fresh (or shared) per episode.")
    env_kwargs: dict[str, Any] = Field(
        default_factory=dict, description="Env constructor arguments (checked by preflight).")
    backend: dict[str, Any] | None = Field(
        None, description="Sandbox backend configuration (sandbox.BackendConfig as data); "
        "None: the env's default ($ENVFARM_BACKEND, else docker).")
    imports: list[str] = Field(default_factory=list, description="Modules that register envs.")
    max_turns: int | None = Field(None, ge=1, description="Override of the env's turn limit.")
    seed: int | None = Field(None, description="Episode seed.")
    warm_pool_size: int = Field(0, ge=0, description="Warm sandboxes per image in this worker.")
    quotas: dict[str, QuotaSpec] = Field(
        default_factory=dict, description="Caps on named tools, held across the run's workers.")
    quota_backend: Literal["ray", "threads"] = Field(
        "threads", description="Where quota slots are kept: a Ray actor or this process.")
    context: ContextConfig | None = Field(None, description="Context compaction, if on.")

    @property
    def sandbox_run(self) -> str:
        """The `envfarm.run` label this episode's sandboxes carry (an env's `run=` wins)."""
        return str(self.env_kwargs.get("run") or self.run_id)
