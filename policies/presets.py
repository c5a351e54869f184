"""Per-env prompt configuration for the installed real model (policy configuration).

A 135M instruct model has never seen this farm's tools; one worked example in
the conversation (few-shot) is what lets it act at all. These presets are plain
`PolicySpec` fields (`system_prompt`, `few_shot`, sampling), stored with every
run like any other policy setting, and used by `make demo`, `make train-demo`,
the realmodel tests and the benchmark, so all of them measure the same policy.
"""

from __future__ import annotations

from typing import Any

SHELL_SYSTEM = "You are a shell agent. Reply with one tool call."

_ECHO_SHOT: list[dict[str, Any]] = [
    {"role": "user", "content": "Write the word apple into /tmp/answer.txt, then call finish."},
    {"role": "assistant", "content": "",
     "tool_calls": [{"name": "bash", "arguments": {"command": "echo apple > /tmp/answer.txt"}}]},
    {"role": "tool", "name": "bash", "content": "[exit code: 0]"},
    {"role": "assistant", "content": "", "tool_calls": [{"name": "finish", "arguments": {}}]},
    {"role": "tool", "name": "finish", "content": "done"},
]  # fmt: skip

_FILE_SHOT: list[dict[str, Any]] = [
    {"role": "user",
     "content": "Create the file `/tmp/note.txt` containing exactly the line `Good morning!`."},
    {"role": "assistant", "content": "", "tool_calls": [
        {"name": "bash", "arguments": {"command": "echo 'Good morning!' > /tmp/note.txt"}}]},
    {"role": "tool", "name": "bash", "content": "[exit code: 0]"},
    {"role": "assistant", "content": "", "tool_calls": [{"name": "finish", "arguments": {}}]},
    {"role": "tool", "name": "finish", "content": "Finished."},
]  # fmt: skip
"""A file task worded as Harbor's tasks are (with the echo example, SmolLM2 finishes at
once on the terminal example: 6 of 8 first turns; with this one 2 of 8 write the file)."""

_SEARCH_SHOT: list[dict[str, Any]] = [
    {"role": "user", "content": "In which year was Morvan Teska born?"},
    {"role": "assistant", "content": "",
     "tool_calls": [{"name": "search", "arguments": {"query": "Morvan Teska"}}]},
    {"role": "tool", "name": "search", "content": (
        "[doc-0007] Morvan Teska (score 9.10)\n    Morvan Teska is a person. Morvan Teska was "
        "born in the year 1958. Morvan Teska works at Delri Foods.")},
    {"role": "assistant", "content": "",
     "tool_calls": [{"name": "finish", "arguments": {"answer": "1958"}}]},
    {"role": "tool", "name": "finish", "content": "Finished."},
]  # fmt: skip
"""A one-hop question answered from the search snippet (a made-up world, not the task's)."""

PRESETS: dict[str, dict[str, Any]] = {
    "echo": {"system_prompt": SHELL_SYSTEM, "few_shot": _ECHO_SHOT},
    "terminal": {"system_prompt": SHELL_SYSTEM, "few_shot": _FILE_SHOT},
    "general": {
        "system_prompt": "You are a helpful agent. Use the tools; reply with one tool call.",
        "few_shot": _SEARCH_SHOT,
    },
}
"""Env short name -> PolicySpec fields (system prompt, few-shot messages)."""

SAMPLING: dict[str, Any] = {"temperature": 1.0, "top_p": 1.0, "max_tokens": 96}
"""Group sampling for RL: temperature 1 and no top-p cut, so the server samples from the
distribution the trainer recomputes (raw logprobs; guidance aside), short turns."""


def preset(env: str) -> dict[str, Any]:
    """PolicySpec fields for `env` (empty for envs without a preset)."""
    return {k: (list(v) if isinstance(v, list) else v) for k, v in PRESETS.get(env, {}).items()}
