"""End-to-end infilling and generation: text with spans in, a stream of `InfillEvent` out.

This is the one code path behind the library call, the command line and the app: the non-streaming result is
the last event of the stream. The engine under it (sampler dispatch, windows, work budget, lengths) is
`edlm.runner`.
"""
from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import torch

from .bundle import Bundle
from .limits import DEFAULTS, GENERATE_TEMPERATURE, LIMITS, validate
from .processes import MASKED
from .runner import (Tick, check_work, choose_lengths, layout_editable, length_steps, run, score_fill,
                     with_bundle_defaults, work_steps)
from .samplers import SAMPLERS, get_sampler
from .sampling import TOP_TOKENS
from .spans import Span, Template, build_layout, parse
from .tokenizer import decode

__all__ = ["InfillEvent", "Tick", "Variant", "generate", "infill", "infill_stream", "variants", "variants_stream"]



@dataclass
class InfillEvent:
    """One reverse step of an infill or generation run, rendered for people and programs."""

    step: int
    total_steps: int
    t: float
    text: str                                   # the whole text, still-masked tokens shown as [MASK]
    segments: list[tuple[str, str, int | None]]  # (text, kind: fixed|mask|new|filled, span index)
    masked: int                                 # tokens still masked
    to_fill: int                                # tokens to fill in all
    sampler: str
    denoiser_calls: int
    energy_calls: int                           # passes of the energy (EDLM importance sampling)
    elapsed: float
    ar_calls: int = 0                           # passes of the AR model when it is the sampler (`ar`)
    remasked: int = 0                           # tokens masked again in this step (remasking samplers)
    changed: int = 0                            # uniform process: span tokens changed in this step
    changes: list[int] = field(default_factory=list)  # per span token, how often it was written so far
    ended_early: str | None = None              # why the run ended before its last planned step
    window: int = 0                             # which context window this step belongs to
    windows: int = 1
    is_step: bool = False
    weights: list[float] | None = None
    log_weights: list[float] | None = None
    ess: float | None = None
    chosen: int | None = None
    candidates: list[str] | None = None         # each candidate's span texts, joined with " … "
    particles: bool = False                     # the candidates persist across steps (edlm-smc's particles)
    ancestors: list[int] | None = None          # after a resampling: the particle each one continues
    final: bool = False
    spans: list[str] | None = None              # filled span texts (final event)
    revealed_at: list[int] = field(default_factory=list)  # per masked token, the step that revealed it (-1: not yet)
    pieces: list[str] = field(default_factory=list)       # per masked token, its text (final event)
    ids: list[int] = field(default_factory=list)          # all token ids of the layout (final event)
    top: list[list[tuple[str, float]]] = field(default_factory=list)  # per masked token, the denoiser's likeliest
    #                                     tokens and probabilities when it was written (final event; [] if none)
    token_chips: list[tuple[str, int | None]] = field(default_factory=list)  # the final text in pieces: fixed
    #                                     text (None) and each masked token's own text (its index), in order
    lengths: list[int] = field(default_factory=list)
    length_scores: dict[int, float] = field(default_factory=dict)
    points: list[tuple[float, float] | None] = field(default_factory=list)  # continuous process: per masked
    #                                     token, its point in the embedding space's fixed 2-D view (None: its
    #                                     window not reached yet), with `pieces` its nearest word every step


def _token_view(tok, layout, row: list[int], span_pos: list[int], top_ids, top_probs, r: int) -> tuple[list, list]:
    """The final text cut into each masked token's own piece (for clicking one), and per masked token the
    denoiser's likeliest tokens when it was written."""
    from .tokenizer import decode

    index = {p: j for j, p in enumerate(span_pos)}
    kinds = [f"t{index[p]}" if p in index else "filled" for p in range(len(row))]
    chips = [(text, None if kind == "fixed" else int(kind[1:])) for text, kind, _ in layout.segments(tok, row, kinds)]
    top = [] if top_ids is None else [
        [(decode(tok, [i]), round(float(pr), 4)) for i, pr in zip(top_ids[r, p].tolist(), top_probs[r, p].tolist())
         if i >= 0] for p in span_pos]
    return top, chips


def _stream(bundle: Bundle, template: Template, lengths: list[int], req: Request, batch: int = 1,
            length_scores: dict | None = None, render: bool = True) -> Iterator[list[InfillEvent]]:
    """Run the sampler over the laid-out template; yields one InfillEvent per batch row after every step.
    With render=False only the final step's events carry text (generation in bulk, benchmarks)."""
    tok = bundle.tokenizer
    layout = build_layout(template, tok, lengths)
    ids = torch.tensor([layout.ids] * batch)
    editable = layout_editable(layout)
    check_work(req, editable, bundle.window, batch, bundle)
    span_pos = [p for a, b in layout.span_ranges for p in range(a, b)]
    uniform = bundle.process not in MASKED  # no masks (uniform or continuous noise): every span token may change
    revealed_at = torch.full(ids.shape, -1)
    writes = torch.zeros(ids.shape, dtype=torch.long)  # how often each position was written (remasking: > 1)
    top_ids = top_probs = None  # the denoiser's likeliest tokens at each position when it was last written
    points = None  # continuous process: each position's point in the 2-D view, as of its window's last step
    step, start = 0, time.perf_counter()
    for ev, prog in run(bundle, ids, req, editable, top_tokens=TOP_TOKENS if render else 0):
        step += 1
        last_step = prog.last
        a, b = prog.span
        written_now = ev.revealed & (ev.tokens != tok.mask_token_id)
        revealed_at[:, a:b][written_now] = step
        writes[:, a:b] += written_now.long()
        revealed_at[:, a:b][ev.tokens == tok.mask_token_id] = -1  # masked again (remasking)
        if render and "top_ids" in ev.extra:
            if top_ids is None:
                n = ev.extra["top_ids"].shape[-1]
                top_ids, top_probs = torch.full((*ids.shape, n), -1), torch.zeros(*ids.shape, n)
            top_ids[:, a:b][written_now] = ev.extra["top_ids"][written_now]
            top_probs[:, a:b][written_now] = ev.extra["top_probs"][written_now]
        if render and "points" in ev.extra:
            if points is None:  # NaN: a position of a window not reached yet
                points = torch.full((*ids.shape, 2), float("nan"))
            points[:, a:b] = ev.extra["points"]
        events = []
        for r in range(batch):
            row = ids[r].tolist()
            masked = sum(1 for p in span_pos if row[p] == tok.mask_token_id)
            final = last_step or (not uniform and masked == 0 and req.remask == "none")
            e = InfillEvent(step=step, total_steps=prog.total_steps, t=ev.t, text="", segments=[], masked=masked,
                            to_fill=len(span_pos), sampler=req.sampler, denoiser_calls=prog.denoiser_calls,
                            energy_calls=prog.energy_calls, ar_calls=prog.ar_calls,
                            elapsed=time.perf_counter() - start, window=prog.window, windows=prog.windows,
                            is_step=ev.is_step, final=final, lengths=lengths, length_scores=length_scores or {},
                            remasked=int(ev.remasked[r].sum()) if ev.remasked is not None else 0,
                            particles=bool(ev.extra.get("particles")),
                            ancestors=ev.extra["ancestors"][r].tolist() if "ancestors" in ev.extra else None,
                            changed=int(written_now[r].sum()) if uniform else 0)
            if render or final:
                now = "changed" if uniform else None
                kinds = [(now or ("rewritten" if writes[r, p] > 1 else "new")) if revealed_at[r, p] == step
                         and not final else "filled" for p in range(len(row))]  # a finished text has nothing "new"
                e.changes = [int(writes[r, p]) for p in span_pos]
                e.segments = layout.segments(tok, row, kinds)
                e.text = "".join(seg for seg, _, _ in e.segments)
                e.revealed_at = [int(revealed_at[r, p]) for p in span_pos]
                if points is not None:  # each position's point and its nearest word (the token shown)
                    e.points = [None if bool(points[r, p].isnan().any()) else
                                (round(float(points[r, p, 0]), 4), round(float(points[r, p, 1]), 4))
                                for p in span_pos]
                    e.pieces = [decode(tok, [row[p]]) for p in span_pos]
            if final:
                e.spans = layout.render(tok, row)[1]
                e.pieces = [decode(tok, [row[p]]) for p in span_pos]
                e.ids = row
                if render:
                    e.top, e.token_chips = _token_view(tok, layout, row, span_pos, top_ids, top_probs, r)
                if step < prog.total_steps:
                    e.ended_early = f"all {len(span_pos)} tokens filled at step {step} of {prog.total_steps}"
            if ev.is_step and render:
                e.weights = ev.weights[r].tolist()
                e.log_weights = ev.log_weights[r].tolist()
                e.ess = float(ev.ess[r])
                e.chosen = int(ev.chosen[r])
                e.candidates = []
                for cand in ev.candidates[r]:
                    full = list(row)
                    full[a:b] = cand.tolist()
                    e.candidates.append(" … ".join(layout.render(tok, full)[1]))
            events.append(e)
        yield events
        if all(e.final for e in events):
            return  # later steps of the run could reveal nothing more


def infill_stream(bundle: Bundle, text: str, ticks: bool = False, **settings) -> Iterator[InfillEvent | Tick]:
    """Fill the spans of `text` step by step. `settings`: any of `edlm.limits.SETTINGS` (sampler, steps, k,
    is_window, temperature, top_p, seed, unmask, remask, carry_over, ar_weighting, ...), checked by `validate`.
    With ticks=True a `Tick` comes after every draft step of choosing [MASK] lengths, before the first event (a
    caller shows "choosing span lengths", or stops the work there)."""
    req = validate(**with_bundle_defaults(bundle, settings))
    template = parse(text)
    autoregressive = get_sampler(req.sampler).autoregressive
    if autoregressive and len(template.spans) != 1:
        raise ValueError("the ar sampler only continues a prefix: put a single span at the end of the text")
    if autoregressive and template.parts[-1] != "":
        raise ValueError("the ar sampler only continues a prefix: nothing may follow the span")
    if ticks:
        lengths, scores = yield from length_steps(bundle, template, req)
    else:
        lengths, scores = choose_lengths(bundle, template, req)
    for events in _stream(bundle, template, lengths, req, length_scores=scores):
        yield events[0]


def infill(bundle: Bundle, text: str, **settings) -> InfillEvent:
    """Fill the spans of `text`; the final event of `infill_stream`."""
    last = None
    for last in infill_stream(bundle, text, **settings):
        pass
    return last


def generation_settings(bundle: Bundle, settings: dict) -> dict:
    """Generation's own default temperature (with no context around the span, real text's diversity needs a
    hotter proposal than infilling: the sampler's `generate_temperature`, else `GENERATE_TEMPERATURE`) where neither
    the call nor the model gives one."""
    merged = with_bundle_defaults(bundle, settings)  # the sampler that will run: the call's, the model's, ...
    if "temperature" in merged:
        return settings
    spec = SAMPLERS.get(merged.get("sampler", DEFAULTS.sampler))
    hot = spec.generate_temperature if spec and spec.generate_temperature is not None else GENERATE_TEMPERATURE
    return {**settings, "temperature": hot}


def generate(bundle: Bundle, length: int, prefix: str = "", num_samples: int = 1, **settings) -> list[InfillEvent]:
    """`num_samples` continuations of `prefix` by `length` tokens (unconditional when the prefix is empty),
    sampled together as one batch; returns each sample's final event."""
    req = validate(**with_bundle_defaults(bundle, generation_settings(bundle, settings)))
    if isinstance(length, bool) or not isinstance(length, int) or not 1 <= length <= LIMITS.max_generate_tokens:
        raise ValueError(f"length must be a whole number from 1 to {LIMITS.max_generate_tokens}")
    if isinstance(num_samples, bool) or not isinstance(num_samples, int) or not 1 <= num_samples <= LIMITS.max_samples:
        raise ValueError(f"num_samples must be a whole number from 1 to {LIMITS.max_samples}")
    if prefix:
        parse(prefix + " [MASK:1]")  # the same checks as any text (length, control characters)
    template = Template([prefix, Span(length), ""])
    last = None
    for last in _stream(bundle, template, [length], req, batch=num_samples, render=False):
        pass
    return last


@dataclass
class Variant:
    """One fill of a text's spans, with the AR model's verdict on it."""

    text: str
    spans: list[str]
    score: float | None  # mean AR log-likelihood per token over the spans and the text just after them (higher:
    #                      more fluent); None without an AR model
    seed: int             # infill(text, seed=seed, same settings) gives this variant again


def variants(bundle: Bundle, text: str, n: int = 4, **settings) -> list[Variant]:
    """Fill the spans of `text` n times in one batch and rank the fills by the AR score (best first). Variant i
    is the fill `infill` gives with seed + i (rows have their own random streams), so any one can be reproduced;
    `[MASK]` spans get one length for all variants (chosen as `infill` does with the first seed)."""
    out = None
    for out in variants_stream(bundle, text, n, **settings):
        pass
    return out


def variants_stream(bundle: Bundle, text: str, n: int = 4, **settings) -> Iterator[Tick | list[Variant]]:
    """`variants`, with a `Tick` after every reverse step (and every length draft) before the ranked list, which
    comes last: a caller shows progress, or stops the work between two steps by closing the generator."""
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= LIMITS.max_variants:
        raise ValueError(f"n must be a whole number from 1 to {LIMITS.max_variants}")
    req = validate(**with_bundle_defaults(bundle, settings))
    if req.seed + n - 1 > LIMITS.max_seed:
        raise ValueError(f"seed = {req.seed} is out of range for {n} variants (variant i uses seed + i): it must be "
                         f"at most {LIMITS.max_seed - n + 1}")
    if get_sampler(req.sampler).autoregressive:
        raise ValueError("variants come from the diffusion samplers; the ar sampler continues one prefix")
    template = parse(text)
    lengths, _ = yield from length_steps(bundle, template, req)
    layout = build_layout(template, bundle.tokenizer, lengths)
    check_work(req, layout_editable(layout), bundle.window, n, bundle)
    out = []
    ids = torch.tensor([layout.ids] * n)
    total = work_steps(req, layout_editable(layout), bundle.window, bundle)
    for done, _ in enumerate(run(bundle, ids, req, layout_editable(layout),
                                  row_seeds=[req.seed + i for i in range(n)]), 1):
        yield Tick(done, total)
    for i in range(n):
        row = ids[i].tolist()
        text_out, spans = layout.render(bundle.tokenizer, row)
        score = -score_fill(bundle, row, layout) if bundle.ar is not None else None
        out.append(Variant(text_out, spans, score, req.seed + i))
    yield sorted(out, key=lambda v: -v.score if v.score is not None else 0.0)


