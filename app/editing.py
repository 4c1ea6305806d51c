"""The writer's edits of the text box: mask a selection, rewrite a selection of the result, undo and redo."""
from __future__ import annotations

import gradio as gr

from edlm.limits import LIMITS
from edlm.tokenizer import encode

from . import models


def mask_selection(text: str, start, end) -> str:
    """Replace the selected characters with a [MASK:n] span of about as many tokens as they held."""
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
    tokens = encode(models.get_bundle(models.MODEL).tokenizer, text[start:end])
    n = max(1, min(LIMITS.max_span_tokens, len(tokens)))
    return f"{text[:start]}[MASK:{n}]{text[end:]}"


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
