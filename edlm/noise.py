"""Noise schedules, training times, and the absorbing-state (masked) forward process q(x_t | x_0) with its ELBO.

Time runs from t = 0 (clean text) to t = 1 (every token noised). A schedule gives alpha(t), the probability
that a token is still clean at time t. The processes built on it, with their reverse steps, are in
`edlm.processes` (masked: `edlm.masked`, uniform: `edlm.uniform`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class LogLinearSchedule:
    """alpha(t) = 1 - (1 - eps) t: the mask probability grows linearly with t (MDLM's default)."""

    eps: float = 1e-3

    def alpha(self, t: torch.Tensor) -> torch.Tensor:
        return 1.0 - (1.0 - self.eps) * t

    def dalpha(self, t: torch.Tensor) -> torch.Tensor:
        return torch.full_like(t, -(1.0 - self.eps))

    def sigma(self, t: torch.Tensor) -> torch.Tensor:
        """Total noise sigma(t) = -log alpha(t), the time input of time-conditioned networks."""
        return -torch.log1p(-(1.0 - self.eps) * t)


@dataclass(frozen=True)
class CosineSchedule:
    """alpha(t) = eps + (1 - eps) cos(pi t / 2): keeps more tokens visible early in the forward process."""

    eps: float = 1e-3

    def alpha(self, t: torch.Tensor) -> torch.Tensor:
        return self.eps + (1.0 - self.eps) * torch.cos(0.5 * math.pi * t)

    def dalpha(self, t: torch.Tensor) -> torch.Tensor:
        return -(1.0 - self.eps) * 0.5 * math.pi * torch.sin(0.5 * math.pi * t)

    def sigma(self, t: torch.Tensor) -> torch.Tensor:
        return -torch.log(self.alpha(t))


@dataclass(frozen=True)
class LogSNRSchedule:
    """Gaussian noise on embeddings (`edlm.continuous`): the log signal-to-noise ratio falls linearly in t from
    `high` to `low`, and alpha(t) = sigmoid(logSNR) is the share of the signal's variance left at t. The default
    range brackets where a noised embedding stops identifying its word on its own (measured on the embedded
    model's embedding space: nearest-word accuracy 1.00 at logSNR -1, 0.46 at -3, 0.08 at -4, 0.01 at -5), so
    most of the run is spent where context must decide."""

    high: float = 0.0
    low: float = -9.0

    def logsnr(self, t: torch.Tensor) -> torch.Tensor:
        return self.high + (self.low - self.high) * t

    def alpha(self, t: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.logsnr(t))

    def dalpha(self, t: torch.Tensor) -> torch.Tensor:
        a = self.alpha(t)
        return a * (1.0 - a) * (self.low - self.high)

    def sigma(self, t: torch.Tensor) -> torch.Tensor:
        """-log alpha(t), the network's time input."""
        return torch.nn.functional.softplus(-self.logsnr(t))


SCHEDULES = {"loglinear": LogLinearSchedule, "cosine": CosineSchedule, "logsnr": LogSNRSchedule}
Schedule = LogLinearSchedule | CosineSchedule | LogSNRSchedule


def alphas(schedule: Schedule, t: float, s: float) -> tuple[float, float]:
    """(alpha_t, alpha_s) of one reverse step t -> s in float64, with alpha_0 = 1 exactly (the last step)."""
    a_t = float(schedule.alpha(torch.tensor(t, dtype=torch.float64)))
    a_s = 1.0 if s <= 0 else float(schedule.alpha(torch.tensor(s, dtype=torch.float64)))
    return a_t, a_s


def get_schedule(name: str) -> Schedule:
    if name not in SCHEDULES:
        raise ValueError(f"unknown noise schedule {name!r}; choose one of {sorted(SCHEDULES)}")
    return SCHEDULES[name]()


def sample_times(batch: int, generator: torch.Generator | None = None, t_min: float = 1e-3,
                 device: torch.device | str = "cpu") -> torch.Tensor:
    """Low-discrepancy times in [t_min, 1]: one shared uniform offset, evenly spread over the batch."""
    u = torch.rand((), generator=generator, device=device)
    t = (u + torch.arange(batch, device=device) / batch) % 1.0
    return t_min + (1.0 - t_min) * t


def add_noise(x0: torch.Tensor, t: torch.Tensor, mask_id: int, schedule: Schedule,
              generator: torch.Generator | None = None) -> torch.Tensor:
    """Forward process: each token of x0 [B, L] is masked independently with probability 1 - alpha(t[b])."""
    p_mask = (1.0 - schedule.alpha(t)).unsqueeze(-1)
    u = torch.rand(x0.shape, generator=generator, device=x0.device)
    return torch.where(u < p_mask, torch.full_like(x0, mask_id), x0)


def elbo_weight(t: torch.Tensor, schedule: Schedule) -> torch.Tensor:
    """Weight -alpha'(t) / (1 - alpha(t)) of the masked-token cross-entropy in the continuous-time ELBO."""
    return -schedule.dalpha(t) / (1.0 - schedule.alpha(t))


def diffusion_loss(log_probs: torch.Tensor, x0: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor, mask_id: int,
                   schedule: Schedule) -> torch.Tensor:
    """MDLM negative ELBO per token, [B]: weight(t) * sum over masked positions of -log p(x0_i | x_t) / L."""
    nll = -log_probs.gather(-1, x0.unsqueeze(-1)).squeeze(-1)
    nll = torch.where(x_t == mask_id, nll, torch.zeros_like(nll))
    return elbo_weight(t, schedule) * nll.sum(-1) / x0.shape[-1]
