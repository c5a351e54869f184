"""Optional model-driven parts: whole-function rewrites with a bug, and issue texts.

Both are off unless a model is configured. `FunctionRewriter.rewrite` gets one function's
source and returns a rewritten version with a subtle bug (or None); `rewrite_candidates`
splices each rewrite over the function's lines, keeps only those that parse and change
exactly that function, and yields them as ordinary `Candidate`s (strategy `llm_rewrite`),
which are then judged by the tests like every other. `ChatModel` implements both
`FunctionRewriter` and `instances.IssueWriter` over any OpenAI-compatible chat endpoint
(`envfarm swe synthesize --model-url URL --model NAME`).
"""

from __future__ import annotations

import random
import re
import textwrap
from collections.abc import Iterator
from typing import Protocol

from swe_tasks.synth.candidates import Candidate
from swe_tasks.synth.patching import changed_functions, functions_of, unified_diff

STRATEGY = "llm_rewrite"
_FENCE = re.compile(r"```(?:python)?\n(.*?)```", re.DOTALL)


class FunctionRewriter(Protocol):
    """Returns `source` (one function) rewritten with a bug, or None to skip it."""

    def rewrite(self, path: str, qualname: str, source: str) -> str | None: ...


def rewrite_candidates(files: dict[str, str], rewriter: FunctionRewriter, *, limit: int,
                       seed: int = 0, min_lines: int = 4) -> Iterator[Candidate]:
    """Up to `limit` candidates from whole-function rewrites over a seeded choice of functions."""
    sites = []
    for path, qualname, func in functions_of(files):
        start = min([func.lineno, *(d.lineno for d in func.decorator_list)])
        if func.end_lineno is not None and func.end_lineno - start + 1 >= min_lines:
            sites.append((path, qualname, start, func.end_lineno, func.col_offset))
    random.Random(seed).shuffle(sites)
    made = 0
    for path, qualname, start, end, indent in sites:
        if made >= limit:
            return
        old_lines = files[path].split("\n")
        original = textwrap.dedent("\n".join(old_lines[start - 1:end]))
        new_func = rewriter.rewrite(path, qualname, original)
        if not new_func or new_func.strip() == original.strip():
            continue
        body = textwrap.indent(textwrap.dedent(new_func).strip("\n"), " " * indent)
        new = "\n".join([*old_lines[:start - 1], body, *old_lines[end:]])
        try:
            if changed_functions(files[path], new) != [qualname]:
                continue
        except ValueError:
            continue
        made += 1
        yield Candidate(path, qualname, STRATEGY, "model rewrite", unified_diff(path, files[path], new),
                        unified_diff(path, new, files[path]))


class ChatModel:
    """A model behind an OpenAI-compatible `/v1/chat/completions` endpoint."""

    def __init__(self, base_url: str, model: str, *, api_key: str = "EMPTY",
                 temperature: float = 0.8, timeout_s: float = 120.0,
                 max_tokens: int = 1024) -> None:
        from openai import OpenAI

        self.client = OpenAI(base_url=base_url, api_key=api_key, timeout=timeout_s)
        self.model, self.temperature = model, temperature
        self.max_tokens = max_tokens
        """A reply's cap: unbounded, a weak model ran one issue text to its context limit
        (14 min for SmolLM2 on CPU); a reply cut here has no closing fence and is skipped."""

    def _ask(self, prompt: str) -> str:
        resp = self.client.chat.completions.create(
            model=self.model, temperature=self.temperature, max_tokens=self.max_tokens,
            messages=[{"role": "user", "content": prompt}])
        return resp.choices[0].message.content or ""

    def rewrite(self, path: str, qualname: str, source: str) -> str | None:
        text = self._ask(
            f"Here is `{qualname}` from `{path}`:\n```python\n{source}\n```\nRewrite this "
            "function so that it keeps its signature and looks plausible but has one subtle "
            "logic bug that unit tests would catch. Do not add comments that point at the bug. "
            "Answer with the whole function in one ```python block and nothing else.")
        found = _FENCE.search(text)
        return found.group(1) if found else None

    def write(self, candidate: Candidate, failing: dict[str, str]) -> str | None:
        tests = "\n".join(f"- {t}: {m[:300]}" for t, m in sorted(failing.items())[:6])
        text = self._ask(
            "Write a short GitHub issue, as a user of the library would, about the behaviour "
            f"these failing tests show:\n{tests}\nDescribe the wrong behaviour and what was "
            "expected, with a small example if you can. Do not mention the tests, file names "
            "or how to fix it. Answer with the issue text only.")
        return text.strip() or None
