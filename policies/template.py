"""Render chat messages with a Hugging Face chat template (Jinja), and the text deltas between turns.

The delta is what makes token-in/token-out possible: after the model's
end-of-turn token, the template's text up to the next assistant start (the
tool results, a new user message, the generation prompt) is rendered on its own
and tokenized on its own. Because the delta begins right after a special token,
tokenizing it alone gives the same ids as tokenizing it in context, and the
running token sequence is never re-tokenized (re-tokenizing drifts: verl #6501).
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2
import jinja2.sandbox

DEFAULT_TEMPLATE_PATH = Path(__file__).with_name("templates") / "mimo.jinja"

# A fixed history used to render deltas: the delta depends only on what comes
# after the assistant's end-of-turn, so a two-message stand-in keeps the cost
# of each delta constant instead of growing with the episode. Its assistant turn
# has reasoning, so a template that drops earlier turns' reasoning once a new
# message arrives (Qwen3's) is caught as not prefix-consistent.
_STAND_IN: tuple[dict[str, Any], ...] = (
    {"role": "user", "content": "."},
    {"role": "assistant", "content": ".", "reasoning_content": "."},
)


class TemplateError(ValueError):
    """The chat template cannot produce a prefix-consistent delta (a bug in the template)."""


@lru_cache(maxsize=8)
def _compile(source: str) -> jinja2.Template:
    env = jinja2.sandbox.ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    env.filters["tojson"] = lambda v, indent=None: json.dumps(v, ensure_ascii=False, indent=indent)
    env.globals["raise_exception"] = _raise
    return env.from_string(source)


def _raise(message: str) -> None:
    raise TemplateError(message)


def normalize_messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Copy messages with tool-call arguments as dicts (templates iterate them), `reasoning`
    accepted as an alias of `reasoning_content`."""
    out = []
    for m in messages:
        m = dict(m)
        if "reasoning" in m and "reasoning_content" not in m:
            m["reasoning_content"] = m.pop("reasoning")
        if m.get("tool_calls"):
            calls = []
            for tc in m["tool_calls"]:
                fn = dict(tc.get("function", tc))
                if isinstance(fn.get("arguments"), str):
                    fn["arguments"] = json.loads(fn["arguments"] or "{}")
                calls.append({**tc, "function": fn} if "function" in tc else fn)
            m["tool_calls"] = calls
        out.append(m)
    return out


TOOLS_HEADER = "# Tools\n\nYou can call these functions:\n<tools>"
TOOLS_FOOTER = (
    "\n</tools>\n\nTo call a function reply with exactly:\n<tool_call>\n<function=NAME>\n"
    "<parameter=KEY>\nVALUE\n</parameter>\n</function>\n</tool_call>"
)


def tools_prompt(tools: list[dict[str, Any]]) -> str:
    """The tool block (Qwen3-Coder XML, as the MiMo template writes it) for templates that
    have no `tools` support of their own; it goes into the system message."""
    lines = [TOOLS_HEADER]
    for t in tools:
        f = t.get("function", t)
        lines.append(f"\n<function>\n<name>{f['name']}</name>")
        if f.get("description"):
            lines.append(f"\n<description>{f['description']}</description>")
        params = f.get("parameters") or {}
        lines.append("\n<parameters>")
        for pname, p in (params.get("properties") or {}).items():
            lines.append(f"\n<parameter>\n<name>{pname}</name>\n<type>{p.get('type', 'string')}</type>")
            if p.get("description"):
                lines.append(f"\n<description>{p['description']}</description>")
            lines.append("\n</parameter>")
        if "required" in params:
            lines.append(f"\n<required>{json.dumps(params['required'])}</required>")
        lines.append("\n</parameters>\n</function>")
    lines.append(TOOLS_FOOTER)
    return "".join(lines)


def tool_call_text(name: str, arguments: dict[str, Any]) -> str:
    """One call in Qwen3-Coder XML, byte for byte what the MiMo template renders (and what
    guided decoding forces), so folded history re-renders the text the model wrote."""
    out = [f"<tool_call>\n<function={name}>\n"]
    for k, v in arguments.items():
        value = v if isinstance(v, str) else json.dumps(v, ensure_ascii=False)
        out.append(f"<parameter={k}>\n{value}\n</parameter>\n")
    out.append("</function>\n</tool_call>")
    return "".join(out)


def fold_tool_calls(message: dict[str, Any]) -> dict[str, Any]:
    """An assistant message with its tool calls written into `content` as XML text."""
    calls = message.get("tool_calls") or []
    if not calls:
        return message
    text = message.get("content") or ""
    for i, tc in enumerate(calls):
        fn = tc.get("function", tc)
        if text or i:
            text += "\n"
        text += tool_call_text(fn["name"], fn.get("arguments") or {})
    out = {k: v for k, v in message.items() if k != "tool_calls"}
    out["content"] = text
    return out


class ChatTemplate:
    """A compiled chat template plus the end-of-turn marker its deltas are cut at.

    A model's own template is used as shipped. When it has no tool support (it
    never mentions `tools`, like SmolLM2's ChatML), the tool block is written into
    the system message (replacing the template's default system prompt when there
    is none); when it never mentions `tool_calls`, assistant tool calls are folded
    into the content as the XML the model wrote, so a re-render shows the model
    its own calls.

    Args:
        source: Jinja source; the MiMo-style default when None.
        eot: the end-of-turn string the model stops on (`<|im_end|>`).
        enable_thinking: passed to the template as `enable_thinking`.
    """

    def __init__(
        self, source: str | None = None, *, eot: str = "<|im_end|>", enable_thinking: bool = True
    ) -> None:
        self.source = source if source is not None else DEFAULT_TEMPLATE_PATH.read_text()
        self.eot = eot
        self.enable_thinking = enable_thinking
        self._template = _compile(self.source)
        self.renders_tools = "tools" in self.source
        self.renders_tool_calls = "tool_calls" in self.source
        self.is_default = source is None

    def prepare(
        self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]] | None]:
        """Messages and tools as this template needs them (see the class docstring)."""
        msgs = normalize_messages(messages)
        if not self.renders_tool_calls:
            msgs = [fold_tool_calls(m) if m.get("role") == "assistant" else m for m in msgs]
        if tools and not self.renders_tools:
            block = tools_prompt(tools)
            if msgs and msgs[0].get("role") == "system":
                msgs[0] = {**msgs[0], "content": f"{msgs[0].get('content') or ''}\n\n{block}"}
            else:
                msgs.insert(0, {"role": "system", "content": block})
            tools = None
        return msgs, tools

    def render(
        self,
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]] | None = None,
        *,
        add_generation_prompt: bool = True,
    ) -> str:
        """The whole transcript as text (what a chat API would feed the model)."""
        msgs, tools = self.prepare(messages, tools)
        return self._template.render(
            messages=msgs,
            tools=tools or None,
            add_generation_prompt=add_generation_prompt,
            enable_thinking=self.enable_thinking,
        )

    def delta(self, new_messages: list[dict[str, Any]]) -> str:
        """Text that follows an assistant's end-of-turn when `new_messages` come next,
        through the next generation prompt.

        Raises:
            TemplateError: the template does not render the stand-in history as a
                prefix of the longer one, so no delta can be cut safely.
        """
        base = self.render(list(_STAND_IN), add_generation_prompt=False)
        full = self.render([*_STAND_IN, *new_messages], add_generation_prompt=True)
        cut = base.rfind(self.eot)
        if cut < 0:
            raise TemplateError(f"template never renders the end-of-turn marker {self.eot!r}")
        cut += len(self.eot)
        if not full.startswith(base[:cut]):
            raise TemplateError(
                "template is not prefix-consistent: adding messages changed earlier text; "
                "token-in/token-out needs a template whose history never changes"
            )
        return full[cut:]
