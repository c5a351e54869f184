"""`ToolEnv`: the shared multi-turn, tool-calling Gymnasium env that every envfarm env extends.

Contract (what trainers and the rollout runner may rely on):

- `reset(seed=None, options={"task_id": ...})` → `(messages, info)`; `info["tools"]` are
  the JSON schemas of the episode's tools, `info["task_id"]` the task. An
  `InfraError` from `reset` means: retry the episode (nothing was scored).
- `step(action)` takes one assistant turn (a dict with `content` / `tool_calls`, or raw
  MiMo text) and returns `(new_messages, reward, terminated, truncated, info)`:
  `new_messages` are the messages the env appended (the assistant turn itself is
  recorded in `env.messages` but not returned). The reward is 0.0 until the episode
  ends; then the verifier decides it.
- `terminated` = the agent finished (called `finish`); `truncated` = a limit or an
  outside failure ended it (turns, time, context, infrastructure). Never both.
- `info["status"]` is `running` until the end, then one of `envs.status.STATUSES`. An
  `infra_error` episode ends with reward 0.0 and must be retried or dropped, never
  trained on; `info["error"]` says what failed. A `task_error` is never retried. The
  agent's own doing (`tampered`, `agent_fault`) is scored 0 and kept.
- Malformed actions and bad tool arguments become error observations; the episode goes on.
- `close()` is idempotent; envs are context managers (from `gymnasium.Env`).

Subclasses implement `_begin` (start the sandbox, return the prompt and tools) and
`_verify` (score the finished episode); `_end` (release everything; idempotent)
closes `self.sandbox` unless overridden. Sandboxes come from `self.backend`, injected
(`backend=`) or built from configuration (`sandbox.make_backend`), never constructed
by an env.
"""

from __future__ import annotations

import copy
import time
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, SupportsFloat

import gymnasium
from pydantic import BaseModel, ConfigDict, Field

from envs import status as st
from envs.actions import parse_action
from envs.quotas import QUOTAS
from envs.spaces import AssistantActionSpace, MessageSpace
from envs.status import STATUSES
from envs.tools import Tool, ToolArgumentError
from sandbox.errors import AgentCaused, InfraError, TaskError

__all__ = ["STATUSES", "ToolEnv", "ToolEnvConfig", "VerifierResult", "truncate_middle"]


@dataclass
class VerifierResult:
    """A verifier's decision. `status` is "ok" for a verdict, "tampered" or
    "agent_fault" for the agent's doing (reward 0, evidence in `details`), "task_error"
    for a broken task, "infra_error" when the machinery failed (the reward is then
    meaningless, not 0)."""

    reward: float
    details: dict[str, Any] = field(default_factory=dict)
    status: str = "ok"
    error: str | None = None


class ToolEnvConfig(BaseModel):
    """Limits shared by every tool env."""

    model_config = ConfigDict(extra="forbid")

    max_turns: int = Field(50, ge=1, description="Assistant turns before the episode is truncated.")
    time_limit_s: float = Field(1800.0, gt=0, description="Agent wall time from reset to the end.")
    observation_limit_bytes: int = Field(
        16_000, ge=256, description="Bytes kept of one tool output: head and tail, marker between."
    )
    context_limit_chars: int | None = Field(
        None, description="Characters in the whole conversation before `context_exceeded`."
    )
    catalogue_url: str | None = Field(
        None, description="SQLAlchemy URL of the task catalogue (None: ENVFARM_STORE or default)."
    )


def truncate_middle(text: str, limit_bytes: int) -> str:
    """Keep the head and tail of `text` within `limit_bytes` (UTF-8), with a marker between."""
    data = text.encode("utf-8", errors="replace")
    if len(data) <= limit_bytes:
        return text
    half = max(0, (limit_bytes - 64) // 2)
    dropped = len(data) - 2 * half
    head = data[:half].decode("utf-8", errors="ignore")
    tail = data[len(data) - half:].decode("utf-8", errors="ignore")
    return f"{head}\n[... {dropped} bytes truncated ...]\n{tail}"


class ToolEnv(gymnasium.Env, ABC):
    """Base class: the turn loop, action parsing, tool dispatch, limits and status."""

    metadata: ClassVar[dict[str, Any]] = {"render_modes": []}
    tool_classes: ClassVar[tuple[type, ...]] = ()
    """The env's tools, declared once by each subclass: their names make `tool_names` (the
    action space samples them), `envfarm envs` lists their schemas."""
    tool_names: ClassVar[tuple[str, ...]] = ()
    """Derived from `tool_classes`; set it directly only for tools named at run time."""
    verifier_quota: ClassVar[str | None] = None
    """Quota held while the verifier runs (e.g. "browser"); see `envs.quotas`."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "tool_classes" in cls.__dict__ and "tool_names" not in cls.__dict__:
            cls.tool_names = tuple(tool.name for tool in cls.tool_classes)

    def __init__(self, *, max_turns: int = 50, time_limit_s: float = 1800.0,
                 observation_limit_bytes: int = 16_000, context_limit_chars: int | None = None,
                 catalogue_url: str | None = None, backend: Any = None,
                 run: str | None = None) -> None:
        self.config = ToolEnvConfig(
            max_turns=max_turns, time_limit_s=time_limit_s,
            observation_limit_bytes=observation_limit_bytes,
            context_limit_chars=context_limit_chars, catalogue_url=catalogue_url,
        )
        self.observation_space = MessageSpace()
        self.action_space = AssistantActionSpace(self.tool_names)
        self._backend = backend
        self._run = run
        self.sandbox: Any = None
        self.messages: list[dict[str, Any]] = []
        self.tools: dict[str, Tool] = {}
        self.tool_state: dict[str, Any] = {}
        self.final_answer: str | None = None
        self.task_id: str | None = None
        self.turn = 0
        self.status: str = "running"
        self.time_limit_s = self.config.time_limit_s
        """This episode's agent time limit; `_begin` may lower it (e.g. from the task file)."""
        self._started = 0.0
        self._done = True
        self._catalogue: Any = None

    # -- subclass hooks -------------------------------------------------------------------

    @abstractmethod
    def _begin(self, task_id: str | None, seed: int | None) -> tuple[list[dict], list[Tool]]:
        """Start the episode's sandbox; return the initial messages and the tools."""

    @abstractmethod
    def _verify(self) -> VerifierResult:
        """Score the finished episode (called once, before `_end`)."""

    def _end(self) -> None:
        """Release the episode's sandboxes. Idempotent; overrides call super()."""
        if self.sandbox is not None:
            sandbox, self.sandbox = self.sandbox, None
            sandbox.close()

    @property
    def backend(self) -> Any:
        """Where this env's sandboxes run: the injected backend, else the configured one
        (`ENVFARM_BACKEND`, default docker), labelled with the run (`run=`, else the
        rollout run of this thread)."""
        if self._backend is None:
            from sandbox import make_backend

            self._backend = make_backend(run=self._run)
        return self._backend

    @classmethod
    def prepare_image(cls, task_id: str, options: Mapping[str, Any]) -> str | None:
        """Build (or find cached) the image `task_id`'s episode will start from, without
        starting an episode, so a worker can build ahead of its queue
        (`envfarm rollout --prebuild-ahead N`). `options` are the env's constructor
        arguments (the job's env_kwargs). Returns the image tag, or None when the env has
        no per-task image (this default). Idempotent and safe from several processes:
        images are built by content. Raises TaskError when the task's image cannot be
        built (the episode would fail the same way)."""
        return None

    # -- Gymnasium API --------------------------------------------------------------------

    def reset(self, *, seed: int | None = None,
              options: dict[str, Any] | None = None) -> tuple[list[dict], dict[str, Any]]:
        super().reset(seed=seed)
        self._end()
        self.messages, self.tools, self.tool_state = [], {}, {}
        self.final_answer, self.turn, self.status = None, 0, "running"
        task_id = (options or {}).get("task_id")
        self.task_id = task_id  # `_begin` sets it when it picks the task itself
        self.time_limit_s, self._started = self.config.time_limit_s, 0.0
        try:
            messages, tools = self._begin(task_id, seed)
        except BaseException:
            self._end()
            raise
        self.tools = {t.name: t for t in tools}
        self.messages = copy.deepcopy(messages)
        self._started = time.monotonic()
        self._done = False
        info = {"tools": [t.schema() for t in tools], "task_id": self.task_id,
                "status": self.status}
        return copy.deepcopy(self.messages), info

    def step(self, action: Any) -> tuple[list[dict], SupportsFloat, bool, bool, dict[str, Any]]:
        if self._done:
            raise RuntimeError("the episode is over (or never began): call reset() first")
        self.turn += 1
        parsed = parse_action(action, self.turn, [t.schema() for t in self.tools.values()])
        assistant: dict[str, Any] = {"role": "assistant", "content": parsed.content}
        if parsed.reasoning:
            assistant["reasoning_content"] = parsed.reasoning
        if parsed.calls:
            assistant["tool_calls"] = [
                {"id": c.id, "type": "function",
                 "function": {"name": c.name, "arguments": c.arguments}} for c in parsed.calls
            ]
        self.messages.append(assistant)
        new: list[dict[str, Any]] = []
        finished, infra_error, agent_fault = False, None, None

        if parsed.finish_reason == "context_exceeded":
            return self._finish([], "context_exceeded", terminated=False)
        for error in parsed.errors:
            new.append({"role": "user", "content": f"Your last turn could not be parsed: {error}"})
        for call in parsed.calls:
            if finished or infra_error or agent_fault:
                new.append(self._tool_message(call.id, call.name,
                                              "[not run: the episode already ended]"))
                continue
            try:
                output, finished = self._dispatch(call.name, call.arguments, call.error)
            except AgentCaused as exc:
                agent_fault = str(exc)
                output = f"[the sandbox is unusable: {exc}]"
            except InfraError as exc:
                blamed = self._blame(exc)
                if isinstance(blamed, AgentCaused):
                    agent_fault = str(blamed)
                    output = f"[the sandbox is unusable: {blamed}]"
                else:
                    infra_error = f"{type(exc).__name__}: {exc}"
                    output = f"[infrastructure error: {exc}]"
            new.append(self._tool_message(call.id, call.name, output))
        if not parsed.calls and not parsed.errors:
            new.append({"role": "user", "content": (
                "No tool call found in your last turn. Call one of the tools "
                f"({', '.join(self.tools)}); call finish when you are done.")})
        self.messages.extend(new)

        if infra_error:
            self._end()
            return self._finish(new, st.INFRA_ERROR, terminated=False, error=infra_error,
                                verify=False)
        if agent_fault:
            self._end()
            return self._finish(new, st.AGENT_FAULT, terminated=False, error=agent_fault,
                                verify=False)
        if finished:
            return self._finish(new, "ok", terminated=True)
        if self.remaining_time_s() <= 0:
            return self._finish(new, "agent_timeout", terminated=False)
        if self.turn >= self.config.max_turns:
            return self._finish(new, "max_turns", terminated=False)
        limit = self.config.context_limit_chars
        if limit is not None and sum(len(str(m.get("content") or "")) for m in self.messages) > limit:
            return self._finish(new, "context_exceeded", terminated=False)
        info = {"status": self.status, "turn": self.turn, "task_id": self.task_id}
        return copy.deepcopy(new), 0.0, False, False, info

    def close(self) -> None:
        """Release everything; calling it twice has no effect."""
        self._done = True
        self._end()
        super().close()

    # -- helpers for subclasses and tools ---------------------------------------------------

    def remaining_time_s(self) -> float:
        """Agent time left in this episode (tools cap their timeouts by it)."""
        if not self._started:
            return self.time_limit_s
        return self.time_limit_s - (time.monotonic() - self._started)

    def catalogue(self) -> Any:
        """The task catalogue (opened on first use)."""
        if self._catalogue is None:
            from swe_tasks.catalogue import Catalogue

            self._catalogue = Catalogue(self.config.catalogue_url)
        return self._catalogue

    # -- internals --------------------------------------------------------------------------

    def _dispatch(self, name: str, arguments: dict | None, error: str | None) -> tuple[str, bool]:
        if error is not None:
            return f"Error: {error}", False
        tool = self.tools.get(name)
        if tool is None:
            return (f"Error: unknown tool {name!r}; available tools: {', '.join(self.tools)}",
                    False)
        try:
            with QUOTAS.hold(tool.quota):
                result = tool(arguments or {}, self)
        except ToolArgumentError as exc:
            return f"Error: {exc}", False
        return truncate_middle(result.output, self.config.observation_limit_bytes), result.finished

    def _blame(self, exc: InfraError) -> Exception:
        """Who caused a sandbox failure during a tool call: the engine answers and the
        container stopped by itself (its memory cap; under gVisor, `kill -9 1`) → the
        agent (`AgentCaused`); else the infrastructure (`exc`)."""
        from sandbox.errors import SandboxError

        if self.sandbox is None or not isinstance(exc, SandboxError):
            return exc
        from envs.integrity.freeze import blame

        return blame(exc, self.sandbox, self.backend)

    def _verify_guarded(self) -> VerifierResult:
        """Run the verifier; errors become results with the status of who must act."""
        try:
            with QUOTAS.hold(self.verifier_quota):
                return self._verify()
        except AgentCaused as exc:
            return VerifierResult(0.0, {}, st.AGENT_FAULT, str(exc))
        except TaskError as exc:
            return VerifierResult(0.0, {}, st.TASK_ERROR, f"{type(exc).__name__}: {exc}")
        except InfraError as exc:
            return VerifierResult(0.0, {}, st.INFRA_ERROR, f"{type(exc).__name__}: {exc}")

    @staticmethod
    def _tool_message(call_id: str, name: str, content: str) -> dict[str, Any]:
        return {"role": "tool", "tool_call_id": call_id, "name": name, "content": content}

    def _finish(self, new: list[dict], status: str, *, terminated: bool,
                error: str | None = None, verify: bool = True
                ) -> tuple[list[dict], float, bool, bool, dict[str, Any]]:
        """End the episode: verify (unless infra failed), release, build the final info."""
        elapsed = time.monotonic() - self._started
        reward, details = 0.0, {}
        if status == st.AGENT_FAULT:
            details = {"cause": error}
        if verify:
            result = self._verify_guarded()
            if result.status != st.OK:
                status, error = result.status, result.error or f"the verifier said {status}"
                terminated = False if status in st.NOT_SCORED else terminated
            reward, details = float(result.reward), dict(result.details)
            if status in (st.INFRA_ERROR, st.TASK_ERROR, st.TAMPERED, st.AGENT_FAULT):
                reward = 0.0
            if status in (st.TAMPERED, st.AGENT_FAULT):
                details.setdefault("cause", error)
        self._end()
        self.status, self._done = status, True
        info = {"status": status, "turn": self.turn, "task_id": self.task_id,
                "reward_details": details, "elapsed_s": round(elapsed, 3)}
        if error:
            info["error"] = error
        return copy.deepcopy(new), reward, terminated, not terminated, info
