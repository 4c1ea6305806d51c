"""Continuous-embedding diffusion (after Diffusion-LM, DiffuSeq, CDCD and SED): each token is a point in a fixed
embedding space and Gaussian noise moves it; the denoiser predicts x0 as a distribution over words.

    space     E [V, D]: the denoiser's token embeddings, each row scaled to norm sqrt(D) (unit variance per
              dimension, like the noise), frozen, so nearby words stay nearby and nothing can collapse
    forward   z_t = sqrt(a_t) E[x0] + sqrt(1 - a_t) eps at the noised positions; the rest stay E[x] exactly
              (DiffuSeq's partial noising: fixed text is never noised), a_t from `LogSNRSchedule`
    training  cross-entropy of x0 at the noised positions (CDCD's and SED's objective: the network outputs word
              logits, so the rounding is learned and no x0 regression can collapse the space)
    reverse   x0 drawn from the denoiser (the loop's draw, so energies choose among whole candidates), then the
              Gaussian posterior q(z_s | z_t, x0 = E[draw]) (DDPM with Diffusion-LM's clamping to a word)

A position's shown token is its nearest word (the rounding of z); the last step writes the drawn x0.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .noise import Schedule, alphas
from .rand import RowRandom
from .transitions import StepContext


@dataclass
class Points:
    """A batch in embedding space: z [B, L, D], and which positions carry noise (bool [B, L])."""

    z: torch.Tensor
    noised: torch.Tensor

    def to(self, device) -> Points:
        return Points(self.z.to(device), self.noised.to(device))

    def __getitem__(self, rows) -> Points:
        return Points(self.z[rows], self.noised[rows])

    @property
    def shape(self) -> torch.Size:
        return self.noised.shape

    @property
    def device(self) -> torch.device:
        return self.z.device


def embedding_space(table: torch.Tensor) -> torch.Tensor:
    """The process's space from a token-embedding table [V, D]: rows scaled to norm sqrt(D), float32."""
    table = table.detach().float()
    return table / table.norm(dim=-1, keepdim=True).clamp_min(1e-8) * table.shape[-1] ** 0.5


def projection(space: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The fixed 2-D view of a space: its mean [D] and first two principal directions [D, 2] (signs fixed so
    that each direction's largest entry is positive), for drawing points moving toward words."""
    mean = space.mean(0)
    _, _, vh = torch.linalg.svd(space - mean, full_matrices=False)
    axes = vh[:2].T.clone()
    sign = axes.gather(0, axes.abs().argmax(0, keepdim=True)).sign()
    return mean, axes * sign


def training_noised(x0: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Which positions a training window noises (bool [B, L]): a third of the rows all (generation), a third
    one span of random length (infilling), a third everything after a random prefix (continuation), so one
    network learns the conditioning every task needs."""
    B, L = x0.shape
    kind = torch.randint(3, (B,), generator=generator, device=x0.device)
    a = torch.randint(L, (B,), generator=generator, device=x0.device)
    n = 1 + (torch.rand(B, generator=generator, device=x0.device) * (L - a)).long()  # 1 .. L - a tokens
    pos = torch.arange(L, device=x0.device)
    span = (pos >= a[:, None]) & (pos < (a + n)[:, None])
    suffix = pos >= a[:, None]
    return torch.where((kind == 0)[:, None], True, torch.where((kind == 1)[:, None], span, suffix))


class GaussianProcess:
    """Gaussian diffusion in a fixed embedding space, with partial noising; see the module's docstring.

    `space` comes from the denoiser (`model.embedding_space()`): the process factory is given the model."""

    name = "continuous"

    def __init__(self, space: torch.Tensor | None, schedule: Schedule, mask_id: int,
                 view: tuple[torch.Tensor, torch.Tensor] | None = None):
        self.space, self.schedule, self.mask_id = space, schedule, mask_id
        self.z: torch.Tensor | None = None  # the run's points [B, L, D] (sampling state)
        self.editable: torch.Tensor | None = None
        self.banned: tuple[int, ...] = (mask_id,)
        self.view = view  # the 2-D view of the space (`projection`), made on first use unless the model has one

    @classmethod
    def from_config(cls, config, schedule: Schedule, model=None) -> GaussianProcess:
        if model is None:
            return cls(None, schedule, config.mask_token_id)
        return cls(model.embedding_space(), schedule, config.mask_token_id, view=model.embedding_view())

    def _space(self, device) -> torch.Tensor:
        if self.space is None:
            raise ValueError("the continuous process works in its denoiser's embedding space: build it with "
                             "process_for(config, model=denoiser)")
        return self.space.to(device)

    # training
    def add_noise(self, x0: torch.Tensor, t: torch.Tensor, generator: torch.Generator | None = None) -> Points:
        """z_t for training windows x0 [B, L] at times t [B]: `training_noised` positions noised, the rest clean."""
        e = self._space(x0.device)[x0]
        noised = training_noised(x0, generator)
        a = self.schedule.alpha(t).float()[:, None, None]
        eps = torch.randn(e.shape, generator=generator, device=x0.device)
        return Points(torch.where(noised[..., None], a.sqrt() * e + (1 - a).sqrt() * eps, e), noised)

    def loss(self, log_probs: torch.Tensor, x0: torch.Tensor, x_t: Points, t: torch.Tensor) -> torch.Tensor:
        """Mean cross-entropy of x0 at each row's noised positions [B] (the rounding loss, not a bound)."""
        nll = -log_probs.float().gather(-1, x0.unsqueeze(-1)).squeeze(-1)
        noised = x_t.noised.to(nll.device)
        return torch.where(noised, nll, 0.0).sum(-1) / noised.sum(-1).clamp_min(1)

    # sampling
    def check(self, cfg) -> None:
        """Remasking does not apply; the run's banned tokens (special tokens) are never a position's shown word."""
        if cfg.remask != "none":
            raise ValueError("remasking is for masked diffusion: the continuous process moves every position of a "
                             "span at every step already")
        self.banned = tuple(sorted({self.mask_id, *cfg.banned}))

    def finite(self, cfg) -> bool:
        """Never: every position moves at every step until the last."""
        return False

    def start(self, x: torch.Tensor, editable: torch.Tensor, gen: RowRandom) -> torch.Tensor:
        """Fixed text at its words' points, each span position at a standard normal draw (t = 1); returns the
        tokens shown: the nearest word of each point."""
        space = self._space(x.device)
        z = space[x.clamp(0, space.shape[0] - 1)]
        noise = gen.normal(editable.sum(-1).tolist(), space.shape[1]).to(x.device)
        z[editable] = noise
        self.z, self.editable = z, editable
        return self._rounded(x)

    def inputs(self, x: torch.Tensor) -> Points:
        """What the denoiser reads: the points, not the tokens shown."""
        return Points(self.z, self.editable)

    def predicted(self, x: torch.Tensor, editable: torch.Tensor) -> torch.Tensor:
        return editable

    def step(self, ctx: StepContext, cfg) -> tuple[torch.Tensor, None]:
        """z_s ~ q(z_s | z_t, x0) with x0 at `x0_point` (the drawn words' points); at s = 0 the drawn words."""
        where = ctx.masked
        self.z = self.z.clone()
        if ctx.s <= 0:
            self.z[where] = self._space(ctx.x.device)[ctx.x0[where]]
            return torch.where(where, ctx.x0, ctx.x), None
        a_t, a_s = alphas(self.schedule, ctx.t, ctx.s)
        a_ts = a_t / a_s
        mean = (a_s ** 0.5 * (1 - a_ts) * self.x0_point(ctx) + a_ts ** 0.5 * (1 - a_s) * self.z[where]) / (1 - a_t)
        std = ((1 - a_s) * (1 - a_ts) / (1 - a_t)) ** 0.5
        noise = ctx.generator.normal(where.sum(-1).tolist(), mean.shape[-1]).to(mean.device)
        self.z[where] = mean + std * noise
        return self._rounded(ctx.x), None

    def x0_point(self, ctx: StepContext) -> torch.Tensor:
        """The step's x0 estimate at the predicted positions [N, D]: the drawn words' points (clamping; so an
        energy's choice among candidates moves the points). bench/continuous_x0.py measures the expected point."""
        return self._space(ctx.x.device)[ctx.x0[ctx.masked]]

    def _rounded(self, x: torch.Tensor) -> torch.Tensor:
        """x with every editable position set to its point's nearest word (rows of equal norm: the largest dot
        product), the mask token excluded."""
        space = self._space(x.device)
        scores = self.z[self.editable] @ space.T
        scores[:, list(self.banned)] = float("-inf")
        out = x.clone()
        out[self.editable] = scores.argmax(-1)
        return out

    def report(self) -> dict:
        """Each position's point in the space's fixed 2-D view (`projection`), [B, L, 2], for the teaching view."""
        if self.view is None:
            self.view = projection(self._space(self.z.device))
        mean, axes = self.view
        return {"points": ((self.z.float() - mean) @ axes).cpu()}


def word_points(denoiser) -> torch.Tensor:
    """Every word of a continuous denoiser's vocabulary in the fixed 2-D view [V, 2] (the teaching view's map)."""
    mean, axes = denoiser.embedding_view()
    return (denoiser.embedding_space() - mean) @ axes
