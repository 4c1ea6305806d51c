"""The page's handlers: each computing one streams a run step by step through `guarded` and follows the one error
and log policy of `logged_run`; the replay handlers show a finished run again."""
from __future__ import annotations

import functools
import html
import inspect
import itertools
import json
import os
import time
from types import SimpleNamespace

import gradio as gr

from edlm.limits import LIMITS, SETTINGS, default_settings
from edlm.pipeline import Tick, infill_stream, variants_stream

from . import charts, models
from .errors import LOG, logged_run, loggable, rejected, user_message
from .files import AUGMENT_MAX_RECORDS, FILE_SECONDS, download_folder, read_upload
from .guard import RunClock, guarded
from .replay import CompareReplay, Replay, candidate_rows, embedding_chart, kept_note
from .words import domain_hint, status_line


try:  # Hugging Face ZeroGPU Spaces: a GPU is attached for the duration of each decorated call
    from spaces import GPU as gpu
except ImportError:  # anywhere else the model work runs where the model was loaded
    def gpu(fn):
        return fn


# The library's settings for its default sampler (edlm-smc's own on top): what a handler runs with where the call
# gives no value (the page's controls start from app.models.model_settings, the same for the default model)
DEFAULTS = SimpleNamespace(**default_settings())
MASK_GLYPH = "▒"
CHART_SECONDS = 0.5  # how often the charts refresh during a run


# A word made of tokens of several kinds shows the most recent kind
RANK = {"filled": 0, "new": 1, "rewritten": 2, "changed": 3}


def _highlight(segments) -> list[tuple[str, str | None]]:
    """Segments as highlighted chips, with the tokens of one word in one chip (a word's pieces can be revealed at
    different steps: "bu" + "dget" is shown as "budget", coloured by its most recent piece)."""
    out: list[tuple[str, str | None]] = []
    for text, kind, _ in segments:
        if kind == "fixed":
            out.append((text, None))
            continue
        if kind == "mask":
            out.append((MASK_GLYPH * (len(text) // len("[MASK]")), "mask"))
            continue
        prev = out[-1] if out else None
        if prev and prev[1] in RANK and prev[0][-1:].isalnum() and text[:1].isalnum():
            out[-1] = (prev[0] + text, max(prev[1], kind, key=RANK.get))
        else:
            out.append((text, kind))
    return out


MAX_DELAY = 2.0  # seconds per step a live run may be slowed down to


def load_model(model: str, last_good: str, progress=None) -> str:
    """The model dropdown: load the chosen model now (first use only) and return it; one that cannot load (a Hub
    model without internet, missing files) leaves a one-line warning and returns the last model that did, so the
    page never stays on a model every run would refuse."""
    try:
        models.get_bundle(model, progress)
        return model
    except (ValueError, OSError, RuntimeError) as e:
        LOG.info("model choice rejected: %s", type(e).__name__)
        gr.Warning(f"{html.escape(str(model))} could not be loaded, so the page stays on {last_good}: "
                   f"{user_message(e)}")
        return last_good


def with_every_setting(exclude: tuple[str, ...] = ()):
    """Give a handler every sampling setting of `edlm.limits.SETTINGS` that its signature does not name (nor
    `exclude`): each becomes a parameter (before `progress`, the schema's default), which the handler receives in
    its `**more`. A setting added to the schema reaches the handlers, the page (whose controls are wired by
    parameter name) and the API without an edit here."""
    def deco(fn):
        sig = inspect.signature(fn)
        params = [p for p in sig.parameters.values() if p.kind is not inspect.Parameter.VAR_KEYWORD]
        named = {p.name for p in params} | set(exclude)
        extra = [inspect.Parameter(s.name, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=getattr(DEFAULTS, s.name))
                 for s in SETTINGS if s.name not in named]
        at = next((i for i, p in enumerate(params) if p.name == "progress" or p.kind is inspect.Parameter.KEYWORD_ONLY),
                  len(params))

        public = sig.replace(parameters=params[:at] + extra + params[at:])

        @functools.wraps(fn)
        def handler(*args, **kwargs):
            yield from fn(**public.bind(*args, **kwargs).arguments)  # the extra settings land in `more`

        handler.__signature__ = public
        return handler
    return deco


def check_delay(delay) -> float:
    """The delay per step, 0 to MAX_DELAY seconds, or a one-line error (the slider's value arrives unchecked)."""
    if isinstance(delay, bool) or not isinstance(delay, (int, float)) or not 0 <= delay <= MAX_DELAY:
        raise ValueError(f"the delay per step must be a number from 0 to {MAX_DELAY} seconds")
    return float(delay)


def _infill_logged(a: dict) -> str:
    return loggable(sampler=a["sampler"], steps=a["steps"], k=a["k"])


@gpu
@logged_run("infill", _infill_logged)
@with_every_setting()
def run_infill(text: str, sampler: str = DEFAULTS.sampler, steps: int = DEFAULTS.steps, k: int = DEFAULTS.k,
               is_window: float = DEFAULTS.is_window, temperature: float = DEFAULTS.temperature,
               top_p: float = DEFAULTS.top_p, seed: int = DEFAULTS.seed, model: str | None = None,
               unmask: str = DEFAULTS.unmask, remask: str = DEFAULTS.remask, delay: float = 0.0,
               final: str = DEFAULTS.final, progress=gr.Progress(), *, clock: RunClock, **more):
    """Stream an infill run: after every reverse step, the text so far and the charts. `delay` (0 to
    MAX_DELAY seconds) slows a live run down for watching; the finished run is kept for the replay slider."""
    clock.unit = "step events"
    delay = check_delay(delay)
    bundle = models.get_bundle(model or models.MODEL, progress, sampler)
    stream = guarded(infill_stream(bundle, text, ticks=True, sampler=sampler, steps=steps, k=k, is_window=is_window,
                                   temperature=temperature, top_p=top_p, seed=seed, unmask=unmask,
                                   remask=remask, final=final, **more), clock)
    heat, ess, masked = [], [], []
    last_is, charted_at, new_is, ev = None, 0.0, False, None
    replay = Replay(k=k, text_chars=len(text), steps_planned=steps)
    uniform = bundle.process == "uniform"  # last chart: writes per token
    replay.words = models.word_map(bundle) if bundle.process == "continuous" else None  # last chart: the points

    def run_charts(ev, weighed: bool) -> tuple:
        """Weights bar, run heatmap, ESS line, masked line, candidates table (skipped unless `weighed`)."""
        skip = gr.skip()
        weights = heatmap = ess_fig = table = skip
        if weighed:
            weights = charts.weights_bar(last_is and last_is.weights, last_is and last_is.chosen,
                                         last_is and last_is.step, last_is and last_is.log_weights)
            heatmap, ess_fig = charts.run_weights(heat, ev.particles), charts.ess_line(ess, k)
            table = [] if last_is is None else candidate_rows(
                last_is.weights, last_is.log_weights, last_is.chosen, last_is.candidates,
                kept_note(True, last_is.segments))
        return weights, heatmap, ess_fig, charts.masked_line(masked, ev.total_steps), table

    for ev in stream:
        if isinstance(ev, Tick):  # [MASK] spans: their lengths are drafted and scored before the first step
            note = f"**choosing span lengths**: draft step {ev.done} of {ev.total} · {clock.seconds():.1f} s"
            yield (gr.skip(), gr.skip(), note, *(gr.skip(),) * 8)
            ev = None
            continue
        masked.append((ev.step, ev.masked / max(1, ev.to_fill)))
        if ev.is_step:
            heat.append((ev.step, ev.weights, ev.ancestors))
            ess.append((ev.step, ev.ess))
            last_is, new_is = ev, True
        # Text and status travel every step; charts at most every CHART_SECONDS (building a Plotly figure
        # costs tens of milliseconds, as much as a denoiser step) and always at the first and last step.
        now = time.perf_counter()
        if ev.step == 1 or ev.final or now - charted_at >= CHART_SECONDS:
            charted_at = now
            chart_out = run_charts(ev, new_is or ev.step == 1)
            new_is = False
            if ev.points:
                reveal = None  # drawn below from the replay's record, which has this step's points by then
            elif ev.final:
                reveal = charts.changes_bar(ev.pieces, ev.changes) if uniform else \
                    charts.revealed_at(ev.pieces, ev.revealed_at, ev.total_steps)
            else:
                reveal = charts.revealed_at([], [], ev.total_steps) if ev.step == 1 else gr.skip()
            chart_out = (*chart_out, reveal)
        else:
            chart_out = (gr.skip(),) * 6
        clock.steps += 1
        chips, status = _highlight(ev.segments), status_line(ev, k)
        if delay:  # wall time includes the chosen delay; say how much was computing
            status += f" · {clock.seconds() - clock.slept:.2f} s of it computing, the rest your delay"
        if ev.final:
            status += f" · seed {seed} · written by **{model or models.MODEL}**" + domain_hint(bundle, text)
        replay.add(ev, chips, status)
        if ev.points and chart_out[-1] is None:
            chart_out = (*chart_out[:-1], embedding_chart(replay.words, replay.points, ev.total_steps))
        done = (replay, gr.update(maximum=replay.last_step, value=replay.last_step, visible=True)) \
            if ev.final else (gr.skip(), gr.skip())
        if ev.step == 1:  # the legend and the last chart's label follow the model's noise process
            chips = gr.update(value=chips, color_map=charts.colors_for(bundle.process))
            chart_out = (*chart_out[:5], gr.update(value=chart_out[5], label=charts.REVEAL_LABELS.get(
                bundle.process, "When each token of the fill appeared")))
        yield (ev.text if ev.final else partial_text(ev.segments), chips, status, *chart_out, *done)
        if delay and not ev.final:
            clock.sleep(delay)
    if ev is not None and ev.final:
        clock.stopped = False  # a Stop pressed after the last step changes nothing
    if clock.stopped:  # the writer's Stop: a normal end, with the text so far and the run kept for the replay
        if ev is None:
            yield (gr.skip(), gr.skip(), "**stopped** before the first step (press Generate to run again)",
                   *(gr.skip(),) * 8)
            return
        chips = _highlight(ev.segments)
        status = (f"**stopped** at step {ev.step} of {ev.total_steps}: {ev.masked} of {ev.to_fill} tokens still "
                  f"masked, kept as [MASK:n] in the result (**Use this**, then **Generate**, finishes them) · "
                  f"seed {seed} · written by **{model or models.MODEL}**")
        replay.stop(ev, chips, status)
        yield (partial_text(ev.segments), chips, status, *run_charts(ev, True), gr.skip(), replay,
               gr.update(maximum=replay.last_step, value=replay.last_step, visible=True))


def partial_text(segments) -> str:
    """The text of a run not finished yet: each still-masked stretch written as [MASK:n] (n tokens), the writer's
    own syntax, so the result of a stopped run can be used and generated again to finish it."""
    return "".join(f"[MASK:{len(text) // len('[MASK]')}]" if kind == "mask" else text for text, kind, _ in segments)


def show_step(replay: Replay | None, step):
    """The replay slider: the text, status and charts of a finished run at one step."""
    if replay is None or not replay.frames:
        raise gr.Error("run Generate first: the replay shows the steps of the last finished run",
                       print_exception=False)
    return replay.view(int(step))


def export_run(replay: Replay | None) -> str:
    """The last finished run as a JSON file to download (deleted from the server after FILE_SECONDS)."""
    if replay is None or not replay.frames:
        raise gr.Error("run Generate first: the download holds the steps of the last finished run",
                       print_exception=False)
    path = os.path.join(download_folder(), "edlm-run.json")
    with open(path, "w", encoding="utf-8") as f:
        json.dump(replay.to_json(), f, ensure_ascii=False, allow_nan=False)
    return path


def export_gif(replay: Replay | None) -> str:
    """The last run as an animated GIF for slides (every n-th kept step, the last one held); deleted from the
    server after FILE_SECONDS like every download."""
    from .frames import run_gif

    if replay is None or not replay.frames:
        raise gr.Error("run Generate first: the GIF shows the steps of the last finished run", print_exception=False)
    return run_gif(replay.frames, replay.total_steps, os.path.join(download_folder(), "edlm-run.gif"))


VIEWS = 8  # outputs of Replay.view (the main view); CompareReplay.view has 6


def play_tick(replay: Replay | CompareReplay | None, step, views: int = VIEWS):
    """One tick of the play button: the next kept step, and the timer switched off at the end."""
    if replay is None or not replay.frames:
        return (gr.Timer(active=False), gr.skip(), *(gr.skip(),) * views)
    later = [f[0] for f in replay.frames if f[0] > int(step or 0)]
    nxt = later[0] if later else replay.last_step
    return (gr.Timer(active=bool(later) and nxt < replay.last_step), nxt, *replay.view(nxt))


def step_by(replay: Replay | CompareReplay | None, step, delta: int):
    """Step back (-1) or forward (+1) through the kept steps of the last run, from where the slider is."""
    if replay is None or not replay.frames:
        raise gr.Error("run Generate first: the step buttons go through the steps of the last run",
                       print_exception=False)
    kept = [f[0] for f in replay.frames]
    now = int(step or 0)
    nxt = max((s for s in kept if s < now), default=kept[0]) if delta < 0 else \
        min((s for s in kept if s > now), default=kept[-1])
    return (nxt, *replay.view(nxt))


def start_play(replay: Replay | CompareReplay | None, step, delay):
    """Play: from the start when the slider is at the end; ticks every `delay` seconds (at least 0.1)."""
    if replay is None or not replay.frames:
        raise gr.Error("run Generate (or Compare) first, then press Play to replay it", print_exception=False)
    first = replay.frames[0][0]
    begin = first if int(step or 0) >= replay.last_step else int(step)
    try:
        delay = check_delay(delay)
    except ValueError as e:
        raise rejected(e, "play") from None
    return (gr.Timer(value=max(0.1, delay or 0.3), active=True), begin, *replay.view(begin))


def augment_config(records: int, n, rewrite, unit, keep, seed, settings: dict):
    """The page's and the tools' augmentation settings as Gradio sends them (a whole float for n, any type for
    the rest), checked, and the app's cap on records per request."""
    from edlm.augment import AugmentConfig, parse_keep

    if records > AUGMENT_MAX_RECORDS:
        raise ValueError(f"the app takes up to {AUGMENT_MAX_RECORDS} records at a time; use `python -m edlm "
                         "augment` for whole files")
    n = int(n) if isinstance(n, float) and n.is_integer() else n
    cfg = AugmentConfig(n=n, rewrite=rewrite if isinstance(rewrite, (int, float)) else float("nan"), unit=unit,
                        keep=parse_keep(keep if isinstance(keep, str) else ""), seed=seed, settings=settings)
    cfg.check()
    return cfg


@gpu
@logged_run("augment", lambda a: loggable(sampler=a["sampler"], steps=a["steps"]))
def run_augment(lines: str, upload, text_field: str, n: int, rewrite: float, unit: str, keep: str,
                sampler: str = DEFAULTS.sampler, steps: int = DEFAULTS.steps, seed: int = DEFAULTS.seed,
                model: str | None = None, progress=gr.Progress(), *, clock: RunClock):
    """Rewrite pasted lines or an uploaded .txt / .jsonl / .csv file; streams progress after every reverse step,
    then a preview, a summary and the JSON Lines file to download. Stop, a closed page or the time limit end the
    work at its next step; the whole request's work is checked against the budget before it starts."""
    from edlm.augment import Result, Summary, augment_steps, read_text_lines

    if upload:
        path = upload if isinstance(upload, str) else upload.name
        key = text_field or "text"
        records = read_upload(path, key)
        name = os.path.splitext(os.path.basename(path))[0] or "records"
    else:
        key, name = "text", "records"
        records = [{"text": line} for line in read_text_lines(lines or "")][:AUGMENT_MAX_RECORDS + 1]
    if not records:
        raise ValueError("paste some lines or upload a file first")
    cfg = augment_config(len(records), n, rewrite, unit, keep, seed, dict(sampler=sampler, steps=steps))
    bundle = models.get_bundle(model or models.MODEL, progress)
    summary, preview, out_lines = Summary(), [], []
    for item in guarded(augment_steps(bundle, records, cfg, field_name=key, max_work=LIMITS.max_work), clock):
        if isinstance(item, Tick):
            clock.steps += 1
            progress((item.done, item.total), desc="reverse steps")
            yield gr.skip(), f"rewriting: step {item.done} of {item.total}", gr.skip()
            continue
        res: Result = item
        out_lines.append(json.dumps(res.to_json(), ensure_ascii=False, allow_nan=False) + "\n")
        summary.add(res)
        preview += [[res.index + 1, v.text, None if v.score is None else round(v.score, 2), res.text]
                    for v in res.variants[:3]]
    path = os.path.join(download_folder(), f"{name}.variants.jsonl")
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.writelines(out_lines)
    rep = summary.report()
    d2 = rep["distinct2_across_variants"]
    stopped = (f"**stopped** after {rep['records']} of {len(records)} records (the download holds those; press "
               "Rewrite to run again); ") if clock.stopped else ""
    note = stopped + (f"**{rep['records']} records**, {rep['variants_kept']} variants kept, {rep['passed_through']} "
            f"passed through unchanged (too short or not valid text), {rep['skipped']} skipped (unreadable); "
            f"dropped: {rep['dropped'] or 'none'}" + (f"; distinct-2 across variants {d2:.2f}" if d2 is not None
                                                       else "") +
            f". The download is deleted from the server after {FILE_SECONDS // 60 or 1} min.")
    yield preview, note, path


def _compare_logged(a: dict) -> str:
    return f"{loggable(sampler=a['sampler_a'])} | {loggable(sampler=a['sampler_b'], steps=a['steps'], k=a['k'])}"


@gpu
@logged_run("compare", _compare_logged)
@with_every_setting(exclude=("sampler",))
def run_compare(text: str, sampler_a: str, sampler_b: str, steps: int, k: int, is_window: float,
                temperature: float, top_p: float, seed: int, model: str | None = None,
                unmask: str = DEFAULTS.unmask, remask: str = DEFAULTS.remask, final: str = DEFAULTS.final,
                delay: float = 0.0, progress=gr.Progress(), *, clock: RunClock, **more):
    """Two samplers on the same text and seed, stepped side by side, with their masked share and ESS charted
    together (charts at most every CHART_SECONDS, and at the end); `delay` slows it down as in the main view."""
    delay = check_delay(delay)
    settings = dict(steps=steps, k=k, is_window=is_window, temperature=temperature, top_p=top_p, seed=seed,
                    unmask=unmask, remask=remask, final=final, **more)
    clock.unit = "step events"
    names = (f"left: {sampler_a}", f"right: {sampler_b}")
    bundle = models.get_bundle(model or models.MODEL, progress)
    a = guarded(infill_stream(bundle, text, sampler=sampler_a, **settings), clock)
    b = guarded(infill_stream(bundle, text, sampler=sampler_b, **settings), clock)
    last = [None, None]
    kept = CompareReplay(Replay(k=k, text_chars=len(text), steps_planned=steps),
                         Replay(k=k, text_chars=len(text), steps_planned=steps), names)
    sides = (kept.left, kept.right)
    charted_at = 0.0
    for pair in itertools.zip_longest(a, b):
        for i, ev in enumerate(pair):
            if ev is not None:
                last[i] = ev
                sides[i].add(ev, _highlight(ev.segments), status_line(ev, k))
        clock.steps += 1
        now, done = time.perf_counter(), all(e is not None and e.final for e in last)
        figs = (gr.skip(), gr.skip())
        if clock.steps == 1 or done or now - charted_at >= CHART_SECONDS:
            charted_at = now
            figs = kept.charts_at(kept.last_step)
        end = (kept, gr.update(maximum=kept.last_step, value=kept.last_step, visible=True)) if done else \
            (gr.skip(), gr.skip())
        yield (_highlight(last[0].segments), status_line(last[0], k), _highlight(last[1].segments),
               status_line(last[1], k), *figs, *end)
        if delay and not done:
            clock.sleep(delay)
    if clock.stopped:  # the writer's Stop: both sides keep what they have, say where they stopped, and replay
        said = [gr.skip() if ev is None else f"**stopped** at step {ev.step} of {ev.total_steps} · " +
                status_line(ev, k) for ev in last]
        for side, ev, words in zip(sides, last, said):
            if ev is not None:
                side.stop(ev, _highlight(ev.segments), words)
        end = (kept, gr.update(maximum=kept.last_step, value=kept.last_step, visible=True)) \
            if all(side.frames for side in sides) else (gr.skip(), gr.skip())
        yield (gr.skip(), said[0], gr.skip(), said[1], gr.skip(), gr.skip(), *end)


MAX_VARIANTS = LIMITS.max_variants


def api_variants(text: str, n: int = 4, sampler: str | None = None, steps: int | None = None,
                 seed: int = DEFAULTS.seed, model: str | None = None) -> list[dict]:
    """Fill the spans of `text` n times (1 to 8, one batch); returns [{"text", "spans", "score", "seed"}] ranked
    by the AR model's score (mean log-likelihood per token, higher is more fluent). A sampler or step count not
    given, and every other setting, is the model's own (the general model: ar-is). While it computes it streams
    an empty list after every step (so a cancel stops it there); the ranked list comes last."""
    given = {name: value for name, value in (("sampler", sampler), ("steps", steps)) if value is not None}
    for out in _variants(text, n, seed=seed, model=model, **given):
        if isinstance(out, Tick):
            yield []
        else:
            yield [{"text": v.text, "spans": v.spans, "score": v.score, "seed": v.seed} for v in out]


def _variants_logged(a: dict) -> str:
    given = {name: a["settings"][name] for name in ("sampler", "steps", "k") if name in a["settings"]}
    return loggable(**given) if given else "the model's own settings"


@gpu
@logged_run("variants", _variants_logged)
def _variants(text, n, model=None, progress=None, *, clock: RunClock, **settings):
    """Ticks after every step, then the ranked variants; errors as one line, the run logged by its settings."""
    bundle = models.get_bundle(model or models.MODEL, progress, settings.get("sampler"))
    n = int(n) if isinstance(n, float) and n.is_integer() else n
    for item in guarded(variants_stream(bundle, text, n, **settings), clock):
        if isinstance(item, Tick):
            clock.steps += 1
            if progress is not None:
                progress((item.done, item.total), desc="reverse steps")
        yield item


def variant_chips(text: str, variant) -> list[tuple[str, str | None]]:
    """A variant as chips: the writer's fixed text unlabelled, the fill of each span labelled "span i" (the whole
    variant unlabelled if its text cannot be cut back into the template's parts)."""
    from edlm.spans import parse

    parts = parse(text).parts
    fills = iter(variant.spans)
    chips = [(part, None) if isinstance(part, str) else (next(fills, ""), f"span {n}")
             for n, part in zip(_span_numbers(parts), parts)]
    chips = [c for c in chips if c[0]]
    return chips if "".join(c for c, _ in chips) == variant.text else [(variant.text, None)]


def _span_numbers(parts) -> list[int]:
    out, n = [], 0
    for part in parts:
        n += not isinstance(part, str)
        out.append(n)
    return out


def span_colors(n: int) -> dict[str, str]:
    """A colour per span label of the variant cards (cycling through a palette that reads on white)."""
    palette = ["#f28e2b", "#4e79a7", "#59a14f", "#b07aa1", "#e15759", "#76b7b2", "#edc948", "#ff9da7"]
    return {f"span {i + 1}": palette[i % len(palette)] for i in range(n)}


@with_every_setting()
def run_variants(text: str, n: int, sampler: str, steps: int, k: int, is_window: float, temperature: float,
                 top_p: float, seed: int, model: str | None = None, unmask: str = DEFAULTS.unmask,
                 remask: str = DEFAULTS.remask, final: str = DEFAULTS.final, progress=gr.Progress(), **more):
    """The page's Variants button: N cards beside the result, best first, each fill highlighted by span with its
    score and a "use this" button; then the state and choices for keeping one span's fill from one variant."""
    out = []
    waiting = (*(gr.skip(),) * (2 * MAX_VARIANTS), gr.skip(), gr.skip(), gr.skip())
    for item in _variants(text, n, model=model, progress=progress, sampler=sampler, steps=steps, k=k,
                          is_window=is_window, temperature=temperature, top_p=top_p, seed=seed, unmask=unmask,
                          remask=remask, final=final, **more):
        if isinstance(item, Tick):
            yield [gr.update(visible=True), f"computing the variants: step {item.done} of {item.total}", *waiting]
        else:
            out = item
    if not out:  # only a Stop ends the stream without the ranked list
        yield [gr.update(visible=True), "**stopped** before the variants were ready (press Variants to run again)",
               *waiting]
        return
    n_spans = len(out[0].spans)
    cards = []
    for i in range(MAX_VARIANTS):
        if i < len(out):
            v = out[i]
            score = "no AR model to rank" if v.score is None else f"AR score {v.score:.2f} / token"
            cards += [gr.update(value=variant_chips(text, v), color_map=span_colors(n_spans),
                                label=f"#{i + 1} · {score} · seed {v.seed}", visible=True), gr.update(visible=True)]
        else:
            cards += [gr.update(value=None, visible=False), gr.update(visible=False)]
    note = (f"**{len(out)} variants**, best first by the AR model's score (mean log-likelihood per token of the "
            "fill and the words after it). **Use this** takes a whole variant; **Keep** one span's fill, and "
            "Generate retries the others; a variant's seed reproduces it.")
    state = {"text": text, "now": text, "fills": [v.spans for v in out], "kept": []}
    spans = [f"span {i + 1}" for i in range(n_spans)]
    yield [gr.update(visible=True), note, *cards, state,
           gr.update(choices=spans, value=spans[0], visible=n_spans > 0),
           gr.update(choices=[f"#{i + 1}" for i in range(len(out))], value="#1")]


def use_variant(chips, current: str, history: list | None):
    """A variant card's Use this: its whole text (the chips joined, as Gradio sends them back) into the writer's
    box, kept for Undo."""
    from .editing import replace_text

    text = "".join(c[0] if isinstance(c, (list, tuple)) else c.get("token", "") for c in chips or [])
    return replace_text(text, current, history)


def keep_variant_span(state: dict | None, span: str, variant: str, current: str, history: list | None):
    """Keep one span's fill from one variant: it goes into the writer's text (kept for Undo) in place of that
    span's marker, and the other spans stay marked to fill again."""
    from .editing import keep_span, replace_text

    if not state:
        raise gr.Error("press Variants first: Keep takes a span's fill from one of the variants",
                       print_exception=False)
    if current != state["now"]:
        raise gr.Error("your text changed since these variants were made: press Variants again",
                       print_exception=False)
    try:
        j, v = int(str(span).split()[-1]) - 1, int(str(variant).lstrip("#")) - 1
        fill = state["fills"][v][j]
    except (ValueError, IndexError):
        raise gr.Error("choose a span and a variant from the lists", print_exception=False) from None
    if j in state["kept"]:
        raise gr.Error(f"span {j + 1} is kept already (Undo takes it back)", print_exception=False)
    place = j + 1 - sum(1 for i in state["kept"] if i < j)  # spans kept before it are no longer markers
    new = keep_span(current, place, fill)
    state = {**state, "now": new, "kept": state["kept"] + [j]}
    return (*replace_text(new, current, history), state)


def lesson_choices(replay: Replay | None):
    """After a run: the guided view's list of its IS steps (each with its ESS), starting at the step whose
    weights chose most (the largest ESS below k: the energy weighed real alternatives), at stage 1."""
    from .lesson import STAGES

    if replay is None or not replay.is_steps:
        note = "<p>This run had no importance-sampling step (its sampler has no energy, or no step fell in the IS " \
               "window): nothing to walk through. Choose an edlm sampler and press Generate.</p>"
        return gr.update(choices=[], value=None), STAGES[0], note
    choices = [(f"step {st[0]} · ESS {st[4]:.2f} of {len(st[1])}", i) for i, st in enumerate(replay.is_steps)]
    best = max(range(len(replay.is_steps)), key=lambda i: replay.is_steps[i][4])
    return gr.update(choices=choices, value=best), STAGES[0], lesson_view(replay, best, STAGES[0])


def lesson_view(replay: Replay | None, which, stage: str) -> str:
    """The guided IS step: IS step number `which` of the last run, explained up to `stage`."""
    from .lesson import STAGES, guided_is

    if replay is None or not replay.is_steps or which is None:
        return "<p>Run Generate with an edlm sampler first.</p>"
    st = replay.is_steps[max(0, min(len(replay.is_steps) - 1, int(which)))]
    n = STAGES.index(stage) + 1 if stage in STAGES else 1
    return guided_is(st, replay.revealed.get(st[0], []), n, replay.particles)


def lesson_next(replay: Replay | None, which, stage: str):
    """The guided view's Next: the next stage of this step, then stage 1 of the next IS step."""
    from .lesson import STAGES

    if replay is None or not replay.is_steps or which is None:
        raise gr.Error("run Generate with an edlm sampler first", print_exception=False)
    n = STAGES.index(stage) if stage in STAGES else 0
    which = int(which)
    if n + 1 < len(STAGES):
        stage = STAGES[n + 1]
    else:
        which, stage = (which + 1) % len(replay.is_steps), STAGES[0]
    return which, stage, lesson_view(replay, which, stage)


def tokens_view(replay: Replay | None):
    """After a run: the finished text, each filled token a chip to click, and an empty top-tokens chart."""
    from .lesson import token_chips, top_chart

    if replay is None or not replay.token_chips:
        return [], top_chart("", [], None)
    return token_chips(replay.token_chips), top_chart("", [], None)


def tokens_pick(replay: Replay | None, evt: gr.SelectData):
    """A clicked token of the finished text: the denoiser's top tokens at that position when it was written."""
    from .lesson import chip_token, top_chart

    if replay is None or not replay.token_chips:
        raise gr.Error("run Generate first, then click a word of the fill", print_exception=False)
    j = chip_token(replay.token_chips, evt.index if isinstance(evt.index, int) else None)
    if j is None:
        return top_chart("", [], None)
    top = replay.top[j] if j < len(replay.top) else []
    step = replay.revealed_at[j] if j < len(replay.revealed_at) else None
    return top_chart(replay.token_chips[evt.index][0], top, step)


@gpu
@logged_run("keywords", _variants_logged)
def _keywords(keywords, model=None, progress=None, *, clock: RunClock, **settings):
    """Ticks after every reverse step of every order tried, then the sentence (edlm.keywords)."""
    from edlm.keywords import keywords_stream, parse_keywords

    parse_keywords(keywords)  # a bad source fails before the model loads
    bundle = models.get_bundle(model or models.MODEL, progress, settings.get("sampler"))
    for item in guarded(keywords_stream(bundle, keywords, **settings), clock):
        if isinstance(item, Tick):
            clock.steps += 1
            if progress is not None:
                progress((item.done, item.total), desc="reverse steps")
        yield item


@with_every_setting()
def run_keywords(keywords: str, sampler: str, steps: int, k: int, is_window: float, temperature: float,
                 top_p: float, seed: int, model: str | None = None, unmask: str = DEFAULTS.unmask,
                 remask: str = DEFAULTS.remask, final: str = DEFAULTS.final, progress=gr.Progress(), **more):
    """The page's "Write from keywords": a sentence using every keyword, into the result box; the status names the
    order of the keywords the AR model found likeliest among those tried."""
    from edlm.keywords import coverage

    out = None
    for item in _keywords(keywords, model=model, progress=progress, sampler=sampler, steps=steps, k=k,
                          is_window=is_window, temperature=temperature, top_p=top_p, seed=seed, unmask=unmask,
                          remask=remask, final=final, **more):
        if isinstance(item, Tick):
            yield gr.skip(), f"writing from keywords: step {item.done} of {item.total}"
        else:
            out = item
    if out is None:  # only a Stop ends the stream without a sentence
        yield gr.skip(), "**stopped** before the sentence was written (press Write from keywords to run again)"
        return
    scored = [r for r in out.tried if r["ar_nll"] is not None]
    how = (f"the likeliest of {len(out.tried)} orders by the AR model" if len(scored) > 1 else
           "the keywords' own order (no AR model to compare orders)")
    yield out.text, (f"**from keywords** ({', '.join(out.keywords)}): {how}, "
                     f"{coverage(out.keywords, out.text):.0%} of the keywords used · {out.seconds:.1f} s · "
                     f"seed {seed} · written by **{model or models.MODEL}**")
