"""LLaDA (Nie et al. 2025): a Llama-style transformer with bidirectional attention that predicts x0 at masked
positions. Written from the published architecture so its checkpoints run without their remote code.

Module names reproduce the published state-dict keys exactly: model.transformer.wte, model.transformer.blocks.N.
{attn_norm, q_proj, k_proj, v_proj, attn_out, ff_norm, ff_proj, up_proj, ff_out}, model.transformer.ln_f and
model.transformer.ff_out. A block is pre-norm (RMSNorm) attention with rotary positions, then a gated MLP
ff_out(act(ff_proj(x)) * up_proj(x)). No time input: the mask pattern says how noisy x_t is.

The same network, with `shift=True`, is this project's AR-initialised denoiser (DiffuLLaMA / Dream): it reads
[BOS] + x_t and the output at position i predicts token i, as a causal LM's does, so a trained causal Llama's
weights fit it unchanged (`from_causal_lm`); only the attention becomes bidirectional.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from transformers import PretrainedConfig, PreTrainedModel
from transformers.modeling_outputs import MaskedLMOutput

from .denoiser import subs_log_probs
from .dit import apply_rotary, rotary_cos_sin

# Published config fields this implementation covers, with the only values it implements.
SUPPORTED = {"block_type": ("llama",), "layer_norm_type": ("rms",), "activation_type": ("silu",), "rope": (True,),
             "alibi": (False,), "input_emb_norm": (False,), "scale_logits": (False,), "attention_layer_norm": (False,),
             "block_group_size": (1,)}


class LLaDAConfig(PretrainedConfig):
    """The fields of a published LLaDA config.json that shape the network, plus what the samplers read
    (`length`: the window; `mask_token_id`)."""

    model_type = "edlm-llada"

    def __init__(self, d_model: int = 4096, n_heads: int = 32, n_kv_heads: int | None = None, n_layers: int = 32,
                 mlp_hidden_size: int = 12288, vocab_size: int = 126464, embedding_size: int | None = None,
                 rope_theta: float = 500_000.0, rms_norm_eps: float = 1e-5, include_bias: bool = False,
                 include_qkv_bias: bool = False, weight_tying: bool = False, mask_token_id: int = 126336,
                 length: int = 4096, shift: bool = False, bos_token_id: int | None = None, **kwargs):
        self.d_model, self.n_heads, self.n_layers = d_model, n_heads, n_layers
        self.n_kv_heads = n_kv_heads or n_heads
        self.mlp_hidden_size, self.vocab_size = mlp_hidden_size, vocab_size
        self.embedding_size = embedding_size or vocab_size
        self.rope_theta, self.rms_norm_eps = rope_theta, rms_norm_eps
        self.include_bias, self.include_qkv_bias, self.weight_tying = include_bias, include_qkv_bias, weight_tying
        self.mask_token_id, self.length = mask_token_id, length
        if shift and bos_token_id is None:
            raise ValueError("a shifted LLaDA network reads [BOS] + x_t: give bos_token_id")
        self.shift = shift  # outputs shifted by one (a causal LM's layout); False for published LLaDA checkpoints
        # What the samplers read from any denoiser: no time input, absorbing (masked) process, no self-conditioning.
        self.time_conditioning, self.self_conditioning, self.process, self.schedule = False, False, "absorbing", \
            "loglinear"
        super().__init__(**kwargs)
        self.bos_token_id = bos_token_id

    @classmethod
    def from_published(cls, cfg: dict) -> "LLaDAConfig":
        """From a published LLaDA config.json; a field this implementation does not cover is an error naming it."""
        for field, allowed in SUPPORTED.items():
            if field in cfg and cfg[field] not in allowed:
                raise ValueError(f"LLaDA config field {field} = {cfg[field]!r} is not supported (only "
                                 f"{', '.join(map(repr, allowed))})")
        for field in ("d_model", "n_heads", "n_layers", "vocab_size", "mask_token_id"):
            if field not in cfg:
                raise ValueError(f"LLaDA config.json has no {field}")
        check_published_ranges(cfg)
        hidden = cfg.get("mlp_hidden_size") or cfg.get("mlp_ratio", 4) * cfg["d_model"]
        return cls(d_model=cfg["d_model"], n_heads=cfg["n_heads"], n_kv_heads=cfg.get("n_kv_heads"),
                   n_layers=cfg["n_layers"], mlp_hidden_size=hidden, vocab_size=cfg["vocab_size"],
                   embedding_size=cfg.get("embedding_size"), rope_theta=cfg.get("rope_theta", 10_000.0),
                   rms_norm_eps=cfg.get("rms_norm_eps", 1e-5), include_bias=cfg.get("include_bias", False),
                   include_qkv_bias=cfg.get("include_qkv_bias", False), weight_tying=cfg.get("weight_tying", False),
                   mask_token_id=cfg["mask_token_id"], length=cfg.get("max_sequence_length", 4096))


# Whole-number fields of a published config and their allowed ranges, checked before anything is built (a
# config of ten million layers of width 2 would otherwise pass the size check and allocate without end).
INT_RANGES = {"d_model": (1, 65_536), "n_heads": (1, 1_024), "n_kv_heads": (1, 1_024), "n_layers": (1, 1_024),
              "mlp_hidden_size": (1, 1 << 20), "mlp_ratio": (1, 64), "vocab_size": (2, 1 << 22),
              "embedding_size": (2, 1 << 22), "mask_token_id": (0, (1 << 22) - 1),
              "max_sequence_length": (1, 1 << 20)}
POSITIVE_FLOATS = ("rope_theta", "rms_norm_eps")


def check_published_ranges(cfg: dict) -> None:
    """Each shaping field of a LLaDA config.json is of the right type and in range (ValueError naming it)."""
    import math

    for name, (lo, hi) in INT_RANGES.items():
        value = cfg.get(name)
        if value is None and name not in ("d_model", "n_heads", "n_layers", "vocab_size", "mask_token_id"):
            continue
        if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
            raise ValueError(f"LLaDA config field {name} = {value!r} must be a whole number from {lo} to {hi}")
    for name in POSITIVE_FLOATS:
        value = cfg.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                  or not math.isfinite(value) or value <= 0):
            raise ValueError(f"LLaDA config field {name} = {value!r} must be a positive number")
    heads, kv = cfg["n_heads"], cfg.get("n_kv_heads") or cfg["n_heads"]
    if cfg["d_model"] % heads or (cfg["d_model"] // heads) % 2:
        raise ValueError(f"LLaDA config: d_model {cfg['d_model']} must split into {heads} heads of an even width")
    if heads % kv:
        raise ValueError(f"LLaDA config: n_heads {heads} must be a multiple of n_kv_heads {kv}")
    if cfg["mask_token_id"] >= (cfg.get("embedding_size") or cfg["vocab_size"]):
        raise ValueError(f"LLaDA config: mask_token_id {cfg['mask_token_id']} is outside the vocabulary")


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float, bias: bool):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))
        self.bias = nn.Parameter(torch.zeros(dim)) if bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.float()
        h = (h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + self.eps)).to(x.dtype) * self.weight
        return h if self.bias is None else h + self.bias


class LLaDABlock(nn.Module):
    def __init__(self, c: LLaDAConfig):
        super().__init__()
        head = c.d_model // c.n_heads
        qkv_bias = c.include_bias or c.include_qkv_bias
        self.n_heads, self.n_kv_heads = c.n_heads, c.n_kv_heads
        self.attn_norm = RMSNorm(c.d_model, c.rms_norm_eps, c.include_bias)
        self.q_proj = nn.Linear(c.d_model, c.d_model, bias=qkv_bias)
        self.k_proj = nn.Linear(c.d_model, c.n_kv_heads * head, bias=qkv_bias)
        self.v_proj = nn.Linear(c.d_model, c.n_kv_heads * head, bias=qkv_bias)
        self.attn_out = nn.Linear(c.d_model, c.d_model, bias=c.include_bias)
        self.ff_norm = RMSNorm(c.d_model, c.rms_norm_eps, c.include_bias)
        self.ff_proj = nn.Linear(c.d_model, c.mlp_hidden_size, bias=c.include_bias)
        self.up_proj = nn.Linear(c.d_model, c.mlp_hidden_size, bias=c.include_bias)
        self.ff_out = nn.Linear(c.mlp_hidden_size, c.d_model, bias=c.include_bias)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor,
                attn_mask: torch.Tensor | None = None, kv=None) -> torch.Tensor:
        """x [B, L, D]; `kv` (a context cache's `keys_values` for this layer) stores this pass's keys and values
        or, when x holds only the active positions, supplies every position's."""
        B, L, D = x.shape
        h = self.attn_norm(x)
        q = self.q_proj(h).view(B, L, self.n_heads, -1).transpose(1, 2)
        k = self.k_proj(h).view(B, L, self.n_kv_heads, -1).transpose(1, 2)
        v = self.v_proj(h).view(B, L, self.n_kv_heads, -1).transpose(1, 2)
        q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
        if kv is not None:
            k, v = kv(k, v)
        if self.n_kv_heads != self.n_heads:  # grouped-query attention: each key/value head serves a group
            k = k.repeat_interleave(self.n_heads // self.n_kv_heads, dim=1)
            v = v.repeat_interleave(self.n_heads // self.n_kv_heads, dim=1)
        att = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)  # bidirectional unless masked
        x = x + self.attn_out(att.transpose(1, 2).reshape(B, L, D))
        h = self.ff_norm(x)
        return x + self.ff_out(F.silu(self.ff_proj(h)) * self.up_proj(h))


class _Transformer(nn.Module):
    def __init__(self, c: LLaDAConfig):
        super().__init__()
        self.transformer = nn.ModuleDict(dict(
            wte=nn.Embedding(c.embedding_size, c.d_model),
            blocks=nn.ModuleList(LLaDABlock(c) for _ in range(c.n_layers)),
            ln_f=RMSNorm(c.d_model, c.rms_norm_eps, c.include_bias)))
        if not c.weight_tying:
            self.transformer["ff_out"] = nn.Linear(c.d_model, c.embedding_size, bias=c.include_bias)


class LLaDADenoiser(PreTrainedModel):
    """p(x0 | x_t) from a LLaDA network, with the interface of `DenoiserModel`: SUBS log-probabilities [B, L, V]
    (or [N, V] at `positions` only: the output layer over a 126k vocabulary is run only where it is needed)."""

    config_class = LLaDAConfig
    base_model_prefix = "model"
    _no_split_modules = ["LLaDABlock"]

    def __init__(self, config: LLaDAConfig):
        super().__init__(config)
        self.model = _Transformer(config)
        self.post_init()

    def _init_weights(self, module):  # weights always come from a checkpoint or a causal LM
        pass

    # Attention-mask annealing (DiffuLLaMA): while training sets this below 1, each query sees a later position
    # only with this probability (a fresh draw per pass); 0 is a causal LM's attention, 1 (the default) bidirectional.
    future_share: float = 1.0
    supports_context_cache = True  # samplers may pass a `ContextCache` (SamplerConfig.cache_refresh)

    def forward(self, input_ids: torch.Tensor, t: torch.Tensor | None = None,
                positions: torch.Tensor | None = None, cache=None, cache_rows: torch.Tensor | None = None,
                **_) -> MaskedLMOutput:
        """`cache` (an `edlm.models.cache.ContextCache`, with `positions`) reuses the fixed text's keys and
        values between full passes; `cache_rows` says which of its rows these are (default all)."""
        if cache is None:
            return MaskedLMOutput(logits=self._log_probs(input_ids, positions))
        if positions is None:
            raise ValueError("a cached pass computes the asked positions only: give positions")
        return MaskedLMOutput(logits=cache.run(self._log_probs, input_ids, positions, cache_rows))

    def _log_probs(self, input_ids: torch.Tensor, positions: torch.Tensor | None, run=None) -> torch.Tensor:
        """SUBS log-probabilities at `positions` ([N, V]; [B, L, V] when None); `run` is one pass of a context
        cache (`LayerPass`): a full pass that stores, or one over the active positions only."""
        tr, c = self.model.transformer, self.config
        ids = input_ids
        if c.shift:  # read [BOS] + x_t; the output at position i predicts token i (drop the last one)
            ids = torch.cat([torch.full_like(input_ids[:, :1], c.bos_token_id), input_ids], 1)
        cos, sin = rotary_cos_sin(ids.shape[1], c.d_model // c.n_heads, ids.device, base=c.rope_theta)
        if run is not None:
            ids, (cos, sin) = run.inputs(ids), run.rotary(cos, sin)
        x = tr.wte(ids)
        mask = None
        if self.future_share < 1.0 and run is None:  # training only
            n = ids.shape[1]
            future = torch.rand(n, n, device=ids.device) < self.future_share
            mask = torch.ones(n, n, dtype=torch.bool, device=ids.device).tril() | future
        for n, block in enumerate(tr.blocks):
            kv = None if run is None else (lambda k, v, n=n: run.keys_values(n, k, v))
            x = block(x, cos, sin, mask, kv)
        x = tr.ln_f(x)
        x_t = input_ids
        if run is not None and not run.full:
            x, x_t = run.outputs(x, positions), input_ids[positions]
        else:
            if c.shift:
                x = x[:, :-1]
            if positions is not None:
                x, x_t = x[positions], input_ids[positions]
        logits = F.linear(x, tr.wte.weight) if c.weight_tying else tr.ff_out(x)
        logits = logits[..., : c.vocab_size]  # rows past the tokenizer's vocabulary (embedding padding) never drawn
        return subs_log_probs(logits, x_t, c.mask_token_id)


# transformers Llama names -> this module's names (the published LLaDA layout).
_FROM_LLAMA = {"self_attn.q_proj": "q_proj", "self_attn.k_proj": "k_proj", "self_attn.v_proj": "v_proj",
               "self_attn.o_proj": "attn_out", "mlp.gate_proj": "ff_proj", "mlp.up_proj": "up_proj",
               "mlp.down_proj": "ff_out", "input_layernorm": "attn_norm", "post_attention_layernorm": "ff_norm"}


def from_causal_lm(ar, mask_token_id: int, length: int) -> LLaDADenoiser:
    """A shifted bidirectional denoiser holding a trained transformers Llama's weights (AR initialisation,
    DiffuLLaMA / Dream): same embeddings, blocks, rotary positions and output layer; the causal mask is dropped."""
    c = ar.config
    theta = getattr(c, "rope_theta", None) or (getattr(c, "rope_parameters", None) or {}).get("rope_theta", 10_000.0)
    rope_type = (getattr(c, "rope_parameters", None) or getattr(c, "rope_scaling", None) or {}).get("rope_type")
    if c.model_type != "llama" or c.hidden_act != "silu" or c.attention_bias or c.mlp_bias or \
            rope_type not in (None, "default"):
        raise ValueError("AR initialisation takes a plain Llama (silu MLP, no biases, unscaled rotary positions)")
    # A vocabulary without a mask token (SmolLM2's) gets one more embedding row for it, the mean of the others
    # (Dream / DiffuLLaMA); SUBS gives it no probability, so it is never drawn.
    embedding_size = max(c.vocab_size, mask_token_id + 1)
    config = LLaDAConfig(d_model=c.hidden_size, n_heads=c.num_attention_heads, n_kv_heads=c.num_key_value_heads,
                         n_layers=c.num_hidden_layers, mlp_hidden_size=c.intermediate_size, vocab_size=embedding_size,
                         embedding_size=embedding_size, rope_theta=float(theta), rms_norm_eps=c.rms_norm_eps,
                         weight_tying=c.tie_word_embeddings, mask_token_id=mask_token_id, length=length, shift=True,
                         bos_token_id=c.bos_token_id)
    model = LLaDADenoiser(config)
    state = {}
    for name, tensor in ar.state_dict().items():
        if name == "model.embed_tokens.weight":
            extra = tensor.mean(0, keepdim=True).expand(embedding_size - tensor.shape[0], -1)
            state["model.transformer.wte.weight"] = torch.cat([tensor, extra])
        elif name == "model.norm.weight":
            state["model.transformer.ln_f.weight"] = tensor
        elif name == "lm_head.weight":
            if not c.tie_word_embeddings:  # the mask's output row is never read (logits stop at vocab_size)
                state["model.transformer.ff_out.weight"] = torch.cat(
                    [tensor, tensor.new_zeros(embedding_size - tensor.shape[0], tensor.shape[1])])
        elif name.startswith("model.layers."):
            _, _, n, rest = name.split(".", 3)
            module, leaf = rest.rsplit(".", 1)
            state[f"model.transformer.blocks.{n}.{_FROM_LLAMA[module]}.{leaf}"] = tensor
        else:
            raise ValueError(f"AR initialisation: unexpected weight {name}")
    model.load_state_dict(state, strict=True)
    return model
