"""Integration: tiny models trained on the fixture corpus, infilling with every sampler."""
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edlm.pipeline import generate, infill, infill_stream

TEXT = "Fellow citizens of the [MASK:4] and House of [MASK:3]: the state of the Union is [MASK:2]."
FIXED = ["Fellow citizens of the ", " and House of ", ": the state of the Union is ", "."]


def assert_fixed_text_kept(text, fixed):
    pos = 0
    for piece in fixed:
        at = text.find(piece, pos)
        assert at >= pos, (piece, text)
        pos = at + len(piece)
    assert text.startswith(fixed[0]) and text.endswith(fixed[-1])


@pytest.mark.parametrize("sampler", ["mdlm", "edlm-ar", "edlm-nce"])
def test_infill_every_sampler(bundle, sampler):
    events = list(infill_stream(bundle, TEXT, sampler=sampler, steps=6, k=3, is_window=0.5, seed=1))
    last = events[-1]
    assert len(events) > 1 and last.final and last.masked == 0
    assert "[MASK]" not in last.text
    assert_fixed_text_kept(last.text, FIXED)
    assert len(last.spans) == 3
    assert {kind for _, kind, _ in last.segments} <= {"fixed", "filled"}  # nothing stays "new" in finished text
    assert [e.step for e in events] == list(range(1, len(events) + 1))
    assert all(e.masked >= f.masked for e, f in zip(events, events[1:]))
    if sampler != "mdlm":
        is_steps = [e for e in events if e.is_step]
        assert is_steps and all(abs(sum(e.weights) - 1) < 1e-5 and len(e.candidates) == 3 for e in is_steps)
        assert last.energy_calls == len(is_steps)


@pytest.mark.parametrize("sampler", ["edlm-ar", "edlm-nce"])
def test_greedy_edlm_fills_and_weighs_identical_candidates_equally(bundle, sampler):
    events = list(infill_stream(bundle, TEXT, sampler=sampler, steps=6, k=3, is_window=1.0, temperature=0))
    assert events[-1].final and "[MASK]" not in events[-1].text
    assert_fixed_text_kept(events[-1].text, FIXED)
    if sampler == "edlm-ar":
        assert all(max(e.weights) - min(e.weights) < 1e-6 for e in events if e.is_step)


def test_same_seed_same_text(bundle):
    a = infill(bundle, TEXT, sampler="edlm-ar", steps=5, seed=7)
    b = infill(bundle, TEXT, sampler="edlm-ar", steps=5, seed=7)
    assert a.text == b.text


def test_auto_length_span_is_scored(bundle):
    ev = infill(bundle, "We the people [MASK] in order to form", sampler="mdlm", steps=4)
    assert ev.lengths[0] in ev.length_scores and ev.length_scores[ev.lengths[0]] == min(ev.length_scores.values())
    assert ev.text.startswith("We the people ") and ev.text.endswith(" in order to form")


def test_long_text_is_filled_window_by_window(bundle):
    filler = "the public debt and the revenue of the country " * 12
    text = f"Begin [MASK:5] {filler} middle [MASK:5] {filler} end [MASK:3]."
    events = list(infill_stream(bundle, text, sampler="mdlm", steps=3))
    assert events[-1].windows >= 2 and events[-1].masked == 0
    assert_fixed_text_kept(events[-1].text, ["Begin ", f" {filler} middle ", f" {filler} end ", "."])


def test_ar_baseline_continues_a_prefix(bundle):
    ev = infill(bundle, "Gentlemen of the Senate [MASK:6]", sampler="ar")
    assert ev.final and ev.text.startswith("Gentlemen of the Senate") and "[MASK]" not in ev.text
    with pytest.raises(ValueError, match="only continues a prefix"):
        infill(bundle, "[MASK:3] of the Senate", sampler="ar")


def test_generate_batch(bundle):
    evs = generate(bundle, 12, prefix="The Congress", num_samples=3, sampler="edlm-ar", steps=4)
    assert len(evs) == 3 and all(e.text.startswith("The Congress") and e.masked == 0 for e in evs)
    with pytest.raises(ValueError, match="length"):
        generate(bundle, 0)


SPAN = st.integers(1, 4).map(lambda n: f"[MASK:{n}]")
PLAIN = st.text(st.characters(blacklist_categories=("Cc", "Cs")), max_size=25).filter(lambda s: "[MASK" not in s
                                                                                         and "\\" not in s)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(PLAIN, min_size=2, max_size=4), st.data())
def test_text_outside_spans_comes_back_exactly(bundle, pieces, data):
    spans = [data.draw(SPAN) for _ in pieces[1:]]
    text = pieces[0] + "".join(s + p for s, p in zip(spans, pieces[1:]))
    if not text.strip():
        return
    ev = infill(bundle, text, sampler="mdlm", steps=2, seed=0)
    assert_fixed_text_kept(ev.text, pieces)
    # rebuild from the spans: fixed pieces interleaved with the fills give the output exactly
    assert pieces[0] + "".join(f + p for f, p in zip(ev.spans, pieces[1:])) == ev.text


def test_ar_baseline_slides_past_its_context(bundle):
    long_prefix = "the revenue of the country and the public debt " * 12  # far more than 32 tokens
    ev = infill(bundle, long_prefix + "[MASK:40]", sampler="ar", steps=1)
    assert ev.final and ev.text.startswith(long_prefix) and len(ev.spans[0]) > 0


def test_generation_longer_than_the_window(bundle):
    (ev,) = generate(bundle, 80, prefix="The Congress", num_samples=1, sampler="mdlm", steps=4)
    assert ev.windows >= 3 and ev.masked == 0 and ev.text.startswith("The Congress")


def test_ar_sampler_without_an_ar_model_is_a_clear_error(bundle):
    from dataclasses import replace

    with pytest.raises(ValueError, match="no autoregressive model"):
        infill(replace(bundle, ar=None), "The state of the [MASK:3]", sampler="ar")


def test_step_counts_keep_to_the_plan_and_say_why_a_run_ended_early(bundle):
    early = 0
    for seed in range(6):
        events = list(infill_stream(bundle, "The [MASK:2] of it.", sampler="mdlm", steps=64, seed=seed))
        assert {e.total_steps for e in events} == {64}  # never jumps when the run finishes early
        last = events[-1]
        assert last.final
        if last.step < 64:
            early += 1
            assert last.ended_early == f"all 2 tokens filled at step {last.step} of 64"
        else:
            assert last.ended_early is None
    assert early > 0
    filler = "the public debt and the revenue of the country " * 12
    events = list(infill_stream(bundle, f"Begin [MASK:3] {filler} end [MASK:3].", sampler="mdlm", steps=5))
    assert events[-1].windows >= 2 and max(e.total_steps for e in events) <= 5 * events[-1].windows


def test_ar_sampler_reports_ar_passes_not_energy_passes(bundle):
    ev = infill(bundle, "Gentlemen of the Senate [MASK:6]", sampler="ar")
    assert ev.ar_calls == 6 and ev.energy_calls == 0


@pytest.mark.parametrize("unmask, remask", [("confidence", "none"), ("entropy", "remdm"), ("random", "remdm")])
def test_orders_and_remasking_through_the_pipeline(bundle, unmask, remask):
    events = list(infill_stream(bundle, TEXT, sampler="edlm-ar", steps=12, k=2, seed=2, unmask=unmask,
                                remask=remask))
    assert events[-1].final and events[-1].masked == 0
    assert_fixed_text_kept(events[-1].text, FIXED)


def test_generated_sample_does_not_depend_on_how_many_are_drawn(bundle):
    one = generate(bundle, 10, num_samples=1, sampler="mdlm", steps=4, seed=3)
    three = generate(bundle, 10, num_samples=3, sampler="mdlm", steps=4, seed=3)
    assert one[0].text == three[0].text


def test_variants_are_ranked_reproducible_and_keep_the_fixed_text(bundle):
    from edlm.pipeline import variants

    text = "We shall [MASK:5] and we shall [MASK:3] fail."
    out = variants(bundle, text, n=4, sampler="mdlm", seed=7, unmask="random")
    assert len(out) == 4 and sorted(v.seed for v in out) == [7, 8, 9, 10]
    scores = [v.score for v in out]
    assert scores == sorted(scores, reverse=True)
    assert len({v.text for v in out}) > 1
    for v in out:
        assert v.text.startswith("We shall ") and v.text.endswith(" fail.") and " and we shall " in v.text
        assert v.text == infill(bundle, text, sampler="mdlm", seed=v.seed, unmask="random").text
    with pytest.raises(ValueError, match="n must be a whole number from 1 to 8"):
        variants(bundle, text, n=9)
    with pytest.raises(ValueError, match="ar sampler"):
        variants(bundle, "Once [MASK:3]", n=2, sampler="ar")
