"""The teacher's views of a finished run: one importance-sampling step walked through stage by stage, and what the
denoiser hesitated between at a clicked token."""
from __future__ import annotations

import html
import math

import plotly.graph_objects as go

from . import charts
from .words import ess_meaning

# The guided IS step, one stage at a time (each stage adds one line of the explanation to the ones before).
STAGES = ("the candidates", "their log-weights", "the weights", "the kept one", "what it reveals now")


def _words_that_differ(candidates: list[str]) -> list[set[int]]:
    """Per candidate, the indices of its words where the candidates do not all agree (shown in bold)."""
    split = [c.split() for c in candidates]
    width = max((len(w) for w in split), default=0)
    differ = {i for i in range(width) if len({w[i] if i < len(w) else None for w in split}) > 1}
    return [{i for i in differ if i < len(w)} for w in split]


def temperature_of(log_weights: list[float] | None, weights: list[float]) -> float | None:
    """The IS temperature a step used, read off its log-weights and normalised weights (w_i ∝ exp(lw_i / tau)):
    from the two candidates furthest apart that both kept some weight; None when no such pair exists."""
    if not log_weights:
        return None
    live = [(lw, w) for lw, w in zip(log_weights, weights) if w > 1e-12 and math.isfinite(lw)]
    if len(live) < 2:
        return None
    (la, wa), (lb, wb) = max(live), min(live)
    if la - lb < 1e-6 or wa <= wb:
        return None
    return (la - lb) / math.log(wa / wb)


def guided_is(step: tuple, revealed: list[str], stage: int, particles: bool = False) -> str:
    """One IS step of a replay (`Replay.is_steps` entry) explained up to `stage` (1 to len(STAGES)), as HTML:
    the k candidates (words where they disagree in bold), their log-weights against the best, the normalised
    weights as bars, the kept one, and the tokens this step revealed from it."""
    number, weights, chosen, cands, ess, log_weights, _note, ancestors = step
    k = len(weights)
    stage = max(1, min(len(STAGES), int(stage)))
    logs = list(log_weights) if log_weights is not None and len(log_weights) == k else None
    best = max(logs) if logs else None
    bold = _words_that_differ(cands)
    same = all(not b for b in bold)
    rows = []
    for i, cand in enumerate(cands):
        words = " ".join(f"<b>{html.escape(w)}</b>" if j in bold[i] else html.escape(w)
                         for j, w in enumerate(cand.split()))
        cells = [f"<td>#{i + 1}</td>", f"<td class='edlm-cand'>{words}</td>"]
        if stage >= 2:
            cells.append(f"<td>{'' if logs is None else f'{logs[i] - best:+.2f}'}</td>")
        if stage >= 3:
            pct = 100 * weights[i]
            cells.append(f"<td><div class='edlm-wbar' style='width:{max(1.0, pct):.0f}%'></div>{pct:.1f}%</td>")
        if stage >= 4:
            cells.append(f"<td>{'◀ kept' if i == chosen else ''}</td>")
        style = " class='edlm-kept'" if stage >= 4 and i == chosen else ""
        rows.append(f"<tr{style}>{''.join(cells)}</tr>")
    heads = ["#", "candidate x0 (its fill of the spans; bold: where the candidates differ)", "log-weight (best = 0)",
             "weight", ""][:stage + 1 if stage < 4 else 5]
    what = (f"{k} particles each carry their own partly revealed text; each drew its own complete guess of the "
            "clean text from the denoiser" if particles else
            f"The denoiser's prediction factorises over positions, so {k} complete guesses of the clean text were "
            "drawn from it at once, one token per masked position each")
    lines = [f"<p><b>Step {number}, stage 1: the candidates.</b> {what}." + (" <i>All of them are the same text here: this step had nothing to choose "
                                        "between.</i>" if same else "") + "</p>"]
    if stage >= 2:
        lines.append("<p><b>Stage 2: the energy scores each guess as a whole sequence.</b> The log-weight is the "
                     "energy's verdict: the AR model's log-likelihood of the guess (the paper's ratio weights also "
                     "subtract the denoiser's own log-probability), or minus the NCE energy; shown "
                     "against the best one, so 0 is the favourite and −5 is about e⁵ ≈ 150 times less likely.</p>")
    if stage >= 3:
        tau = temperature_of(logs, weights)
        how = "exp(log-weight), normalised to sum to 1" if tau is None or abs(tau - 1) < 0.05 else (
            f"exp(log-weight ÷ {tau:.1f}), normalised to sum to 1: the weights were tempered (IS temperature "
            f"{tau:.1f}, raised for this step until the ESS reached its target), so a candidate far behind keeps a "
            "chance")
        lines.append(f"<p><b>Stage 3: weights.</b> {how}. Effective sample size {ess:.2f} of {k}: "
                     f"{html.escape(ess_meaning(ess, k))}.</p>")
    if stage >= 4:
        lines.append(f"<p><b>Stage 4: one kept.</b> Candidate #{chosen + 1} was drawn by its weight (resampling: a "
                     "heavier candidate is likelier, not certain)" + (
                         "; the particles continue from the ancestors shown in the lineage chart" if ancestors
                         else "") + ".</p>")
    if stage >= 5:
        shown = ", ".join(f"“{html.escape(t)}”" for t in revealed) if revealed else "none of its tokens"
        lines.append(f"<p><b>Stage 5: the reverse step.</b> The kept guess is not copied whole: the noise "
                     f"process reveals only some positions from it now ({shown}); the rest are masked again and "
                     "guessed afresh at the next steps.</p>")
    table = f"<table class='edlm-guided'><tr>{''.join(f'<th>{h}</th>' for h in heads)}</tr>{''.join(rows)}</table>"
    return "".join(lines[:1]) + table + "".join(lines[1:])


def token_chips(chips: list[tuple[str, int | None]]) -> list[tuple[str, str | None]]:
    """The finished text for clicking: fixed text unlabelled, each masked token its own "filled" chip."""
    return [(text, None if index is None else "filled") for text, index in chips]


def chip_token(chips: list[tuple[str, int | None]], clicked: int | None) -> int | None:
    """The masked token behind the clicked chip (None for fixed text or a click outside the chips)."""
    if clicked is None or not 0 <= clicked < len(chips):
        return None
    return chips[clicked][1]


def shown_token(text: str) -> str:
    """A token as a label: a leading space as ␣ (" the" and "the" are different tokens), line breaks as ⏎."""
    return text.replace(" ", "␣", 1) if text.startswith(" ") else (text.replace("\n", "⏎") or "(empty)")


def top_chart(token: str, top: list[tuple[str, float]], step: int | None) -> go.Figure:
    """The model's likeliest tokens at one position when it was written (the denoiser's; for `ar-is`, the AR
    model's as it drew the token), as horizontal bars (the written one in orange)."""
    if not top:
        return charts._empty("Top tokens", "click a coloured word of the fill (fixed text has no prediction)")
    names = [shown_token(t) for t, _ in top][::-1]
    probs = [p for _, p in top][::-1]
    colors = ["#f28e2b" if t.strip() == token.strip() else "#4e79a7" for t, _ in top][::-1]
    fig = go.Figure(go.Bar(x=probs, y=names, orientation="h", marker_color=colors, text=[f"{p:.0%}" for p in probs],
                           textposition="outside", hovertemplate="%{y}: %{x:.3f}<extra></extra>"))
    when = f" at step {step}" if step and step > 0 else ""
    fig.update_layout(**charts.LAYOUT, title=charts._title(f"“{token.strip()}”: the model's top tokens{when} "
                                                           "(orange: written)"))
    fig.update_xaxes(range=[0, min(1.15, 1.35 * max(probs) + 0.03)], title="probability (before temperature and "
                                                                           "top-p)")
    return fig
