import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edlm.limits import LIMITS
from edlm.spans import Span, SpanSyntaxError, build_layout, parse, plan_windows


def test_parse_spans_and_fixed_text():
    t = parse("The [MASK:3] of the [MASK] States.")
    assert t.parts == ["The ", Span(3), " of the ", Span(None), " States."]


def test_escapes():
    t = parse(r"a \[MASK] b \\[MASK:2] c")
    assert t.parts == ["a [MASK] b \\", Span(2), " c"]
    assert parse("[MASKED] [MASK:1]").parts[0] == "[MASKED] "


@pytest.mark.parametrize("text, message", [
    ("", "empty"), ("   ", "empty"), ("no spans here", "no span to fill"),
    ("a [MASK:abc]", "bad span length"), ("a [MASK:0]", "out of range"), ("a [MASK:-3]", "bad span length"),
    ("a [MASK:999999]", "out of range"), ("a [MASK:3", "unclosed"), ("a [MASK:[MASK]]", "nested"),
    ("a [MASK", "unclosed"), ("a\x00b [MASK]", "control character"), ("x" * (LIMITS.max_text_chars + 1), "limit"),
    (b"bytes [MASK]", "must be a string"),
])
def test_errors_are_specific(text, message):
    with pytest.raises(ValueError, match=message):
        parse(text)


def test_span_syntax_error_is_a_value_error():
    assert issubclass(SpanSyntaxError, ValueError)


def test_layout_and_render_keep_fixed_text(tokenizer):
    t = parse("Gentlemen of the [MASK:2] and [MASK:3]!")
    layout = build_layout(t, tokenizer, [2, 3])
    assert [b - a for a, b in layout.span_ranges] == [2, 3]
    ids = list(layout.ids)
    for a, b in layout.span_ranges:
        ids[a:b] = tokenizer.convert_tokens_to_ids(["▁the"] * (b - a)) if "▁the" in tokenizer.get_vocab() else \
            [tokenizer.convert_tokens_to_ids("e")] * (b - a)
    text, spans = layout.render(tokenizer, ids)
    assert text.startswith("Gentlemen of the ") and text.endswith("!")
    assert " and " in text and len(spans) == 2


@settings(max_examples=200, deadline=None)
@given(st.lists(st.booleans(), min_size=1, max_size=400), st.integers(8, 64))
def test_windows_cover_every_masked_position(masked, window):
    wins = plan_windows(masked, window)
    for a, b in wins:
        assert 0 <= a < b <= len(masked) and b - a <= window
    covered = {p for a, b in wins for p in range(a, b)}
    assert all(p in covered for p, m in enumerate(masked) if m)
