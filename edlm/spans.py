"""The span syntax users write, and the token layout built from it.

`[MASK:n]` is a span of exactly n tokens, `[MASK]` a span whose length the system chooses, `\\[MASK` a literal
"[MASK" and `\\\\[MASK` a literal backslash before a span. Everything else is fixed text, which comes back exactly.
"""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field

from .limits import LIMITS

_TOKEN = re.compile(r"\\\\(?=\[MASK)|\\\[MASK|\[MASK(?=[:\]]|$)(?::([^\]\[]*))?(\]?)")


class SpanSyntaxError(ValueError):
    """The text's span markup is malformed; the message says where and how."""


@dataclass(frozen=True)
class Span:
    length: int | None  # None: the system chooses the length


@dataclass
class Template:
    """Text split into fixed strings and spans; parts alternate in reading order."""

    parts: list[str | Span] = field(default_factory=list)

    @property
    def spans(self) -> list[Span]:
        return [p for p in self.parts if isinstance(p, Span)]


def check_text(text: str) -> None:
    """Reject input the system cannot take: wrong type, empty, over the limit, or control characters."""
    if not isinstance(text, str):
        raise ValueError(f"text must be a string, not {type(text).__name__}")
    if not text.strip():
        raise ValueError("the text is empty: write some text with at least one [MASK] or [MASK:n] span")
    if len(text) > LIMITS.max_text_chars:
        raise ValueError(f"the text has {len(text):,} characters; the limit is {LIMITS.max_text_chars:,}")
    for i, ch in enumerate(text):
        cat = unicodedata.category(ch)
        if ch not in "\t\n\r" and cat == "Cc":
            raise ValueError(f"the text has a control character U+{ord(ch):04X} at position {i}; remove it")
        if cat == "Cs":
            raise ValueError(f"the text has a lone surrogate U+{ord(ch):04X} at position {i}, which is not a "
                             "character: the text is not valid Unicode")


def parse(text: str, require_span: bool = True) -> Template:
    """Split `text` into fixed strings and spans; raise SpanSyntaxError with the position of any mistake."""
    check_text(text)
    parts: list[str | Span] = []
    buf, pos = [], 0
    for m in _TOKEN.finditer(text):
        buf.append(text[pos:m.start()])
        pos = m.end()
        tok = m.group(0)
        if tok == "\\\\":
            buf.append("\\")
            continue
        if tok.startswith("\\"):
            buf.append("[MASK")
            continue
        if not m.group(2) and text.startswith("[", m.end()):
            raise SpanSyntaxError(f"nested brackets in the span at position {m.start()}: spans cannot contain "
                                  "another [ ... ]")
        if not m.group(2):
            raise SpanSyntaxError(f"unclosed span at position {m.start()}: write [MASK] or [MASK:n]")
        arg = m.group(1)
        if arg is None:
            length = None
        else:
            if not re.fullmatch(r"[ ]*[0-9]+[ ]*", arg):  # ASCII digits only: [MASK:٣] is not a length
                raise SpanSyntaxError(f"bad span length {arg!r} at position {m.start()}: [MASK:n] needs a whole "
                                      f"number n from 1 to {LIMITS.max_span_tokens}")
            length = int(arg)
            if not 1 <= length <= LIMITS.max_span_tokens:
                raise SpanSyntaxError(f"span length {length} at position {m.start()} is out of range: n must be "
                                      f"from 1 to {LIMITS.max_span_tokens}")
        parts.append("".join(buf))
        buf = []
        parts.append(Span(length))
    buf.append(text[pos:])
    parts.append("".join(buf))
    template = Template(parts)
    if require_span and not template.spans:
        raise SpanSyntaxError("no span to fill: mark one with [MASK:n] (n tokens) or [MASK] (length chosen for you)")
    return template


def span_markers(text: str) -> list[tuple[int, int]]:
    """The [start, end) character range of each span's marker in `text`, in reading order (escapes skipped), for
    editing one span in place; raises SpanSyntaxError where `parse` would."""
    parse(text, require_span=False)
    return [(m.start(), m.end()) for m in _TOKEN.finditer(text) if not m.group(0).startswith("\\")]


def escape(fixed: str) -> str:
    """`fixed` written so that `parse` reads it back as fixed text ("[MASK" becomes "\\[MASK"); a backslash right
    before "[MASK" cannot be written in the span syntax, so that is refused."""
    if "\\[MASK" in fixed:
        raise SpanSyntaxError("the text has a backslash right before [MASK, which the span syntax cannot write")
    return fixed.replace("[MASK", "\\[MASK")


def split_decoded(tokenizer, ids: list[int], kinds: list[str], mask_text: str) -> list[tuple[str, str]]:
    """(text, kind) runs of a span's tokens. Each stretch of unmasked tokens is decoded as a whole, so a character
    whose bytes came in separate tokens (and separate steps) is never garbled; a run boundary that falls inside
    such a character moves to the character's end."""
    from .tokenizer import decode

    out: list[tuple[str, str]] = []
    p = 0
    while p < len(ids):
        q = p
        if kinds[p] == "mask":
            while q < len(ids) and kinds[q] == "mask":
                q += 1
            out.append((mask_text * (q - p), "mask"))
            p = q
            continue
        while q < len(ids) and kinds[q] != "mask":
            q += 1
        whole = decode(tokenizer, ids[p:q])
        cuts, r = [], p  # run boundaries inside the stretch, as character offsets of `whole`
        while r < q:
            e = r
            while e < q and kinds[e] == kinds[r]:
                e += 1
            prefix = decode(tokenizer, ids[p:e]).rstrip("\ufffd") if e < q else whole
            cut = len(prefix) if whole.startswith(prefix) else (cuts[-1][0] if cuts else 0)
            cuts.append((max(cut, cuts[-1][0] if cuts else 0), kinds[r]))
            r = e
        start = 0
        for cut, kind in cuts:
            if cut > start:
                out.append((whole[start:cut], kind))
            start = max(start, cut)
        p = q
    return out


@dataclass
class Layout:
    """Token ids of a template with spans of chosen lengths; spans are runs of the mask id."""

    ids: list[int]
    span_ranges: list[tuple[int, int]]  # [start, end) token positions of each span
    absorbed_space: list[bool]          # the fixed text before the span ended in a space fed to the model in the span
    template: Template
    opens_line: list[bool] | None = None  # the span starts the text or a line: a fill's leading space is dropped

    def segments(self, tokenizer, ids: list[int], kinds: list[str] | None = None,
                 mask_text: str | None = None) -> list[tuple[str, str, int | None]]:
        """(text, kind, span index) runs in reading order. Fixed text is copied from the template, never decoded;
        span tokens are decoded in runs of equal kind ("filled" unless `kinds` says otherwise, "mask" where
        still masked, shown as `mask_text` per token)."""
        from .tokenizer import decode

        mask_id = tokenizer.mask_token_id
        mask_text = tokenizer.mask_token if mask_text is None else mask_text
        out, i = [], 0
        for part in self.template.parts:
            if isinstance(part, str):
                if part:
                    out.append((part, "fixed", None))
                continue
            a, b = self.span_ranges[i]
            kinds_i = ["mask" if ids[p] == mask_id else (kinds[p] if kinds else "filled") for p in range(a, b)]
            pieces = split_decoded(tokenizer, ids[a:b], kinds_i, mask_text)
            for j, (text, kind) in enumerate(pieces):
                if j == 0 and self.opens_line and self.opens_line[i]:
                    text = text.lstrip(" ")  # the text or a line starts here: no leading spaces
                elif j == 0 and self.absorbed_space[i] and text.startswith(" "):
                    text = text[1:]
                if text:
                    out.append((text, kind, i))
            i += 1
        return out

    def render(self, tokenizer, ids: list[int], mask_text: str | None = None) -> tuple[str, list[str]]:
        """The whole text and each span's text for `ids` (still-masked positions as `mask_text`)."""
        segs = self.segments(tokenizer, ids, mask_text=mask_text)
        spans = ["".join(t for t, _, si in segs if si == i) for i in range(len(self.span_ranges))]
        return "".join(t for t, _, _ in segs), spans


def absorbs_space(fixed_before_span: str) -> bool:
    """Whether the one space ending the fixed text before a span is fed to the model inside the span (so it can
    open the span with a spaced token); the space stays in the output (see `build_layout`)."""
    return fixed_before_span.endswith(" ") and not fixed_before_span.endswith("  ")


def build_layout(template: Template, tokenizer, lengths: list[int]) -> Layout:
    """Tokenise the fixed text and lay out spans of the given lengths.

    A fixed string that ends in one space before a span is tokenised without that space, so the model sees
    "word" + [masks] + "▁next" as in training and can open the span with a spaced token; the space stays in the
    output and a leading space of the fill is dropped instead.
    """
    from .tokenizer import encode

    ids: list[int] = []
    ranges, absorbed, opens = [], [], []
    parts = template.parts
    span_i = 0
    for j, part in enumerate(parts):
        if isinstance(part, str):
            before_span = j + 1 < len(parts) and isinstance(parts[j + 1], Span)
            absorb = before_span and absorbs_space(part)
            ids.extend(encode(tokenizer, part[:-1] if absorb else part))
            if before_span:
                absorbed.append(absorb)
                opens.append((j == 0 and part == "") or part.endswith(("\n", "\r")))
        else:
            n = lengths[span_i]
            ranges.append((len(ids), len(ids) + n))
            ids.extend([tokenizer.mask_token_id] * n)
            span_i += 1
    if sum(b - a for a, b in ranges) > LIMITS.max_masked_tokens:
        raise ValueError(f"{sum(b - a for a, b in ranges)} masked tokens in all; the limit is "
                         f"{LIMITS.max_masked_tokens}")
    return Layout(ids, ranges, absorbed, template, opens)


def plan_windows(masked: list[bool], window: int, min_context: int | None = None) -> list[tuple[int, int]]:
    """Windows [start, end) of at most `window` tokens that together cover every masked position.

    A span that fits is centred in its window with context on both sides; a longer run is filled left to right,
    each window keeping `min_context` tokens of what came before.
    """
    n = len(masked)
    if n <= window:
        return [(0, n)]
    min_context = window // 4 if min_context is None else min_context
    windows, p = [], 0
    while True:
        while p < n and not masked[p]:
            p += 1
        if p >= n:
            return windows
        end = p
        while end < n and masked[end]:
            end += 1
        run = end - p
        if run <= window - min_context:
            start = p - (window - run) // 2
        else:
            start = p - min_context
        start = max(0, min(start, n - window))
        windows.append((start, start + window))
        p = start + window
