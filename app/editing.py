"""The writer's edits of the text box: mask a selection, rewrite a selection of the result, undo and redo."""
from __future__ import annotations

import gradio as gr

from edlm.limits import LIMITS
from edlm.tokenizer import encode

from . import models


# Span lengths a writer thinks in: words, converted to tokens at the text's own tokens per word.
SPAN_WORDS = {"short": 4, "medium": 12, "long": 30}
SPAN_LENGTHS = ["as selected", "short (~4 words)", "medium (~12 words)", "long (~30 words)", "let the model choose"]
TOKENS_PER_WORD = 1.3  # where the text has too few words to measure its own (about this for English here)


def span_tokens(text: str, words: int) -> int:
    """About `words` words in tokens, at the tokens per word of `text` itself (the tokenizer of the page's model)."""
    n_words = len(text.split())
    rate = len(encode(models.get_bundle(models.MODEL).tokenizer, text)) / n_words if n_words >= 20 else \
        TOKENS_PER_WORD
    return max(1, min(LIMITS.max_span_tokens, round(words * rate)))


def mask_selection(text: str, start, end, length: str = SPAN_LENGTHS[0]) -> str:
    """Replace the selected characters with a span: [MASK:n] of about as many tokens as they held ("as
    selected"), of a short, medium or long number of words, or [MASK] (the model chooses)."""
    if text is None or start is None or end is None or start == end:
        gr.Warning("select some text in the box first, then press Mask selection")
        return text
    try:
        start, end = sorted((int(start), int(end)))
    except (TypeError, ValueError, OverflowError):
        raise gr.Error("the selection is not a pair of positions in the text", print_exception=False) from None
    if not (0 <= start <= len(text) and 0 <= end <= len(text)):
        raise gr.Error("the selection lies outside the text; select it again", print_exception=False)
    if start == end:
        raise gr.Error("select some text in the box first, then press Mask selection", print_exception=False)
    if length not in SPAN_LENGTHS:
        raise gr.Error(f"unknown span length {length!r}: choose one of {', '.join(SPAN_LENGTHS)}",
                       print_exception=False)
    if length == SPAN_LENGTHS[-1]:
        return f"{text[:start]}[MASK]{text[end:]}"
    words = SPAN_WORDS.get(length.split(" ")[0])
    if words:
        n = span_tokens(text, words)
    else:
        tokens = encode(models.get_bundle(models.MODEL).tokenizer, text[start:end])
        n = max(1, min(LIMITS.max_span_tokens, len(tokens)))
    return f"{text[:start]}[MASK:{n}]{text[end:]}"


def keep_span(text: str, span: int, fill: str) -> str:
    """The writer's text with span number `span` (1-based) replaced by `fill`, the other spans left to fill again:
    a writer keeps the fill of one span and retries another."""
    from edlm.spans import SpanSyntaxError, escape, span_markers

    try:
        marks = span_markers(text or "")
        written = escape(fill)
    except SpanSyntaxError as e:
        raise gr.Error(str(e), print_exception=False) from None
    if not marks:
        raise gr.Error("your text has no span left to keep a fill for", print_exception=False)
    if not (isinstance(span, int) and 1 <= span <= len(marks)):
        raise gr.Error(f"there is no span {span}: your text has {len(marks)}", print_exception=False)
    a, b = marks[span - 1]
    return text[:a] + written + text[b:]


def rewrite_selection(result: str, start, end) -> str:
    """The result with the selected words masked, as the new text to fill (the rest of it stays as it is)."""
    if not result or start is None or end is None or start == end:
        raise gr.Error("select some words of the result first, then press Rewrite selection", print_exception=False)
    return mask_selection(result, start, end)


def get_selection(box_id: str) -> str:
    """Browser-side: the selected character range of a text box, passed with its text (and any further inputs,
    unchanged) to the handler."""
    return f"""(text, a, b, ...rest) => {{
  const box = document.querySelector('#{box_id} textarea');
  return box ? [text, box.selectionStart, box.selectionEnd, ...rest] : [text, 0, 0, ...rest];
}}"""


# Undo and redo of the text box, per browser session: every change the page makes to the writer's text (Use this,
# a variant's Use this, Mask selection, Rewrite selection, an example) keeps the text it replaced.
UNDO_DEPTH = 20  # texts kept per session (at most 20,000 characters each: ~0.4 MB a session at worst)


def remember(history: list | None, text: str | None) -> list:
    """The undo history with `text` added (the oldest dropped past UNDO_DEPTH; a repeat is not stored twice)."""
    history = list(history or [])
    if text is not None and (not history or history[-1] != text):
        history.append(text)
    return history[-UNDO_DEPTH:]


def replace_text(new: str, current: str, history: list | None):
    """Put `new` into the text box, keeping the current text for Undo; a new change clears Redo (no change:
    nothing is recorded)."""
    if new == current:
        return current, list(history or []), gr.skip()
    return new, remember(history, current), []


def undo(current: str, history: list | None, future: list | None):
    """The text before the last change the page made; the current one goes to Redo."""
    history, future = list(history or []), list(future or [])
    if not history:
        gr.Info("nothing to undo")
        return current, history, future
    return history.pop(), history, remember(future, current)


def redo(current: str, history: list | None, future: list | None):
    """The text Undo took back."""
    history, future = list(history or []), list(future or [])
    if not future:
        gr.Info("nothing to redo")
        return current, history, future
    return future.pop(), remember(history, current), future
