"""Hostile and generated input: the library, the CLI and the app answer with a clear error or a correct fill,
never a crash; limits come from one place."""
import json

import gradio as gr
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edlm.cli import main
from edlm.limits import LIMITS
from edlm.pipeline import infill

ANY_TEXT = st.text(max_size=60) | st.builds(lambda a, n, b: f"{a}[MASK:{n}]{b}", st.text(max_size=20),
                                            st.sampled_from(["1", "2", "0", "-3", "abc", "", "99999", " 2 "]),
                                            st.text(max_size=20))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ANY_TEXT)
def test_library_never_crashes(bundle, text):
    try:
        ev = infill(bundle, text, sampler="mdlm", steps=2)
    except ValueError as e:
        assert str(e)
    else:
        assert ev.final and "[MASK]" not in "".join(ev.spans)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ANY_TEXT)
def test_cli_never_crashes(bundle_dir, capsys, text):
    code = main(["infill", "--model", str(bundle_dir), f"--text={text}", "--steps", "2", "--json"])
    out = capsys.readouterr().out.strip().splitlines()
    assert code in (0, 2) and len(out) == 1
    record = json.loads(out[0])
    assert ("error" in record) == (code == 2)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ANY_TEXT, st.sampled_from([0, 1, 8, 10_000, -1, 2.5]), st.sampled_from([0, 1, 4, 99]))
def test_app_handler_never_crashes(bundle_dir, monkeypatch, text, steps, k):
    from app import handlers as ui

    monkeypatch.setattr("app.models.MODEL", str(bundle_dir))
    try:
        outputs = list(ui.run_infill(text, "edlm-ar", steps, k, 0.5, 1.0, 1.0, 0))
    except gr.Error as e:
        assert e.message and "Traceback" not in e.message
    else:
        assert outputs and "[MASK]" not in outputs[-1][0].replace("\\[MASK]", "")


@pytest.mark.parametrize("bad", [{"steps": LIMITS.max_steps + 1}, {"k": LIMITS.max_k + 1}, {"top_p": 0.0},
                                 {"temperature": 11}, {"seed": -5}, {"sampler": "gpt"}])
def test_limits_hold_in_the_library(bundle, bad):
    with pytest.raises(ValueError):
        infill(bundle, "a [MASK:2] b", **bad)


def test_text_over_the_limit_is_refused_whole(bundle):
    with pytest.raises(ValueError, match="limit"):
        infill(bundle, "x" * LIMITS.max_text_chars + " [MASK:2]")


def test_out_of_memory_is_a_clear_message_and_the_app_keeps_serving(bundle_dir, monkeypatch):
    import torch

    from app import handlers as ui

    monkeypatch.setattr("app.models.MODEL", str(bundle_dir))
    from app import models

    bundle = models.get_bundle(str(bundle_dir), sampler="mdlm")  # the copy an mdlm run uses (its dtype)
    original = bundle.denoiser.forward

    def oom(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(bundle.denoiser, "forward", oom)
    with pytest.raises(gr.Error, match="ran out of memory.*smaller k"):
        list(ui.run_infill("The [MASK:3] of the Union.", "mdlm", 4, 1, 0.5, 1.0, 1.0, 0))
    monkeypatch.setattr(bundle.denoiser, "forward", original)
    outputs = list(ui.run_infill("The [MASK:3] of the Union.", "mdlm", 4, 1, 0.5, 1.0, 1.0, 0))
    assert "[MASK]" not in outputs[-1][0]


def test_missing_model_files_are_a_clear_message(tmp_path, monkeypatch):
    from app import handlers as ui

    monkeypatch.setattr("app.models.MODEL", str(tmp_path))
    with pytest.raises(gr.Error, match="no model bundle"):
        list(ui.run_infill("The [MASK:3] of the Union."))


# Every sampler and unmask order at the edges of its limits, with every class of character at the spans' edges:
# the text outside the spans comes back byte for byte, no mask survives, and no run takes more steps than asked.
EDGES = st.sampled_from(["", " ", "  ", "\r\n", "\n\n", "\t", "é", "e\u0301", "日本", "🙂", "👩‍👩‍👧", "\u200b",
                         "'", "—", "x", "1.", "\\[MASK]", "(", "\u00a0"])


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.sampled_from(["mdlm", "edlm-ar", "edlm-nce", "edlm-smc", "ar-is"]),
       st.sampled_from(["random", "confidence", "confidence-noisy", "margin", "entropy", "threshold",
                        "entropy-bound"]),
       st.sampled_from([1, 2, LIMITS.max_k]), st.integers(1, 5), st.tuples(EDGES, EDGES, EDGES),
       st.integers(1, 6))
def test_every_sampler_and_order_keeps_the_text_and_its_step_budget(bundle, sampler, unmask, k, steps, parts, n):
    from edlm.pipeline import infill_stream

    a, b, c = parts
    events = list(infill_stream(bundle, f"{a}[MASK:{n}]{b}[MASK:{n}]{c}", sampler=sampler, unmask=unmask, k=k,
                                steps=steps, seed=0))
    ev = events[-1]
    plain = [p.replace("\\[MASK]", "[MASK]") for p in parts]
    assert ev.final and len(ev.spans) == 2 and not any("[MASK]" in s for s in ev.spans)
    assert ev.text == plain[0] + ev.spans[0] + plain[1] + ev.spans[1] + plain[2]
    if sampler != "ar-is":  # a diffusion run: never more reverse steps than asked for, in each window it fills
        assert len(events) <= ev.total_steps and ev.total_steps % steps == 0


def test_spans_longer_than_the_window_are_filled_whole(bundle):
    """A span of more tokens than the model reads at once (the tiny model's window is 32; here up to two windows
    and more, k at its limit, the particle sampler): filled whole across windows, the text around it intact."""
    for n, k in ((bundle.window - 4, LIMITS.max_k), (bundle.window + 1, 4), (2 * bundle.window + 3, 2)):
        ev = infill(bundle, f"We begin [MASK:{n}] and end.", sampler="edlm-smc", steps=4, k=k, seed=0)
        assert ev.text == "We begin " + ev.spans[0] + " and end." and "[MASK]" not in ev.spans[0]
        assert ev.final and len(ev.spans) == 1
