"""Samplers. Each algorithm is one generator that yields a `StepEvent` after every reverse step; the
non-streaming result is simply the last event.

- `sample_mdlm`: ancestral sampling of a masked diffusion LM (MDLM), with the cache that skips the denoiser
  when the previous step revealed nothing and the network ignores time.
- `sample_edlm`: the same loop with parallel importance sampling (EDLM): in steps with t inside the IS window,
  k candidate x0 are drawn from the denoiser in one batch, weighted by the residual energy, and one is kept.
- `sample_ar`: left-to-right sampling from a causal LM, the baseline.
"""
from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import torch

from .energy import Energy, normalise
from .noise import LogLinearSchedule, Schedule, posterior_step


@dataclass(frozen=True)
class SamplerConfig:
    steps: int = 32
    k: int = 4               # EDLM candidates per IS step
    is_window: float = 0.5   # IS is used while t > 1 - is_window (the noisiest part of the run)
    temperature: float = 1.0  # 0 = greedy
    top_p: float = 1.0
    seed: int = 0
    banned: tuple[int, ...] = ()  # token ids never sampled (special tokens)


@dataclass
class StepEvent:
    """What happened in one reverse step (all tensors on the CPU, batch first)."""

    step: int                      # 1-based index of the step just taken
    total_steps: int
    t: float                       # time before the step
    s: float                       # time after it
    tokens: torch.Tensor           # [B, L] current sequence, mask id where still masked
    fixed: torch.Tensor            # [B, L] given by the user, never changed
    revealed: torch.Tensor         # [B, L] revealed in this step
    denoiser_calls: int
    energy_calls: int
    elapsed: float                 # seconds since the sampler started
    is_step: bool = False
    candidates: torch.Tensor | None = None    # [B, k, L]
    log_weights: torch.Tensor | None = None   # [B, k]
    weights: torch.Tensor | None = None       # [B, k], sum to 1
    ess: torch.Tensor | None = None           # [B] effective sample size, in [1, k]
    chosen: torch.Tensor | None = None        # [B] index of the kept candidate
    extra: dict = field(default_factory=dict)

    @property
    def final(self) -> bool:
        return self.step == self.total_steps


def time_grid(steps: int) -> list[float]:
    """Uniform times 1 = t_0 > t_1 > ... > t_steps = 0."""
    return [1.0 - i / steps for i in range(steps + 1)]


def shape_log_probs(log_probs: torch.Tensor, temperature: float, top_p: float,
                    banned: tuple[int, ...] = ()) -> torch.Tensor:
    """Ban tokens, then apply temperature and nucleus truncation to log-probs [N, V]; returns normalised
    log-probs (positions whose every allowed token is banned keep their distribution)."""
    if banned:
        cut = log_probs.clone()
        cut[:, list(banned)] = float("-inf")
        ok = torch.isfinite(cut).any(-1, keepdim=True)
        log_probs = torch.where(ok, cut, log_probs).log_softmax(-1)
    if temperature == 0:
        return torch.full_like(log_probs, float("-inf")).scatter(-1, log_probs.argmax(-1, keepdim=True), 0.0)
    lp = (log_probs / temperature).log_softmax(-1)
    if top_p < 1.0:
        sorted_lp, order = lp.sort(-1, descending=True)
        cum = sorted_lp.exp().cumsum(-1)
        drop_sorted = (cum - sorted_lp.exp()) >= top_p  # keep the smallest prefix reaching top_p
        drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
        lp = lp.masked_fill(drop, float("-inf")).log_softmax(-1)
    return lp


def sample_categorical(cdf: torch.Tensor, k: int, gen: torch.Generator) -> torch.Tensor:
    """k independent draws per row [N, k] by inverting the cumulative distribution cdf [N, V].

    Tokens of zero probability are never drawn (their cdf equals the previous one); far cheaper than
    torch.multinomial on a CPU for thousands of rows."""
    u = torch.rand(cdf.shape[0], k, generator=gen, device=cdf.device) * cdf[:, -1:]
    return torch.searchsorted(cdf, u, right=True).clamp_(max=cdf.shape[-1] - 1)


class Proposal:
    """The denoiser's shaped x0 distribution at the N masked positions (row-major order of the mask)."""

    def __init__(self, denoiser, x: torch.Tensor, t: float, masked: torch.Tensor, cfg: SamplerConfig):
        t_batch = torch.full((x.shape[0],), t, device=x.device)
        log_p = denoiser(x, t_batch, positions=masked).logits
        self.log_q = shape_log_probs(log_p.float(), cfg.temperature, cfg.top_p, cfg.banned)
        self.cdf = self.log_q.exp().cumsum(-1)

    def sample(self, k: int, gen: torch.Generator) -> torch.Tensor:
        return sample_categorical(self.cdf, k, gen)


def _event(step, cfg, t, s, x, fixed, prev, calls, ecalls, start, **kw) -> StepEvent:
    return StepEvent(step=step, total_steps=cfg.steps, t=t, s=s, tokens=x.cpu(), fixed=fixed.cpu(),
                     revealed=(x != prev).cpu(), denoiser_calls=calls, energy_calls=ecalls,
                     elapsed=time.perf_counter() - start, **kw)


@torch.inference_mode()
def sample_mdlm(denoiser, x: torch.Tensor, cfg: SamplerConfig, schedule: Schedule | None = None) -> Iterator[StepEvent]:
    """MDLM ancestral sampling: fill every mask of x [B, L] in cfg.steps reverse steps."""
    schedule = schedule or LogLinearSchedule()
    mask_id = denoiser.config.mask_token_id
    gen = torch.Generator(x.device).manual_seed(cfg.seed)
    fixed, ts, start = x != mask_id, time_grid(cfg.steps), time.perf_counter()
    cache, calls = None, 0
    for i in range(cfg.steps):
        t, s = ts[i], ts[i + 1]
        masked = x == mask_id
        if cache is None:
            q = Proposal(denoiser, x, t, masked, cfg)
            calls += 1
        else:
            q = cache
        x0 = x.clone()
        x0[masked] = q.sample(1, gen).squeeze(-1)
        prev, x = x, posterior_step(x, x0, t, s, mask_id, schedule, gen)
        nothing_new = bool((x == prev).all())
        cache = q if nothing_new and not denoiser.config.time_conditioning else None
        yield _event(i + 1, cfg, t, s, x, fixed, prev, calls, 0, start)


@torch.inference_mode()
def sample_edlm(denoiser, energy: Energy, x: torch.Tensor, cfg: SamplerConfig,
                schedule: Schedule | None = None) -> Iterator[StepEvent]:
    """EDLM: MDLM ancestral sampling with parallel importance sampling of x0 inside the IS window."""
    schedule = schedule or LogLinearSchedule()
    mask_id = denoiser.config.mask_token_id
    gen = torch.Generator(x.device).manual_seed(cfg.seed)
    fixed, ts, start = x != mask_id, time_grid(cfg.steps), time.perf_counter()
    cache, calls, ecalls = None, 0, 0
    B, L, k = x.shape[0], x.shape[1], cfg.k
    for i in range(cfg.steps):
        t, s = ts[i], ts[i + 1]
        masked = x == mask_id
        if cache is None:
            q = Proposal(denoiser, x, t, masked, cfg)
            calls += 1
        else:
            q = cache
        info = {}
        if k > 1 and t > 1.0 - cfg.is_window and masked.any():
            # k candidates per row, laid out [B, k, L]; flattened batch-major (row b*k + j).
            draws = q.sample(k, gen)  # [N, k]
            rows, cols = masked.nonzero(as_tuple=True)
            cands = x.unsqueeze(1).repeat(1, k, 1)
            cands[rows, :, cols] = draws
            log_q_cand = torch.zeros(B, k, device=x.device).index_add_(0, rows, q.log_q.gather(1, draws))
            log_w = energy.log_weights(cands.view(B * k, L), x.repeat_interleave(k, 0),
                                       torch.full((B * k,), t, device=x.device), log_q_cand.view(-1), k=k).view(B, k)
            ecalls += 1
            w, ess = normalise(log_w)
            chosen = torch.multinomial(w, 1, generator=gen).squeeze(-1)
            x0 = cands[torch.arange(B, device=x.device), chosen]
            info = dict(is_step=True, candidates=cands.cpu(), log_weights=log_w.cpu(), weights=w.cpu(),
                        ess=ess.cpu(), chosen=chosen.cpu())
        else:
            x0 = x.clone()
            x0[masked] = q.sample(1, gen).squeeze(-1)
        prev, x = x, posterior_step(x, x0, t, s, mask_id, schedule, gen)
        nothing_new = bool((x == prev).all())
        cache = q if nothing_new and not denoiser.config.time_conditioning else None
        yield _event(i + 1, cfg, t, s, x, fixed, prev, calls, ecalls, start, **info)


@torch.inference_mode()
def sample_ar(model, prefix: torch.Tensor, n_new: int, cfg: SamplerConfig, bos_id: int,
              mask_id: int) -> Iterator[StepEvent]:
    """Left-to-right sampling of n_new tokens after prefix [B, P]; one event per token (steps = n_new)."""
    gen = torch.Generator(prefix.device).manual_seed(cfg.seed)
    B, P = prefix.shape
    window = getattr(model.config, "max_position_embeddings", 1 << 30)
    x = torch.cat([prefix, torch.full((B, n_new), mask_id, device=prefix.device)], 1)
    fixed = x != mask_id
    ids = torch.cat([torch.full((B, 1), bos_id, device=prefix.device), prefix], 1)
    run_cfg = SamplerConfig(steps=n_new, temperature=cfg.temperature, top_p=cfg.top_p, seed=cfg.seed,
                            banned=cfg.banned)
    past, start = None, time.perf_counter()
    for i in range(n_new):
        if ids.shape[1] > window:  # past the model's context: slide the window, recompute without a cache
            ids, past = ids[:, -window:], None
        out = model(input_ids=ids if past is None else ids[:, -1:], past_key_values=past, use_cache=True)
        past = out.past_key_values
        log_q = shape_log_probs(out.logits[:, -1].float().log_softmax(-1), cfg.temperature, cfg.top_p,
                                cfg.banned + (mask_id,))
        tok = sample_categorical(log_q.exp().cumsum(-1), 1, gen)
        ids = torch.cat([ids, tok], 1)
        prev, x = x, x.clone()
        x[:, P + i] = tok.squeeze(-1)
        yield _event(i + 1, run_cfg, 1.0 - i / n_new, 1.0 - (i + 1) / n_new, x, fixed, prev, 0, 0, start,
                     extra={"ar_calls": i + 1})
