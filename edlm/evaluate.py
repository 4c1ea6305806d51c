"""Evaluation: ELBO perplexity of the denoiser, AR perplexity, NCE accuracy, and the quality of samples
(generative perplexity under a separate judge model, unigram entropy)."""
from __future__ import annotations

import math

import torch

from .energy import ar_log_likelihood
from .noise import add_noise, get_schedule
from .processes import process_for


@torch.inference_mode()
def elbo_perplexity(denoiser, windows: torch.Tensor, draws: int = 8, seed: int = 0, batch: int = 32) -> float:
    """exp of the mean negative ELBO per token, Monte Carlo over t: `draws` stratified times per window.

    The ELBO bounds the likelihood, so this is an upper bound on the denoiser's perplexity. (For the continuous
    process it is exp of its training loss, the x0 cross-entropy at the noised positions: no bound.)"""
    process = process_for(denoiser.config, model=denoiser)
    gen = torch.Generator().manual_seed(seed)
    device = next(denoiser.parameters()).device
    total, count = 0.0, 0
    for d in range(draws):
        for x0 in windows.split(batch):
            n = x0.shape[0]
            t = ((torch.rand(n, generator=gen) + d) / draws).clamp(1e-3, 1.0)  # stratified over the draws
            x_t = process.add_noise(x0, t, gen)
            log_p = denoiser(x_t.to(device), t.to(device)).logits
            total += float(process.loss(log_p.float().cpu(), x0, x_t, t).sum())
            count += n
    return math.exp(total / count)


@torch.inference_mode()
def ar_perplexity(model, windows: torch.Tensor, bos_id: int, batch: int = 32) -> float:
    """exp of the mean next-token NLL over the windows, each window starting from BOS."""
    device = next(model.parameters()).device
    ll = sum(float(ar_log_likelihood(model, x.to(device), bos_id).sum()) for x in windows.split(batch))
    return math.exp(-ll / windows.numel())


@torch.inference_mode()
def nce_accuracy(energy, denoiser, windows: torch.Tensor, levels: list[float], seed: int = 0,
                 batch: int = 32) -> dict[float, float]:
    """Held-out accuracy of the energy at telling real x0 (E < 0) from a denoiser sample (E > 0), per noise level t."""
    schedule = get_schedule(denoiser.config.schedule)
    mask_id = denoiser.config.mask_token_id
    device = next(denoiser.parameters()).device
    out = {}
    for level in levels:
        gen = torch.Generator().manual_seed(seed)
        right, n = 0, 0
        for x0 in windows.split(batch):
            t = torch.full((x0.shape[0],), level)
            x_t = add_noise(x0, t, mask_id, schedule, gen)
            probs = denoiser(x_t.to(device), t.to(device)).logits.float().exp().cpu()
            neg = torch.multinomial(probs.view(-1, probs.shape[-1]), 1, generator=gen).view_as(x0)
            e_pos = energy(x0.to(device), x_t.to(device), t.to(device)).logits.cpu()
            e_neg = energy(neg.to(device), x_t.to(device), t.to(device)).logits.cpu()
            right += int((e_pos < 0).sum() + (e_neg > 0).sum())
            n += 2 * x0.shape[0]
        out[level] = right / n
    return out


@torch.inference_mode()
def generative_perplexity(judge, samples: torch.Tensor, bos_id: int, batch: int = 32) -> tuple[float, list[float]]:
    """Judge perplexity over all sample tokens, and each sample's own perplexity (for the spread)."""
    device = next(judge.parameters()).device
    per = torch.cat([ar_log_likelihood(judge, x.to(device), bos_id).cpu() for x in samples.split(batch)])
    per_ppl = torch.exp(-per / samples.shape[1]).tolist()
    return math.exp(-float(per.sum()) / samples.numel()), per_ppl


def unigram_entropy(samples: torch.Tensor) -> float:
    """Mean over samples of the entropy (nats) of each sample's token frequencies: low means repetitive text."""
    ents = []
    for row in samples:
        _, counts = row.unique(return_counts=True)
        p = counts.float() / counts.sum()
        ents.append(float(-(p * p.log()).sum()))
    return sum(ents) / len(ents)
