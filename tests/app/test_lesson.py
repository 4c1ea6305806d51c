"""The teacher's views of a finished run: the guided IS step, the top tokens at a clicked word, the replay's step
buttons, and Compare's replay."""
import pytest

from app.handlers import _highlight, lesson_choices, lesson_next, lesson_view, step_by
from app.lesson import STAGES, chip_token, guided_is, shown_token, token_chips, top_chart
from app.replay import CompareReplay, Replay
from app.words import status_line
from edlm.pipeline import infill_stream

TEXT = "We the people of the [MASK:6], in order to form a more perfect [MASK:3]."


def recorded(bundle, sampler="edlm-ar", **kw) -> Replay:
    replay = Replay(k=kw.get("k", 3), text_chars=len(TEXT), steps_planned=kw.get("steps", 8))
    for ev in infill_stream(bundle, TEXT, sampler=sampler, **{"steps": 8, "k": 3, "is_window": 1.0, "seed": 4, **kw}):
        replay.add(ev, _highlight(ev.segments), status_line(ev, 3))
    return replay


def test_the_guided_step_adds_one_stage_at_a_time(bundle):
    replay = recorded(bundle)
    step = replay.is_steps[0]
    pages = [guided_is(step, replay.revealed[step[0]], n) for n in range(1, len(STAGES) + 1)]
    assert all(len(a) < len(b) for a, b in zip(pages, pages[1:]))  # each stage says more than the one before
    assert "stage 1" in pages[0] and "Stage 2" not in pages[0] and "log-weight" not in pages[0].split("</p>", 1)[1]
    assert "Stage 5" in pages[-1] and "◀ kept" in pages[-1] and "◀ kept" not in pages[2]
    kept = step[2]
    assert pages[-1].count("<tr class='edlm-kept'>") == 1
    assert f"Candidate #{kept + 1} was drawn" in pages[-1]
    assert f"of {len(step[1])}" in pages[2]  # the ESS, out of k
    for tok in replay.revealed[step[0]]:  # the tokens this step revealed from the kept candidate are named
        assert tok.replace("&", "&amp;") in pages[-1] or tok in pages[-1]


def test_a_step_with_nothing_to_choose_says_so():
    same = (3, [1 / 3] * 3, 0, ["the same words"] * 3, 3.0, [0.0, 0.0, 0.0], "", None)
    page = guided_is(same, [], 1)
    assert "nothing to choose" in page and "<b>" not in page.split("</p>", 1)[1]  # no word differs: none bold
    differ = (3, [0.9, 0.1], 1, ["the great nation", "the free nation"], 1.2, [0.0, -2.2], "", None)
    page = guided_is(differ, [], 2)
    assert "<b>great</b>" in page and "<b>free</b>" in page and "<b>nation</b>" not in page and "-2.20" in page


def test_lesson_starts_at_the_step_that_chose_most_and_next_walks_on(bundle):
    replay = recorded(bundle)
    choices, stage, page = lesson_choices(replay)
    best = max(range(len(replay.is_steps)), key=lambda i: replay.is_steps[i][4])
    assert choices["value"] == best and stage == STAGES[0] and f"Step {replay.is_steps[best][0]}," in page
    which, stage = best, STAGES[0]
    for n in range(1, len(STAGES)):
        which, stage, page = lesson_next(replay, which, stage)
        assert which == best and stage == STAGES[n]
    which, stage, page = lesson_next(replay, which, stage)  # past the last stage: the next IS step, stage 1
    assert which == (best + 1) % len(replay.is_steps) and stage == STAGES[0]
    assert lesson_view(replay, which, stage) == page


def test_a_run_without_is_steps_has_nothing_to_walk_through(bundle):
    replay = recorded(bundle, sampler="mdlm", k=1)
    choices, _, page = lesson_choices(replay)
    assert choices["choices"] == [] and "no importance-sampling step" in page


@pytest.mark.parametrize("sampler", ["mdlm", "edlm-smc", "ar-is"])
def test_each_filled_token_has_the_denoisers_top_tokens_when_it_was_written(bundle, sampler):
    ev = None
    for ev in infill_stream(bundle, TEXT, sampler=sampler, steps=8, k=3, seed=1):
        pass
    assert "".join(t for t, _ in ev.token_chips) == ev.text  # the clickable pieces are the text, nothing lost
    assert [i for _, i in ev.token_chips if i is not None] == list(range(9))  # one chip per filled token
    assert len(ev.top) == 9
    for top in ev.top:
        probs = [p for _, p in top]
        assert len(top) == 5 and probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1.0001


def test_clicking_a_chip_finds_its_token_and_charts_its_top_tokens():
    chips = [("The ", None), ("great", 0), (" nation", 1), (".", None)]
    assert token_chips(chips) == [("The ", None), ("great", "filled"), (" nation", "filled"), (".", None)]
    assert [chip_token(chips, i) for i in (0, 1, 2, 3, 4, None)] == [None, 0, 1, None, None, None]
    fig = top_chart("great", [(" great", 0.5), (" free", 0.3), ("great", 0.1)], 3)
    assert list(fig.data[0].y) == ["great", "␣free", "␣great"]  # likeliest on top; a leading space shown
    assert fig.data[0].marker.color[-1] == "#f28e2b" and fig.data[0].marker.color[1] == "#4e79a7"
    assert "step 3" in fig.layout.title.text
    assert shown_token("\n") == "⏎" and shown_token("") == "(empty)"
    assert top_chart("x", [], None).layout.annotations  # nothing to show is said, not drawn empty


def test_step_buttons_move_through_the_kept_steps(bundle):
    replay = recorded(bundle)
    last = replay.last_step
    step, *view = step_by(replay, last, -1)
    assert step == last - 1 and view[1].startswith(f"**replay: step {last - 1} of")
    step, *view = step_by(replay, step, +1)
    assert step == last
    assert step_by(replay, last, +1)[0] == last and step_by(replay, 1, -1)[0] == 1  # the ends hold


def test_compare_keeps_both_runs_for_the_replay(bundle, monkeypatch):
    from app import handlers

    monkeypatch.setattr("app.models.get_bundle", lambda model, progress=None, sampler=None: bundle)
    outs = list(handlers.run_compare(TEXT, "mdlm", "edlm-ar", 6, 3, 1.0, 1.0, 1.0, 0))
    kept, slider = outs[-1][6], outs[-1][7]
    assert isinstance(kept, CompareReplay) and slider["maximum"] == kept.last_step and slider["visible"]
    left_1, status_l, right_1, status_r, masked, ess = kept.view(1)
    assert "▒" in str(left_1) and status_l.startswith("**replay: step 1 of")
    assert masked.data[0].x[-1] == 1 and masked.data[1].x[-1] == 1  # charts drawn up to the step shown
    end = kept.view(kept.last_step)
    assert "▒" not in str(end[0]) and "▒" not in str(end[2])
    assert "left: mdlm" in ess.layout.title.text  # the side without IS steps is named, not a silent gap
    assert step_by(kept, kept.last_step, -1)[0] < kept.last_step


def test_the_lesson_names_the_is_temperature_a_tempered_step_used():
    import math

    from app.lesson import temperature_of

    logs = [0.0, -4.0, -10.0]
    w = [math.exp(x / 5.0) for x in logs]
    w = [x / sum(w) for x in w]
    assert abs(temperature_of(logs, w) - 5.0) < 1e-9
    step = (2, w, 0, ["a b", "a c", "a d"], 1.9, logs, "", None)
    assert "÷ 5.0" in guided_is(step, [], 3) and "÷" not in guided_is((2, [0.5, 0.5], 0, ["a", "b"], 2.0,
                                                                        [0.0, 0.0], "", None), [], 3)
    assert temperature_of(None, w) is None and temperature_of([0.0, -50.0], [1.0, 0.0]) is None


def test_bulk_sampling_does_not_compute_top_tokens(bundle):
    """The top tokens are for the teaching view: the runner computes them only when asked."""
    import torch

    from edlm.limits import validate
    from edlm.runner import run

    ids = torch.full((2, 12), bundle.tokenizer.mask_token_id)
    editable = torch.ones(12, dtype=torch.bool)
    req = validate(sampler="mdlm", steps=4, seed=0)
    assert all("top_ids" not in ev.extra for ev, _ in run(bundle, ids.clone(), req, editable))
    asked = [ev.extra["top_ids"] for ev, _ in run(bundle, ids.clone(), req, editable, top_tokens=3)]
    assert asked[0].shape == (2, 12, 3) and bool((asked[0] >= 0).all())  # every position predicted at step 1
