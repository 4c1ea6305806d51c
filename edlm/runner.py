"""The runner: the engine between a laid-out text and the samplers, shared by the pipeline (text -> events),
augmentation and the benchmarks.

`run` fills the editable positions of a batch of token rows, window by window, with the request's sampler (the
diffusion loop with its energy, the `ar` loop, or a sampler's own loop), yielding (StepEvent, Progress) after every
step; around it: the energy a request needs, the tokens a fill may not contain, the work budget checked before
anything runs, and the choice of `[MASK]` lengths.
"""
from __future__ import annotations

from collections.abc import Generator, Iterator
from dataclasses import dataclass

import torch

from .bundle import Bundle
from .energy import ENERGIES, TextAREnergy, ar_log_likelihood
from .limits import DEFAULTS, FALLBACK_SAMPLER, LIMITS, Request
from .processes import process_for
from .samplers import get_sampler, runs_on
from .sampling import SamplerConfig, sample_ar
from .spans import Layout, Template, build_layout, plan_windows

__all__ = ["AUTO_LENGTHS", "Progress", "Tick", "banned_ids", "check_work", "choose_lengths", "energy_for",
           "layout_editable", "length_steps", "run", "score_fill", "with_bundle_defaults", "work_of", "work_steps"]

AUTO_LENGTHS = (4, 8, 16, 24)   # lengths tried for a [MASK] span
AUTO_DRAFT_STEPS = 16           # steps of each draft fill when choosing a length
BOUNDARY_TOKENS = 8             # fixed tokens after a span counted in the length score


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
    k = 16); a setting the caller gives always wins (then the model's, then the sampler's and the library's:
    `edlm.limits.validate`). A model whose process the default sampler cannot run gets FALLBACK_SAMPLER."""
    merged = {**getattr(bundle, "defaults", {}), **settings}
    if "sampler" not in merged and not runs_on(DEFAULTS.sampler, bundle.process):
        merged["sampler"] = FALLBACK_SAMPLER  # e.g. a continuous model: the particles cannot move its points
    return merged


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


def run(bundle: Bundle, ids: torch.Tensor, req: Request, editable: torch.Tensor,
        row_seeds: list[int] | None = None, banned: tuple[int, ...] | None = None,
        top_tokens: int = 0) -> Iterator[tuple]:
    """Fill every editable position of ids [B, N] window by window, in place; fixed text is never written.
    `editable` is bool [N] (the layout's span positions, the same for every row), or bool [B, N] (rows with
    spans of their own, e.g. augmentation's; then the rows must fit one window). `row_seeds` gives row b the
    random stream of a batch-of-one run with that seed (default: rows derived from req.seed); `banned` replaces
    the tokens a fill may not contain (default `banned_ids`); `top_tokens` > 0 has each step report the model's
likeliest tokens per predicted position (the app's teaching view). Yields (StepEvent, Progress) after every step."""
    sampler = get_sampler(req.sampler)
    per_row = editable.dim() == 2
    if per_row and ids.shape[1] > bundle.window:
        raise ValueError(f"rows with spans of their own must fit one window of {bundle.window} tokens")
    if sampler.loop:
        if per_row:
            raise ValueError(f"the {req.sampler} sampler fills the spans of one layout; rows of their own: use a "
                             "diffusion sampler")
        yield from sampler.module().run(bundle, ids, req, editable, row_seeds)
        return
    mask_id = bundle.tokenizer.mask_token_id
    banned = banned_ids(bundle.tokenizer) if banned is None else banned
    cfg_args = dict(k=req.k, is_window=req.is_window, temperature=req.temperature, top_p=req.top_p,
                    banned=banned, unmask=req.unmask, remask=req.remask, final=req.final,
                    is_temperature=req.is_temperature, resample_ess=req.resample_ess, target_ess=req.target_ess,
                    top_tokens=top_tokens, cache_refresh=req.cache_refresh, potential=req.potential)
    if sampler.autoregressive:
        energy_for(bundle, req)  # the checks: an AR model with the same tokenizer
        first = int(editable.float().argmax())
        if per_row or not bool(editable[first:].all()):
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
    loop = sampler.diffusion_loop()  # the one diffusion loop, or a sampler's own (edlm-smc)
    windows = [(0, ids.shape[1])] if per_row else plan_windows(editable.tolist(), bundle.window)
    finite = process_for(bundle.denoiser.config).finite(req)  # once revealed, a token stays
    rows_edit = editable if per_row else editable.expand(ids.shape[0], -1)
    done, steps_done = (0, 0), 0
    for wi, (a, b) in enumerate(windows):
        x, edit = ids[:, a:b].to(bundle.device), rows_edit[:, a:b]
        if not bool(((x == mask_id) & edit.to(x.device)).any()):
            continue
        cfg = SamplerConfig(steps=req.steps, seed=req.seed + wi, **cfg_args)
        last = done
        seeds = None if row_seeds is None else [r + wi for r in row_seeds]
        for ev in loop(bundle.denoiser, x, cfg, energy, editable=edit.to(x.device), row_seeds=seeds):
            ids[:, a:b] = ev.tokens
            last = (done[0] + ev.denoiser_calls, done[1] + ev.energy_calls)
            later = sum(1 for c, d in windows[wi + 1:] if bool(((ids[:, c:d] == mask_id) & rows_edit[:, c:d]).any()))
            yield ev, Progress(wi, len(windows), (a, b), last[0], last[1], 0,
                               steps_done + ev.total_steps + later * req.steps, ev.final and later == 0)
            filled = not bool(((ids[:, a:b] == mask_id) & rows_edit[:, a:b]).any())
            if finite and filled and not ev.extra.get("pending"):  # ("pending": other particles still writing)
                break  # this window is filled (adaptive orders get here early): on to the next one
        done, steps_done = last, steps_done + req.steps


def score_fill(bundle: Bundle, ids: list[int], layout: Layout) -> float:
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
        for _ in run(bundle, ids, draft, layout_editable(layout)):
            done += 1
            yield Tick(done, total)
        scores[n] = score_fill(bundle, ids[0].tolist(), layout)
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
    return int(n_windows * req.steps * span * (sampler.denoiser_rows(req) + energy_share) * batch)


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


def work_steps(req: Request, editable: torch.Tensor, window: int, bundle: Bundle | None = None) -> int:
    """Steps a run over `editable` will take at most (windows x steps; one per token and span for `ar-is`)."""
    sampler = get_sampler(req.sampler)
    if sampler.loop:
        return sampler.module().steps(req, editable)
    return len(plan_windows(editable.tolist(), window)) * req.steps
