"""Samplers. Each is a generator that yields a `StepEvent` after every reverse step; the non-streaming result is
simply the last event.

- `sample`: the one masked-diffusion loop. Its pieces are pluggable: the proposal (a denoiser, optionally
  self-conditioned), importance resampling of x0 by a residual energy (EDLM) inside the IS window, and the
  transition (`edlm.transitions`: the unmasking order and the remasking rule).
  `sample_mdlm` / `sample_edlm` are that loop without and with an energy.
- `sample_ar`: left-to-right sampling from a causal LM, the baseline.
"""
from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import torch

from .energy import Energy, normalise, temper
from .limits import POTENTIALS
from .models.ar import forward_with_cache
from .models.cache import ContextCache
from .noise import Schedule
from .processes import process_for
from .rand import RowRandom, sample_categorical  # noqa: F401 (re-exported: samplers and tests draw from here)
from .transitions import FINALS, REMASK, UNMASK, StepContext



@dataclass(frozen=True)
class SamplerConfig:
    steps: int = 32
    k: int = 4               # EDLM candidates per IS step
    is_window: float = 0.5   # IS is used while t > 1 - is_window (the noisiest part of the run)
    temperature: float = 1.0  # 0 = greedy
    top_p: float = 1.0
    seed: int = 0
    banned: tuple[int, ...] = ()  # token ids never sampled (special tokens)
    unmask: str = "random"   # which masked positions a step reveals (edlm.transitions.UNMASK)
    remask: str = "none"     # which written positions a step masks again (edlm.transitions.REMASK)
    remask_strength: float = 0.02              # ReMDM's eta: top chance of masking a written token again
    remask_window: tuple[float, float] = (0.55, 0.05)  # remasking is on while t is inside [to, from]
    final: str = "sample"    # the last step's x0: "sample", or "greedy" (each position's likeliest token)
    is_temperature: float = 1.0  # importance log-weights are divided by this before normalising
    resample_ess: float = 0.5    # particle samplers: resample when the ESS falls below this share of k
    target_ess: float = 0.0      # > 0: temper each step's weights, as little as needed, to this ESS share of k
    top_tokens: int = 0          # > 0: each step reports the denoiser's likeliest tokens per predicted position
    cache_refresh: int = 0       # > 0: a context cache, a full denoiser pass every this many (edlm.models.cache)
    potential: str = "draw"      # edlm-smc: score each particle's x0 draw, or its new state's greedy completion

    def __post_init__(self):
        if self.unmask not in UNMASK:
            raise ValueError(f"unknown unmask order {self.unmask!r}: choose one of {', '.join(UNMASK)}")
        if self.remask not in REMASK:
            raise ValueError(f"unknown remask rule {self.remask!r}: choose one of {', '.join(REMASK)}")
        if self.final not in FINALS:
            raise ValueError(f"unknown final step {self.final!r}: choose {' or '.join(FINALS)}")
        if self.cache_refresh < 0:
            raise ValueError(f"cache_refresh = {self.cache_refresh} must be 0 (no cache) or more")
        if self.potential not in POTENTIALS:
            raise ValueError(f"unknown particle score {self.potential!r}: choose {' or '.join(POTENTIALS)}")


@dataclass
class StepEvent:
    """What happened in one reverse step (all tensors on the CPU, batch first)."""

    step: int                      # 1-based index of the step just taken
    total_steps: int
    t: float                       # time before the step
    s: float                       # time after it
    tokens: torch.Tensor           # [B, L] current sequence, mask id where still masked
    fixed: torch.Tensor            # [B, L] given by the user, never changed
    revealed: torch.Tensor         # [B, L] changed in this step (revealed, or masked again)
    denoiser_calls: int
    energy_calls: int
    elapsed: float                 # seconds since the sampler started
    is_step: bool = False
    candidates: torch.Tensor | None = None    # [B, k, L]
    log_weights: torch.Tensor | None = None   # [B, k]
    weights: torch.Tensor | None = None       # [B, k], sum to 1
    ess: torch.Tensor | None = None           # [B] effective sample size, in [1, k]
    chosen: torch.Tensor | None = None        # [B] index of the kept candidate
    remasked: torch.Tensor | None = None      # [B, L] written tokens masked again in this step (remasking)
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
        top, order = nucleus_prefix(lp, top_p)
        keep_sorted = (top.exp().cumsum(-1) - top.exp()) < top_p  # the smallest prefix reaching top_p
        keep = torch.zeros_like(lp, dtype=torch.bool).scatter(-1, order, keep_sorted)
        lp = lp.masked_fill(~keep, float("-inf")).log_softmax(-1)
    return lp


def nucleus_prefix(lp: torch.Tensor, top_p: float, first: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    """The likeliest tokens of each row of log-probs [N, V], in descending order, enough of them for every row's
    mass to reach top_p: a top-k that grows fourfold until it does (a full sort of a 49k vocabulary per position
    costs more than the rest of a step's sampling)."""
    k = min(first, lp.shape[-1])
    while True:
        top, order = lp.topk(k, dim=-1)
        if k == lp.shape[-1] or bool((top.exp().sum(-1) >= top_p).all()):
            return top, order
        k = min(4 * k, lp.shape[-1])


class Proposal:
    """The denoiser's shaped x0 distribution at the N masked positions (row-major order of the mask).

    A self-conditioning denoiser also gets `previous` (the last proposal's prediction) as its input; the first
    step has none, which the network was also trained with."""

    def __init__(self, denoiser, x: torch.Tensor, t: float, masked: torch.Tensor, cfg: SamplerConfig,
                 previous: "Proposal | None" = None, cache: ContextCache | None = None,
                 cache_rows: torch.Tensor | None = None):
        t_batch = torch.full((x.shape[0],), t, device=x.device)
        self_cond, kw = None, {} if cache is None else {"cache": cache, "cache_rows": cache_rows}
        if getattr(denoiser.config, "self_conditioning", False) and previous is not None:
            self_cond = previous.self_cond_for(x, masked, denoiser.config)
        log_p = denoiser(x, t_batch, positions=masked, self_cond=self_cond, **kw).logits.float()
        self.masked, self.log_p = masked, log_p
        self.log_q = shape_log_probs(log_p, cfg.temperature, cfg.top_p, cfg.banned)
        self.cdf = self.log_q.double().exp().cumsum(-1)  # float64: see sample_categorical

    def rows(self, keep: torch.Tensor) -> "Proposal":
        """This proposal restricted to the batch rows where `keep` (bool [B]) is True."""
        pieces = self._pieces()  # split once, not once per kept row
        return self._assemble(self.masked[keep], [pieces[b] for b in keep.nonzero()[:, 0].tolist()])

    def refreshed(self, new: "Proposal", rows: torch.Tensor) -> "Proposal":
        """This proposal with the rows where `rows` (bool [B]) is True replaced by `new` (computed for those
        rows only, in order): a row whose text did not change keeps its prediction."""
        old, fresh = self._pieces(), iter(new._pieces())
        masked = self.masked.clone()
        masked[rows] = new.masked
        return self._assemble(masked, [next(fresh) if r else old[b] for b, r in enumerate(rows.tolist())])

    def take(self, index: list[int]) -> "Proposal":
        """This proposal's rows in the order `index` (rows may repeat: particles resampled from one ancestor)."""
        pieces = self._pieces()
        return self._assemble(self.masked[index], [pieces[i] for i in index])

    def _pieces(self) -> list[tuple[torch.Tensor, ...]]:
        counts = self.masked.sum(-1).tolist()
        return list(zip(*(v.split(counts) for v in (self.log_p, self.log_q, self.cdf))))

    @classmethod
    def _assemble(cls, masked: torch.Tensor, pieces: list) -> "Proposal":
        out = cls.__new__(cls)
        out.masked = masked
        out.log_p, out.log_q, out.cdf = (torch.cat([p[i] for p in pieces]) for i in range(3))
        return out

    def self_cond_for(self, x: torch.Tensor, masked: torch.Tensor, config):
        """Self-conditioning input for x: this proposal's probabilities at the positions still masked (zeros at a
        position it did not predict, e.g. one masked again), given sparsely (see `SparseSelfCond`)."""
        from .models.dit import SparseSelfCond

        row = torch.full(x.shape, -1, dtype=torch.long, device=x.device)
        row[self.masked] = torch.arange(int(self.masked.sum()), device=x.device)
        pick = row[masked]
        probs = self.log_p.exp()[pick.clamp(min=0)] * (pick >= 0).unsqueeze(-1)
        return SparseSelfCond(masked, probs)

    def sample(self, k: int, rng: RowRandom) -> torch.Tensor:
        """k draws [N, k] per masked position, each batch row from its own stream."""
        u = rng.rand(self.masked.sum(-1).tolist(), k, dtype=torch.float64)
        return sample_categorical(self.cdf, k, u)


TOP_TOKENS = 5  # the denoiser's likeliest tokens kept per predicted position and step (what it hesitated between)


def top_tokens(q: Proposal, n: int = TOP_TOKENS) -> dict:
    """The denoiser's n likeliest tokens (before temperature and top-p) and their probabilities at every position
    it predicted this step, as ids and probabilities [B, L, n] on the CPU (-1 and 0 where it predicted nothing)."""
    B, L = q.masked.shape
    n = min(n, q.log_p.shape[-1])
    ids, probs = torch.full((B, L, n), -1, dtype=torch.long), torch.zeros(B, L, n)
    if q.log_p.shape[0]:
        top = q.log_p.topk(n, dim=-1)
        where = q.masked.cpu()
        ids[where], probs[where] = top.indices.cpu(), top.values.exp().cpu()
    return {"top_ids": ids, "top_probs": probs}


def context_cache(denoiser, editable: torch.Tensor, cfg: SamplerConfig, batch: int) -> ContextCache | None:
    """The run's context cache for `batch` rows (None when cfg.cache_refresh is 0); `editable` is bool [L] or
    [batch, L]. A network without one is a clear error."""
    if not cfg.cache_refresh:
        return None
    if not getattr(denoiser, "supports_context_cache", False):
        raise ValueError("cache_refresh needs a denoiser with a context cache (the llama architecture: the default "
                         "and general-diffusion models); set it to 0 for this one")
    return ContextCache(editable.expand(batch, -1), cfg.cache_refresh, bool(getattr(denoiser.config, "shift", False)))


def _event(step, cfg, t, s, x, fixed, prev, calls, ecalls, start, **kw) -> StepEvent:
    return StepEvent(step=step, total_steps=cfg.steps, t=t, s=s, tokens=x.cpu(), fixed=fixed.cpu(),
                     revealed=(x != prev).cpu(), denoiser_calls=calls, energy_calls=ecalls,
                     elapsed=time.perf_counter() - start, **kw)


@torch.inference_mode()
def sample(denoiser, x: torch.Tensor, cfg: SamplerConfig, energy: Energy | None = None,
           editable: torch.Tensor | None = None, schedule: Schedule | None = None,
           row_seeds: list[int] | None = None) -> Iterator[StepEvent]:
    """The diffusion loop: fill every editable span of x [B, L] in cfg.steps reverse steps.

    Per step: the denoiser's proposal q(x0 | x_t) (skipped when nothing changed and the network ignores time);
    one x0 drawn from it, or, inside the IS window with an energy, k candidates importance-resampled to one
    (EDLM); then the noise process's reverse step to x_s (`edlm.processes`: masked diffusion reveals what
    cfg.unmask picks and masks again what cfg.remask picks; uniform noise redraws every editable position).
    `editable` (default: the masked positions of x) is where the sampler may write; the rest stays fixed.
    `row_seeds` gives each row its own seed (default: derived from cfg.seed and the row's index).
    """
    process = process_for(denoiser.config, schedule, denoiser)
    process.check(cfg)
    gen = RowRandom(cfg.seed, x.shape[0], x.device, row_seeds)
    editable = (x == denoiser.config.mask_token_id) if editable is None else editable.to(x.device)
    fixed, ts, start = ~editable, time_grid(cfg.steps), time.perf_counter()
    calls, ecalls, q, k = 0, 0, None, cfg.k
    stale = torch.ones(x.shape[0], dtype=torch.bool, device=x.device)  # rows whose text changed since predicted
    x = process.start(x, editable, gen)
    cache = context_cache(denoiser, editable, cfg, x.shape[0])
    for i in range(cfg.steps):
        t, s = ts[i], ts[i + 1]
        masked = process.predicted(x, editable)
        # A row whose text did not change keeps its prediction (a network without time input would repeat it):
        # only changed rows go through the denoiser, so rows never depend on the batch they run in.
        if q is None or denoiser.config.time_conditioning or bool(stale.all()):
            q = Proposal(denoiser, process.inputs(x), t, masked, cfg, previous=q, cache=cache)
            calls += 1
        elif bool(stale.any()):
            fresh = Proposal(denoiser, x[stale], t, masked[stale], cfg, previous=q.rows(stale), cache=cache,
                             cache_rows=stale.nonzero()[:, 0])
            q = q.refreshed(fresh, stale)
            calls += 1
        info = {}
        if energy is not None and k > 1 and t > 1.0 - cfg.is_window and masked.any():
            x0, info = importance_resample(energy, q, x, masked, t, k, gen, cfg.is_temperature, cfg.target_ess)
            ecalls += 1
        else:
            x0 = x.clone()
            greedy = cfg.final == "greedy" and s <= 0  # the last step keeps each position's likeliest token
            x0[masked] = q.log_q.argmax(-1) if greedy else q.sample(1, gen).squeeze(-1)
        if cfg.top_tokens:  # for the teaching view only: bulk work does not pay for it
            info["extra"] = {**info.get("extra", {}), **top_tokens(q, cfg.top_tokens)}
        ctx = StepContext(x=x, x0=x0, masked=masked, editable=editable, log_q=q.log_q, t=t, s=s,
                          schedule=process.schedule, generator=gen)
        prev = x
        x, again = process.step(ctx, cfg)
        info["extra"] = {**info.get("extra", {}), **process.report()}
        stale = (x != prev).any(-1)
        yield _event(i + 1, cfg, t, s, x, fixed, prev, calls, ecalls, start,
                     remasked=None if again is None else again.cpu(), **info)


def importance_resample(energy: Energy, q: Proposal, x: torch.Tensor, masked: torch.Tensor, t: float, k: int,
                        gen: RowRandom, temperature: float = 1.0, target_ess: float = 0.0) -> tuple[torch.Tensor, dict]:
    """EDLM parallel importance sampling: k candidate x0 per row from q in one batch, weighted by the energy
    (log-weights from `energy.log_weights`, divided by `temperature`, normalised per row), one kept per row by
    multinomial resampling. A temperature above 1 flattens the weights (tempered IS: a larger ESS); with
    target_ess the temperature is raised per row, as little as needed, until the ESS reaches that share of k."""
    B, L = x.shape
    draws = q.sample(k, gen)  # [N, k]
    rows, cols = masked.nonzero(as_tuple=True)
    cands = x.unsqueeze(1).repeat(1, k, 1)  # [B, k, L]; flattened batch-major (row b*k + j)
    cands[rows, :, cols] = draws
    log_q_cand = torch.zeros(B, k, device=x.device).index_add_(0, rows, q.log_q.gather(1, draws))
    log_w = energy.log_weights(cands.view(B * k, L), x.repeat_interleave(k, 0),
                               torch.full((B * k,), t, device=x.device), log_q_cand.view(-1), k=k).view(B, k)
    tempered, tau = temper(log_w, temperature, target_ess)
    w, ess = normalise(tempered)
    chosen = sample_categorical(w.double().cumsum(-1), 1, gen.rand(1, 1, dtype=torch.float64)).squeeze(-1)
    x0 = cands[torch.arange(B, device=x.device), chosen]
    return x0, dict(is_step=True, candidates=cands.cpu(), log_weights=log_w.cpu(), weights=w.cpu(),
                    ess=ess.cpu(), chosen=chosen.cpu(), extra={"is_temperature": tau.cpu()})


def sample_mdlm(denoiser, x: torch.Tensor, cfg: SamplerConfig, schedule: Schedule | None = None) -> Iterator[StepEvent]:
    """MDLM: the loop without an energy."""
    return sample(denoiser, x, cfg, None, schedule=schedule)


def sample_edlm(denoiser, energy: Energy, x: torch.Tensor, cfg: SamplerConfig,
                schedule: Schedule | None = None) -> Iterator[StepEvent]:
    """EDLM: the loop with parallel importance sampling of x0 inside the IS window."""
    return sample(denoiser, x, cfg, energy, schedule=schedule)


@torch.inference_mode()
def sample_ar(model, prefix: torch.Tensor, n_new: int, cfg: SamplerConfig, bos_id: int,
              mask_id: int) -> Iterator[StepEvent]:
    """Left-to-right sampling of n_new tokens after prefix [B, P]; one event per token (steps = n_new)."""
    B, P = prefix.shape
    gen = RowRandom(cfg.seed, B, prefix.device)
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
        out, past = forward_with_cache(model, ids if past is None else ids[:, -1:], past)
        log_q = shape_log_probs(out.logits[:, -1].float().log_softmax(-1), cfg.temperature, cfg.top_p,
                                cfg.banned + (mask_id,))
        tok = sample_categorical(log_q.double().exp().cumsum(-1), 1, gen.rand(1, 1, dtype=torch.float64))
        ids = torch.cat([ids, tok], 1)
        prev, x = x, x.clone()
        x[:, P + i] = tok.squeeze(-1)
        yield _event(i + 1, run_cfg, 1.0 - i / n_new, 1.0 - (i + 1) / n_new, x, fixed, prev, 0, 0, start,
                     extra={"ar_calls": i + 1})
