"""End-to-end infilling and generation: text with spans in, a stream of `InfillEvent` out.

This is the one code path behind the library call, the command line and the app: the non-streaming result is
the last event of the stream.
"""
from __future__ import annotations

import time
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field

import torch

from .bundle import Bundle
from .energy import ENERGIES, TextAREnergy, ar_log_likelihood
from .limits import LIMITS, Request, validate
from .samplers import get_sampler
from .sampling import SamplerConfig, sample, sample_ar
from .spans import Layout, Span, Template, build_layout, parse, plan_windows
from .tokenizer import decode

AUTO_LENGTHS = (4, 8, 16, 24)   # lengths tried for a [MASK] span
AUTO_DRAFT_STEPS = 16           # steps of each draft fill when choosing a length
BOUNDARY_TOKENS = 8             # fixed tokens after a span counted in the length score


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
    final: bool = False
    spans: list[str] | None = None              # filled span texts (final event)
    revealed_at: list[int] = field(default_factory=list)  # per masked token, the step that revealed it (-1: not yet)
    pieces: list[str] = field(default_factory=list)       # per masked token, its text (final event)
    ids: list[int] = field(default_factory=list)          # all token ids of the layout (final event)
    lengths: list[int] = field(default_factory=list)
    length_scores: dict[int, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Tick:
    """Progress between two reverse steps of a batch run (length drafts, variants, augmentation): a consumer
    shows it, or stops the work there by closing the generator."""

    done: int
    total: int


def energy_for(bundle: Bundle, req: Request):
    """The residual energy the request's sampler needs (None for the denoiser alone), from the registries; an
    error names what the bundle lacks. For the `ar` sampler: its checks, and None."""
    sampler = get_sampler(req.sampler)
    if sampler.loop:  # its own loop checks what it needs
        return None
    if bundle.denoiser is None and not sampler.autoregressive:
        raise ValueError(f"model {bundle.name!r} has no diffusion denoiser, which the {req.sampler} sampler needs: "
                         "use ar-is (or ar for a prefix)")
    if sampler.autoregressive:
        if bundle.ar is None:
            raise ValueError(f"model {bundle.name!r} has no autoregressive model, which the {req.sampler} sampler "
                             "needs; use mdlm")
        if bundle.energy_tokenizer is not None:
            raise ValueError(f"the ar sampler needs an AR model with the diffusion tokenizer; model "
                             f"{bundle.name!r} pairs it with another tokenizer: use mdlm or edlm-ar")
        return None
    return ENERGIES[sampler.energy](bundle, req) if sampler.energy else None


def with_bundle_defaults(bundle: Bundle, settings: dict) -> dict:
    """The settings with the bundle's own defaults where none was given (the `general` model runs `ar-is` with
    k = 16); a setting the caller gives always wins."""
    return {**getattr(bundle, "defaults", {}), **settings}


def banned_ids(tokenizer) -> tuple[int, ...]:
    """Special tokens a fill must never contain (padding, unknown, document boundaries)."""
    ids = {tokenizer.pad_token_id, tokenizer.unk_token_id, tokenizer.bos_token_id, tokenizer.eos_token_id}
    return tuple(sorted(i for i in ids if i is not None and i != tokenizer.mask_token_id))


@dataclass
class Progress:
    """Where a multi-window run stands after one step (counts summed over windows)."""

    window: int
    windows: int
    span: tuple[int, int]     # [start, end) token positions of the window
    denoiser_calls: int
    energy_calls: int
    ar_calls: int
    total_steps: int          # steps this run will take: done so far + this window's rest + later windows'
    last: bool = False        # the run's last step


def _run(bundle: Bundle, ids: torch.Tensor, req: Request, editable: torch.Tensor,
         row_seeds: list[int] | None = None) -> Iterator[tuple]:
    """Fill every editable position of ids [B, N] window by window, in place; `editable` (bool [N]) comes from
    the layout (span positions), so fixed text is never written. `row_seeds` gives row b the random stream of a
    batch-of-one run with that seed (default: rows derived from req.seed). Yields (StepEvent, Progress)."""
    sampler = get_sampler(req.sampler)
    if sampler.loop:
        yield from sampler.module().run(bundle, ids, req, editable, row_seeds)
        return
    mask_id = bundle.tokenizer.mask_token_id
    banned = banned_ids(bundle.tokenizer)
    cfg_args = dict(k=req.k, is_window=req.is_window, temperature=req.temperature, top_p=req.top_p,
                    banned=banned, unmask=req.unmask, remask=req.remask, final=req.final)
    if get_sampler(req.sampler).autoregressive:
        energy_for(bundle, req)  # the checks: an AR model with the same tokenizer
        first = int(editable.float().argmax())
        if not bool(editable[first:].all()):
            raise ValueError("the ar sampler only continues a prefix: put a single span at the end of the text")
        cfg = SamplerConfig(seed=req.seed, **cfg_args)
        n = ids.shape[1] - first
        for ev in sample_ar(bundle.ar, ids[:, :first], n, cfg, bundle.tokenizer.bos_token_id, mask_id):
            ids[:] = ev.tokens
            yield ev, Progress(0, 1, (0, ids.shape[1]), 0, 0, ev.step, n, ev.final)
        return
    energy = energy_for(bundle, req)
    if energy is None or req.k == 1 or req.is_window == 0:
        energy = None
    windows = plan_windows(editable.tolist(), bundle.window)
    done, steps_done = (0, 0), 0
    for wi, (a, b) in enumerate(windows):
        x, edit = ids[:, a:b].to(bundle.device), editable[a:b].expand(ids.shape[0], -1)
        if not bool(((x == mask_id) & edit.to(x.device)).any()):
            continue
        cfg = SamplerConfig(steps=req.steps, seed=req.seed + wi, **cfg_args)
        last = done
        seeds = None if row_seeds is None else [r + wi for r in row_seeds]
        for ev in sample(bundle.denoiser, x, cfg, energy, editable=edit, row_seeds=seeds):
            ids[:, a:b] = ev.tokens
            last = (done[0] + ev.denoiser_calls, done[1] + ev.energy_calls)
            later = sum(1 for c, d in windows[wi + 1:] if bool(((ids[:, c:d] == mask_id) & editable[c:d]).any()))
            yield ev, Progress(wi, len(windows), (a, b), last[0], last[1], 0,
                               steps_done + ev.total_steps + later * req.steps, ev.final and later == 0)
        done, steps_done = last, steps_done + req.steps


def _score_fill(bundle: Bundle, ids: list[int], layout: Layout) -> float:
    """Mean AR negative log-likelihood per token over the spans and the fixed tokens just after them. An AR
    model with another tokenizer scores the rendered text instead, per character of it."""
    if bundle.energy_tokenizer is not None:
        text = layout.render(bundle.tokenizer, ids)[0]
        energy = TextAREnergy(bundle.ar, bundle.energy_tokenizer, bundle.tokenizer)
        return -float(energy.text_log_likelihood([text])[0]) / max(1, len(text))
    scored = torch.zeros(len(ids), dtype=torch.bool)
    for a, b in layout.span_ranges:
        scored[a:min(len(ids), b + BOUNDARY_TOKENS)] = True
    x = torch.tensor(ids)
    win = bundle.ar.config.max_position_embeddings - 1
    total = 0.0
    for a in range(0, len(ids), win):
        part, sel = x[a:a + win].unsqueeze(0), scored[a:a + win].unsqueeze(0)
        if sel.any():
            total += float(ar_log_likelihood(bundle.ar, part.to(bundle.device), bundle.tokenizer.bos_token_id,
                                             sel.to(bundle.device)))
    return -total / max(1, int(scored.sum()))


def choose_lengths(bundle: Bundle, template: Template, req: Request) -> tuple[list[int], dict[int, float]]:
    """Lengths of the spans. For [MASK] spans (all given the same length) each of AUTO_LENGTHS is tried with a
    quick MDLM draft and scored by the AR model (`_score_fill`); the lowest mean NLL wins. Without an AR model
    the middle candidate (8) is used."""
    steps = length_steps(bundle, template, req)
    while True:
        try:
            next(steps)
        except StopIteration as done:
            return done.value


def length_steps(bundle: Bundle, template: Template,
                 req: Request) -> Generator[Tick, None, tuple[list[int], dict[int, float]]]:
    """`choose_lengths` as a generator: a `Tick` after every draft step; its return value is the lengths."""
    sampler = get_sampler(req.sampler)
    if sampler.loop:
        return (yield from sampler.module().choose_lengths(bundle, template, req))
    spans = template.spans
    fixed = sum(s.length for s in spans if s.length is not None)
    auto = sum(1 for s in spans if s.length is None)
    fits = [n for n in AUTO_LENGTHS if fixed + auto * n <= LIMITS.max_masked_tokens]
    if auto and not fits:
        raise ValueError(f"{auto} [MASK] spans of at least {AUTO_LENGTHS[0]} tokens each and {fixed} fixed-length "
                         f"span tokens exceed the limit of {LIMITS.max_masked_tokens} masked tokens")
    if not auto and fixed > LIMITS.max_masked_tokens:
        raise ValueError(f"{fixed} masked tokens in all; the limit is {LIMITS.max_masked_tokens}")
    if all(s.length is not None for s in spans):
        return [s.length for s in spans], {}
    if bundle.ar is None:
        return [s.length or (8 if 8 in fits else fits[-1]) for s in spans], {}
    scores = {}
    draft = Request(sampler="mdlm", steps=min(req.steps, AUTO_DRAFT_STEPS), temperature=req.temperature,
                    top_p=req.top_p, seed=req.seed)
    done, total = 0, len(fits) * draft.steps
    for n in fits:
        layout = build_layout(template, bundle.tokenizer, [s.length or n for s in spans])
        ids = torch.tensor([layout.ids])
        for _ in _run(bundle, ids, draft, layout_editable(layout)):
            done += 1
            yield Tick(done, total)
        scores[n] = _score_fill(bundle, ids[0].tolist(), layout)
    best = min(scores, key=scores.get)
    return [s.length or best for s in spans], scores


def work_of(req: Request, editable: torch.Tensor, window: int, batch: int = 1, bundle: Bundle | None = None) -> int:
    """Token-passes a run will cost (windows x steps x window tokens x (1 + k x IS share) x rows), the measure
    `LIMITS.max_work` bounds. The `ar` sampler costs one cached token-pass per new token; a sampler with its own
    loop says what it costs."""
    sampler = get_sampler(req.sampler)
    if sampler.loop and bundle is not None:
        return sampler.module().work(bundle, req, editable, batch)
    if sampler.autoregressive:
        return int(editable.sum()) * batch
    n_windows = len(plan_windows(editable.tolist(), window))
    span = min(window, len(editable))
    energy_share = req.k * req.is_window if sampler.energy and req.k > 1 else 0.0
    return int(n_windows * req.steps * span * (1.0 + energy_share) * batch)


def check_work(req: Request, editable: torch.Tensor, window: int, batch: int = 1,
               bundle: Bundle | None = None) -> None:
    """Refuse, before any model runs, a request over the work budget, saying what to lower."""
    work = work_of(req, editable, window, batch, bundle)
    if work > LIMITS.max_work:
        raise ValueError(f"this request needs about {work:,} token-passes, over the limit of {LIMITS.max_work:,}: "
                         "use fewer steps, a smaller k or IS window, fewer samples, or shorter spans")


def layout_editable(layout: Layout) -> torch.Tensor:
    """bool [N]: the span positions of a layout, the only ones a sampler may write."""
    editable = torch.zeros(len(layout.ids), dtype=torch.bool)
    for a, b in layout.span_ranges:
        editable[a:b] = True
    return editable


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
    uniform = bundle.process == "uniform"  # no masks: all is noise
    revealed_at = torch.full(ids.shape, -1)
    writes = torch.zeros(ids.shape, dtype=torch.long)  # how often each position was written (remasking: > 1)
    step, start = 0, time.perf_counter()
    for ev, prog in _run(bundle, ids, req, editable):
        step += 1
        last_step = prog.last
        a, b = prog.span
        written_now = ev.revealed & (ev.tokens != tok.mask_token_id)
        revealed_at[:, a:b][written_now] = step
        writes[:, a:b] += written_now.long()
        revealed_at[:, a:b][ev.tokens == tok.mask_token_id] = -1  # masked again (remasking)
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
                            changed=int(written_now[r].sum()) if uniform else 0)
            if render or final:
                now = "changed" if uniform else None
                kinds = [(now or ("rewritten" if writes[r, p] > 1 else "new")) if revealed_at[r, p] == step
                         and not final else "filled" for p in range(len(row))]  # a finished text has nothing "new"
                e.changes = [int(writes[r, p]) for p in span_pos]
                e.segments = layout.segments(tok, row, kinds)
                e.text = "".join(seg for seg, _, _ in e.segments)
                e.revealed_at = [int(revealed_at[r, p]) for p in span_pos]
            if final:
                e.spans = layout.render(tok, row)[1]
                e.pieces = [decode(tok, [row[p]]) for p in span_pos]
                e.ids = row
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


def infill_stream(bundle: Bundle, text: str, **settings) -> Iterator[InfillEvent]:
    """Fill the spans of `text` step by step. `settings`: any of `edlm.limits.SETTINGS` (sampler, steps, k,
    is_window, temperature, top_p, seed, unmask, remask, carry_over, ar_weighting), checked by `validate`."""
    req = validate(**with_bundle_defaults(bundle, settings))
    template = parse(text)
    autoregressive = get_sampler(req.sampler).autoregressive
    if autoregressive and len(template.spans) != 1:
        raise ValueError("the ar sampler only continues a prefix: put a single span at the end of the text")
    if autoregressive and template.parts[-1] != "":
        raise ValueError("the ar sampler only continues a prefix: nothing may follow the span")
    lengths, scores = choose_lengths(bundle, template, req)
    for events in _stream(bundle, template, lengths, req, length_scores=scores):
        yield events[0]


def infill(bundle: Bundle, text: str, **settings) -> InfillEvent:
    """Fill the spans of `text`; the final event of `infill_stream`."""
    last = None
    for last in infill_stream(bundle, text, **settings):
        pass
    return last


def generate(bundle: Bundle, length: int, prefix: str = "", num_samples: int = 1, **settings) -> list[InfillEvent]:
    """`num_samples` continuations of `prefix` by `length` tokens (unconditional when the prefix is empty),
    sampled together as one batch; returns each sample's final event."""
    req = validate(**with_bundle_defaults(bundle, settings))
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
    for done, _ in enumerate(_run(bundle, ids, req, layout_editable(layout),
                                  row_seeds=[req.seed + i for i in range(n)]), 1):
        yield Tick(done, total)
    for i in range(n):
        row = ids[i].tolist()
        text_out, spans = layout.render(bundle.tokenizer, row)
        score = -_score_fill(bundle, row, layout) if bundle.ar is not None else None
        out.append(Variant(text_out, spans, score, req.seed + i))
    yield sorted(out, key=lambda v: -v.score if v.score is not None else 0.0)


def work_steps(req: Request, editable: torch.Tensor, window: int, bundle: Bundle | None = None) -> int:
    """Steps a run over `editable` will take at most (windows x steps; one per token and span for `ar-is`)."""
    if get_sampler(req.sampler).loop:
        from .ar_infill import _runs

        return sum(b - a + 1 for a, b in _runs(editable.tolist()))
    return len(plan_windows(editable.tolist(), window)) * req.steps
