"""`ChatFormat`: a tokenizer + chat template, the bridge between messages and token ids.

It renders the first prompt, appends each later observation as a token delta
(never re-tokenizing the history), turns completion ids back into text and
parses that text into content, reasoning and tool calls. The default template
is MiMo's format (Qwen3-Coder XML tool calls, `<think>` reasoning).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from tokenizers import Tokenizer

from policies.conversation import Conversation
from policies.parsing import parse_completion
from policies.template import ChatTemplate, TemplateError
from policies.types import ParsedCompletion


class ChatFormat:
    """Messages <-> token ids for one model.

    Args:
        tokenizer: a `tokenizers.Tokenizer` (the model's `tokenizer.json`).
        template: Jinja source, a `ChatTemplate`, or None for the MiMo default.
        eot: the end-of-turn token the model stops on; must be a single token.
        enable_thinking: template kwarg; with False the prompt pre-fills an empty think block.
        in_reasoning: what the parser does with tool calls inside `<think>`.

    Raises:
        ValueError: `eot` is not one token of this tokenizer.
    """

    def __init__(
        self,
        tokenizer: Tokenizer,
        template: str | ChatTemplate | None = None,
        *,
        eot: str = "<|im_end|>",
        enable_thinking: bool = True,
        in_reasoning: Literal["error", "parse"] = "error",
    ) -> None:
        self.tokenizer = tokenizer
        if isinstance(template, ChatTemplate):
            self.template = template
        else:
            self.template = ChatTemplate(template, eot=eot, enable_thinking=enable_thinking)
        self.eot = eot
        eot_id = tokenizer.token_to_id(eot)
        if eot_id is None:
            raise ValueError(f"end-of-turn {eot!r} is not a token of this tokenizer")
        self.eot_id: int = eot_id
        self.in_reasoning = in_reasoning

    @classmethod
    def from_dir(cls, path: str | Path, **kwargs: Any) -> ChatFormat:
        """Load `tokenizer.json` and the chat template of a Hugging Face model folder.

        The template is `chat_template.jinja` if present, else `chat_template`
        from `tokenizer_config.json`, else the MiMo default; the end-of-turn is
        the config's `eos_token` unless `eot=` is given.
        """
        path = Path(path)
        tokenizer = Tokenizer.from_file(str(path / "tokenizer.json"))
        config_path = path / "tokenizer_config.json"
        config = json.loads(config_path.read_text()) if config_path.exists() else {}
        template = None
        if (path / "chat_template.jinja").exists():
            template = (path / "chat_template.jinja").read_text()
        elif isinstance(config.get("chat_template"), str):
            template = config["chat_template"]
        eos = config.get("eos_token")
        if isinstance(eos, dict):
            eos = eos.get("content")
        if isinstance(eos, str) and "eot" not in kwargs:
            kwargs["eot"] = eos
        return cls(tokenizer, template, **kwargs)

    # -- text <-> ids ------------------------------------------------------
    def render(
        self,
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]] | None = None,
        *,
        add_generation_prompt: bool = True,
    ) -> str:
        return self.template.render(messages, tools, add_generation_prompt=add_generation_prompt)

    def encode(self, text: str) -> list[int]:
        return self.tokenizer.encode(text, add_special_tokens=False).ids

    def encode_messages(self, text: str, messages: list[dict[str, Any]]) -> list[int]:
        """Ids of `text`, the rendering of `messages`, where special-token text inside a
        message (a tool output printing `<|im_end|>`, a task file holding one) stays text.

        Only the template's own markup becomes special tokens: otherwise anything the agent
        can make a tool print could forge a turn boundary in the training sequence. Each
        such message text is found in the rendering (as is, or trimmed as templates trim)
        and encoded with special-token matching off; text without special-token text is
        encoded in one piece, as before."""
        specials = self._special_texts()
        risky = [t for m in messages for t in _message_texts(m) if any(s in t for s in specials)]
        if not risky:
            return self.encode(text)
        ids: list[int] = []
        cursor = 0
        for piece in risky:
            at = text.find(piece, cursor)
            if at < 0 and piece.strip():
                piece = piece.strip()
                at = text.find(piece, cursor)
            if at < 0:
                continue
            ids += self.encode(text[cursor:at])
            ids += self._plain_tokenizer().encode(piece, add_special_tokens=False).ids
            cursor = at + len(piece)
        return ids + self.encode(text[cursor:])

    def _special_texts(self) -> list[str]:
        if not hasattr(self, "_specials"):
            added = self.tokenizer.get_added_tokens_decoder().values()
            self._specials = sorted({a.content for a in added if len(a.content) > 1})
        return self._specials

    def _plain_tokenizer(self) -> Tokenizer:
        """A copy that tokenizes special-token text as ordinary text (its own instance:
        the switch is per tokenizer, and the shared one is used from many threads)."""
        if not hasattr(self, "_plain"):
            plain = Tokenizer.from_str(self.tokenizer.to_str())
            plain.encode_special_tokens = True
            self._plain = plain
        return self._plain

    def decode(self, ids: list[int]) -> str:
        """Exact text of `ids`, special tokens included."""
        return self.tokenizer.decode(ids, skip_special_tokens=False)

    def prompt_ids(
        self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None = None
    ) -> list[int]:
        """The first prompt: the whole rendered transcript plus the generation prompt."""
        return self.encode_messages(self.render(messages, tools, add_generation_prompt=True),
                                    messages)

    def delta_ids(self, new_messages: list[dict[str, Any]]) -> list[int]:
        """Tokens that follow the model's end-of-turn when `new_messages` come next."""
        return self.encode_messages(self.template.delta(new_messages), new_messages)

    # -- the running sequence of an episode --------------------------------
    def next_prompt(self, conv: Conversation) -> list[int]:
        """Extend `conv`'s token sequence with what is pending and return the prompt ids.

        The first call renders everything; later calls append, after the last
        completion, an end-of-turn if that completion lacked one, then the delta
        of the messages added since. The result always extends the previous
        prompt + completion token for token.
        """
        if conv.tokenized_upto == 0 and not conv.token_ids:
            conv.add_prompt_tokens(self.prompt_ids(conv.messages, conv.tools))
        else:
            try:
                delta = self.delta_ids(conv.pending())
            except TemplateError as e:
                # The template rewrites history: no delta can extend the sequence. Start
                # afresh from the whole transcript; trainers take this episode per call.
                conv.reset_tokens(f"chat template is not prefix-consistent: {e}")
                conv.add_prompt_tokens(self.prompt_ids(conv.messages, conv.tools))
                conv.tokenized_upto = len(conv.messages)
                return list(conv.token_ids)
            if conv.needs_eot:
                conv.add_prompt_tokens([self.eot_id])
                conv.needs_eot = False
            conv.add_prompt_tokens(delta)
        conv.tokenized_upto = len(conv.messages)
        return list(conv.token_ids)

    def split_completion(self, completion_ids: list[int]) -> tuple[str, bool]:
        """Text of a completion without its end-of-turn, and whether it ended the turn."""
        ends = bool(completion_ids) and completion_ids[-1] == self.eot_id
        body = completion_ids[:-1] if ends else completion_ids
        return self.decode(body), ends

    def parse(self, text: str, tools: list[dict[str, Any]] | None = None) -> ParsedCompletion:
        return parse_completion(text, tools, in_reasoning=self.in_reasoning)

    def transcript_drift(self, conv: Conversation) -> int | None:
        """Index of the first character where the decoded token sequence and the
        re-rendered transcript differ, or None when they agree.

        A check for tests and debugging (it re-renders the whole history): a
        model that writes non-canonical whitespace makes the two differ even
        though the token record is right, since the record is what the model saw.
        """
        decoded = self.decode(conv.token_ids)
        rendered = self.render(conv.messages, conv.tools, add_generation_prompt=False)
        if rendered.startswith(decoded):
            return None
        prompted = self.render(conv.messages, conv.tools, add_generation_prompt=True)
        if prompted == decoded:  # the sequence ends with a prompt awaiting the model
            return None
        for i, (a, b) in enumerate(zip(decoded, rendered)):
            if a != b:
                return i
        return min(len(decoded), len(rendered))


def _message_texts(message: dict[str, Any]) -> list[str]:
    """The free text of a message: its content, or the text parts of a content list."""
    content = message.get("content")
    if isinstance(content, str):
        return [content] if content else []
    if isinstance(content, list):
        return [p["text"] for p in content
                if isinstance(p, dict) and isinstance(p.get("text"), str) and p["text"]]
    return []
