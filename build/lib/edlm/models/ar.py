"""The autoregressive LM (EDLM-AR energy, `ar` baseline, benchmark judge): a standard transformers Llama."""
from __future__ import annotations

import inspect

from transformers import LlamaConfig, LlamaForCausalLM


def ar_config(vocab_size: int, bos_token_id: int, eos_token_id: int, pad_token_id: int, hidden_size: int = 256,
              n_layers: int = 4, n_heads: int = 4, max_length: int = 129) -> LlamaConfig:
    """A small Llama: tied embeddings, SwiGLU width ~2.7x, one extra position for the BOS token."""
    return LlamaConfig(vocab_size=vocab_size, hidden_size=hidden_size, intermediate_size=(8 * hidden_size) // 3,
                       num_hidden_layers=n_layers, num_attention_heads=n_heads, num_key_value_heads=n_heads,
                       max_position_embeddings=max_length, tie_word_embeddings=True, bos_token_id=bos_token_id,
                       eos_token_id=eos_token_id, pad_token_id=pad_token_id)


def new_ar_model(**kwargs) -> LlamaForCausalLM:
    return LlamaForCausalLM(ar_config(**kwargs))


def forward_with_cache(model, input_ids, cache=None, **kwargs):
    """One causal-LM forward that continues from `cache` (None: start fresh) and returns (output, new cache).

    transformers renamed the key/value cache argument and output from `past_key_values` to `cache` (5.24
    deprecates the old name, 5.40 removes it; 5.23 accepts `cache=` but ignores it): the name is taken from the
    model's own forward signature, so both sides of the rename work and no deprecation notice is printed."""
    name = "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"
    out = model(input_ids=input_ids, use_cache=True, **{name: cache}, **kwargs)
    new = out["cache"] if "cache" in out else out["past_key_values"]
    return out, new
