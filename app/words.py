"""The page's words: how it works, the example texts, what a model knows, and the status line of a step."""
from __future__ import annotations

import json

from edlm.bundle import ASSETS
from edlm.presets import PRESETS
from edlm.samplers import SAMPLERS

from .errors import LOG


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

**Particles (`edlm-smc`).** Importance sampling throws k − 1 drafts away at every step. Sequential Monte Carlo
keeps *k particles*, each a whole text with its own revealed tokens, all the way through. At each step every
particle drafts its x0 as usual and its weight is multiplied by how much the energy's verdict on its draft
improved; when the weight sits on a few particles (ESS below *Resample below ESS* × k) the heavy ones are
copied and the light ones dropped. At the end one particle is drawn by weight. The weights chart then shows the
particles over the run: dot size = weight, lines = who continues whom. It is the default sampler of the State of
the Union models, weighted at every step (*IS window* 1): of everything measured, the most fluent fills at the
variety of real text.

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

**Continuous noise (the `continuous` model).** Masks and random words are *discrete* noise: a position is a
token or a mask, nothing in between. Continuous diffusion (Diffusion-LM, DiffuSeq, CDCD) puts every word at a
point of an *embedding space* and adds Gaussian noise to the points instead, so a span starts as points scattered
far from every word. At each step the denoiser reads the points (your text sits exactly on its words' points and
never moves) and guesses each position's word; each point then moves part of the way toward its guess, with a
little fresh noise, and the next step guesses again. The text you watch is each point's *nearest word*, so early
words are nonsense that settles as the points close in; the last chart draws the points in a fixed 2-D view of the
space (grey dots are the words). The AR energy (`edlm-ar`) weighs the guesses as it does for masks.

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


def ess_meaning(ess: float, k: int) -> str:
    """What an effective sample size says about this step, in words for the lesson."""
    if k <= 1:
        return "one candidate: nothing to choose"
    if ess < 1.5:
        return "the energy strongly preferred one candidate"
    if ess > 0.75 * k:
        return "the energy found the candidates about equally good"
    return "the energy preferred a few candidates"


def status_line(ev, k: int) -> str:
    """The status under the result after a step: progress, passes, and what an importance-sampling step chose."""
    parts = [f"**step {ev.step} / {ev.total_steps}**", f"{ev.elapsed:.2f} s",
             f"{ev.to_fill - ev.masked} of {ev.to_fill} tokens filled"]
    if ev.sampler in SAMPLERS and SAMPLERS[ev.sampler].ar_driven:
        parts.append(f"AR passes: {ev.ar_calls}")
    else:
        parts += [f"denoiser passes: {ev.denoiser_calls}", f"energy passes: {ev.energy_calls}"]
    if ev.remasked:
        parts.append(f"{ev.remasked} masked again to be rewritten")
    if ev.changed and ev.points:
        parts.append(f"{ev.changed} span positions moved to another nearest word this step (continuous noise: every "
                     "position is a point that moves)")
    elif ev.changed:
        parts.append(f"{ev.changed} tokens changed this step (uniform noise: every token may change)")
    if ev.windows > 1:
        parts.append(f"window {ev.window + 1} of {ev.windows}")
    if ev.is_step:
        parts.append(f"importance-sampling step: ESS {ev.ess:.2f} of {k} ({ess_meaning(ev.ess, k)})")
    if ev.final and ev.points and ev.changes:  # continuous against discrete noise, on this run
        mean = sum(ev.changes) / len(ev.changes)
        parts.append(f"each span position changed its nearest word {mean:.1f} times on average before it settled "
                     "(under masking a position is written once)")
    if ev.final:
        parts.append(f"done: {ev.ended_early}" if ev.ended_early else "done")
    return " · ".join(parts)


def model_note(model: str) -> str:
    """What a model knows and was trained on, and what it needs: shown beside the model choice."""
    from edlm.presets import KNOWS

    name = model.partition(":")[0]
    knows = KNOWS.get(name)
    help_ = PRESETS[name].help if name in PRESETS else "a local model folder"
    offline = ("general", "general-diffusion", "default", "sotu", "uniform", "continuous")
    if knows and name in offline:  # offline models: what they know is the news
        return f"**{model}** knows {knows}."
    return f"**{model}** knows {knows}. {help_}." if knows else f"**{model}**: {help_}."


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
