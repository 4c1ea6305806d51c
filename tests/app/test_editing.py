"""The writer's edits: spans by words or length chosen, and keeping one span's fill from a variant."""
import gradio as gr
import pytest
from hypothesis import assume, given, settings, strategies as st

from app import editing
from app.handlers import keep_variant_span, run_variants, variant_chips
from edlm.pipeline import variants
from edlm.spans import SpanSyntaxError, escape, parse, span_markers


@pytest.fixture
def page_model(bundle, monkeypatch):
    monkeypatch.setattr("app.models.get_bundle", lambda model=None, progress=None, sampler=None: bundle)
    return bundle


def test_a_selection_becomes_a_span_of_words_or_of_the_models_choosing(page_model):
    text = "We hold these truths to be self-evident."
    a, b = text.index("truths"), text.index("truths") + len("truths")
    assert editing.mask_selection(text, a, b, "let the model choose") == "We hold these [MASK] to be self-evident."
    short = editing.mask_selection(text, a, b, "short (~4 words)")
    assert short == f"We hold these [MASK:{round(4 * editing.TOKENS_PER_WORD)}] to be self-evident."
    long_text = " ".join(["the nation and its people grow"] * 5)  # 30 words: its own tokens per word
    rate = len(page_model.tokenizer(long_text, add_special_tokens=False)["input_ids"]) / 30
    assert editing.span_tokens(long_text, 12) == round(12 * rate)
    with pytest.raises(gr.Error, match="unknown span length"):
        editing.mask_selection(text, a, b, "huge")


def test_span_markers_find_each_span_and_skip_escapes():
    text = r"a [MASK:3] b \[MASK] c [MASK] d"
    assert [text[x:y] for x, y in span_markers(text)] == ["[MASK:3]", "[MASK]"]


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("ab [MASK]:3\\\n")), max_size=30))
def test_escaped_text_reads_back_as_itself(s):
    assume(s.strip())  # an empty text is refused before any parsing
    try:
        written = escape(s)
    except SpanSyntaxError:
        assert "\\[MASK" in s
        return
    assert "".join(p for p in parse(written, require_span=False).parts if isinstance(p, str)) == s
    assert not parse(written, require_span=False).spans


def test_keeping_one_span_leaves_the_others_to_fill(page_model):
    text = "The [MASK:4] of the Union is [MASK:3], and our [MASK:5] grows."
    out = variants(page_model, text, n=3, seed=5, steps=8)
    state = {"text": text, "now": text, "fills": [v.spans for v in out], "kept": []}
    new, history, _, state = keep_variant_span(state, "span 2", "#3", text, [])
    assert new == text.replace("[MASK:3]", out[2].spans[1]) and history == [text]
    new2, _, _, state = keep_variant_span(state, "span 3", "#1", new, history)  # numbering follows the original
    assert new2 == new.replace("[MASK:5]", out[0].spans[2]) and "[MASK:4]" in new2
    with pytest.raises(gr.Error, match="kept already"):
        keep_variant_span(state, "span 2", "#1", new2, history)
    with pytest.raises(gr.Error, match="changed since"):
        keep_variant_span(state, "span 1", "#1", new2 + " edited", history)
    # every span kept from one variant gives exactly that variant's text
    state = {"text": text, "now": text, "fills": [v.spans for v in out], "kept": []}
    now = text
    for j in (3, 1, 2):
        now, _, _, state = keep_variant_span(state, f"span {j}", "#2", now, [])
    assert now == out[1].text


def test_a_variant_card_colours_each_spans_fill(page_model):
    text = "The [MASK:4] of the Union is [MASK:3]."
    v = variants(page_model, text, n=1, seed=2, steps=6)[0]
    chips = variant_chips(text, v)
    assert "".join(c for c, _ in chips) == v.text
    assert [label for _, label in chips if label] == ["span 1", "span 2"]
    assert [c for c, label in chips if label] == [s for s in v.spans if s]


def test_the_variants_button_fills_the_cards_and_the_keep_lists(page_model):
    text = "The [MASK:4] of the Union is [MASK:3]."
    last = list(run_variants(text, 3, "mdlm", 6, 1, 0.0, 1.0, 1.0, 7))[-1]
    cards = last[2:2 + 2 * 8]
    shown = [c for c in cards[::2] if c.get("visible")]
    assert len(shown) == 3 and all("span 1" in c["color_map"] for c in shown)
    state, which, source = last[-3:]
    assert state["text"] == text and len(state["fills"]) == 3
    assert which["choices"] == ["span 1", "span 2"] and source["choices"] == ["#1", "#2", "#3"]


def test_use_this_on_a_card_puts_its_whole_text_in_the_box():
    from app.handlers import use_variant

    chips = [("The ", None), ("great", "span 1"), (" nation.", None)]
    assert use_variant(chips, "The [MASK:2] nation.", [])[:2] == ("The great nation.", ["The [MASK:2] nation."])
    as_sent = [{"token": t, "class_or_confidence": c} for t, c in chips]  # the form a browser sends back
    assert use_variant(as_sent, "x", [])[0] == "The great nation."
