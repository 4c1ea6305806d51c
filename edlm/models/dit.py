"""Diffusion transformer (DiT) used by masked diffusion LMs: bidirectional attention, rotary positions, and
adaLN modulation by the noise level.

The module and parameter names follow the MDLM DiT layout (vocab_embed, sigma_map, blocks.N.attn_qkv, ...,
output_layer), so the public MDLM checkpoints load into it by name (see `edlm.presets`). Plain PyTorch: no
flash-attn, runs on CPU or GPU in float32 or bfloat16.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F
from transformers import PretrainedConfig


class DiTConfig(PretrainedConfig):
    """Size and behaviour of a DiT denoiser. `mask_token_id` is read from the tokenizer when the model is built."""

    model_type = "edlm-dit"

    def __init__(self, vocab_size: int = 4096, hidden_size: int = 256, n_blocks: int = 4, n_heads: int = 4,
                 cond_dim: int = 128, mlp_ratio: int = 4, dropout: float = 0.1, length: int = 128,
                 mask_token_id: int = 4, time_conditioning: bool = False, schedule: str = "loglinear",
                 self_conditioning: bool = False, process: str = "absorbing", **kwargs):
        self.vocab_size = vocab_size
        self.hidden_size = hidden_size
        self.n_blocks = n_blocks
        self.n_heads = n_heads
        self.cond_dim = cond_dim
        self.mlp_ratio = mlp_ratio
        self.dropout = dropout
        self.length = length
        self.mask_token_id = mask_token_id
        self.time_conditioning = time_conditioning
        self.schedule = schedule
        self.self_conditioning = self_conditioning  # input: the previous x0 prediction (MDLM / Chen et al. 2022)
        self.process = process  # "absorbing" (masked, SUBS outputs), "uniform" or "continuous" (edlm.processes)
        super().__init__(**kwargs)


class LayerNorm(nn.Module):
    """LayerNorm with a scale and no bias, computed in float32."""

    def __init__(self, dim: int):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.dim = dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (F.layer_norm(x.float(), [self.dim]) * self.weight).to(x.dtype)


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return x * (1 + scale[:, None]) + shift[:, None]


def rotary_cos_sin(seq_len: int, head_dim: int, device, base: float = 10_000.0) -> tuple[torch.Tensor, torch.Tensor]:
    inv_freq = 1.0 / (base ** (torch.arange(0, head_dim, 2, device=device).float() / head_dim))
    freqs = torch.outer(torch.arange(seq_len, device=device).float(), inv_freq)
    emb = torch.cat((freqs, freqs), dim=-1)
    return emb.cos(), emb.sin()


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate-half rotary embedding on x [B, H, L, D]."""
    x1, x2 = x.chunk(2, dim=-1)
    rotated = torch.cat((-x2, x1), dim=-1)
    return (x.float() * cos + rotated.float() * sin).to(x.dtype)


class TimestepEmbedder(nn.Module):
    """Sinusoidal features of the noise level followed by a two-layer MLP."""

    def __init__(self, hidden_size: int, frequency_size: int = 256):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(frequency_size, hidden_size), nn.SiLU(), nn.Linear(hidden_size, hidden_size))
        self.frequency_size = frequency_size

    def forward(self, sigma: torch.Tensor) -> torch.Tensor:
        half = self.frequency_size // 2
        freqs = torch.exp(-math.log(10_000) * torch.arange(half, device=sigma.device).float() / half)
        args = sigma[:, None].float() * freqs[None]
        feats = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
        return self.mlp(feats.to(self.mlp[0].weight.dtype))


class DiTBlock(nn.Module):
    def __init__(self, dim: int, n_heads: int, cond_dim: int, mlp_ratio: int, dropout: float):
        super().__init__()
        self.n_heads = n_heads
        self.dropout = dropout
        self.norm1 = LayerNorm(dim)
        self.attn_qkv = nn.Linear(dim, 3 * dim, bias=False)
        self.attn_out = nn.Linear(dim, dim, bias=False)
        self.norm2 = LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, mlp_ratio * dim), nn.GELU(approximate="tanh"),
                                 nn.Linear(mlp_ratio * dim, dim))
        self.adaLN_modulation = nn.Linear(cond_dim, 6 * dim)
        nn.init.zeros_(self.adaLN_modulation.weight)
        nn.init.zeros_(self.adaLN_modulation.bias)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        b, l, d = x.shape
        shift1, scale1, gate1, shift2, scale2, gate2 = self.adaLN_modulation(c).chunk(6, dim=-1)
        h = modulate(self.norm1(x), shift1, scale1)
        q, k, v = self.attn_qkv(h).view(b, l, 3, self.n_heads, d // self.n_heads).permute(2, 0, 3, 1, 4)
        q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
        h = F.scaled_dot_product_attention(q, k, v, dropout_p=self.dropout if self.training else 0.0)
        h = self.attn_out(h.transpose(1, 2).reshape(b, l, d))
        x = x + gate1[:, None] * F.dropout(h, self.dropout, self.training)
        h = self.mlp(modulate(self.norm2(x), shift2, scale2))
        return x + gate2[:, None] * F.dropout(h, self.dropout, self.training)


class EmbeddingLayer(nn.Module):
    def __init__(self, dim: int, vocab_size: int):
        super().__init__()
        self.embedding = nn.Parameter(torch.empty(vocab_size, dim))
        nn.init.kaiming_uniform_(self.embedding, a=math.sqrt(5))

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.embedding[ids]


class FinalLayer(nn.Module):
    def __init__(self, hidden_size: int, out_dim: int, cond_dim: int):
        super().__init__()
        self.norm_final = LayerNorm(hidden_size)
        self.linear = nn.Linear(hidden_size, out_dim)
        self.adaLN_modulation = nn.Linear(cond_dim, 2 * hidden_size)
        for p in (*self.linear.parameters(), *self.adaLN_modulation.parameters()):
            nn.init.zeros_(p)

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        shift, scale = self.adaLN_modulation(c).chunk(2, dim=-1)
        return self.linear(modulate(self.norm_final(x), shift, scale))


@dataclass
class SparseSelfCond:
    """A self-conditioning input given at the masked positions only: `probs` [N, V] for the True entries of
    `positions` (bool [B, L], row-major); visible positions are implied one-hot, other positions zero."""

    positions: torch.Tensor
    probs: torch.Tensor


class DiTBackbone(nn.Module):
    """Token ids + noise level -> per-position outputs (vocabulary logits, or `out_dim` features)."""

    def __init__(self, config: DiTConfig, out_dim: int | None = None):
        super().__init__()
        self.config = config
        self.vocab_embed = EmbeddingLayer(config.hidden_size, config.vocab_size)
        self.sigma_map = TimestepEmbedder(config.cond_dim)
        self.blocks = nn.ModuleList(
            DiTBlock(config.hidden_size, config.n_heads, config.cond_dim, config.mlp_ratio, config.dropout)
            for _ in range(config.n_blocks))
        self.output_layer = FinalLayer(config.hidden_size, out_dim or config.vocab_size, config.cond_dim)
        self.self_cond_proj = None
        if getattr(config, "self_conditioning", False):
            # Zero-initialised: a network without self-conditioning loads into this one unchanged (warm start).
            self.self_cond_proj = nn.Linear(config.hidden_size, config.hidden_size, bias=False)
            nn.init.zeros_(self.self_cond_proj.weight)
        self.in_proj = None
        if getattr(config, "process", "absorbing") == "continuous":
            # Continuous diffusion reads points of the (frozen) embedding space, not token ids: the table is the
            # space (edlm.continuous), and this projection maps a point into the network.
            self.vocab_embed.embedding.requires_grad_(False)
            self.in_proj = nn.Linear(config.hidden_size, config.hidden_size, bias=False)

    def expected_embedding(self, ids: torch.Tensor, self_cond, embedded: torch.Tensor) -> torch.Tensor:
        """The self-conditioning input as an expected token embedding [B, L, H]. Dense probabilities [B, L, V]
        (training) cost a [B*L, V] x [V, H] product; a `SparseSelfCond` (sampling) gives the same result from the
        masked rows only: visible positions are their own embedding (one-hot rows), masked ones without a
        prediction zero."""
        table = self.vocab_embed.embedding.to(embedded.dtype)
        if isinstance(self_cond, SparseSelfCond):
            h = torch.where((ids != self.config.mask_token_id).unsqueeze(-1), embedded, 0.0)
            h[self_cond.positions] = self_cond.probs.to(table.dtype) @ table
            return h
        return self_cond.to(table.dtype) @ table

    @torch.no_grad()
    def fit_in_proj(self) -> None:
        """Start the continuous input projection where a word's point lands on that word's own embedding (least
        squares over the table), so a warm start from a token DiT reads clean text as before."""
        from ..continuous import embedding_space

        table = self.vocab_embed.embedding.float()
        solution = torch.linalg.lstsq(embedding_space(table), table).solution  # [D, H]: point @ W = embedding
        self.in_proj.weight.copy_(solution.T.to(self.in_proj.weight.dtype))

    def forward(self, ids: torch.Tensor | None, sigma: torch.Tensor, extra_embed: torch.Tensor | None = None,
                positions: torch.Tensor | None = None, self_cond: torch.Tensor | None = None,
                points: torch.Tensor | None = None) -> torch.Tensor:
        """`positions` (bool [B, L]) restricts the output layer to those positions: returns [N, out_dim].
        `self_cond` (x0 probabilities [B, L, V], or a `SparseSelfCond`) enters as the expected token embedding,
        projected. A continuous network reads `points` [B, L, D] of its embedding space instead of ids."""
        if points is not None:
            x = self.in_proj(points.to(self.in_proj.weight.dtype))
        else:
            x = self.vocab_embed(ids)
        if self_cond is not None and self.self_cond_proj is not None:
            x = x + self.self_cond_proj(self.expected_embedding(ids, self_cond, x))
        if extra_embed is not None:
            x = x + extra_embed
        c = F.silu(self.sigma_map(sigma)).to(x.dtype)
        cos, sin = rotary_cos_sin(x.shape[1], self.config.hidden_size // self.config.n_heads, x.device)
        for block in self.blocks:
            x = block(x, cos, sin, c)
        if positions is not None:
            rows = positions.nonzero(as_tuple=True)[0]
            return self.output_layer(x[positions][:, None], c[rows])[:, 0]
        return self.output_layer(x, c)
