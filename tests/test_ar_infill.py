"""The `ar-is` sampler: infilling with the AR model's own posterior by importance sampling (edlm/ar_infill.py)."""
import math

import pytest
import torch

from edlm import infill, infill_stream
from edlm.pipeline import generate, variants

TEXT = "We the people of the [MASK:5], in order to form a more [MASK:3] union, establish justice."


def test_fixed_text_is_byte_exact_and_every_span_is_filled(bundle):
    ev = infill(bundle, TEXT, sampler="ar-is", k=4, seed=3)
    assert ev.final and "[MASK]" not in ev.text and len(ev.spans) == 2
    assert ev.text == "We the people of the " + ev.spans[0] + ", in order to form a more " + ev.spans[1] + \
        " union, establish justice."


def test_it_streams_each_drafted_token_then_the_is_step(bundle):
    events = list(infill_stream(bundle, TEXT, sampler="ar-is", k=3, seed=1))
    assert len(events) == 5 + 1 + 3 + 1 and [e.step for e in events] == list(range(1, 11))
    is_steps = [e for e in events if e.is_step]
    assert [e.step for e in is_steps] == [6, 10]
    for e in is_steps:
        assert len(e.weights) == 3 and math.isclose(sum(e.weights), 1.0, rel_tol=1e-5)
        assert 1.0 <= e.ess <= 3.0 + 1e-6 and len(e.candidates) == 3 and 0 <= e.chosen < 3
    assert events[4].masked == 8 and events[5].masked == 3 and events[-1].masked == 0  # revealed at IS steps
    assert events[-1].ar_calls > 0 and events[-1].denoiser_calls == 0


def test_the_weights_are_the_ar_likelihood_of_the_text_after(bundle):
    """log w_i = log p_AR(after | before, fill_i) (the target p_AR(fill | both sides) over the proposal
    p_AR(fill | before)): recomputed here from scratch for every candidate of the sampler's own IS step."""
    from edlm.energy import ar_log_likelihood
    from edlm.limits import validate
    from edlm.runner import layout_editable, run
    from edlm.spans import build_layout, parse

    text = "The Congress shall [MASK:4] the people of the States."
    layout = build_layout(parse(text), bundle.tokenizer, [4])
    ids = torch.tensor([layout.ids])
    step = [ev for ev, _ in run(bundle, ids, validate(sampler="ar-is", k=4, seed=2), layout_editable(layout))
            if ev.is_step][0]
    a, b = layout.span_ranges[0]
    from edlm.ar_infill import _limits

    _, m = _limits(bundle.ar, b - a, len(layout.ids) - b)  # the lookahead that fits this tiny model
    after = torch.zeros(len(layout.ids), dtype=torch.bool)
    after[b:b + m] = True
    want = [float(ar_log_likelihood(bundle.ar, step.candidates[0, j].unsqueeze(0), bundle.tokenizer.bos_token_id,
                                    after.unsqueeze(0))) for j in range(4)]
    assert torch.allclose(step.log_weights[0], torch.tensor(want), atol=1e-3)
    assert bool((step.candidates[0, :, :a] == ids[0, :a]).all())  # candidates differ only inside the span


def test_same_seed_same_fill_and_rows_do_not_depend_on_their_batch(bundle):
    a = infill(bundle, TEXT, sampler="ar-is", k=4, seed=11)
    b = infill(bundle, TEXT, sampler="ar-is", k=4, seed=11)
    assert a.text == b.text
    out = variants(bundle, TEXT, 3, sampler="ar-is", k=4, seed=11)
    by_seed = {v.seed: v.text for v in out}
    assert by_seed[11] == a.text  # variant 0 of a batch of 3 = the batch-of-one run with that seed
    assert by_seed[12] == infill(bundle, TEXT, sampler="ar-is", k=4, seed=12).text


def test_a_mask_span_chooses_its_length_by_the_is_estimate(bundle):
    ev = infill(bundle, "The state of the [MASK] is strong, and the people are free.", sampler="ar-is", k=4,
                seed=0)
    assert ev.lengths[0] in (4, 8, 16, 24) and set(ev.length_scores) == {4, 8, 16, 24}
    assert ev.text.startswith("The state of the ") and ev.text.endswith(" is strong, and the people are free.")


def test_k_one_is_plain_ar_sampling_and_every_character_class_at_edges_is_kept(bundle):
    for text in ["é[MASK:2]ß", "[MASK:3] starts", "ends with [MASK:2]", "a\r\n[MASK:2]\tb", "日本[MASK:1]語"]:
        ev = infill(bundle, text, sampler="ar-is", k=1, seed=0)
        parts = text.split("[MASK:")
        assert ev.text.startswith(parts[0]) and ev.text.endswith(parts[-1].split("]", 1)[1])


def test_generation_and_the_work_budget(bundle, monkeypatch):
    import dataclasses

    from edlm import runner

    out = generate(bundle, 6, prefix="We the people", num_samples=2, sampler="ar-is", k=2, seed=0)
    assert len(out) == 2 and all(e.text.startswith("We the people") for e in out)
    monkeypatch.setattr(runner, "LIMITS", dataclasses.replace(runner.LIMITS, max_work=500))
    with pytest.raises(ValueError, match="token-passes"):  # checked before any model runs
        generate(bundle, 20, prefix="We the people", num_samples=16, sampler="ar-is", k=32, seed=0)
    monkeypatch.undo()
    with pytest.raises(ValueError, match="does not fit the AR model"):
        infill(bundle, "a [MASK:96] b", sampler="ar-is")


def test_a_bundle_without_a_denoiser_runs_ar_is_by_default_and_refuses_diffusion(bundle):
    import dataclasses

    ar_only = dataclasses.replace(bundle, denoiser=None, defaults={"sampler": "ar-is", "k": 4})
    ev = infill(ar_only, TEXT, seed=3)  # no sampler named: the bundle's own
    assert ev.sampler == "ar-is" and ev.text == infill(bundle, TEXT, sampler="ar-is", k=4, seed=3).text
    with pytest.raises(ValueError, match="no diffusion denoiser"):
        infill(ar_only, TEXT, sampler="mdlm")
