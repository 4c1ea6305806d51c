"""Uniform-noise discrete diffusion (D3PM's uniform transitions in continuous time, as in UDLM): a corrupted token
is a random token, not a mask, so the model judges every position at every step.

The noise vocabulary is every token id except `exclude` (the mask id, which this process never writes); N is its
size. With u the uniform distribution over it and alpha(t) from the schedule:

    q(x_t | x_0) = alpha_t * onehot(x_0) + (1 - alpha_t) * u
    q(x_t | x_s) = alpha_t|s * onehot(x_s) + (1 - alpha_t|s) * u,   alpha_t|s = alpha_t / alpha_s

The denoiser predicts x_0 (a distribution x_theta over the noise vocabulary); the loss is the continuous-time
limit of the ELBO's KL terms, derived in `loss` (it agrees with UDLM, Schiff et al. 2024, and is checked against
the discrete-time sum in tests/test_uniform.py).
"""
from __future__ import annotations

import torch

from .noise import Schedule, alphas
from .rand import RowRandom, sample_categorical
from .transitions import StepContext


class UniformProcess:
    """Forward corruption, the reverse posterior step and the continuous-time ELBO of uniform noise.

    `mask_id` is the placeholder a span arrives with (never written by this process): the sampler's start
    replaces it with uniform noise."""

    name = "uniform"

    def __init__(self, vocab_size: int, schedule: Schedule, exclude: tuple[int, ...] = (), mask_id: int | None = None):
        self.vocab_size, self.schedule, self.mask_id = vocab_size, schedule, mask_id
        self.allowed = torch.ones(vocab_size, dtype=torch.bool)
        self.allowed[list(exclude)] = False
        self.n = int(self.allowed.sum())
        self._ids = self.allowed.nonzero()[:, 0]

    @classmethod
    def from_config(cls, config, schedule: Schedule, model=None) -> UniformProcess:
        return cls(config.vocab_size, schedule, exclude=(config.mask_token_id,), mask_id=config.mask_token_id)

    def random_tokens(self, shape, generator: torch.Generator | None = None, device="cpu") -> torch.Tensor:
        """Tokens drawn uniformly from the noise vocabulary (the fully noised state, t = 1)."""
        pick = torch.randint(self.n, shape, generator=generator, device=device)
        return self._ids.to(device)[pick]

    def add_noise(self, x0: torch.Tensor, t: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """x_t ~ q(x_t | x_0): each token is replaced, with probability 1 - alpha(t[b]), by a uniform draw (which
        may be the token itself)."""
        p_noise = (1.0 - self.schedule.alpha(t)).unsqueeze(-1)
        u = torch.rand(x0.shape, generator=generator, device=x0.device)
        return torch.where(u < p_noise, self.random_tokens(x0.shape, generator, x0.device), x0)

    def posterior(self, x_t: torch.Tensor, x0_probs: torch.Tensor, t: float, s: float) -> torch.Tensor:
        """q(x_s | x_t, x_0) for x_0 given as probabilities [..., V] (one-hot for a known x_0; the model's x_theta
        for the plug-in reverse step): proportional to q(x_t | x_s) * q(x_s | x_0). Returns probabilities
        [..., V], zero outside the noise vocabulary."""
        a_t, a_s = alphas(self.schedule, t, s)
        a_ts = a_t / a_s
        allowed = self.allowed.to(x0_probs.device)
        prior = (a_s * x0_probs + (1.0 - a_s) / self.n) * allowed           # q(x_s = y | x_0)
        like = torch.full_like(prior, (1.0 - a_ts) / self.n)               # q(x_t | x_s = y), y != x_t
        like.scatter_add_(-1, x_t.unsqueeze(-1), torch.full_like(x_t, a_ts, dtype=prior.dtype).unsqueeze(-1))
        post = prior * like * allowed
        return post / post.sum(-1, keepdim=True)

    def unroll_step(self, x_t: torch.Tensor, x0: torch.Tensor, t: torch.Tensor, s: torch.Tensor,
                    generator: torch.Generator | None = None) -> torch.Tensor:
        """x_s ~ q(x_s | x_t, x_0) for a drawn x_0 [B, L] and per-row times t > s >= 0 [B]: the sampler's reverse
        step batched over rows, for unrolled (SUNDAE-style) training. The posterior is a three-way mixture:
        prior(y) * like(y) = (a_s [y = x0] + P)(a_t|s [y = x_t] + Q), P = (1 - a_s)/N, Q = (1 - a_t|s)/N, so
        y = x0 with weight a_s (Q + a_t|s [x0 = x_t]), y = x_t with weight P a_t|s, a uniform draw with N P Q."""
        a_t, a_s = self.schedule.alpha(t).double(), torch.where(s > 0, self.schedule.alpha(s).double(), 1.0)
        a_ts = (a_t / a_s)[:, None]
        a_s = a_s[:, None]
        p, q = (1.0 - a_s) / self.n, (1.0 - a_ts) / self.n
        w_x0 = a_s * (q + a_ts * (x0 == x_t).double())
        w_xt = (p * a_ts).expand_as(w_x0)
        w_u = (self.n * p * q).expand_as(w_x0)
        u = torch.rand(x0.shape, generator=generator, device=x0.device, dtype=torch.float64) \
            * (w_x0 + w_xt + w_u)
        noise = self.random_tokens(x0.shape, generator, x0.device)
        return torch.where(u < w_x0, x0, torch.where(u < w_x0 + w_xt, x_t, noise))

    def check(self, cfg) -> None:
        if cfg.remask != "none":
            raise ValueError("remasking is for masked diffusion: the uniform process may rewrite every position "
                             "at every step already")
        if cfg.potential == "lookahead":
            raise ValueError("the particles' lookahead score fills the positions a step leaves masked, and the uniform "
                             "process leaves none: use potential draw with the uniform model")

    def finite(self, cfg) -> bool:
        """Never: every position may be rewritten at every step until the last."""
        return False

    def start(self, x: torch.Tensor, editable: torch.Tensor, gen: RowRandom) -> torch.Tensor:
        """The fully noised state: each span placeholder becomes a uniform draw from the noise vocabulary."""
        where = editable & (x == self.mask_id)
        u = gen.rand(where.sum(-1).tolist(), dtype=torch.float64)
        x = x.clone()
        x[where] = self._ids.to(x.device)[(u * self.n).long().clamp_(max=self.n - 1)]
        return x

    def inputs(self, x: torch.Tensor) -> torch.Tensor:
        """What the denoiser reads: the tokens themselves."""
        return x

    def report(self) -> dict:
        """Nothing beyond the tokens to show."""
        return {}

    def predicted(self, x: torch.Tensor, editable: torch.Tensor) -> torch.Tensor:
        """Every editable position is noise to denoise at every step."""
        return editable

    def step(self, ctx: StepContext, cfg) -> tuple[torch.Tensor, None]:
        """x_s ~ q(x_s | x_t, x0) at every editable position, each row from its own stream (x0 itself at s = 0;
        unmask orders do not apply). Nothing is masked again."""
        where, out = ctx.masked, ctx.x.clone()
        if ctx.s <= 0:
            out[where] = ctx.x0[where]
            return out, None
        onehot = torch.nn.functional.one_hot(ctx.x0[where], self.vocab_size).double()
        cdf = self.posterior(ctx.x[where], onehot, ctx.t, ctx.s).cumsum(-1)
        u = ctx.generator.rand(where.sum(-1).tolist(), 1, dtype=torch.float64)
        out[where] = sample_categorical(cdf, 1, u).squeeze(-1)
        return out, None

    def loss(self, log_probs: torch.Tensor, x0: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """Negative ELBO per token [B] in the continuous-time limit.

        One reverse step t -> t - dt has KL(q(x_s | x_t, x_0) || q(x_s | x_t, x_theta)) = (-alpha'/(N alpha)) dt
        * [N/xb_theta_i - N/xb_i + sum_{j != i} (xb_j / xb_i) log((xb_j xb_theta_i) / (xb_theta_j xb_i))] + o(dt),
        with i = x_t, xb = N alpha onehot(x_0) + (1 - alpha) and xb_theta = N alpha x_theta + (1 - alpha) (both
        over the noise vocabulary). The sum over j is written with whole-vocabulary sums, so the cost is one
        pass over [B, L, V]."""
        n, allowed = self.n, self.allowed.to(log_probs.device)
        a = self.schedule.alpha(t).double()[:, None]                       # [B, 1]
        w = (-self.schedule.dalpha(t).double()[:, None]) / (n * a)         # [B, 1]
        xbt = n * a[..., None] * log_probs.double().exp() + (1.0 - a[..., None])   # xb_theta [B, L, V]
        log_xbt = torch.where(allowed, xbt.log(), torch.zeros_like(xbt))
        same = (x_t == x0).double()
        xb_i = n * a * same + (1.0 - a)                                    # xb at i = x_t
        xbt_i = xbt.gather(-1, x_t.unsqueeze(-1)).squeeze(-1)
        log_xbt_i = xbt_i.log()
        hi, lo = n * a + (1.0 - a), (1.0 - a)                              # xb at x_0, and elsewhere
        xlogx = lambda v: torch.xlogy(v, v)                                # noqa: E731 (0 log 0 = 0)
        s1 = xlogx(hi) + (n - 1) * xlogx(lo) - xlogx(xb_i)                 # sum_{j != i} xb_j log xb_j
        s2 = lo * log_xbt.sum(-1) + n * a * log_xbt.gather(-1, x0.unsqueeze(-1)).squeeze(-1) \
            - xb_i * log_xbt_i                                             # sum_{j != i} xb_j log xb_theta_j
        s3 = n - xb_i                                                      # sum_{j != i} xb_j
        term = (s1 - s2 + s3 * (log_xbt_i - xb_i.log())) / xb_i
        per_token = w * (n / xbt_i - n / xb_i + term)
        return per_token.mean(-1).float()
