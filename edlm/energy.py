"""Residual energies for EDLM: how to re-weight k candidate x0 drawn from the denoiser.

The target at each step is p(x0 | x_t) ∝ p_denoiser(x0 | x_t) · exp(-E(x0, x_t, t)) (EDLM, Xu et al. 2024).
With candidates drawn from the proposal q (the denoiser after temperature / top-p), each energy returns the
importance log-weight of every candidate; the sampler normalises them in log space.

- EDLM-AR: the target is the AR likelihood of the whole sequence, so log w = log p_AR(x0) - log q(x0 | x_t).
- EDLM-NCE: the target is the (shaped) denoiser times exp(-E), so log w = -E(x0, x_t, t).
"""
from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

import torch
import torch.nn.functional as F

from .models.ar import forward_with_cache

if TYPE_CHECKING:
    from .bundle import Bundle
    from .limits import Request


class Energy(Protocol):
    name: str

    def log_weights(self, candidates: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor,
                    log_q: torch.Tensor, k: int = 1) -> torch.Tensor:
        """candidates, x_t [N, L]; t, log_q [N] -> unnormalised importance log-weights [N].

        Rows come in consecutive groups of k candidates for the same x_t; a weight may be off by a constant
        shared by its group, which the sampler's normalisation removes."""
        ...


@torch.inference_mode()
def ar_log_likelihood(model, ids: torch.Tensor, bos_id: int, score: torch.Tensor | None = None,
                      chunk: int = 64) -> torch.Tensor:
    """Sum over positions of log p_AR(ids_i | BOS, ids_<i) for ids [N, L]; `score` (bool [N, L]) picks positions."""
    out = []
    for part, sel in zip(ids.split(chunk), (score.split(chunk) if score is not None else [None] * len(ids))):
        inp = torch.cat([torch.full_like(part[:, :1], bos_id), part[:, :-1]], 1)
        logp = model(input_ids=inp).logits.float().log_softmax(-1)
        tok = logp.gather(-1, part.unsqueeze(-1)).squeeze(-1)
        if sel is not None:
            tok = torch.where(sel, tok, torch.zeros_like(tok))
        out.append(tok.sum(-1))
    return torch.cat(out)


@torch.inference_mode()
def ar_candidate_log_likelihood(model, ids: torch.Tensor, k: int, bos_id: int, score: torch.Tensor | None = None,
                                chunk: int = 64, horizon: int = 0) -> torch.Tensor:
    """`ar_log_likelihood` of ids [B*k, L] in groups of k candidates, up to a constant per group.

    The tokens before the first position where a group's candidates differ are the same for all k, so their
    log-probabilities are that constant: the shared prefix runs once per group (its key/value cache is repeated
    k times) and only the positions from the first difference on go through the model and its output layer.
    `horizon` > 0 also stops `horizon` tokens after the last difference: the fixed text further on is left out
    of the score (an approximation: how a candidate leads into its next `horizon` tokens is still scored)."""
    if k == 1:  # one candidate per row: nothing is shared
        return ar_log_likelihood(model, ids, bos_id, score, chunk)
    N, L = ids.shape
    groups = ids.view(N // k, k, L)
    differ = (groups != groups[:, :1]).any(1).any(0)  # [L]: the candidates of some group differ here
    if not bool(differ.any()):  # every group's candidates are identical (greedy decoding): equal weights
        return torch.zeros(N, device=ids.device)
    P = int(differ.float().argmax())
    Q = L if horizon <= 0 else min(L, L - int(differ.flip(0).float().argmax()) + horizon)  # score [P, Q)
    if P == 0:
        return ar_log_likelihood(model, ids[:, :Q], bos_id, None if score is None else score[:, :Q], chunk)
    sel = (score if score is not None else torch.ones_like(ids, dtype=torch.bool)).view(N // k, k, L)
    out = []
    for part, part_sel in zip(groups.split(max(1, chunk // k)), sel.split(max(1, chunk // k))):
        g = part.shape[0]
        prefix = torch.cat([torch.full_like(part[:, 0, :1], bos_id), part[:, 0, :P - 1]], 1)  # inputs 0..P-1
        _, past = forward_with_cache(model, prefix, None, logits_to_keep=1)
        past.batch_repeat_interleave(k)
        flat = part.reshape(g * k, L)
        logits = forward_with_cache(model, flat[:, P - 1:Q - 1], past)[0].logits.float()
        tok = logits.gather(-1, flat[:, P:Q].unsqueeze(-1)).squeeze(-1) - logits.logsumexp(-1)
        tok = torch.where(part_sel.reshape(g * k, L)[:, P:Q], tok, torch.zeros_like(tok))
        out.append(tok.sum(-1))
    return torch.cat(out)


AR_WEIGHTINGS = ("ratio", "product")


class AREnergy:
    """EDLM-AR: a causal LM of the same tokenizer scores each candidate.

    `carry_over=True` scores only the positions masked in x_t (the reference code's coAR); the default scores the
    whole sequence, which is what infilling needs: it includes how a filled span leads into the text after it.
    `weighting="ratio"` is the paper's target (the AR likelihood: log w = log p_AR - log q); `"product"` keeps
    the denoiser in the target (p ∝ q · p_AR: log w = log p_AR), which degenerates less when the denoiser is weak.
    `horizon` > 0 scores only up to that many tokens after the last position where the candidates differ.
    """

    name = "edlm-ar"

    def __init__(self, model, bos_id: int, mask_id: int, carry_over: bool = False, weighting: str = "ratio",
                 horizon: int = 0):
        if weighting not in AR_WEIGHTINGS:
            raise ValueError(f"unknown AR weighting {weighting!r}: choose one of {', '.join(AR_WEIGHTINGS)}")
        self.model, self.bos_id, self.mask_id = model, bos_id, mask_id
        self.carry_over, self.weighting, self.horizon = carry_over, weighting, horizon

    def log_weights(self, candidates, x_t, t, log_q, k=1):
        score = (x_t == self.mask_id) if self.carry_over else None
        log_p = ar_candidate_log_likelihood(self.model, candidates, k, self.bos_id, score, horizon=self.horizon)
        return log_p - log_q if self.weighting == "ratio" else log_p


class NCEEnergy:
    """EDLM-NCE: a bidirectional energy network trained to tell real x0 from denoiser samples."""

    name = "edlm-nce"

    def __init__(self, model):
        self.model = model

    @torch.inference_mode()
    def log_weights(self, candidates, x_t, t, log_q, k=1):
        return -self.model(candidates, x_t, t).logits.float()


class TextAREnergy:
    """EDLM-AR with a causal LM of a *different* tokenizer: decode each candidate, re-tokenise, score.

    Costs a decode and an encode per candidate on the CPU, and the AR sees the text of the window only (no BOS
    context from outside it); the likelihoods of different tokenisations are comparable because all candidates
    are scored by the same model over the same kind of string.
    """

    name = "edlm-ar"

    def __init__(self, model, ar_tokenizer, diffusion_tokenizer, device=None, weighting: str = "ratio"):
        if weighting not in AR_WEIGHTINGS:
            raise ValueError(f"unknown AR weighting {weighting!r}: choose one of {', '.join(AR_WEIGHTINGS)}")
        self.model, self.ar_tok, self.diff_tok = model, ar_tokenizer, diffusion_tokenizer
        self.device = device or next(model.parameters()).device
        self.weighting = weighting

    @torch.inference_mode()
    def text_log_likelihood(self, texts: list[str]) -> torch.Tensor:
        """log p_AR(text) under the AR model's own tokenizer, one score per text [N]."""
        bos = self.ar_tok.bos_token_id if self.ar_tok.bos_token_id is not None else self.ar_tok.eos_token_id
        scores = []
        for text in texts:
            ids = [bos] + self.ar_tok(text, add_special_tokens=False)["input_ids"]
            ids = torch.tensor([ids], device=self.device)
            logp = self.model(input_ids=ids[:, :-1]).logits.float().log_softmax(-1)
            scores.append(logp.gather(-1, ids[:, 1:].unsqueeze(-1)).sum())
        return torch.stack(scores).float().cpu()

    @torch.inference_mode()
    def log_weights(self, candidates, x_t, t, log_q, k=1):
        texts = self.diff_tok.batch_decode(candidates.tolist(), skip_special_tokens=True,
                                           clean_up_tokenization_spaces=False)
        log_p = self.text_log_likelihood(texts).to(log_q.device)
        return log_p - log_q if self.weighting == "ratio" else log_p


def temper(log_w: torch.Tensor, floor: float = 1.0, target_ess: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-weights [B, k] divided by a temperature per row: `floor`, or the smallest larger one at which the
    effective sample size reaches target_ess * k (0 = off). The gap between the best two candidates' AR
    log-likelihoods grows with the span (about 4 nats at 8 tokens, 12 at 64 on the embedded models), so a fixed
    temperature that lets the energy choose among a few on a short span leaves one winner on a long one. The ESS
    grows with the temperature, so a bisection in log space finds it. Returns the tempered log-weights and the
    temperatures [B]."""
    lw = log_w.double()
    tau = torch.full(lw.shape[:-1], float(floor), dtype=torch.float64, device=lw.device)
    if target_ess <= 0:
        return lw / floor, tau
    want = min(target_ess, 0.999) * lw.shape[-1]

    def ess(t: torch.Tensor) -> torch.Tensor:
        return normalise(lw / t.unsqueeze(-1))[1].double()

    lo, hi = tau.clone(), torch.full_like(tau, 1e6)
    for _ in range(40):
        mid = (lo * hi).sqrt()
        good = ess(mid) >= want
        lo, hi = torch.where(good, lo, mid), torch.where(good, mid, hi)
    tau = torch.where(ess(tau) >= want, tau, hi)
    return lw / tau.unsqueeze(-1), tau


def normalise(log_w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Normalised weights (softmax over the last dim, in log space) and the effective sample size 1 / sum w^2."""
    w = F.softmax(log_w.float(), dim=-1)
    return w, 1.0 / (w * w).sum(-1)


# The energy registry: name -> factory(bundle, request) building the energy a sampler asks for (edlm.samplers), with
# a clear error when the bundle lacks what it needs. A new energy is one decorated function.
EnergyFactory = Callable[["Bundle", "Request"], Energy]
ENERGIES: dict[str, EnergyFactory] = {}


def energy_source(name: str) -> Callable[[EnergyFactory], EnergyFactory]:
    """Register `fn(bundle, request) -> Energy` under `name`."""
    def add(fn: EnergyFactory) -> EnergyFactory:
        if name in ENERGIES:
            raise ValueError(f"an energy named {name!r} is already registered")
        ENERGIES[name] = fn
        return fn
    return add


@energy_source("ar")
def _ar_energy(bundle: Bundle, req: Request) -> Energy:
    if bundle.ar is None:
        raise ValueError(f"model {bundle.name!r} has no autoregressive model, which the {req.sampler} sampler "
                         "needs; use mdlm")
    if req.ar_weighting == "ratio" and next(bundle.ar.parameters()).dtype == torch.bfloat16:
        import warnings

        warnings.warn("ratio weights subtract two large log-likelihoods, and in bfloat16 their rounding lands in "
                      "the difference (measured worse in every cell of the quick grid): load the model with "
                      "dtype='float32' (--dtype float32) for them", stacklevel=2)
    if bundle.energy_tokenizer is not None:
        if req.carry_over:
            raise ValueError("carry_over scores the masked token positions, which do not exist for an energy "
                             "with another tokenizer (text-level energy); leave carry_over off")
        if req.energy_horizon:
            raise ValueError("energy_horizon counts tokens of the denoiser's tokenizer, which an energy with another "
                             "tokenizer (text-level energy) does not read; leave energy_horizon at 0")
        return TextAREnergy(bundle.ar, bundle.energy_tokenizer, bundle.tokenizer, weighting=req.ar_weighting)
    return AREnergy(bundle.ar, bundle.tokenizer.bos_token_id, bundle.tokenizer.mask_token_id, req.carry_over,
                    req.ar_weighting, req.energy_horizon)


@energy_source("nce")
def _nce_energy(bundle: Bundle, req: Request) -> Energy:
    if bundle.nce is None:
        raise ValueError(f"model {bundle.name!r} has no NCE energy; use mdlm or edlm-ar")
    from .processes import MASKED

    if bundle.process not in MASKED:
        raise ValueError(f"the NCE energy was trained on masked text; with a {bundle.process} denoiser use mdlm "
                         "or edlm-ar")
    return NCEEnergy(bundle.nce)
