"""The Gradio page: its layout and wiring (the handlers are in `app.handlers`, the words in `app.words`)."""
from __future__ import annotations

import logging
import os
import sys

import gradio as gr

from edlm.augment import EXTENSIONS
from edlm.limits import LIMITS, SETTINGS
from edlm.presets import load_bundle

from . import tools
from .charts import COLORS
from .editing import SPAN_LENGTHS, get_selection, mask_selection, redo, replace_text, rewrite_selection, undo
from .files import AUGMENT_MAX_RECORDS, FILE_SECONDS, remove_own_downloads, start_download_sweeper
from .guard import mark_asked, request_stop
from .handlers import (MAX_DELAY, MAX_VARIANTS, export_gif, export_run, keep_variant_span, lesson_choices,
                       lesson_next, lesson_view, load_model, play_tick, run_augment, run_compare, run_infill,
                       run_keywords, run_variants, show_step, start_play, step_by, tokens_pick, tokens_view, use_variant)
from .lesson import STAGES
from .models import MODEL, SAMPLER_CONTROLS, example_group, model_choices, model_settings, next_seed
from .replay import CANDIDATE_HEADERS
from .words import model_note
from .widgets import Choice, Slider, setting_widget
from .words import HOW_IT_WORKS, examples


def inputs_for(handler, controls: dict, **more) -> list:
    """A handler's inputs in the order of its parameters, each the control of the parameter's name (`more` adds
    or overrides controls): the wiring can never pass a setting to the wrong parameter."""
    import inspect

    named = {**controls, **more}
    params = [p for p in inspect.signature(handler).parameters if p not in ("progress", "request")]
    missing = [p for p in params if p not in named]
    if missing:
        raise TypeError(f"{handler.__name__} takes {', '.join(missing)}, which the page has no control for")
    return [named[p] for p in params]


def build() -> gr.Blocks:
    # Gradio's own copies of files (uploads, downloads) are deleted after FILE_SECONDS, and all at shutdown.
    with gr.Blocks(title="EDLM Studio", delete_cache=(max(1, min(60, FILE_SECONDS // 2)), FILE_SECONDS)) as demo:
        gr.Markdown("# EDLM Studio\nMark spans with `[MASK:n]` (exactly n tokens) or `[MASK]` (length chosen for "
                    "you), or select text and press **Mask selection**; then watch the model fill them.")
        start = model_settings(MODEL)  # every control starts at the default model's own settings (the API too:
        #                                Gradio's defaults for an endpoint's inputs are the controls' values)
        with gr.Row(equal_height=True):
            model = Choice(model_choices(), value=MODEL, label="Model", scale=1, min_width=200, elem_id="edlm-model",
                           info="loaded on first use")
            model_md = gr.Markdown(model_note(MODEL), elem_id="edlm-model-note")
        with gr.Row(equal_height=False):
            # the writer's text and its result side by side (stacked on a phone)
            with gr.Column(scale=1, min_width=340):
                text = gr.Textbox(value=examples(MODEL)[0][0], lines=6, label="Your text", elem_id="edlm-text",
                                  max_length=LIMITS.max_text_chars,
                                  info=r"[MASK:n] = n tokens · [MASK] = length chosen · \[MASK] = a literal [MASK]")
                with gr.Row():
                    go_btn = gr.Button("Generate", variant="primary", elem_id="edlm-generate")
                    stop_btn = gr.Button("Stop", variant="stop", elem_id="edlm-stop")
                with gr.Row(equal_height=True):
                    mask_btn = gr.Button("Mask selection", size="sm", elem_id="edlm-mask", scale=1)
                    span_len = Choice(SPAN_LENGTHS, value=SPAN_LENGTHS[0], label="as a span of", scale=2,
                                      elem_id="edlm-span-length", min_width=160)
                with gr.Row():
                    undo_btn = gr.Button("↶ Undo", size="sm", elem_id="edlm-undo")
                    redo_btn = gr.Button("↷ Redo", size="sm", elem_id="edlm-redo")
                with gr.Row():
                    var_btn = gr.Button("Variants", elem_id="edlm-variants", scale=2)
                    var_n = Slider(2, MAX_VARIANTS, value=4, step=1, label="How many", scale=3,
                                   elem_id="edlm-variants-n")
                with gr.Row(equal_height=True):  # the model writes a sentence that uses every keyword
                    kw_text = gr.Textbox(label="…or a sentence from keywords", placeholder="taxes, families, relief",
                                         scale=3, max_lines=1, elem_id="edlm-keywords", max_length=400)
                    kw_btn = gr.Button("Write from keywords", size="sm", scale=1, elem_id="edlm-keywords-go")
                sel_start = gr.Number(visible=False, precision=0)
                sel_end = gr.Number(visible=False, precision=0)
            with gr.Column(scale=1, min_width=340):
                # a label of one line on a phone, clear of the copy icon
                plain = gr.Textbox(label="Result (edit, copy, reuse)", lines=6, buttons=["copy"], interactive=True,
                                   elem_id="edlm-result")
                with gr.Row():
                    use_btn = gr.Button("Use this: put the result into your text", size="sm", elem_id="edlm-use")
                    rewrite_btn = gr.Button("Rewrite selection", size="sm", elem_id="edlm-rewrite")
                status = gr.Markdown("Press **Generate**.", elem_id="edlm-status")
                # Variants right under the result they are variants of (on a phone too): each fill coloured by
                # span, a whole variant taken with Use this, or one span's fill kept while the others are retried.
                with gr.Column(visible=False, elem_id="edlm-variant-box") as var_box:
                    var_note = gr.Markdown()
                    with gr.Row(equal_height=True):
                        keep_which = Choice([], label="Keep the fill of", scale=1, min_width=110,
                                            elem_id="edlm-keep-span")
                        keep_from = Choice([], label="from variant", scale=1, min_width=110,
                                           elem_id="edlm-keep-from")
                        keep_btn = gr.Button("Keep; retry the other spans", size="sm", scale=2,
                                             elem_id="edlm-keep")
                    var_cards = []
                    for i in range(MAX_VARIANTS):
                        box = gr.HighlightedText(visible=False, combine_adjacent=False, show_legend=False,
                                                 elem_id=f"edlm-variant-{i}", elem_classes=["edlm-flow"])
                        btn = gr.Button("Use this", size="sm", visible=False, elem_id=f"edlm-use-{i}")
                        var_cards.append((box, btn))
            # A full-width line of the same row (see CSS): under text and result, so a phone shows the result
            # right under the text and its buttons, before the examples.
            examples_slot = gr.Column(elem_id="edlm-examples")
        with gr.Accordion("Settings: sampler, steps, candidates, order, weights, seed", open=False,
                          elem_id="edlm-settings"):
            with gr.Row():  # each control built from its setting's schema (edlm.limits.SETTINGS)
                sampler = setting_widget("sampler", start.get("sampler"), elem_id="edlm-sampler")
                steps = setting_widget("steps", start.get("steps"), elem_id="edlm-steps")
                k = setting_widget("k", start.get("k"))
                is_window = setting_widget("is_window", start.get("is_window"), elem_id="edlm-is-window")
            with gr.Row():
                temperature = setting_widget("temperature", start.get("temperature"), elem_id="edlm-temperature")
                top_p = setting_widget("top_p", start.get("top_p"))
                unmask = setting_widget("unmask", start.get("unmask"), elem_id="edlm-unmask")
                remask = setting_widget("remask", start.get("remask"))
                final = setting_widget("final", start.get("final"), elem_id="edlm-final")
            laid_out = {"sampler", "steps", "k", "is_window", "temperature", "top_p", "unmask", "remask", "final",
                        "seed"}
            more = {}  # every other setting of the schema, four to a row (a new setting appears here by itself)
            rest = [st.name for st in SETTINGS if st.name not in laid_out]
            for i in range(0, len(rest), 4):
                with gr.Row():
                    more.update({name: setting_widget(name, start.get(name)) for name in rest[i:i + 4]})
            with gr.Row():
                seed = setting_widget("seed", start.get("seed"), elem_id="edlm-seed")
                keep_seed = gr.Checkbox(value=False, label="Keep this seed", elem_id="edlm-keep-seed",
                                        info="off: every Generate draws a new seed (the status shows it)")

        example_cols = []
        with examples_slot:  # everyday text for the general model, speeches for the State of the Union ones
            for group, label in (("general", "Examples: everyday English (click to load)"),
                                 ("default", "Examples: State of the Union prose (click to load)")):
                with gr.Column(visible=example_group(MODEL) == group) as col:
                    gr.Examples(examples(group), inputs=[text], label=label, examples_per_page=5)
                example_cols.append((group, col))
        with gr.Tab("Watch", elem_id="edlm-tab-watch"):  # short names: all three tabs fit a phone's width
            with gr.Row():
                replay_step = gr.Slider(0, 1, value=0, step=1, label="Replay: step of the last run", visible=False,
                                        elem_id="edlm-replay", scale=4)
                back_btn = gr.Button("◀ Step", size="sm", elem_id="edlm-step-back", scale=1, min_width=70)
                play_btn = gr.Button("▶ Play", size="sm", elem_id="edlm-play", scale=1)
                fwd_btn = gr.Button("Step ▶", size="sm", elem_id="edlm-step-forward", scale=1, min_width=70)
                delay = Slider(0, MAX_DELAY, value=0, step=0.05, label="Delay per step (s)", scale=2,
                                  elem_id="edlm-delay", info="slows a live run, and sets the replay speed")
                with gr.Column(scale=1, min_width=160):
                    export_btn = gr.Button("Download the run (JSON)", size="sm", elem_id="edlm-export")
                    gif_btn = gr.Button("Download as GIF (slides)", size="sm", elem_id="edlm-export-gif")
            export_file = gr.File(label="The last run: step by step (JSON: texts, weights, candidates, ESS), or a GIF",
                                  height=90, elem_id="edlm-export-file")
            live = gr.HighlightedText(label="Text as it denoises (orange: new this step, green: earlier, purple: "
                                            "rewritten after remasking, grey blocks: still masked)",
                                      color_map=COLORS, combine_adjacent=False, show_legend=True,
                                      elem_id="edlm-live", elem_classes=["edlm-flow"])
            with gr.Row():
                w_plot = gr.Plot(label="Importance weights", elem_id="edlm-weights")
                ess_plot = gr.Plot(label="Effective sample size")
            with gr.Row():
                heat_plot = gr.Plot(label="Weights over the run (edlm-smc: the particles, and who continues whom)")
                masked_plot = gr.Plot(label="Still masked")
            cands = gr.Dataframe(headers=CANDIDATE_HEADERS, label="Candidates of the latest IS step (what the energy "
                                 "preferred)", wrap=True, elem_id="edlm-cands",
                                 column_widths=["6%", "14%", "16%", "22%", "42%"])
            reveal_plot = gr.Plot(label="When each token of the fill appeared", elem_id="edlm-reveal")
            with gr.Accordion("Lesson: one importance-sampling step, stage by stage", open=False,
                              elem_id="edlm-lesson"):
                with gr.Row(equal_height=True):
                    lesson_step = Choice([], label="IS step of the last run", scale=2, elem_id="edlm-lesson-step")
                    lesson_stage = gr.Radio(list(STAGES), value=STAGES[0], label="Stage", scale=4,
                                            elem_id="edlm-lesson-stage")
                    lesson_btn = gr.Button("Next ▶", size="sm", scale=1, elem_id="edlm-lesson-next")
                lesson_html = gr.HTML("<p>Press Generate with an edlm sampler; then walk through one of its "
                                      "importance-sampling steps here.</p>", elem_id="edlm-lesson-view")
            with gr.Accordion("What the model hesitated between: click a word of the fill", open=False,
                              elem_id="edlm-tokens"):
                tokens_ht = gr.HighlightedText(label="The last run's text, each filled token on its own (click one)",
                                               color_map={"filled": COLORS["filled"]}, combine_adjacent=False,
                                               show_legend=False, show_inline_category=False,
                                               elem_id="edlm-token-chips",
                                               elem_classes=["edlm-flow"])
                top_plot = gr.Plot(label="Top tokens at the clicked position", elem_id="edlm-top-tokens")
        with gr.Tab("Compare", elem_id="edlm-tab-compare"):
            gr.Markdown("The text above, the same settings and seed, through two samplers side by side.")
            with gr.Row():
                sampler_a = setting_widget("sampler", "mdlm", label="Left", info=None)
                sampler_b = setting_widget("sampler", "edlm-ar", label="Right", info=None)
            with gr.Row():
                cmp_btn = gr.Button("Compare", variant="primary", elem_id="edlm-compare", scale=3)
                cmp_stop = gr.Button("Stop", variant="stop", elem_id="edlm-compare-stop", scale=1)
            with gr.Row():  # the same replay controls as the Watch tab (its delay slider sets the speed)
                cmp_step = gr.Slider(0, 1, value=0, step=1, label="Replay: step of the last comparison",
                                     visible=False, elem_id="edlm-cmp-replay", scale=4)
                cmp_back = gr.Button("◀ Step", size="sm", elem_id="edlm-cmp-back", scale=1, min_width=70)
                cmp_play = gr.Button("▶ Play", size="sm", elem_id="edlm-cmp-play", scale=1)
                cmp_fwd = gr.Button("Step ▶", size="sm", elem_id="edlm-cmp-forward", scale=1, min_width=70)
            with gr.Row():
                with gr.Column():
                    live_a = gr.HighlightedText(color_map=COLORS, combine_adjacent=False, label="Left",
                                                show_inline_category=False, show_legend=True,
                                                elem_classes=["edlm-flow"])
                    status_a = gr.Markdown()
                with gr.Column():
                    live_b = gr.HighlightedText(color_map=COLORS, combine_adjacent=False, label="Right",
                                                show_inline_category=False, show_legend=True,
                                                elem_classes=["edlm-flow"])
                    status_b = gr.Markdown()
            with gr.Row():
                cmp_masked = gr.Plot(label="Still masked, both samplers", elem_id="edlm-cmp-masked")
                cmp_ess = gr.Plot(label="Effective sample size, both samplers", elem_id="edlm-cmp-ess")
        with gr.Tab("Augment", elem_id="edlm-tab-augment"):
            gr.Markdown("Varied rewrites of every record: part of each text is masked in spans and refilled; the "
                        "rest stays byte-identical. Paste one record per line, or upload a small .txt, .jsonl or "
                        f".csv file (up to {AUGMENT_MAX_RECORDS} records; other fields travel with each record).")
            with gr.Row():
                aug_lines = gr.Textbox(lines=6, label="Records (one per line)", elem_id="edlm-aug-lines")
                with gr.Column():
                    aug_file = gr.File(label="…or a file", file_types=list(EXTENSIONS))
                    aug_field = gr.Textbox(value="text", label="Text field / column (JSON Lines, CSV)")
            with gr.Row():
                aug_n = Slider(1, 32, value=4, step=1, label="Variants per record")
                aug_rewrite = Slider(0.05, 0.9, value=0.25, step=0.05, label="Share rewritten")
                aug_unit = Choice(["tokens", "words"], value="tokens", label="Rewrite")
                aug_keep = gr.Textbox(label="Never change (comma-separated words)")
            with gr.Row():
                aug_btn = gr.Button("Rewrite", variant="primary", elem_id="edlm-aug-go")
                aug_stop = gr.Button("Stop", variant="stop", elem_id="edlm-aug-stop")
            aug_note = gr.Markdown()
            # the variant first and every column sized, so a phone shows it and a desktop cuts nothing off
            aug_table = gr.Dataframe(headers=["#", "variant", "AR score", "source"], wrap=True,
                                     column_widths=["6%", "48%", "14%", "32%"], elem_id="edlm-aug-table",
                                     label="Preview (up to 3 variants per record)")
            aug_out = gr.File(label="Download (JSON Lines)")
        with gr.Accordion("How it works", open=False):
            gr.Markdown(HOW_IT_WORKS)
        # The page's readiness signal: written by the page-load event, so it is there once the page is connected to
        # the server and its buttons answer (browser tests wait for it instead of a fixed time).
        ready = gr.HTML("", elem_id="edlm-ready")
        demo.load(lambda: '<span data-ready="1">ready</span>', outputs=[ready], api_visibility="private",
                  queue=False)

        # Handlers take their inputs by name: each parameter of a handler is the control of that name.
        controls = dict(text=text, sampler=sampler, steps=steps, k=k, is_window=is_window, temperature=temperature,
                        top_p=top_p, seed=seed, model=model, unmask=unmask, remask=remask, final=final, delay=delay,
                        **more)
        # Choosing a model loads it (or goes back to the last one that loaded) and sets every control to the
        # settings it runs best with (the uniform model: a greedy last step; the general model: ar-is, k = 16).
        good = gr.State(MODEL)
        names = [st.name for st in SETTINGS]

        def on_model(m, last, progress=gr.Progress()):
            now = load_model(m, last, progress)
            st = model_settings(now)
            return (model_note(now), gr.skip() if now == m else gr.update(value=now), now,
                    *(gr.update(value=st[n]) if n in st else gr.skip() for n in names),
                    *(gr.update(visible=example_group(now) == g) for g, _ in example_cols))

        model.change(on_model, inputs=[model, good],
                     outputs=[model_md, model, good, *(controls[n] for n in names), *(c for _, c in example_cols)],
                     api_visibility="private")
        # Choosing a sampler (the writer's choice only: `.input`, not a model's reset) sets k, the IS window, the
        # temperature, the order, the last step and the target ESS to what `--model M --sampler S` runs with
        # (edlm-smc: random order, IS window 1, 0.7; edlm-ar: the library's column); steps, top-p, remasking and
        # the seed keep what the writer chose.
        owned = [n for n in SAMPLER_CONTROLS if n != "sampler"]

        def on_sampler(s, m):
            st = model_settings(m, sampler=s)
            return tuple(gr.update(value=st[n]) for n in owned)

        sampler.input(on_sampler, inputs=[sampler, good], outputs=[controls[n] for n in owned],
                      api_visibility="private", queue=False)
        replay = gr.State(None)
        timer = gr.Timer(0.3, active=False)
        run_outputs = [plain, live, status, w_plot, heat_plot, ess_plot, masked_plot, cands, reveal_plot, replay,
                       replay_step]
        # Each press draws a new seed unless the writer keeps one; the API's /infill takes the seed it is given.
        def ask(keep, seed, request: gr.Request):  # the click, before the run waits in the queue (see guard)
            mark_asked(request.session_hash)
            return next_seed(keep, seed)

        def stop(request: gr.Request) -> None:  # a request the session's runs see at their next step
            request_stop(request.session_hash)

        private = dict(api_visibility="private")
        lesson_outputs = [lesson_step, lesson_stage, lesson_html]

        def after_run(event):  # the teacher's views follow every finished (or stopped) run
            return event.then(lesson_choices, inputs=[replay], outputs=lesson_outputs, **private).then(
                tokens_view, inputs=[replay], outputs=[tokens_ht, top_plot], **private)

        after_run(go_btn.click(ask, inputs=[keep_seed, seed], outputs=[seed], queue=False, **private).then(
            run_infill, inputs=inputs_for(run_infill, controls), outputs=run_outputs, api_name="infill",
            concurrency_id="model"))
        kw_btn.click(ask, inputs=[keep_seed, seed], outputs=[seed], queue=False, **private).then(
            run_keywords, inputs=inputs_for(run_keywords, dict(controls, keywords=kw_text)), outputs=[plain, status],
            api_name="keywords", concurrency_id="model")
        lesson_step.input(lesson_view, inputs=[replay, lesson_step, lesson_stage], outputs=[lesson_html], **private)
        lesson_stage.input(lesson_view, inputs=[replay, lesson_step, lesson_stage], outputs=[lesson_html], **private)
        lesson_btn.click(lesson_next, inputs=[replay, lesson_step, lesson_stage], outputs=lesson_outputs, **private)
        tokens_ht.select(tokens_pick, inputs=[replay], outputs=[top_plot], **private)
        view_outputs = [live, status, w_plot, heat_plot, ess_plot, masked_plot, cands, reveal_plot]
        replay_step.input(show_step, inputs=[replay, replay_step], outputs=view_outputs, api_visibility="private",
                          trigger_mode="always_last")
        export_btn.click(export_run, inputs=[replay], outputs=[export_file], api_visibility="private")
        gif_btn.click(export_gif, inputs=[replay], outputs=[export_file], api_visibility="private")
        play_btn.click(start_play, inputs=[replay, replay_step, delay], outputs=[timer, replay_step, *view_outputs],
                       api_visibility="private")
        for btn, delta in ((back_btn, -1), (fwd_btn, 1)):
            btn.click(lambda r, st, d=delta: step_by(r, st, d), inputs=[replay, replay_step],
                      outputs=[replay_step, *view_outputs], **private)
        timer.tick(play_tick, inputs=[replay, replay_step], outputs=[timer, replay_step, *view_outputs],
                   api_visibility="private")
        cmp_replay, cmp_timer = gr.State(None), gr.Timer(0.3, active=False)
        cmp_views = [live_a, status_a, live_b, status_b, cmp_masked, cmp_ess]
        def asked(request: gr.Request):  # the click, before the comparison waits in the queue (see guard)
            mark_asked(request.session_hash)

        cmp_btn.click(asked, queue=False, **private).then(
            run_compare, inputs=inputs_for(run_compare, controls, sampler_a=sampler_a, sampler_b=sampler_b),
            outputs=[*cmp_views, cmp_replay, cmp_step], api_name="compare", concurrency_id="model")
        cmp_step.input(lambda r, st: r.view(int(st)) if r is not None else (gr.skip(),) * 6,
                       inputs=[cmp_replay, cmp_step], outputs=cmp_views, trigger_mode="always_last", **private)
        cmp_play.click(start_play, inputs=[cmp_replay, cmp_step, delay], outputs=[cmp_timer, cmp_step, *cmp_views],
                       **private)
        cmp_timer.tick(lambda r, st: play_tick(r, st, views=6), inputs=[cmp_replay, cmp_step],
                       outputs=[cmp_timer, cmp_step, *cmp_views], **private)
        for btn, delta in ((cmp_back, -1), (cmp_fwd, 1)):
            btn.click(lambda r, st, d=delta: step_by(r, st, d), inputs=[cmp_replay, cmp_step],
                      outputs=[cmp_step, *cmp_views], **private)
        aug_btn.click(run_augment, inputs=inputs_for(run_augment, controls, lines=aug_lines, upload=aug_file,
                                                     text_field=aug_field, n=aug_n, rewrite=aug_rewrite,
                                                     unit=aug_unit, keep=aug_keep),
                      outputs=[aug_table, aug_note, aug_out], api_name="augment", concurrency_id="model")
        var_state = gr.State(None)
        var_outputs = [var_box, var_note] + [c for pair in var_cards for c in pair] + [var_state, keep_which,
                                                                                       keep_from]
        var_btn.click(run_variants, inputs=inputs_for(run_variants, controls, n=var_n), outputs=var_outputs,
                      api_visibility="private", concurrency_id="model")
        tools.register()  # /fill, /variants, /augment_texts: typed endpoints for programs (and MCP tools)
        history, future = gr.State([]), gr.State([])
        keep = dict(outputs=[text, history, future], api_visibility="private")
        use_btn.click(replace_text, inputs=[plain, text, history], **keep)
        for box, btn in var_cards:
            btn.click(use_variant, inputs=[box, text, history], **keep)
        keep_btn.click(keep_variant_span, inputs=[var_state, keep_which, keep_from, text, history],
                       outputs=[text, history, future, var_state], **private)
        undo_btn.click(undo, inputs=[text, history, future], **keep)
        redo_btn.click(redo, inputs=[text, history, future], **keep)
        # Stop is a request each run sees at its next step: it ends normally, showing and keeping what it has
        # (cancelling the event instead would mark its outputs as failed and lose the run).
        stop_btn.click(stop, api_name="stop", queue=False)
        cmp_stop.click(stop, api_visibility="private", queue=False, api_name="stop_compare")
        aug_stop.click(stop, api_visibility="private", queue=False, api_name="stop_augment")
        mask_btn.click(lambda t, a, b, n, h: replace_text(mask_selection(t, a, b, n), t, h),
                       inputs=[text, sel_start, sel_end, span_len, history], js=get_selection("edlm-text"), **keep)
        # Error correction by the writer: select words of the result, and only they are masked and refilled.
        def rewrite(result, start, end, current, past, request: gr.Request):  # a click that queues a run, as ask
            mark_asked(request.session_hash)
            return replace_text(rewrite_selection(result, start, end), current, past)

        after_run(rewrite_btn.click(rewrite, inputs=[plain, sel_start, sel_end, text, history],
                                    js=get_selection("edlm-result"), **keep).success(
            run_infill, inputs=inputs_for(run_infill, controls), outputs=run_outputs, api_visibility="private",
            concurrency_id="model"))
    return demo


# Phones: the plot toolbar covered axis labels (hover shows values anyway); table headers wrap by word only;
# the examples take a line of their own under the text and its result. The denoising views flow as text (Gradio
# lays each chip out as a flex item, so a line could break inside a word, "waiter r / ecommended", or before its
# comma): inline chips break only where the text has a space.
# Keyboard: Ctrl+Enter (Cmd+Enter on a Mac) runs Generate from anywhere on the page, as in chat and code tools.
SHORTCUTS = """() => {
  if (window.edlmShortcuts) return;  // once per page, however often the page's start-up code runs
  window.edlmShortcuts = true;
  document.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && (e.ctrlKey || e.metaKey) && !e.repeat) {
      const go = document.querySelector('#edlm-generate');
      if (go && !go.disabled) { e.preventDefault(); go.click(); }
    }
  });
}"""

CSS = """
@media (max-width: 640px) { .js-plotly-plot .modebar-container { display: none !important; } }
#edlm-cands th, #edlm-cands th *, #edlm-aug-table th, #edlm-aug-table th * { word-break: normal !important;
  overflow-wrap: normal !important; }
#edlm-examples { flex: 1 1 100% !important; min-width: 100% !important; }
#edlm-ready { display: none !important; }
.edlm-flow .textfield { display: block !important; }
.edlm-flow .token-container { display: inline !important; }
.edlm-flow .text { word-break: normal !important; overflow-wrap: normal !important; }
.edlm-guided { border-collapse: collapse; width: 100%; font-size: 0.9em; }
.edlm-guided td, .edlm-guided th { border-bottom: 1px solid #e0e0e0; padding: 4px 6px; vertical-align: top;
  text-align: left; word-break: normal; }
.edlm-guided .edlm-kept td { background: #fdebd9; }
.edlm-wbar { display: inline-block; height: 0.8em; background: #4e79a7; margin-right: 4px; max-width: 70%; }
"""


MALLOC_ARENAS = 2  # glibc's malloc arenas for the server (its default, 8 per core, let memory grow with threads)


def limit_malloc_arenas(arenas: int = MALLOC_ARENAS) -> bool:
    """Cap glibc's malloc arenas before the server starts its threads, unless MALLOC_ARENA_MAX is set already.
    Measured (bench/load.py, general model, 3 x 48 mixed requests, one process): memory grew by 100-200 MB per
    burst with the default arenas and stayed flat with 2, at the same latency. False where there is no glibc."""
    if os.environ.get("MALLOC_ARENA_MAX") or not sys.platform.startswith("linux"):
        return False
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return bool(libc.mallopt(-8, arenas))  # -8: M_ARENA_MAX
    except (OSError, AttributeError):  # musl and other C libraries have no mallopt
        return False


def main() -> None:
    """Serve on 127.0.0.1 unless GRADIO_SERVER_NAME says otherwise; never opens a share link by itself."""
    limit_malloc_arenas()
    logging.basicConfig(level=os.environ.get("EDLM_LOG_LEVEL", "INFO"), format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # Gradio's start-up requests to itself
    try:
        load_bundle(MODEL)  # fail at start, with a clear message, if the model files are missing
    except (OSError, ValueError, RuntimeError) as e:
        raise SystemExit(f"EDLM Studio cannot start: {str(e).splitlines()[0] if str(e) else type(e).__name__}")
    import atexit
    import signal

    atexit.register(remove_own_downloads)  # every download this server wrote goes with it
    start_download_sweeper()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # a terminated server exits cleanly, running atexit
    mcp = os.environ.get("EDLM_MCP", "") == "1"
    if mcp:
        try:
            import mcp as _  # noqa: F401  (Gradio's MCP server needs the package)
        except ImportError:
            raise SystemExit("EDLM_MCP=1 serves the app's tools over MCP, which needs the mcp package: "
                             "pip install \"gradio[mcp]\"") from None
    demo = build()
    demo.queue(max_size=LIMITS.queue_size, default_concurrency_limit=LIMITS.concurrency)
    demo.launch(server_name=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"),
                server_port=int(os.environ.get("GRADIO_SERVER_PORT", "7860")), share=False, show_error=True,
                theme=gr.themes.Soft(), css=CSS, js=SHORTCUTS, state_session_capacity=LIMITS.session_capacity,
                max_file_size=LIMITS.app_upload_bytes, mcp_server=mcp)
