"""Test helper: write a Llama causal LM and its Unigram tokenizer as a GGUF file, in llama.cpp's layout (query and
key rows permuted the way llama.cpp's converter does, which transformers undoes when it reads the file)."""
import json
from pathlib import Path

import torch


def write_gguf(model, tokenizer_dir: Path, out: Path, header: dict | None = None) -> Path:
    """`header` replaces header fields by their writer method, e.g. {"add_block_count": 10**9} (hostile files)."""
    import gguf

    cfg, sd = model.config, {k: v.float() for k, v in model.state_dict().items()}
    tj = json.loads((Path(tokenizer_dir) / "tokenizer.json").read_text())
    vocab = tj["model"]["vocab"]
    added = {a["id"]: a["content"] for a in tj.get("added_tokens", [])}
    w = gguf.GGUFWriter(str(out), arch="llama")
    w.add_context_length(cfg.max_position_embeddings)
    w.add_embedding_length(cfg.hidden_size)
    w.add_block_count(cfg.num_hidden_layers)
    w.add_feed_forward_length(cfg.intermediate_size)
    w.add_head_count(cfg.num_attention_heads)
    w.add_head_count_kv(cfg.num_key_value_heads)
    w.add_layer_norm_rms_eps(cfg.rms_norm_eps)
    w.add_rope_freq_base(10000.0)
    w.add_rope_dimension_count(cfg.hidden_size // cfg.num_attention_heads)
    w.add_vocab_size(cfg.vocab_size)
    w.add_tokenizer_model("llama")
    w.add_token_list([added.get(i, piece) for i, (piece, _) in enumerate(vocab)])
    w.add_token_scores([float(score) for _, score in vocab])
    w.add_token_types([3 if i in added else 1 for i in range(len(vocab))])
    w.add_bos_token_id(cfg.bos_token_id)
    w.add_eos_token_id(cfg.eos_token_id)
    w.add_unk_token_id(tj["model"]["unk_id"])

    def permute(t: torch.Tensor, heads: int) -> torch.Tensor:
        return t.reshape(heads, 2, t.shape[0] // heads // 2, *t.shape[1:]).swapaxes(1, 2).reshape(t.shape)

    w.add_tensor("token_embd.weight", sd["model.embed_tokens.weight"].numpy())
    names = {"self_attn.v_proj": "attn_v", "self_attn.o_proj": "attn_output", "mlp.gate_proj": "ffn_gate",
             "mlp.up_proj": "ffn_up", "mlp.down_proj": "ffn_down", "input_layernorm": "attn_norm",
             "post_attention_layernorm": "ffn_norm"}
    for i in range(cfg.num_hidden_layers):
        p = f"model.layers.{i}."
        q, k = sd[p + "self_attn.q_proj.weight"], sd[p + "self_attn.k_proj.weight"]
        w.add_tensor(f"blk.{i}.attn_q.weight", permute(q, cfg.num_attention_heads).numpy())
        w.add_tensor(f"blk.{i}.attn_k.weight", permute(k, cfg.num_key_value_heads).numpy())
        for ours, theirs in names.items():
            w.add_tensor(f"blk.{i}.{theirs}.weight", sd[p + ours + ".weight"].numpy())
    w.add_tensor("output_norm.weight", sd["model.norm.weight"].numpy())
    w.add_tensor("output.weight", sd.get("lm_head.weight", sd["model.embed_tokens.weight"]).numpy())
    for method, value in (header or {}).items():  # a later value of a key replaces the earlier one
        getattr(w, method)(value)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return out
