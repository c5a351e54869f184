"""One episode: an env and a policy taking turns until the env says it is over.

Everything that can go wrong outside the agent (the container died, the model server
is gone) ends as a record with status `infra_error` and no reward, for the runner to
retry; it is never a reward of 0. Token ids, loss mask and logprobs come from the
policy's `Conversation`, untouched.
"""

from __future__ import annotations

import socket
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any

import gymnasium

from envs import status as st
from orchestrator.context import ContextConfig, compact, context_size
from orchestrator.records import CallData, EpisodeRecord
from policies import Conversation, Policy, PolicyUnavailableError
from sandbox.errors import InfraError, TaskError

PolicyFactory = Callable[[Any, str], Policy]
"""Builds the episode's policy from the (unwrapped) env and the task id."""


def worker_name() -> str:
    return f"{socket.gethostname()}:{threading.current_thread().name}"


def run_episode(*, run_id: str, env_id: str, task_id: str, sample_index: int,
                make_policy: PolicyFactory, env_kwargs: dict[str, Any] | None = None,
                seed: int | None = None, max_turns: int | None = None,
                context: ContextConfig | None = None,
                tool_schemas: list[dict[str, Any]] | None = None) -> EpisodeRecord:
    """Run one episode to its end and return its record (never raises for infra)."""
    timings = {"reset_s": 0.0, "policy_s": 0.0, "env_s": 0.0}
    started = time.monotonic()
    record = EpisodeRecord(run_id=run_id, task_id=task_id, sample_index=sample_index,
                           env_id=env_id, status="infra_error", reward=None,
                           worker=worker_name())
    env = None
    conv: Conversation | None = None
    archive: list[dict[str, Any]] = []  # messages replaced by context summaries
    summaries = 0
    try:
        kwargs = dict(env_kwargs or {})
        if max_turns is not None:
            kwargs["max_turns"] = max_turns
        env = gymnasium.make(env_id, disable_env_checker=True, **kwargs)
        t = time.monotonic()
        messages, info = env.reset(seed=seed, options={"task_id": task_id})
        timings["reset_s"] = time.monotonic() - t
        policy = make_policy(env.unwrapped, task_id)
        tools = tool_schemas or info["tools"]
        conv = Conversation(messages=list(messages), tools=tools)
        step_info: dict[str, Any] = {}
        reward = 0.0
        while True:
            t = time.monotonic()
            turn = policy.act(conv, tools)
            timings["policy_s"] += time.monotonic() - t
            action: dict[str, Any] = turn.to_message()
            if turn.finish_reason == "length":
                action["finish_reason"] = "context_exceeded"
            t = time.monotonic()
            new, reward, terminated, truncated, step_info = env.step(action)
            timings["env_s"] += time.monotonic() - t
            conv.extend(new)
            if terminated or truncated:
                break
            if (context is not None and summaries < context.max_summaries
                    and context_size(conv) > context.trigger_tokens):
                summaries += 1
                t = time.monotonic()
                compact(env.unwrapped, policy, conv, tools, context, summaries, archive)
                timings["policy_s"] += time.monotonic() - t
        record.status = step_info.get("status", "ok")
        record.reward = None if record.status in st.NOT_SCORED else float(reward)
        record.reward_details = _jsonable(step_info.get("reward_details", {}))
        if summaries:
            record.reward_details["context_summaries"] = summaries
        record.error = step_info.get("error")
        record.num_turns = int(step_info.get("turn", 0))
    except TaskError as exc:  # a broken task or image: never retried, shown in the catalogue
        record.status = st.TASK_ERROR
        record.error = f"{type(exc).__name__}: {exc}"
        log = getattr(exc, "log", "")
        if log:
            record.reward_details = {"build_log_tail": log[-4000:]}
    except (InfraError, PolicyUnavailableError, ConnectionError) as exc:
        record.error = f"{type(exc).__name__}: {exc}"
    except Exception as exc:  # noqa: BLE001 — a bug must not kill the worker; stored with trace
        record.error = f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=8)}"
        record.status = "infra_error"
    finally:
        if env is not None:
            try:
                env.close()
            except Exception:  # noqa: BLE001 — cleanup failures must not hide the outcome
                pass
    if conv is not None:
        record.messages = _jsonable(archive + conv.messages)
        record.token_ids = list(conv.token_ids)
        record.loss_mask = list(conv.loss_mask)
        record.token_logprobs = list(conv.token_logprobs)
        record.prefix_consistent = conv.prefix_consistent
        record.calls = [CallData(list(c.prompt_ids), list(c.completion_ids), list(c.logprobs),
                                 c.finish_reason) for c in conv.calls]
    timings["total_s"] = time.monotonic() - started
    record.timings = {k: round(v, 4) for k, v in timings.items()}
    return record


def _jsonable(value: Any) -> Any:
    """Deep copy into JSON types (tuples to lists, unknown objects to str)."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)
