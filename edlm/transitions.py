"""Transitions of the masked-diffusion loop: which masked positions to reveal at a step (the unmasking order) and
which written positions to mask again (remasking). Each is a small function found through a registry, so a new
order or remasking rule is one function with a decorator (`@unmask_order("name")`, `@remask_rule("name")`).

Every function sees only `editable` positions (the spans); fixed text can never be revealed or re-masked.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from .noise import Schedule, alphas
from .rand import RowRandom


@dataclass
class StepContext:
    """What a transition may look at in one reverse step t -> s."""

    x: torch.Tensor          # [B, L] current tokens (mask id where masked)
    x0: torch.Tensor         # [B, L] the x0 drawn for this step (equals x where not masked)
    masked: torch.Tensor     # [B, L] bool, masked and editable
    editable: torch.Tensor   # [B, L] bool, positions the sampler may write
    log_q: torch.Tensor      # [N, V] proposal log-probs at the masked positions (row-major order of `masked`)
    t: float
    s: float
    schedule: Schedule
    generator: RowRandom      # one random stream per batch row
    remask_prob: float = 0.0  # chance that each written editable token is masked again in this step

    def reveal_probability(self) -> float:
        """Chance that a masked position is revealed in t -> s; with remasking (ReMDM) the reveals make up for the
        tokens masked again so that the masked fraction still follows the schedule."""
        a_t, a_s = alphas(self.schedule, self.t, self.s)
        p = (a_s - (1.0 - self.remask_prob) * a_t) / max(1e-12, 1.0 - a_t)
        return min(1.0, max(0.0, p))


FINALS = ("sample", "greedy")  # the last step's x0: drawn like every step's, or each position's likeliest token

UnmaskFn = Callable[[StepContext], torch.Tensor]
RemaskFn = Callable[[StepContext, torch.Tensor], torch.Tensor]
UNMASK: dict[str, UnmaskFn] = {}
REMASK: dict[str, RemaskFn] = {}


def unmask_order(name: str):
    """Register an unmasking order: fn(ctx) -> bool [B, L] positions to reveal (a subset of ctx.masked)."""
    def deco(fn: UnmaskFn) -> UnmaskFn:
        UNMASK[name] = fn
        return fn
    return deco


def remask_rule(name: str):
    """Register a remasking rule: fn(ctx, written) -> bool [B, L] written editable positions to mask again."""
    def deco(fn: RemaskFn) -> RemaskFn:
        REMASK[name] = fn
        return fn
    return deco


@unmask_order("random")
def reveal_random(ctx: StepContext) -> torch.Tensor:
    """Ancestral MDLM step: each masked position is revealed independently with the posterior probability."""
    if ctx.s <= 0:
        return ctx.masked.clone()
    u = ctx.generator.rand(1, ctx.x.shape[1]).to(ctx.x.device)
    return ctx.masked & (u < ctx.reveal_probability())


def reveal_counts(ctx: StepContext) -> torch.Tensor:
    """How many positions each row reveals in this step: the schedule's expected count, stochastically rounded
    (so ordered samplers reveal as many tokens per step as the ancestral one does on average)."""
    m = ctx.masked.sum(-1).double()
    if ctx.s <= 0:
        return m.long()
    expected = m * ctx.reveal_probability()
    u = ctx.generator.rand(1, dtype=torch.float64).to(m.device)
    return torch.minimum(torch.floor(expected + u), m).long()


def reveal_top(ctx: StepContext, score: torch.Tensor, n: torch.Tensor | None = None) -> torch.Tensor:
    """Reveal, per row, the n (default: the schedule's count) masked positions with the highest `score` [N]
    (row-major order of ctx.masked)."""
    full = torch.full(ctx.x.shape, float("-inf"), dtype=torch.float64, device=ctx.x.device)
    full[ctx.masked] = score.double()
    n = reveal_counts(ctx) if n is None else n
    order = full.sort(dim=-1, descending=True, stable=True).indices
    rank = torch.empty_like(order).scatter_(-1, order, torch.arange(order.shape[-1], device=order.device)
                                            .expand_as(order).contiguous())
    return ctx.masked & (rank < n.unsqueeze(-1))


@unmask_order("confidence")
def reveal_confident(ctx: StepContext) -> torch.Tensor:
    """MaskGIT / LLaDA low-confidence remasking: reveal where the drawn token has the highest probability."""
    drawn = ctx.x0[ctx.masked]
    return reveal_top(ctx, ctx.log_q.gather(-1, drawn.unsqueeze(-1)).squeeze(-1))


@unmask_order("confidence-noisy")
def reveal_confident_noisy(ctx: StepContext) -> torch.Tensor:
    """MaskGIT's guard against the repetition of pure confidence orders: the confidence (log-probability of the
    drawn token) plus Gumbel noise whose scale anneals from 2 at t = 1 to 0 at t = 0, so early steps reveal a
    random-ish spread of positions and late steps the surest ones."""
    drawn = ctx.x0[ctx.masked]
    conf = ctx.log_q.gather(-1, drawn.unsqueeze(-1)).squeeze(-1).double()
    u = ctx.generator.rand(ctx.masked.sum(-1).tolist(), dtype=torch.float64).to(conf.device)
    gumbel = -torch.log(-torch.log(u.clamp(1e-300, 1.0 - 1e-16)))
    return reveal_top(ctx, conf + 2.0 * ctx.t * gumbel)


@unmask_order("margin")
def reveal_margin(ctx: StepContext) -> torch.Tensor:
    """Dream's top-k margin order: reveal where the two likeliest tokens are furthest apart."""
    top2 = ctx.log_q.exp().topk(2, dim=-1).values
    return reveal_top(ctx, top2[:, 0] - top2[:, 1])


@unmask_order("entropy")
def reveal_low_entropy(ctx: StepContext) -> torch.Tensor:
    """Dream's entropy order: reveal where the proposal is least uncertain."""
    p = ctx.log_q.exp()
    ent = -(p * ctx.log_q.clamp_min(-1e30)).nan_to_num(0.0).sum(-1)
    return reveal_top(ctx, -ent)


THRESHOLD = 0.9      # `threshold`: a drawn token this probable is revealed at once (Fast-dLLM's default)
ENTROPY_BOUND = 1.0  # `entropy-bound`: the summed entropy (nats) a step may reveal beyond the schedule's count


def _entropy(ctx: StepContext) -> torch.Tensor:
    p = ctx.log_q.exp()
    return -(p * ctx.log_q.clamp_min(-1e30)).nan_to_num(0.0).sum(-1)


def min_reveals(ctx: StepContext) -> torch.Tensor:
    """The fewest reveals per row that still finish within the steps left (all of them at the last step)."""
    m = ctx.masked.sum(-1)
    if ctx.s <= 0:
        return m
    steps_left = max(1, round(ctx.t / max(1e-12, ctx.t - ctx.s)))
    return torch.div(m + steps_left - 1, steps_left, rounding_mode="floor")


@unmask_order("threshold")
def reveal_threshold(ctx: StepContext) -> torch.Tensor:
    """Adaptive, after Fast-dLLM: every masked position whose drawn token has probability >= THRESHOLD, and never
    fewer than the pace that finishes in the steps left (the surest first). A run ends as soon as nothing is left
    masked, so text the denoiser is sure of takes fewer passes; text it is never sure of uses the whole budget."""
    drawn = ctx.x0[ctx.masked]
    conf = ctx.log_q.gather(-1, drawn.unsqueeze(-1)).squeeze(-1)
    sure = torch.zeros(ctx.x.shape, dtype=torch.long, device=ctx.x.device)
    sure[ctx.masked] = (conf.exp() >= THRESHOLD).long()
    return reveal_top(ctx, conf, torch.maximum(min_reveals(ctx), sure.sum(-1)))


@unmask_order("entropy-bound")
def reveal_entropy_bound(ctx: StepContext) -> torch.Tensor:
    """Adaptive, after the entropy-bounded sampler (EB-Sampler): positions in order of increasing entropy while
    their summed entropy stays within ENTROPY_BOUND nats, and never fewer than the pace that finishes in time."""
    ent = _entropy(ctx).double()
    full = torch.full(ctx.x.shape, float("inf"), dtype=torch.float64, device=ctx.x.device)
    full[ctx.masked] = ent
    within = (full.sort(-1).values.cumsum(-1) <= ENTROPY_BOUND).sum(-1)  # [B]
    return reveal_top(ctx, -ent, torch.maximum(min_reveals(ctx), within))


@remask_rule("none")
def remask_none(ctx: StepContext, written: torch.Tensor) -> torch.Tensor:
    return torch.zeros_like(written)


@remask_rule("remdm")
def remask_remdm(ctx: StepContext, written: torch.Tensor) -> torch.Tensor:
    """ReMDM (Wang et al. 2025), 'cap' strategy: each written editable token is masked again with probability
    ctx.remask_prob (set by the loop inside the remasking window, zero outside it)."""
    if ctx.remask_prob <= 0:
        return torch.zeros_like(written)
    u = ctx.generator.rand(1, ctx.x.shape[1]).to(ctx.x.device)
    return written & (u < ctx.remask_prob)


def remdm_probability(t: float, s: float, schedule: Schedule, strength: float) -> float:
    """ReMDM-cap's sigma_t = min(strength, (1 - alpha_s) / alpha_t): never more than the schedule can refill."""
    a_t, a_s = alphas(schedule, t, s)
    return max(0.0, min(strength, (1.0 - a_s) / max(a_t, 1e-12)))
