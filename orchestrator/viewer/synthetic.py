"""Synthetic runs for the viewer's tests and benchmark: episodes shaped like real ones
(SWE diffs and test reports, terminal tests, web-dev checks, every status with its
cause, reasoning, tool calls, truncated observations, token arrays with loss masks,
logprobs and teacher scores), written through the store's own tables and packers.

`write_run` stores the first episodes one by one with `Store.save_episode` (the real
write path) and the rest in bulk inserts of the same rows, so 100K episodes take
seconds rather than the minutes of 100K transactions.
"""

from __future__ import annotations

import json
import random
import zlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from orchestrator.records import EpisodeRecord, pack_floats, pack_ids
from orchestrator.store import Store, episodes

ENVS = ("envfarm/swe-v0", "envfarm/terminal-v0", "envfarm/webdev-v0")
_WEIGHTS = {"ok": 70, "agent_timeout": 4, "max_turns": 8, "context_exceeded": 3,
            "tampered": 2, "agent_fault": 2, "task_error": 3, "infra_error": 8}
WORDS = ("parser", "overflow", "unicode", "timeout", "refactor", "cache", "index", "regex",
         "encoding", "flaky", "deadlock", "schema", "iterator", "decorator", "fixture")


def _patch(rng: random.Random, task: str) -> str:
    name = rng.choice(WORDS)
    return (f"diff --git a/src/{name}.py b/src/{name}.py\n--- a/src/{name}.py\n"
            f"+++ b/src/{name}.py\n@@ -10,7 +10,8 @@ def {name}(value):\n"
            f"     if value is None:\n-        return 0\n+        # {task}: handle empty input\n"
            f"+        return default_{name}()\n     return compute(value)\n")


def _details(rng: random.Random, env: str, status: str, reward: float | None,
             task: str) -> dict[str, Any]:
    if env.startswith("envfarm/swe"):
        passed = "PASSED" if reward else "FAILED"
        return {"patch": _patch(rng, task), "changed": ["src/x.py"], "reason": None if reward
                else "FAIL_TO_PASS tests still fail",
                "report": {"resolved": bool(reward), "FAIL_TO_PASS": {f"tests/test_{task}.py::"
                           f"test_{w}": passed for w in rng.sample(WORDS, 2)},
                           "PASS_TO_PASS": {f"tests/test_core.py::test_{w}": "PASSED"
                                            for w in rng.sample(WORDS, 3)},
                           "exit_code": 0 if reward else 1, "graded_by": "junit"},
                "tests_duration_s": round(rng.uniform(1, 30), 2)}
    if env.startswith("envfarm/terminal"):
        return {"format": "tb1", "exit_code": 0, "tests": {
            f"test_outputs.py::test_{w}": "PASSED" if reward else rng.choice(["FAILED", "PASSED"])
            for w in rng.sample(WORDS, 3)}}
    return {"checks": [{"name": n, "group": g, "weight": 1.0, "passed": bool(reward) or n == "loads",
                        "error": None if reward or n == "loads" else "expected 3 items, got 0",
                        "duration_ms": rng.randint(20, 900)}
                       for n, g in (("loads", "executability"), ("adds_item", "function"),
                                    ("fits_viewport", "layout"))],
            "checks_reward": reward}


def _messages(rng: random.Random, task: str, turns: int, marker: str | None) -> list[dict]:
    msgs: list[dict[str, Any]] = [
        {"role": "system", "content": "You are a coding agent. Use the tools."},
        {"role": "user", "content": f"Fix the bug in task {task}: the {rng.choice(WORDS)} "
                                    f"breaks on empty input."}]
    for t in range(turns):
        cmd = f"grep -rn {rng.choice(WORDS)} src/ | head -20"
        msgs.append({"role": "assistant", "content": "",
                     "reasoning_content": f"Turn {t}: I should look at the "
                                          f"{rng.choice(WORDS)} code first.",
                     "tool_calls": [{"id": f"call_{t}", "type": "function", "function": {
                         "name": "bash", "arguments": json.dumps({"command": cmd})}}]})
        out = "\n".join(f"src/{rng.choice(WORDS)}.py:{rng.randint(1, 400)}: "
                        f"def {rng.choice(WORDS)}(x):" for _ in range(6))
        if rng.random() < 0.1:
            out += "\n[... 48213 bytes truncated ...]\nsrc/tail.py:1: end"
        msgs.append({"role": "tool", "tool_call_id": f"call_{t}", "name": "bash", "content": out})
    final = f"Done. {marker}" if marker else "Done."
    msgs.append({"role": "assistant", "content": final, "tool_calls": [
        {"id": "call_end", "type": "function", "function": {"name": "finish",
                                                             "arguments": "{}"}}]})
    return msgs


def make_record(rng: random.Random, run_id: str, task: str, sample: int, env: str, *,
                vocab: int = 700, tokens: int = 300, teacher: bool = False,
                marker: str | None = None) -> EpisodeRecord:
    """One plausible episode of `task`; `marker` (a word) lands in its last message."""
    status = rng.choices(list(_WEIGHTS), weights=list(_WEIGHTS.values()))[0]
    solved = rng.random() < (zlib.crc32(task.encode()) % 100) / 100
    reward = None if status in ("task_error", "infra_error") else (
        0.0 if status in ("tampered", "agent_fault") else float(solved))
    if env.startswith("envfarm/webdev") and reward is not None and not solved:
        reward = round(rng.choice([0.0, 0.25, 0.5, 0.75]), 2)
    details = _details(rng, env, status, reward, task)
    error = None
    if status == "infra_error":
        error = "SandboxError: container 3f2a… died (exit 137, OOM killed by the host)"
    elif status == "task_error":
        error = "ImageBuildError: pip install failed for the task's environment"
        details = {"build_log_tail": "ERROR: No matching distribution found for numpy==1.3"}
    elif status == "tampered":
        error = "the agent changed protected paths"
        details = {**details, "cause": error, "evidence": ["/testbed/tests/conftest.py (C)"]}
    elif status == "agent_fault":
        error = "the agent killed its own sandbox"
        details = {"cause": error}
    mask: list[int] = []
    while len(mask) < tokens:
        span = rng.randint(10, 60)
        mask += [len(mask) // 40 % 2] * span
    mask = mask[:tokens]
    lps = [round(-rng.expovariate(3.0), 4) if m else None for m in mask]
    return EpisodeRecord(
        run_id=run_id, task_id=task, sample_index=sample, env_id=env, status=status,
        reward=reward, reward_details=details,
        messages=_messages(rng, task, rng.randint(1, 4), marker),
        token_ids=[rng.randrange(3, vocab) for _ in range(tokens)], loss_mask=mask,
        token_logprobs=lps, teacher_logprobs=[
            (v + rng.uniform(-0.5, 0.5)) if v is not None else None for v in lps]
        if teacher else None,
        num_turns=rng.randint(1, 12), timings={"reset_s": round(rng.uniform(0.2, 3), 3),
                                               "policy_s": round(rng.uniform(1, 60), 3),
                                               "env_s": round(rng.uniform(0.5, 40), 3),
                                               "total_s": round(rng.uniform(3, 100), 3)},
        error=error, attempts=3 if status == "infra_error" else 1, worker="node-1:w0")


def records(run_id: str, n_episodes: int, n: int = 8, seed: int = 0, **kwargs: Any
            ) -> Iterator[EpisodeRecord]:
    """`n_episodes` episodes: tasks of `n` samples each, envs mixed."""
    rng = random.Random(seed)
    for i in range(n_episodes):
        task_no, sample = divmod(i, n)
        env = ENVS[task_no % len(ENVS)]
        yield make_record(rng, run_id, f"task-{task_no:06d}", sample, env, **kwargs)


SOURCES = ("swe-gym.jsonl", "swe-smith.parquet", "terminal-bench/", "webdev_tasks/")


def catalogue_tasks(url: str, n_tasks: int) -> None:
    """Put the synthetic tasks `task-000000…` in the store's task catalogue, each with a
    source, so the run page can show pass rates per source."""
    from catalogue import Catalogue, TaskRecord

    kinds = {"envfarm/swe-v0": "swe", "envfarm/terminal-v0": "terminal",
             "envfarm/webdev-v0": "webdev"}
    records = []
    for i in range(n_tasks):
        env = ENVS[i % len(ENVS)]
        source = SOURCES[i % 2] if env == "envfarm/swe-v0" else SOURCES[2 + (env != ENVS[1])]
        records.append(TaskRecord(id=f"task-{i:06d}", kind=kinds[env], source=source,
                                  data={"synthetic": True}))
    Catalogue(url).upsert(records)


def episode_row(rec: EpisodeRecord, at: datetime) -> dict[str, Any]:
    """`rec` as the values `Store.save_episode` writes to the episodes table."""
    return {"run_id": rec.run_id, "task_id": rec.task_id, "sample_index": rec.sample_index,
            "env_id": rec.env_id, "status": rec.status, "reward": rec.reward,
            "reward_details": rec.reward_details, "messages": rec.messages,
            "token_ids": pack_ids(rec.token_ids), "loss_mask": pack_ids(rec.loss_mask),
            "token_logprobs": pack_floats(rec.token_logprobs),
            "teacher_logprobs": pack_floats(rec.teacher_logprobs),
            "prefix_consistent": True, "num_turns": rec.num_turns, "timings": rec.timings,
            "error": rec.error, "attempts": rec.attempts, "worker": rec.worker,
            "created_at": at}


def write_run(store: Store, run_id: str, n_episodes: int, *, n: int = 8, seed: int = 0,
              config: dict[str, Any] | None = None, one_by_one: int = 100,
              batch: int = 2000, per_minute: int = 400, **kwargs: Any) -> None:
    """Create `run_id` and store `n_episodes` synthetic episodes in it (see module doc);
    bulk rows are stamped `per_minute` to a minute so the timeline has a shape."""
    store.create_run(run_id, config or {"env": "mixed", "n": n, "policy": {"type": "vllm"}})
    start = datetime.now(UTC) - timedelta(minutes=n_episodes / per_minute + 1)
    pending: list[dict[str, Any]] = []
    with store.engine.connect() as conn:
        for i, rec in enumerate(records(run_id, n_episodes, n, seed, **kwargs)):
            if i < one_by_one:
                store.save_episode(rec)
                continue
            jitter = (1.0 + 0.5 * ((i // 5000) % 3)) * 60 / per_minute
            pending.append(episode_row(rec, start + timedelta(seconds=i * jitter)))
            if len(pending) >= batch:
                conn.execute(episodes.insert(), pending)
                conn.commit()
                pending = []
        if pending:
            conn.execute(episodes.insert(), pending)
            conn.commit()
