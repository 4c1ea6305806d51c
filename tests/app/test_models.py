"""What the page says about its models: what each knows, which examples and settings go with it."""
import importlib.util
import json

from app import editing, models, words
from edlm.bundle import ASSETS


def test_each_model_says_what_it_knows():
    assert "SmolLM2" in words.model_note("general") and "trillion" in words.model_note("general")
    assert "State of the Union" in words.model_note("default") and "State of the Union" in words.model_note("sotu")
    assert "a local model folder" in words.model_note("/some/folder")


def test_examples_follow_the_model_and_set_only_the_text():
    general = words.examples("general")
    speeches = words.examples("default")
    want = [[e["text"]] for e in json.loads((ASSETS / "examples-general.json").read_text())]
    assert general == want and all(len(row) == 1 for row in general + speeches)
    assert general != speeches and any("[MASK" in t for t, in general)
    assert models.example_group("general") == "general" and models.example_group("uniform") == "default"


def test_choosing_a_model_sets_its_own_settings():
    general = models.model_settings("general")
    assert {k: general[k] for k in ("sampler", "k", "temperature", "final", "target_ess")} == {
        "sampler": "ar-is", "k": 16, "temperature": 0.8, "final": "sample", "target_ess": 0.0}  # as measured
    sotu = models.model_settings("default")  # the library's default: the particles, with their own settings
    assert (sotu["sampler"], sotu["unmask"], sotu["temperature"], sotu["is_window"], sotu["target_ess"]) == (
        "edlm-smc", "random", 0.7, 1.0, 0.0)
    uniform = models.model_settings("uniform")  # the sampler measured on it, with the library's settings
    assert (uniform["sampler"], uniform["final"], uniform["temperature"], uniform["target_ess"]) == (
        "edlm-ar", "greedy", 1.0, 0.0)
    assert (uniform["unmask"], uniform["is_window"]) == ("confidence-noisy", 0.5)


def test_the_general_model_is_the_default_where_its_file_is_installed(monkeypatch):
    monkeypatch.delenv("EDLM_MODEL", raising=False)
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: object())
    assert models._default_model() == "general"
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None)
    assert models._default_model() == "default"
    monkeypatch.setenv("EDLM_MODEL", "uniform")
    assert models._default_model() == "uniform"


def test_out_of_domain_text_gets_a_hint_toward_the_general_model(bundle, monkeypatch):
    import dataclasses

    sotu = dataclasses.replace(bundle, name="default")
    monkeypatch.setattr("edlm.presets.SOTU_AR_TEST_PPL", 1.0)  # the tiny test model: every text is far out
    assert "general" in words.domain_hint(sotu, "Add the chopped onion and [MASK:4] until soft and golden today.")
    monkeypatch.setattr("edlm.presets.SOTU_AR_TEST_PPL", 1e9)
    assert words.domain_hint(sotu, "Add the chopped onion and [MASK:4] until soft and golden today.") == ""
    assert words.domain_hint(bundle, "Add the chopped onion and [MASK:4] until soft and golden today.") == ""


def test_each_generate_draws_a_new_seed_unless_the_writer_keeps_one():
    drawn = {models.next_seed(False, 0) for _ in range(5)}
    assert len(drawn) > 1 and all(0 <= s < 2**31 for s in drawn)
    assert models.next_seed(True, 1234) == 1234


def test_undo_and_redo_walk_the_texts_the_page_replaced():
    text, history, future = editing.replace_text("B", "A", [])
    text, history, future = editing.replace_text("C", text, history)
    assert (text, history, future) == ("C", ["A", "B"], [])
    text, history, future = editing.undo(text, history, future)
    assert (text, history, future) == ("B", ["A"], ["C"])
    text, history, future = editing.redo(text, history, future)
    assert (text, history, future) == ("C", ["A", "B"], [])
    text, history, future = editing.undo(*editing.undo(text, history, future))
    assert text == "A" and history == [] and future == ["C", "B"]
    assert editing.undo(text, history, future)[0] == "A"  # nothing left: unchanged
    _, history, future = editing.replace_text("D", text, history)
    assert future == []  # a new change clears Redo


def test_the_undo_history_is_bounded():
    history = []
    for i in range(editing.UNDO_DEPTH + 15):
        history = editing.remember(history, f"text {i}")
    assert len(history) == editing.UNDO_DEPTH and history[-1] == f"text {editing.UNDO_DEPTH + 14}"


def test_undo_never_changes_the_lists_it_is_given():
    """The history lives in each session's own gr.State; the handlers return new lists and never write into the
    ones they get, so no list is ever shared between two sessions' histories (or between undo and redo)."""
    history, future = ["A", "B"], ["C"]
    seen = (list(history), list(future))
    for call in (lambda: editing.undo("X", history, future), lambda: editing.redo("X", history, future),
                 lambda: editing.replace_text("Y", "X", history), lambda: editing.remember(history, "Z")):
        out = call()
        assert (history, future) == seen
        assert all(part is not history and part is not future for part in (out if isinstance(out, tuple) else (out,)))


def test_a_model_that_cannot_load_leaves_a_warning_and_the_last_model(monkeypatch):
    import gradio as gr

    from app import handlers
    from edlm.bundle import ModelFilesError

    def fails(model, progress=None, sampler=None):
        if model == "mdlm-owt":
            raise ModelFilesError("cannot download mdlm-owt from the Hugging Face Hub: no internet")
        return object()

    warned = []
    monkeypatch.setattr("app.models.get_bundle", fails)
    monkeypatch.setattr(gr, "Warning", lambda message: warned.append(message))
    assert handlers.load_model("mdlm-owt", "default") == "default"
    assert warned and "stays on default" in warned[0] and "download" in warned[0]
    assert handlers.load_model("uniform", "default") == "uniform" and len(warned) == 1


def test_the_variants_api_runs_with_the_models_own_settings(bundle, monkeypatch):
    """/variants with only a text: the model's own sampler and settings (the general model's ar-is), not the
    library's; it failed on the general model with "has no diffusion denoiser" before."""
    import dataclasses

    from app import handlers

    own = dataclasses.replace(bundle, defaults={"sampler": "edlm-smc", "k": 2})
    monkeypatch.setattr("app.models.get_bundle", lambda model, progress=None, sampler=None: own)
    text = "We the people of the [MASK:5], in order to form a more perfect union."
    plain = list(handlers.api_variants(text, n=2, steps=4))[-1]
    assert plain == list(handlers.api_variants(text, n=2, steps=4, sampler="edlm-smc"))[-1]
    assert plain != list(handlers.api_variants(text, n=2, steps=4, sampler="mdlm"))[-1]


def test_any_sequence_of_edits_undos_and_redos_matches_an_unbounded_history():
    """Property: whatever the page does (replace with any text, undo, redo, in any order), the bounded history
    and redo list hold at most UNDO_DEPTH texts and agree with an unbounded reference on the newest of them; an
    undo never returns a text the writer did not have."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    op = st.one_of(st.tuples(st.just("replace"), st.text(max_size=8)), st.just(("undo", None)),
                   st.just(("redo", None)))

    @settings(max_examples=200, deadline=None)
    @given(st.lists(op, max_size=80))
    def run(ops):
        text, history, future = "", [], []
        ref_text, ref_hist, ref_fut = "", [], []
        seen = {""}
        for kind, new in ops:
            if kind == "replace":
                seen.add(new)
                out = editing.replace_text(new, text, history)
                if new != ref_text:
                    ref_hist = [*ref_hist, ref_text] if not ref_hist or ref_hist[-1] != ref_text else ref_hist
                    ref_text, ref_fut = new, []
                    text, history, future = out
            elif kind == "undo":
                text, history, future = editing.undo(text, history, future)
                if ref_hist:
                    ref_fut = [*ref_fut, ref_text] if not ref_fut or ref_fut[-1] != ref_text else ref_fut
                    ref_text, ref_hist = ref_hist[-1], ref_hist[:-1]
            else:
                text, history, future = editing.redo(text, history, future)
                if ref_fut:
                    ref_hist = [*ref_hist, ref_text] if not ref_hist or ref_hist[-1] != ref_text else ref_hist
                    ref_text, ref_fut = ref_fut[-1], ref_fut[:-1]
            assert len(history) <= editing.UNDO_DEPTH and len(future) <= editing.UNDO_DEPTH
            assert text in seen
            if len(ref_hist) <= editing.UNDO_DEPTH and len(ref_fut) <= editing.UNDO_DEPTH:
                assert (text, history, future) == (ref_text, ref_hist, ref_fut)
            else:  # past the bound the reference remembers more; the newest entries still agree
                assert history == ref_hist[-len(history):] if history else True
                ref_text, ref_hist, ref_fut = text, list(history), list(future)

    run()


def test_choosing_a_sampler_sets_what_the_command_line_runs_with():
    from edlm.limits import default_settings

    ar = models.model_settings("default", sampler="edlm-ar")  # the library's column
    assert {k: ar[k] for k in models.SAMPLER_CONTROLS} == {k: default_settings("edlm-ar")[k]
                                                           for k in models.SAMPLER_CONTROLS}
    smc = models.model_settings("default", sampler="edlm-smc")
    assert (smc["unmask"], smc["is_window"], smc["temperature"]) == ("random", 1.0, 0.7)
    assert smc == models.model_settings("default")  # the default model's own sampler: its own settings
    general = models.model_settings("general", sampler="edlm-smc")  # the model's settings over the sampler's
    assert (general["sampler"], general["k"], general["temperature"], general["is_window"]) == (
        "edlm-smc", 16, 0.8, 1.0)
    uniform = models.model_settings("uniform", sampler="mdlm")
    assert (uniform["sampler"], uniform["final"]) == ("mdlm", "greedy")
