"""DiffusionBERT's spindle schedule (He et al. 2022) as a masked process: each token's chance of being masked at
time t depends on how much information it carries, so the forward process masks informative (rare) tokens first
and the reverse process reveals easy (frequent) tokens before hard ones, at training and at sampling time alike.

With d_v in [-1, 1] the information of token v relative to the corpus (below) and the log-linear base schedule:

    alpha_v(t) = 1 - (1 - eps) t - lam sin(pi t) d_v,      0 <= lam < (1 - eps) / pi

so every alpha_v falls monotonically from 1 to eps (the bound on lam keeps alpha_v' < 0) and the corpus-average
token keeps the base schedule. DiffusionBERT centres d on each sentence's mean and clips alpha; centring on the
corpus instead keeps each token's schedule a function of that token alone, which the reverse step and the ELBO
below need, and the bound on lam makes clipping unnecessary.

Because the rate at which a masked position is revealed depends on the (unknown) token behind it, the reverse
model is sum_v p_theta(v | x_t) q(x_s | x_t, x_0 = v) and the continuous-time ELBO gains a term the constant-rate
MDLM loss does not have (cf. MD4's state-dependent schedules, Shi et al. 2024). With w_v(t) = -alpha_v'/(1 -
alpha_v), each masked position i with true token v costs

    w_v(t) (-log p_theta(v)) + sum_u p_theta(u) w_u(t) - w_v(t)

(the KL rate between the true reverse jump process and the model's); tests/test_spindle.py checks it against the
discrete-time sum of KL terms on a tiny vocabulary.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .masked import AbsorbingProcess
from .noise import LogLinearSchedule, Schedule
from .transitions import StepContext

MAX_LAMBDA = (1.0 - LogLinearSchedule().eps) / math.pi  # beyond it some alpha_v would rise with t


def token_information(counts: torch.Tensor, special: tuple[int, ...] = ()) -> torch.Tensor:
    """d_v in [-1, 1] from token counts [V] of the training text: the surprisal -log p(v) (add-one smoothed)
    minus its corpus mean (the unigram entropy), scaled by the largest deviation. Special tokens get 0 (the base
    schedule)."""
    counts = counts.double().clone()
    keep = torch.ones_like(counts, dtype=torch.bool)
    keep[list(special)] = False
    p = (counts + 1.0) * keep / ((counts + 1.0) * keep).sum()
    surprisal = torch.where(keep, -torch.log(p.clamp_min(1e-300)), 0.0)
    entropy = float((p * surprisal).sum())
    dev = torch.where(keep, surprisal - entropy, 0.0)
    return (dev / dev.abs().max().clamp_min(1e-12)).float()


def attach_spindle(config, counts: torch.Tensor, lam: float, special: tuple[int, ...]) -> None:
    """Write the spindle schedule into a denoiser config (process, spindle_lambda, spindle_info), so the saved
    model carries the schedule it was trained with."""
    info = token_information(counts, special)
    SpindleSchedule(info, lam)  # checks lam
    config.process, config.spindle_lambda = "spindle", float(lam)
    config.spindle_info = [round(float(v), 6) for v in info]


@dataclass(frozen=True)
class SpindleSchedule:
    """Per-token alpha_v(t) over the log-linear base; `info` is d [V], `lam` the spindle's strength."""

    info: torch.Tensor
    lam: float
    eps: float = 1e-3

    def __post_init__(self):
        if not 0.0 <= self.lam < MAX_LAMBDA:
            raise ValueError(f"spindle_lambda must be in [0, {MAX_LAMBDA:.4f}) so that every token's schedule "
                             f"falls with t; got {self.lam}")
        if self.info.abs().max() > 1.0 + 1e-6:
            raise ValueError("spindle_info must lie in [-1, 1] (see edlm.spindle.token_information)")

    def alpha(self, t: torch.Tensor, tokens: torch.Tensor | None = None) -> torch.Tensor:
        """alpha_v(t): [B, L] for tokens [B, L] and times [B]; [B, V] for every token when tokens is None."""
        d = self._d(tokens, t.device)
        t = t.double()[:, None]
        return 1.0 - (1.0 - self.eps) * t - self.lam * torch.sin(math.pi * t) * d

    def rate(self, t: torch.Tensor, tokens: torch.Tensor | None = None) -> torch.Tensor:
        """w_v(t) = -alpha_v'(t) / (1 - alpha_v(t)), the reveal rate of a masked token v (shapes as `alpha`)."""
        d = self._d(tokens, t.device)
        td = t.double()[:, None]
        dalpha = -(1.0 - self.eps) - self.lam * math.pi * torch.cos(math.pi * td) * d
        return -dalpha / (1.0 - self.alpha(t, tokens))

    def _d(self, tokens: torch.Tensor | None, device) -> torch.Tensor:
        info = self.info.to(device).double()
        return info[None, :] if tokens is None else info[tokens]


class SpindleProcess(AbsorbingProcess):
    """Masked diffusion with the spindle schedule: noising and the ELBO per token; the random order's reveals at
    each token's own rate. Ordered samplers (confidence, ...) pick positions as for the absorbing process, at the
    base schedule's pace."""

    name = "spindle"

    def __init__(self, mask_id: int, schedule: Schedule, spindle: SpindleSchedule):
        super().__init__(mask_id, schedule)
        self.spindle = spindle

    @classmethod
    def from_config(cls, config, schedule: Schedule, model=None) -> SpindleProcess:
        info, lam = getattr(config, "spindle_info", None), getattr(config, "spindle_lambda", None)
        if info is None or lam is None:
            raise ValueError("a spindle denoiser's config needs spindle_info (one value per token) and "
                             "spindle_lambda; train it with --process spindle")
        if len(info) != config.vocab_size:
            raise ValueError(f"spindle_info has {len(info)} values for a vocabulary of {config.vocab_size}")
        if not isinstance(schedule, LogLinearSchedule):
            raise ValueError("the spindle schedule is built on the log-linear schedule")
        return cls(config.mask_token_id, schedule, SpindleSchedule(torch.tensor(info), float(lam), schedule.eps))

    def add_noise(self, x0: torch.Tensor, t: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Each token v of x0 [B, L] is masked independently with probability 1 - alpha_v(t[b])."""
        u = torch.rand(x0.shape, generator=generator, device=x0.device, dtype=torch.float64)
        return torch.where(u < 1.0 - self.spindle.alpha(t, x0), torch.full_like(x0, self.mask_id), x0)

    def loss(self, log_probs: torch.Tensor, x0: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """Negative ELBO per token [B] (module docstring): at masked positions w_v (-log p(v)) + E_p[w] - w_v."""
        w_all = self.spindle.rate(t).to(log_probs.dtype if log_probs.dtype == torch.float64 else torch.float32)
        w_true = w_all.gather(-1, x0)                                       # [B, L]
        log_p = log_probs if log_probs.dtype == torch.float64 else log_probs.float()  # (float32: a [B, L, V] pass)
        nll = -log_p.gather(-1, x0.unsqueeze(-1)).squeeze(-1)
        expected = torch.einsum("blv,bv->bl", log_p.exp(), w_all)          # sum_u p(u) w_u
        per_pos = w_true * nll + expected - w_true
        per_pos = torch.where(x_t == self.mask_id, per_pos, torch.zeros_like(per_pos))
        return (per_pos.sum(-1) / x0.shape[-1]).float()

    def check(self, cfg) -> None:
        if cfg.remask != "none":
            raise ValueError("remasking is not defined for the spindle schedule (its pace differs per token); "
                             "use remask none")

    def step(self, ctx: StepContext, cfg) -> tuple[torch.Tensor, torch.Tensor]:
        """Random order: reveal each masked position with its drawn token's own chance (alpha_v(s) -
        alpha_v(t)) / (1 - alpha_v(t)), the exact ancestral step. Other orders: as the absorbing process."""
        if cfg.unmask != "random":
            return super().step(ctx, cfg)
        if ctx.s <= 0:
            reveal = ctx.masked
        else:
            rows = ctx.x.shape[0]
            a_t = self.spindle.alpha(torch.full((rows,), ctx.t, device=ctx.x.device), ctx.x0)
            a_s = self.spindle.alpha(torch.full((rows,), ctx.s, device=ctx.x.device), ctx.x0)
            p = ((a_s - a_t) / (1.0 - a_t).clamp_min(1e-12)).clamp(0.0, 1.0)
            u = ctx.generator.rand(1, ctx.x.shape[1]).to(ctx.x.device)
            reveal = ctx.masked & (u < p)
        return torch.where(reveal, ctx.x0, ctx.x), torch.zeros_like(ctx.masked)
