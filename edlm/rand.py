"""Randomness the samplers share: one random stream per batch row, and categorical draws by inverting a CDF."""
from __future__ import annotations

import torch


class RowRandom:
    """One random stream per batch row (row b seeded from (seed, b)): a row's sample does not depend on the batch
    it runs in, so sample 0 of a batch of 8 equals a batch of 1 with the same seed."""

    def __init__(self, seed: int, rows: int, device: torch.device | str = "cpu",
                 row_seeds: list[int] | None = None):
        seeds = row_seeds if row_seeds is not None else [seed + 1_000_003 * b for b in range(rows)]
        self.gens = [torch.Generator(device).manual_seed(s % 2**63) for s in seeds]
        self.device = device

    def rand(self, per_row: list[int] | int, *shape: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """Uniforms for each row, stacked in row order: `per_row[b]` x shape from row b's stream, concatenated
        ([sum(per_row), *shape]); an int n gives every row n."""
        counts = [per_row] * len(self.gens) if isinstance(per_row, int) else per_row
        return torch.cat([torch.rand(n, *shape, generator=g, device=self.device, dtype=dtype)
                          for g, n in zip(self.gens, counts)])

    def normal(self, per_row: list[int] | int, *shape: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """Standard normal draws, stacked in row order like `rand` (the continuous process's noise)."""
        counts = [per_row] * len(self.gens) if isinstance(per_row, int) else per_row
        return torch.cat([torch.randn(n, *shape, generator=g, device=self.device, dtype=dtype)
                          for g, n in zip(self.gens, counts)])


def sample_categorical(cdf: torch.Tensor, k: int, gen: torch.Generator | torch.Tensor) -> torch.Tensor:
    """k independent draws per row [N, k] by inverting the cumulative distribution cdf [N, V].

    Tokens of zero probability are never drawn (their cdf equals the previous one); far cheaper than
    torch.multinomial on a CPU for thousands of rows. Pass a float64 cdf: in float32 the many small
    probabilities of the tail round away, which silently lowers the temperature (Zheng et al. 2024)."""
    u = gen.to(cdf.dtype) if isinstance(gen, torch.Tensor) else \
        torch.rand(cdf.shape[0], k, generator=gen, device=cdf.device, dtype=cdf.dtype)
    u = u * cdf[:, -1:]
    return torch.searchsorted(cdf, u, right=True).clamp_(max=cdf.shape[-1] - 1)
