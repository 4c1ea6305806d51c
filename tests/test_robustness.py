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

    bundle = models.get_bundle(str(bundle_dir))
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
