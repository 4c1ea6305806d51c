"""Real-checkpoint loading, tested on checkpoints the tests build in the published formats (no network)."""
import json

import pytest
import torch
from safetensors.torch import save_file
from tokenizers import ByteLevelBPETokenizer
from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

from edlm.bundle import ModelFilesError
from edlm.hub import load_mdlm_bundle, load_mdlm_checkpoint
from edlm.pipeline import infill

MDLM_CONFIG = {"model_type": "mdlm", "architectures": ["MDLM"], "vocab_size": None, "model_length": 64,
               "hidden_dim": 32, "cond_dim": 16, "n_blocks": 2, "n_heads": 2, "dropout": 0.1,
               "time_conditioning": False, "auto_map": {"AutoConfig": "config.MDLMConfig",
                                                        "AutoModelForMaskedLM": "modeling_mdlm.MDLM"}}


def published_mdlm_state_dict(cfg: dict) -> dict:
    """Random weights under exactly the published key names of the MDLM DiT."""
    g = torch.Generator().manual_seed(0)
    d, c, v, n = cfg["hidden_dim"], cfg["cond_dim"], cfg["vocab_size"], cfg["n_blocks"]

    def r(*shape):
        return torch.randn(*shape, generator=g) * 0.05

    sd = {"backbone.vocab_embed.embedding": r(v, d), "backbone.sigma_map.mlp.0.weight": r(c, 256),
          "backbone.sigma_map.mlp.0.bias": r(c), "backbone.sigma_map.mlp.2.weight": r(c, c),
          "backbone.sigma_map.mlp.2.bias": r(c), "backbone.rotary_emb.inv_freq": r(d // cfg["n_heads"] // 2),
          "backbone.output_layer.norm_final.weight": torch.ones(d), "backbone.output_layer.linear.weight": r(v, d),
          "backbone.output_layer.linear.bias": r(v), "backbone.output_layer.adaLN_modulation.weight": r(2 * d, c),
          "backbone.output_layer.adaLN_modulation.bias": r(2 * d)}
    for i in range(n):
        p = f"backbone.blocks.{i}."
        sd.update({p + "norm1.weight": torch.ones(d), p + "attn_qkv.weight": r(3 * d, d),
                   p + "attn_out.weight": r(d, d), p + "norm2.weight": torch.ones(d),
                   p + "mlp.0.weight": r(4 * d, d), p + "mlp.0.bias": r(4 * d), p + "mlp.2.weight": r(d, 4 * d),
                   p + "mlp.2.bias": r(d), p + "adaLN_modulation.weight": r(6 * d, c),
                   p + "adaLN_modulation.bias": r(6 * d)})
    return sd


@pytest.fixture(scope="module")
def gpt2_style(tmp_path_factory, corpus):
    """A GPT-2-format tokenizer (byte-level BPE) and a small random GPT-2 LM, saved like a Hub folder."""
    root = tmp_path_factory.mktemp("gpt2")
    bpe = ByteLevelBPETokenizer()
    bpe.train([str(p) for p in sorted(corpus.glob("*.txt"))], vocab_size=400, special_tokens=["<|endoftext|>"])
    bpe.save_model(str(root))  # vocab.json + merges.txt, as GPT-2 publishes them
    tok = PreTrainedTokenizerFast(tokenizer_object=bpe._tokenizer, bos_token="<|endoftext|>",
                                  eos_token="<|endoftext|>", unk_token="<|endoftext|>")
    tok.save_pretrained(root)
    torch.manual_seed(0)
    lm = GPT2LMHeadModel(GPT2Config(vocab_size=len(tok), n_positions=128, n_embd=32, n_layer=1, n_head=2,
                                    bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id))
    lm.save_pretrained(root, safe_serialization=True)
    return root, len(tok)


@pytest.fixture(scope="module")
def mdlm_dir(tmp_path_factory, gpt2_style):
    _, vocab = gpt2_style
    folder = tmp_path_factory.mktemp("mdlm")
    cfg = dict(MDLM_CONFIG, vocab_size=vocab + 1)  # the mask token appended after the GPT-2 vocabulary
    (folder / "config.json").write_text(json.dumps(cfg))
    save_file(published_mdlm_state_dict(cfg), str(folder / "model.safetensors"))
    return folder


def test_mdlm_checkpoint_loads_into_our_dit(mdlm_dir, gpt2_style):
    model = load_mdlm_checkpoint(mdlm_dir)
    vocab = gpt2_style[1] + 1
    assert model.config.mask_token_id == vocab - 1 and model.config.length == 64
    x = torch.tensor([[5, vocab - 1, 7, vocab - 1]])
    probs = model(x, torch.tensor([0.5])).logits.exp()
    assert probs.shape == (1, 4, vocab)
    assert bool((probs[..., vocab - 1] == 0).all()) and probs[0, 0, 5] == 1 and probs[0, 2, 7] == 1
    assert abs(float(probs[0, 1].sum()) - 1) < 1e-5
    bf16 = load_mdlm_checkpoint(mdlm_dir, dtype=torch.bfloat16)
    assert bf16.backbone.vocab_embed.embedding.dtype == torch.bfloat16
    assert torch.isfinite(bf16(x, torch.tensor([0.5])).logits[0, 1]).any()


def test_full_infill_with_a_gpt2_energy(mdlm_dir, gpt2_style):
    gpt2_dir, _ = gpt2_style
    bundle = load_mdlm_bundle(denoiser=str(mdlm_dir), tokenizer=str(gpt2_dir), energy=str(gpt2_dir), device="cpu")
    assert bundle.tokenizer.mask_token_id == bundle.denoiser.config.mask_token_id
    assert bundle.energy_tokenizer is None  # same tokenizer: ids scored directly
    ev = infill(bundle, "The Congress shall [MASK:5] the law.", sampler="edlm-ar", steps=6, k=3, is_window=1.0)
    assert ev.final and ev.text.startswith("The Congress shall ") and ev.text.endswith(" the law.")
    assert ev.energy_calls > 0


def test_text_level_energy_pairs_different_tokenizers(bundle, gpt2_style):
    """Our sentencepiece denoiser with a GPT-2-tokenised causal LM as the energy."""
    from dataclasses import replace

    from edlm.hub import load_causal_lm

    ar, ar_tok = load_causal_lm(str(gpt2_style[0]))
    paired = replace(bundle, ar=ar, energy_tokenizer=ar_tok)
    ev = infill(paired, "We the people [MASK:4] of the Union.", sampler="edlm-ar", steps=4, k=3, is_window=1.0)
    assert ev.final and ev.text.startswith("We the people ") and ev.energy_calls > 0


def test_missing_or_wrong_checkpoints_are_clear(tmp_path, mdlm_dir):
    with pytest.raises(ModelFilesError, match="no config.json"):
        load_mdlm_checkpoint(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "mdlm"}))
    (tmp_path / "pytorch_model.bin").write_bytes(b"not loaded")
    with pytest.raises(ModelFilesError, match="only safetensors"):
        load_mdlm_checkpoint(tmp_path)


def test_offline_hub_id_says_what_to_download(monkeypatch):
    from edlm.hub import fetch

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelFilesError, match="hf download"):
        fetch("kuleshov-group/no-such-model-here")


def test_unwritable_cache_is_named_with_the_fix(monkeypatch, tmp_path):
    """A cache under a regular file cannot be created even by root: the error says so and how to fix it."""
    from huggingface_hub import constants

    from edlm.hub import cache_problem, fetch

    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(blocker / "hub"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(ModelFilesError, match="cache folder .* is not writable.*HF_HOME"):
        fetch("kuleshov-group/no-such-model-here")
    assert cache_problem(tmp_path / "fine") is None
    with pytest.raises(ModelFilesError, match="not writable"):  # the whole bundle loader says the same
        load_mdlm_bundle(denoiser="kuleshov-group/no-such-model-here", energy=None)


def test_text_level_energy_chooses_mask_lengths_and_honours_its_settings(bundle, gpt2_style):
    """[MASK] lengths are scored on text (no diffusion ids reach the other tokenizer's model); product weighting
    is honoured; carry-over and the energy horizon, which need shared token positions, are refused with a reason;
    `ar` is refused."""
    from dataclasses import replace

    from edlm.energy import TextAREnergy
    from edlm.hub import load_causal_lm

    ar, ar_tok = load_causal_lm(str(gpt2_style[0]))
    paired = replace(bundle, ar=ar, energy_tokenizer=ar_tok)
    ev = infill(paired, "We the people [MASK] of the Union.", sampler="edlm-ar", steps=4, k=2, is_window=1.0)
    assert ev.final and ev.lengths[0] in ev.length_scores and ev.text.endswith(" of the Union.")
    with pytest.raises(ValueError, match="carry_over"):
        infill(paired, "We the people [MASK:3] of it.", sampler="edlm-ar", carry_over=True)
    with pytest.raises(ValueError, match="leave energy_horizon at 0"):
        infill(paired, "We the people [MASK:3] of it.", sampler="edlm-ar", energy_horizon=8)
    with pytest.raises(ValueError, match="another tokenizer"):
        infill(paired, "We the people [MASK:3]", sampler="ar")
    energy = TextAREnergy(ar, ar_tok, bundle.tokenizer, weighting="product")
    cands = torch.tensor([[10, 11, 12], [13, 14, 15]])
    log_q = torch.tensor([-1.0, -50.0])
    ratio = TextAREnergy(ar, ar_tok, bundle.tokenizer).log_weights(cands, cands, torch.ones(2), log_q, k=2)
    product = energy.log_weights(cands, cands, torch.ones(2), log_q, k=2)
    assert torch.allclose(ratio, product - log_q)
