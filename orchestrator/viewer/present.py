"""Stored episodes turned into what the episode page shows: turns with their tool calls
and observations, the verifier's verdict by kind (tests, web checks, reward files),
the agent's diff, the artifacts it may serve, and why an episode was not scored."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

TRUNCATION = re.compile(r"\[\.\.\. (\d+) bytes truncated \.\.\.\]")
"""The marker `envs.core.truncate_middle` puts where an observation was cut."""
CAUSE_KEYS = ("cause", "reason", "evidence", "tampered", "protected_changes", "changes",
              "build_log_tail", "log_tail", "runner_output", "apply_log", "runner_error",
              "page_errors", "console_errors")
"""reward_details keys that explain a failure, shown first in the "why" box."""
EXPLAINED = ("infra_error", "task_error", "tampered", "agent_fault")


@dataclass
class ToolCallView:
    name: str
    arguments: Any
    """A dict when the arguments parse as JSON, else the raw string."""
    call_id: str | None = None


@dataclass
class Turn:
    """One message as shown: role, text, folded reasoning, tool calls, truncation."""

    index: int
    role: str
    content: str
    reasoning: str | None = None
    tool_calls: list[ToolCallView] = field(default_factory=list)
    name: str | None = None
    truncated_bytes: int = 0
    parse_errors: list[str] = field(default_factory=list)
    finish_reason: str | None = None


def turns(messages: list[dict[str, Any]], calls: list[dict[str, Any]]) -> list[Turn]:
    """Messages as turns; the i-th assistant message carries the i-th call's finish
    reason (a "length" finish is a completion cut at its token limit)."""
    out: list[Turn] = []
    assistant = 0
    for i, msg in enumerate(messages):
        content = msg.get("content")
        if not isinstance(content, str):
            content = json.dumps(content, indent=1) if content is not None else ""
        turn = Turn(i, str(msg.get("role", "?")), content,
                    reasoning=msg.get("reasoning_content") or msg.get("reasoning"),
                    name=msg.get("name"), parse_errors=list(msg.get("parse_errors") or []))
        for tc in msg.get("tool_calls") or []:
            fn = tc.get("function") or tc
            args = fn.get("arguments")
            if isinstance(args, str):
                try:
                    args = json.loads(args)
                except ValueError:
                    pass
            turn.tool_calls.append(ToolCallView(str(fn.get("name", "?")), args, tc.get("id")))
        turn.truncated_bytes = sum(int(m) for m in TRUNCATION.findall(content))
        if turn.role == "assistant":
            if assistant < len(calls):
                turn.finish_reason = calls[assistant].get("finish_reason")
            turn.finish_reason = msg.get("finish_reason") or turn.finish_reason
            assistant += 1
        out.append(turn)
    return out


def diff_lines(patch: str) -> list[tuple[str, str]]:
    """(css class, line) for a unified diff: add, del, hunk, file, or ctx."""
    out = []
    for line in patch.splitlines():
        if line.startswith(("+++", "---", "diff --git", "index ", "new file", "deleted file")):
            kind = "file"
        elif line.startswith("@@"):
            kind = "hunk"
        elif line.startswith("+"):
            kind = "add"
        elif line.startswith("-"):
            kind = "del"
        else:
            kind = "ctx"
        out.append((kind, line))
    return out


def explanation(ep: dict[str, Any]) -> dict[str, Any] | None:
    """Why an episode is infra_error, task_error, tampered or agent_fault: the stored
    error and the details that carry the cause or evidence (None for other statuses)."""
    if ep["status"] not in EXPLAINED:
        return None
    details = ep.get("reward_details") or {}
    evidence = {k: details[k] for k in CAUSE_KEYS if details.get(k)}
    who = {"infra_error": "a fault outside the agent's reach: retried, never exported",
           "task_error": "the task or its image is broken: not retried, not exported",
           "tampered": "the agent changed what the verifier trusts: reward 0, kept for training",
           "agent_fault": "the agent broke its sandbox or the verifier's inputs: reward 0"}
    return {"status": ep["status"], "meaning": who[ep["status"]], "error": ep.get("error"),
            "evidence": evidence, "attempts": ep.get("attempts")}


def test_outcomes(details: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(group, test, outcome) from an SWE report or a terminal test run."""
    rows: list[tuple[str, str, str]] = []
    report = details.get("report")
    if isinstance(report, dict):
        for group in ("FAIL_TO_PASS", "PASS_TO_PASS"):
            for name, outcome in (report.get(group) or {}).items():
                rows.append((group, str(name), str(outcome)))
    tests = details.get("tests")
    if isinstance(tests, dict):
        rows.extend(("tests", str(name), str(outcome)) for name, outcome in tests.items())
    return rows


def outcome_class(outcome: str) -> str:
    o = outcome.lower()
    if o in ("passed", "pass", "ok", "xfail", "true"):
        return "pass"
    if o in ("failed", "fail", "error", "false", "missing"):
        return "fail"
    return "other"


def artifact_paths(details: dict[str, Any]) -> list[str]:
    """Every file path the verifier recorded as an artifact, in a stable order: the
    page refers to them by index, so the server serves only these."""
    art = details.get("artifacts")
    if not isinstance(art, dict):
        return []
    paths = [art.get("video"), art.get("final_screenshot"), *(art.get("frames") or [])]
    return [p for p in paths if isinstance(p, str) and p]


def media(details: dict[str, Any]) -> list[tuple[int, str, str, bool]]:
    """(artifact index, path, kind, is a per-check frame) for the recording section."""
    art = details.get("artifacts") if isinstance(details.get("artifacts"), dict) else {}
    frames = set(art.get("frames") or [])
    return [(i, p, media_kind(p), p in frames) for i, p in enumerate(artifact_paths(details))]


def media_kind(path: str) -> str:
    suffix = Path(path).suffix.lower()
    if suffix in (".webm", ".mp4"):
        return "video"
    if suffix in (".png", ".jpg", ".jpeg", ".gif", ".webp"):
        return "image"
    return "file"


def remaining_details(details: dict[str, Any]) -> dict[str, Any]:
    """Verifier details not already shown in their own section (patch, tests, checks)."""
    shown = {"patch", "report", "tests", "checks", "artifacts", *CAUSE_KEYS}
    return {k: v for k, v in details.items() if k not in shown}


def pretty(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, indent=1, default=str)
