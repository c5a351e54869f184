"""`envfarm serve` settings, as typed data."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class ServeConfig(BaseModel):
    """How the env server runs and what it allows."""

    model_config = ConfigDict(extra="forbid")

    token: str | None = Field(
        None, description="Bearer token every request must carry (None: no auth; bind to "
        "127.0.0.1 then).")
    idle_timeout_s: float = Field(
        600.0, gt=0, description="A session untouched this long is closed with its sandboxes.")
    max_sessions: int = Field(256, ge=1, description="Open sessions at once; more get HTTP 429.")
    max_request_bytes: int = Field(
        4_000_000, ge=1024, description="Largest request body; larger ones get HTTP 413.")
    reap_interval_s: float = Field(
        1.0, gt=0, description="How often idle sessions are looked for.")
    run: str | None = Field(
        None, description="The envfarm.run label of the sessions' sandboxes (default: "
        "serve-<random>), for `envfarm sandbox gc --run`.")
    env_defaults: dict[str, dict] = Field(
        default_factory=dict, description="Constructor arguments per env id, under the "
        "client's own `env_kwargs`.")
