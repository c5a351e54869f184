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
    """Tokens `[start, start + len(ids))` of one episode, as parallel lists (None where
    a value is missing), plus sequence facts."""

    ids: list[int]
    mask: list[int]
    lp: list[float | None]
    tlp: list[float | None] | None
    adv: list[float | None] | None
    total: int
    start: int
    decoder: TokenDecoder | None

    @property
    def has_teacher(self) -> bool:
        return self.tlp is not None

    @property
    def decoded(self) -> bool:
        return self.decoder is not None

    @property
    def tokenizer(self) -> str | None:
        return str(self.decoder.path) if self.decoder else None


def token_view(row: dict[str, Any], decoder: TokenDecoder | None, *, start: int = 0,
               limit: int = 20_000) -> TokenView:
    """Tokens `[start, start+limit)` of a stored episode row (`queries.token_arrays`):
    ids, loss mask, logprobs, teacher logprobs and advantages (teacher − student on
    model tokens where both exist), rounded to 5 decimals, NaN as None. Vectorized:
    a 20K-token page costs milliseconds here."""
    ids = ids_array(row["token_ids"])
    n = len(ids)
    start = max(0, min(start, n))
    stop = min(n, start + limit)
    mask = np.zeros(stop - start, dtype=np.int32)
    stored_mask = ids_array(row["loss_mask"])[start:stop]
    mask[:len(stored_mask)] = stored_mask
    lps = _window(floats_array(row["token_logprobs"]), start, stop)
    tlp = adv = None
    if row.get("teacher_logprobs"):
        teacher = _window(floats_array(row["teacher_logprobs"]), start, stop)
        scored = (mask == 1) & ~np.isnan(teacher) & ~np.isnan(lps)
        adv = _nullable(np.where(scored, teacher.astype(np.float64) - lps, np.nan))
        tlp = _nullable(teacher)
    return TokenView(ids[start:stop].tolist(), mask.tolist(), _nullable(lps), tlp, adv, n,
                     start, decoder)


def _window(values: np.ndarray, start: int, stop: int) -> np.ndarray:
    """values[start:stop] as float64, padded with NaN where the array is short."""
    out = np.full(stop - start, np.nan)
    part = values[start:stop]
    out[:len(part)] = part
    return out


def _nullable(values: np.ndarray) -> list[float | None]:
    rounded = np.round(values, 5).astype(object)
    rounded[np.isnan(values)] = None
    return rounded.tolist()


def call_marks(calls: list[dict[str, Any]], view: TokenView) -> dict[int, str]:
    """Where each model call's completion begins in the merged sequence (its prompt's
    length; valid when the episode is prefix-consistent), as position -> title."""
    marks = {}
    for c in calls:
        at = int(c["prompt_tokens"])
        if view.start <= at < view.start + len(view.ids):
            marks[at] = (f"model call {c['idx']}: prompt {at} tokens, completion "
                         f"{int(c['completion_tokens'])}, finish {c['finish_reason']}")
    return marks


def render_spans(view: TokenView, marks: dict[int, str] | None = None) -> Markup:
    """The token spans as HTML, built directly (a template loop costs ~10 µs a token):
    `<span class="m1" data-id="ID">piece</span>`, class m0/m1 by loss mask plus `sp`
    for added tokens, raw bytes as `<b class="raw">\\xNN</b>`; without a tokenizer the
    text is `⟨ID⟩`. The i-th span is token `view.start + i`; `marks` put an
    `<i class="call">` (not a span) before the token at each position."""
    inner: dict[int, tuple[str, str]] = {}
    marks = marks or {}
    out = []
    for k, (tid, m) in enumerate(zip(view.ids, view.mask, strict=True)):
        if marks and view.start + k in marks:
            out.append(f'<i class="call" title="{escape(marks[view.start + k])}"></i>')
        got = inner.get(tid)
        if got is None:
            if view.decoder is None:
                got = (f"⟨{tid}⟩", "")
            else:
                piece = view.decoder.piece(tid)
                got = ("".join(f'<b class="raw">{escape(text)}</b>' if raw else str(escape(text))
                               for text, raw in piece.parts), " sp" if piece.special else "")
            inner[tid] = got
        out.append(f'<span class="m{m}{got[1]}" data-id="{tid}">{got[0]}</span>')
    return Markup("".join(out))
