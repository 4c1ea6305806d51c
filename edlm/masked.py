"""The absorbing-state (masked) process: MDLM's forward masking and ELBO, and its reverse step, in which the
unmask order (`edlm.transitions.UNMASK`) picks the masked positions to reveal and the remask rule
(`REMASK`) the written ones to mask again."""
from __future__ import annotations

import dataclasses

import torch

from .noise import Schedule, add_noise, diffusion_loss
from .rand import RowRandom
from .transitions import REMASK, UNMASK, StepContext, remdm_probability


class AbsorbingProcess:
    """Masked diffusion: a noised token is the mask token; a revealed token is never changed again (unless a
    remask rule masks it)."""

    name = "absorbing"

    def __init__(self, mask_id: int, schedule: Schedule):
        self.mask_id, self.schedule = mask_id, schedule

    @classmethod
    def from_config(cls, config, schedule: Schedule, model=None) -> AbsorbingProcess:
        return cls(config.mask_token_id, schedule)

    def add_noise(self, x0: torch.Tensor, t: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        return add_noise(x0, t, self.mask_id, self.schedule, generator)

    def loss(self, log_probs: torch.Tensor, x0: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return diffusion_loss(log_probs, x0, x_t, t, self.mask_id, self.schedule)

    def check(self, cfg) -> None:
        """Every unmask order and remask rule applies to this process."""

    def finite(self, cfg) -> bool:
        """Whether a run ends once nothing is masked: yes, unless a remask rule may mask written tokens again."""
        return cfg.remask == "none"

    def start(self, x: torch.Tensor, editable: torch.Tensor, gen: RowRandom) -> torch.Tensor:
        """The spans start as masks, which they are already."""
        return x

    def inputs(self, x: torch.Tensor) -> torch.Tensor:
        """What the denoiser reads: the tokens themselves."""
        return x

    def report(self) -> dict:
        """Nothing beyond the tokens to show."""
        return {}

    def predicted(self, x: torch.Tensor, editable: torch.Tensor) -> torch.Tensor:
        """The positions the denoiser predicts: the editable ones still masked."""
        return (x == self.mask_id) & editable

    def step(self, ctx: StepContext, cfg) -> tuple[torch.Tensor, torch.Tensor]:
        """x_s from x_t and the step's x0: reveal what the unmask order picks; inside the remasking window mask
        again what the remask rule picks (ReMDM). Returns x_s and the positions masked again."""
        if cfg.remask != "none" and ctx.s > 0 and cfg.remask_window[1] <= ctx.t <= cfg.remask_window[0]:
            ctx = dataclasses.replace(ctx, remask_prob=remdm_probability(ctx.t, ctx.s, self.schedule,
                                                                         cfg.remask_strength))
        reveal = UNMASK[cfg.unmask](ctx) & ctx.masked
        written = ctx.editable & ~ctx.masked
        again = REMASK[cfg.remask](ctx, written) & written
        x = torch.where(reveal, ctx.x0, ctx.x)
        return torch.where(again, torch.full_like(x, self.mask_id), x), again
