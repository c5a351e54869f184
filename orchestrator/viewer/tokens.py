"""Token ids as the page shows them: one piece of text per id, exact.

Each id is decoded on its own, from the tokenizer's vocabulary, never by decoding the
sequence and splitting it: a token that holds half of a UTF-8 character shows its raw
bytes (as `\\xNN` marks), so the pieces concatenate to exactly the bytes the ids stand
for and nothing is merged, dropped or replaced by U+FFFD. Byte-level BPE vocabularies
(GPT-2, Qwen, MiMo) map back through the byte alphabet; SentencePiece vocabularies
through `▁` and `<0xNN>` byte tokens; added tokens (`<|im_start|>`) show as themselves.
Without a tokenizer the page shows ids.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from markupsafe import Markup, escape

from orchestrator.records import floats_array, ids_array


@functools.cache
def _byte_decoder() -> dict[str, int]:
    """GPT-2's byte alphabet inverted: printable bytes stand for themselves, the other
    bytes for chr(256 + k) in byte order."""
    printable = {*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1),
                 *range(ord("®"), ord("ÿ") + 1)}
    table = {chr(b): b for b in printable}
    table.update({chr(256 + k): b for k, b in
                  enumerate(b for b in range(256) if b not in printable)})
    return table


@dataclass(frozen=True)
class Piece:
    """What one id shows: `text` (valid UTF-8 runs) split around undecodable bytes."""

    parts: tuple[tuple[str, bool], ...]
    """(text, is_raw_byte): raw bytes render as `\\xNN` marks."""
    special: bool = False


class TokenDecoder:
    """Maps ids to `Piece`s with one tokenizer (`tokenizer.json`), cached per id."""

    def __init__(self, tokenizer_file: Path) -> None:
        from tokenizers import Tokenizer

        self.path = tokenizer_file
        self.tok = Tokenizer.from_file(str(tokenizer_file))
        decoder = self.tok.decoder
        self.kind = type(decoder).__name__ if decoder is not None else ""
        spec = self.tok.to_str()
        self.byte_level = '"ByteLevel"' in spec and self.kind in ("ByteLevel", "Sequence")
        self.added = {tok.content for tok in self.tok.get_added_tokens_decoder().values()}
        self._cache: dict[int, Piece] = {}

    def token_bytes(self, token_id: int) -> tuple[bytes, bool] | None:
        """The exact bytes of one id and whether it is an added (special) token; None
        for an id outside the vocabulary."""
        piece = self.tok.id_to_token(int(token_id))
        if piece is None:
            return None
        if piece in self.added:
            return piece.encode(), True
        if self.byte_level:
            table = _byte_decoder()
            if all(ch in table for ch in piece):
                return bytes(table[ch] for ch in piece), False
        if len(piece) == 6 and piece.startswith("<0x") and piece.endswith(">"):
            return bytes([int(piece[3:5], 16)]), False
        return piece.replace("▁", " ").encode(), False

    def piece(self, token_id: int) -> Piece:
        cached = self._cache.get(token_id)
        if cached is not None:
            return cached
        got = self.token_bytes(token_id)
        if got is None:
            piece = Piece(((f"<unknown id {token_id}>", False),), special=True)
        else:
            data, special = got
            piece = Piece(split_bytes(data), special)
        self._cache[token_id] = piece
        return piece


def split_bytes(data: bytes) -> tuple[tuple[str, bool], ...]:
    """`data` as runs of UTF-8 text and single bytes shown raw: bytes that are not valid
    UTF-8 here, and control characters other than newline and tab (invisible as text)."""
    parts: list[tuple[str, bool]] = []
    text = data.decode("utf-8", errors="surrogateescape")
    run: list[str] = []
    for ch in text:
        code = ord(ch)
        if 0xDC80 <= code <= 0xDCFF or (code < 0x20 and ch not in "\n\t") or code == 0x7F:
            if run:
                parts.append(("".join(run), False))
                run = []
            byte = code - 0xDC00 if code >= 0xDC80 else code
            parts.append((f"\\x{byte:02x}", True))
        else:
            run.append(ch)
    if run:
        parts.append(("".join(run), False))
    return tuple(parts)


@functools.cache
def load_decoder(path: str) -> TokenDecoder | None:
    """A decoder for a tokenizer folder or `tokenizer.json` path (None when missing)."""
    p = Path(path).expanduser()
    file = p / "tokenizer.json" if p.is_dir() else p
    return TokenDecoder(file) if file.is_file() else None


def run_tokenizer(config: dict[str, Any] | None, override: str | None = None) -> str | None:
    """The tokenizer path a run was rolled out with (its policy's), or `override`."""
    if override:
        return override
    policy = (config or {}).get("policy") or {}
    return policy.get("tokenizer")


@dataclass
class TokenView:
    """The rows of the token table: one dict per token, plus sequence facts."""

    tokens: list[dict[str, Any]]
    total: int
    start: int
    has_teacher: bool
    tokenizer: str | None
    decoded: bool


def token_view(row: dict[str, Any], decoder: TokenDecoder | None, *, start: int = 0,
               limit: int = 20_000) -> TokenView:
    """Tokens `[start, start+limit)` of a stored episode row (`queries.token_arrays`):
    id, piece, mask, logprob, teacher logprob and advantage (teacher − student on model
    tokens where both exist), NaN shown as None."""
    ids = ids_array(row["token_ids"])
    n = len(ids)
    mask = ids_array(row["loss_mask"])
    lps = floats_array(row["token_logprobs"])
    teacher = floats_array(row["teacher_logprobs"]) if row.get("teacher_logprobs") else None
    stop = min(n, start + limit)
    out = []
    for i in range(start, stop):
        tid = int(ids[i])
        m = int(mask[i]) if i < len(mask) else 0
        lp = _num(lps, i)
        t = _num(teacher, i) if teacher is not None else None
        adv = (t - lp) if (m == 1 and t is not None and lp is not None) else None
        out.append({"i": i, "id": tid, "mask": m, "lp": lp, "tlp": t, "adv": adv,
                    "piece": decoder.piece(tid) if decoder else None})
    return TokenView(out, n, start, teacher is not None,
                     str(decoder.path) if decoder else None, decoder is not None)


def render_spans(view: TokenView) -> Markup:
    """The token spans as HTML, built directly (a template loop costs ~10 µs a token):
    `<span class="m1" data-id="ID">piece</span>`, class m0/m1 by loss mask plus `sp`
    for added tokens, raw bytes as `<b class="raw">\\xNN</b>`; without a tokenizer the
    text is `⟨ID⟩`. The i-th span is token `view.start + i`."""
    inner: dict[int, tuple[str, bool]] = {}
    out = []
    for t in view.tokens:
        tid = t["id"]
        got = inner.get(tid)
        if got is None:
            piece = t["piece"]
            if piece is None:
                got = (f"⟨{tid}⟩", False)
            else:
                got = ("".join(f'<b class="raw">{escape(text)}</b>' if raw else str(escape(text))
                               for text, raw in piece.parts), piece.special)
            inner[tid] = got
        cls = f"m{t['mask']} sp" if got[1] else f"m{t['mask']}"
        out.append(f'<span class="{cls}" data-id="{tid}">{got[0]}</span>')
    return Markup("".join(out))


def _num(arr: np.ndarray | None, i: int) -> float | None:
    if arr is None or i >= len(arr):
        return None
    v = float(arr[i])
    return None if math.isnan(v) else round(v, 5)
