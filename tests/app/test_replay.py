"""The replay of a finished run: every step can be shown again, text and charts in sync."""
from app.replay import Replay
from app.handlers import _highlight
from app.words import status_line as _status
from edlm.pipeline import infill_stream


def test_replay_shows_each_step_as_it_was(bundle):
    text = "We the people of the [MASK:6], in order to form a more perfect union."
    replay = Replay(k=3, text_chars=len(text), steps_planned=8)
    shown = []
    for ev in infill_stream(bundle, text, sampler="edlm-ar", steps=8, k=3, is_window=0.5, seed=2):
        chips, status = _highlight(ev.segments), _status(ev, 3)
        replay.add(ev, chips, status)
        shown.append((ev.step, chips, ev.masked))
    assert replay.last_step == shown[-1][0] and len(replay.frames) == len(shown)
    for step, chips, masked in shown:
        view = replay.view(step)
        assert view[0] == chips and view[1].startswith(f"**replay: step {step} of {replay.last_step}**")
        masked_fig = view[5]
        assert list(masked_fig.data[0].x)[-1] == step
        weights_fig, table = view[2], view[6]
        is_seen = [s for s in replay.is_steps if s[0] <= step]
        assert bool(table) == bool(is_seen)
        if is_seen:
            assert list(weights_fig.data[0].y) == is_seen[-1][1]
    first, last = replay.view(1), replay.view(replay.last_step)
    assert first[0] != last[0]  # the text changes between the first and the last step
    assert "▒" not in str(last[0]) and "▒" in str(first[0])


def test_a_long_run_keeps_every_nth_step():
    replay = Replay(k=1, text_chars=20_000, steps_planned=1000)
    assert replay.stride == 50


def test_compare_streams_both_samplers_and_charts_them_together(bundle, monkeypatch):
    """The compare tab: both texts keep the fixed words, and its two charts hold one line per sampler."""
    from app import handlers as ui

    monkeypatch.setattr("app.models.get_bundle", lambda model, progress=None, sampler=None: bundle)
    text = "We the people [MASK:4] of the Union."
    outs = list(ui.run_compare(text, "mdlm", "edlm-ar", 6, 3, 1.0, 1.0, 1.0, 0))
    last = outs[-1]
    for chips, status in ((last[0], last[1]), (last[2], last[3])):
        filled = "".join(tok for tok, _ in chips)
        assert filled.startswith("We the people") and filled.endswith("of the Union.") and "done" in status
    masked, ess = last[4], last[5]
    assert [t.name for t in masked.data] == ["left: mdlm", "right: edlm-ar"]
    assert masked.data[0].y[-1] == 0 and masked.data[1].y[-1] == 0  # both runs end fully filled
    assert [t.name for t in ess.data] == ["right: edlm-ar"]  # only the energy sampler has IS steps
    assert "left: mdlm: none (no weighting steps)" in ess.layout.title.text  # and the chart says so


def test_particles_show_their_lineage_live_and_in_the_replay(bundle, monkeypatch):
    from app import handlers

    monkeypatch.setattr("app.models.get_bundle", lambda model, progress=None, sampler=None: bundle)
    outs = list(handlers.run_infill("We shall [MASK:6] and we shall [MASK:4] fail.", "edlm-smc", 8, 4, 1.0, 1.0,
                                    1.0, 3, None, "confidence-noisy", "none"))
    figs = [o[4] for o in outs if hasattr(o[4], "layout")]
    assert figs and "who continues whom" in figs[-1].layout.title.text
    replay = outs[-1][9]
    assert replay.particles and "who continues whom" in replay.view(replay.last_step)[3].layout.title.text


def test_choosing_span_lengths_is_shown_before_the_first_step(bundle, monkeypatch):
    from app import handlers

    monkeypatch.setattr("app.models.get_bundle", lambda model, progress=None, sampler=None: bundle)
    outs = list(handlers.run_infill("We shall [MASK] and we shall not fail.", "mdlm", 8, 1, 0.5, 1.0, 1.0, 0))
    notes = [o[2] for o in outs if isinstance(o[2], str)]
    assert notes[0].startswith("**choosing span lengths**") and "done" in notes[-1]
    first_step = next(i for i, n in enumerate(notes) if not n.startswith("**choosing"))
    assert first_step > 0 and outs[-1][0].startswith("We shall ")


def test_a_slowed_run_says_how_much_of_its_time_was_computing(bundle, monkeypatch):
    from app import handlers

    monkeypatch.setattr("app.models.get_bundle", lambda model, progress=None, sampler=None: bundle)
    outs = list(handlers.run_infill("We shall [MASK:6] fail.", "mdlm", 4, 1, 0.5, 1.0, 1.0, 0, None, "random",
                                    "none", 0.3))
    status = outs[-1][2]
    computing = float(status.split(" s of it computing")[0].split(" · ")[-1])
    wall = float(status.split(" · ")[1].removesuffix(" s"))
    assert len(outs) >= 2 and wall - computing >= 0.25  # at least one delay of 0.3 s was not computing


def test_a_finished_run_downloads_as_json_with_its_steps_and_weights(bundle, monkeypatch, tmp_path):
    import json

    import gradio as gr
    import pytest

    from app import handlers

    monkeypatch.setattr("app.models.get_bundle", lambda model, progress=None, sampler=None: bundle)
    monkeypatch.setattr(handlers, "download_folder", lambda: str(tmp_path))
    with pytest.raises(gr.Error, match="run Generate first"):
        handlers.export_run(None)
    outs = list(handlers.run_infill("We shall [MASK:6] and we shall [MASK:4] fail.", "edlm-smc", 8, 3, 1.0, 1.0,
                                    1.0, 3, None, "random", "none"))
    run = json.loads(open(handlers.export_run(outs[-1][9]), encoding="utf-8").read())
    assert run["format"] == "edlm-run" and run["k"] == 3 and run["total_steps"] == 8
    assert run["steps"][-1]["text"] == outs[-1][0]  # the finished text, as the page showed it
    w = run["weighting_steps"]
    assert w and all(len(s["weights"]) == 3 and abs(sum(s["weights"]) - 1) < 1e-5 for s in w)
    assert len(run["tokens"]) == 10 and all(t["revealed_at"] >= 1 for t in run["tokens"])


def test_the_legend_and_labels_follow_the_models_process(bundle, monkeypatch):
    """Masked diffusion: a legend with masks and no "changed" chip, the last chart named for when tokens appeared;
    a kept candidate that revealed nothing yet says so plainly."""
    from app import charts, handlers
    from app.replay import kept_note

    monkeypatch.setattr("app.models.get_bundle", lambda model, progress=None, sampler=None: bundle)
    first = next(iter(handlers.run_infill("We the people [MASK:4] of the Union.", "edlm-ar", 4, 3)))
    legend, reveal = first[1], first[8]
    assert set(legend["color_map"]) == {"mask", "new", "filled", "rewritten"}
    assert reveal["label"] == charts.REVEAL_LABELS["absorbing"]
    assert set(charts.colors_for("uniform")) == {"new", "filled", "rewritten", "changed"}
    assert kept_note(True, [("We", "fixed", None)]).startswith("kept; this step revealed none of its tokens")


def test_a_run_exports_as_an_animated_gif_that_shows_its_steps(bundle, monkeypatch, tmp_path):
    """The GIF for slides: one frame per kept step (at most MAX_FRAMES), all one size, the last held longest;
    the first frame has grey mask blocks and orange new tokens, the last none of the grey."""
    import gradio as gr
    import pytest
    from PIL import Image

    from app import frames, handlers

    monkeypatch.setattr("app.models.get_bundle", lambda model, progress=None, sampler=None: bundle)
    monkeypatch.setattr(handlers, "download_folder", lambda: str(tmp_path))
    with pytest.raises(gr.Error, match="run Generate first"):
        handlers.export_gif(None)
    outs = list(handlers.run_infill("We shall [MASK:6] and we shall [MASK:4] fail.", "mdlm", 8, 1))
    replay = outs[-1][9]
    gif = Image.open(handlers.export_gif(replay))
    assert gif.format == "GIF" and gif.n_frames == len(replay.frames) and gif.info["loop"] == 0

    def has(i, colour):  # a block of the colour (the GIF palette may shift it a little)
        gif.seek(i)
        return sum(n for n, rgb in gif.convert("RGB").getcolors(1 << 20)
                   if max(abs(a - b) for a, b in zip(rgb, colour)) <= 6) > 100  # a block, not text edges

    grey, orange = (0xc9, 0xc9, 0xc9), (0xf2, 0x8e, 0x2b)
    assert has(0, grey) and has(0, orange) and not has(gif.n_frames - 1, grey)
    gif.seek(gif.n_frames - 1)
    assert gif.info["duration"] == frames.LAST_MS


def test_gif_lines_break_only_at_spaces():
    from PIL import ImageFont

    from app.frames import _lines

    font = ImageFont.load_default(size=20)
    chips = [("The waiter ", None), ("re", "new"), ("commended", "filled"), (" the soup, which was", None),
             (" superb.", "new"), ("\nNext", None)]
    lines = _lines(chips, font, 150)
    words = ["".join(t for t, _ in line).split() for line in lines]
    assert ["recommended"] in [[w] for line in words for w in line if w == "recommended"]  # never split
    assert "".join(t for line in lines for t, _ in line).replace(" ", "") == \
        "Thewaiterrecommendedthesoup,whichwassuperb.Next"
    assert words[-1] == ["Next"]  # the line break starts a line


def test_the_candidates_table_shows_each_log_weight_against_the_best():
    from app.replay import CANDIDATE_HEADERS, candidate_rows

    rows = candidate_rows([0.7, 0.2, 0.1], [-1.0, -2.25, -2.95], 0, ["a", "b", "c"], "kept")
    assert len(CANDIDATE_HEADERS) == len(rows[0]) == 5
    assert [r[2] for r in rows] == ["0", "-1.25", "-1.95"] and [r[3] for r in rows] == ["kept", "", ""]
    assert [r[2] for r in candidate_rows([1.0], None, 0, ["a"], "kept")] == [""]  # no log-weights: left blank
