"""Sequential Monte Carlo with the energy (`edlm-smc`): k particles per row carried through the reverse steps.

EDLM's importance sampling draws k candidate x0 at a step, keeps one and throws k - 1 away; the next step starts
again from one x_t. Here each particle keeps its own x_t, so the energy chooses among real alternatives across the
whole run (after particle methods for diffusion LMs: PG-DLM, arXiv 2507.08390; S3, arXiv 2604.06260):

    per step, for each particle i:  x0_i ~ q(x0 | x_t_i)      the denoiser's draw, as in every step
                                    log W_i += G(x0_i) - G_prev_i,  G = -E (the potential of the particle's draw)
                                    x_s_i = the process's reverse step from x_t_i and x0_i
      (potential "lookahead": G is scored after the step, on x_s_i with its still-masked positions at the
       denoiser's likeliest tokens: the particle's own state without the draw's noise)
    when ESS(W) < resample_ess * k: resample the particles by W (systematic), W reset to equal
    at the end: one particle per row, drawn by W

The weights telescope: a particle's weight is the potential of its last score, the finished text at the last step,
so the target is the denoiser's own chain times exp(-E) (EDLM's "product" target, whatever the ar_weighting:
the "ratio" target needs the denoiser's marginal probability of the text, which no step has). Weights are
computed inside the IS window only; after it they stay as they are. Costs k denoiser rows per row per step.
"""
from __future__ import annotations

import time
from collections.abc import Iterator

import torch

from .energy import Energy, normalise, temper
from .noise import Schedule
from .processes import process_for
from .rand import RowRandom
from .sampling import Proposal, SamplerConfig, StepEvent, context_cache, time_grid, top_tokens
from .transitions import StepContext


def work_rows(req) -> float:
    """Denoiser rows per sample and step (the runner's work budget): one per particle."""
    return float(req.k)


def particle_seeds(seeds: list[int], k: int) -> list[int]:
    """Each particle's own random stream, derived from its row's seed (row b, particle j)."""
    return [s * 1_000_033 + j for s in seeds for j in range(k)]


def systematic(w: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """Systematic resampling: ancestors [B, k] from weights w [B, k] and one uniform per row u [B]."""
    k = w.shape[-1]
    points = (u.unsqueeze(-1) + torch.arange(k, dtype=torch.float64, device=w.device)) / k
    return torch.searchsorted(w.double().cumsum(-1), points).clamp_(max=k - 1)


@torch.inference_mode()
def sample_smc(denoiser, x: torch.Tensor, cfg: SamplerConfig, energy: Energy | None = None,
               editable: torch.Tensor | None = None, schedule: Schedule | None = None,
               row_seeds: list[int] | None = None) -> Iterator[StepEvent]:
    """Fill every editable span of x [B, L] with cfg.k particles per row (see the module's docstring); events
    show, per row, the particle with the largest weight (the last: the one drawn), and at weighting steps every
    particle's draw (`candidates`), the weights, the ESS, and after a resampling its ancestors (extra)."""
    B, L, k = x.shape[0], x.shape[1], max(1, cfg.k)
    process = process_for(denoiser.config, schedule, denoiser)
    if process.name == "continuous":
        raise ValueError("edlm-smc resamples its particles' tokens, and the continuous process carries points the "
                         "resampling does not move: use mdlm or edlm-ar with the continuous model")
    process.check(cfg)
    seeds = row_seeds if row_seeds is not None else [cfg.seed + 1_000_003 * b for b in range(B)]
    gen = RowRandom(cfg.seed, B * k, x.device, particle_seeds(seeds, k))  # each particle's draws
    pick = RowRandom(cfg.seed, B, x.device, [s + 7 for s in seeds])       # each row's resampling
    editable = (x == denoiser.config.mask_token_id) if editable is None else editable.to(x.device)
    edit = editable.repeat_interleave(k, 0) if editable.dim() == 2 else editable.expand(B * k, -1)
    fixed = ~editable.expand(B, L)
    P = process.start(x.repeat_interleave(k, 0), edit, gen)
    log_w = torch.zeros(B, k, dtype=torch.float64, device=x.device)
    potential = torch.zeros(B, k, dtype=torch.float64, device=x.device)  # G of each particle's last score
    ts, start, calls, ecalls, q, shown = time_grid(cfg.steps), time.perf_counter(), 0, 0, None, None
    rows = torch.arange(B, device=x.device)
    cache = context_cache(denoiser, edit, cfg, B * k)
    held: dict = {}  # top tokens: every particle's, at each position as of the step it last wrote it

    def reweigh(scored: torch.Tensor, x_t: torch.Tensor, t: float) -> dict:  # log W += G(scored) - G(last score)
        nonlocal log_w, potential, ecalls
        g = energy.log_weights(scored, x_t, torch.full((B * k,), t, device=x.device),
                               torch.zeros(B * k, device=x.device), k=k).double().view(B, k)
        log_w = log_w + temper(g - potential, cfg.is_temperature, cfg.target_ess)[0]
        potential, ecalls = g, ecalls + 1
        w, ess = normalise(log_w)
        return dict(is_step=True, candidates=scored.view(B, k, L).cpu(), log_weights=log_w.float().cpu(),
                    weights=w.cpu(), ess=ess.cpu())

    for i in range(cfg.steps):
        t, s = ts[i], ts[i + 1]
        masked = process.predicted(P, edit)
        q = Proposal(denoiser, P, t, masked, cfg, previous=q, cache=cache)
        calls += 1
        x0 = P.clone()
        greedy = cfg.final == "greedy" and s <= 0
        draws = q.log_q.argmax(-1) if greedy else q.sample(1, gen).squeeze(-1)
        x0[masked] = draws
        info, ancestors = {}, None
        weigh = energy is not None and t > 1.0 - cfg.is_window and bool(masked.any())
        if weigh and cfg.potential == "draw":
            info = reweigh(x0, P, t)
        ctx = StepContext(x=P, x0=x0, masked=masked, editable=edit, log_q=q.log_q, t=t, s=s,
                          schedule=process.schedule, generator=gen)
        before = P
        P, again = process.step(ctx, cfg)
        if cfg.top_tokens:  # each particle's record: what its proposal hesitated between when it wrote a token
            top, changed = top_tokens(q, cfg.top_tokens), (P != before).cpu()
            held = held or {"top_ids": torch.full_like(top["top_ids"], -1),
                            "top_probs": torch.zeros_like(top["top_probs"])}
            for name, v in top.items():
                held[name][changed] = v[changed]
        still = process.predicted(P, edit)
        left = bool(still.any())  # some particle still has positions to write
        finished = s <= 0 or (process.finite(cfg) and not left)
        if weigh and cfg.potential == "lookahead":  # the new state, what is left at the denoiser's likeliest
            likeliest = x0.clone()
            likeliest[masked] = q.log_q.argmax(-1)
            info = reweigh(P if finished else torch.where(still, likeliest, P), before, t)
        w, ess = normalise(log_w)
        extra = {"pending": left and not finished, "particles": True}
        if finished:  # the finished text: one particle per row, drawn by its weight
            u = pick.rand(1, dtype=torch.float64)  # [B]
            choice = torch.searchsorted(w.double().cumsum(-1), (u * w.sum(-1).double()).unsqueeze(-1))
            choice = choice.squeeze(-1).clamp_(max=k - 1)
        else:
            choice = w.argmax(-1)  # shown while the run goes on: the heaviest particle
        if info:
            info["chosen"] = choice.cpu()
        low = ess < cfg.resample_ess * k  # rows whose weight sits on a few particles
        if not finished and info and bool(low.any()):
            u = pick.rand(1, dtype=torch.float64)  # [B]
            ancestors = torch.where(low.unsqueeze(-1), systematic(w, u), torch.arange(k, device=x.device).expand(B, k))
            flat = (rows.unsqueeze(-1) * k + ancestors).view(-1)
            P, potential, again = P[flat], potential.view(-1)[flat].view(B, k), None if again is None else again[flat]
            q = q.take(flat.tolist())
            held = {name: v[flat.cpu()] for name, v in held.items()}  # a copy carries its ancestor's record
            if cache is not None:
                cache.take(flat)
            log_w = torch.where(low.unsqueeze(-1), torch.zeros_like(log_w), log_w)
            choice = (ancestors == choice.unsqueeze(-1)).double().argmax(-1)  # a descendant of the heaviest
            extra.update(ancestors=ancestors.cpu(), resampled=low.cpu())
        shown_particle = (rows.cpu() * k + (choice if ancestors is None else ancestors[rows, choice]).cpu())
        extra.update({name: v[shown_particle] for name, v in held.items()})  # the shown particle's record
        out = P.view(B, k, L)[rows, choice]
        prev = out if shown is None else shown
        shown = out
        yield StepEvent(step=cfg.steps if finished else i + 1, total_steps=cfg.steps, t=t, s=s, tokens=out.cpu(), fixed=fixed.cpu(),
                        revealed=(out != prev).cpu() if i else (out != x).cpu(), denoiser_calls=calls,
                        energy_calls=ecalls, elapsed=time.perf_counter() - start,
                        remasked=None if again is None else again.view(B, k, L)[rows, choice].cpu(), extra=extra,
                        **info)
        if finished:
            return
