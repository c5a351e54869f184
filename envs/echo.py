"""`envfarm/echo-v0`: the smallest real env — write a word to a file in a real sandbox.

It exists to exercise and measure the machinery around envs (rollouts, retries,
stores, exports) at full speed: the task is trivial, the sandbox and tools are real.
A task id is `echo-<word>`; the reward is 1.0 when /tmp/answer.txt holds the word.

Verification trusts nothing the agent left: its processes are killed first (a daemon
cannot write the word after the fact), then the file is read through the archive API,
bounded (a `cat` shim or function in the agent's shell is never run). A link at
/tmp/answer.txt never counts by itself: it scores only where the engine's read follows
it inside the sandbox (never to the host) to a regular file whose whole content is the
word (surrounding whitespace aside); an engine that does not follow it scores it 0.
"""

from __future__ import annotations

from typing import Any

from envs.core import ToolEnv, VerifierResult
from envs.integrity import read_capped, stop_agent
from envs.tools import BashTool, FinishTool, Tool
from sandbox import Limits, base_image

ANSWER_PATH = "/tmp/answer.txt"
ANSWER_CAP_BYTES = 4096
"""A longer answer file is not the word (and is not read into the host)."""


class EchoEnv(ToolEnv):
    """Write the task's word into /tmp/answer.txt, then finish."""

    tool_classes = (BashTool, FinishTool)

    def __init__(self, *, oracle_delay_s: float = 0.0, system_prompt: str | None = None,
                 prompt: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._system_prompt = system_prompt
        self._prompt = prompt
        self._oracle_delay_s = oracle_delay_s

    def _begin(self, task_id: str | None, seed: int | None) -> tuple[list[dict], list[Tool]]:
        task_id = task_id or "echo-hello"
        if not task_id.startswith("echo-") or not task_id[5:].isalnum():
            raise ValueError(f"echo tasks are named echo-<alphanumeric word>, not {task_id!r}")
        self.task_id, self.word = task_id, task_id[5:]
        self.sandbox = self.backend.start(base_image(), Limits(timeout_s=30))
        prompt = self._prompt or f"Write the word {self.word} into /tmp/answer.txt, then call finish."
        messages = [{"role": "user", "content": prompt}]
        if self._system_prompt:
            messages.insert(0, {"role": "system", "content": self._system_prompt})
        return messages, [BashTool(), FinishTool()]

    def _verify(self) -> VerifierResult:
        stop_agent(self.sandbox, self.backend)
        data = read_capped(self.sandbox, ANSWER_PATH, ANSWER_CAP_BYTES)
        got = data.decode("utf-8", "replace").strip() if data is not None else None
        return VerifierResult(float(got == self.word), {"expected": self.word, "got": got})

    def oracle_actions(self, task_id: str) -> list[dict[str, Any]]:
        word = task_id[5:]
        pause = f"sleep {self._oracle_delay_s}; " if self._oracle_delay_s else ""
        return [{"content": "", "tool_calls": [
            {"name": "bash", "arguments": {"command": f"{pause}echo {word} > /tmp/answer.txt"}}]}]
