"""The shifted bidirectional Llama denoiser and its AR initialisation (DiffuLLaMA / Dream) from a trained AR model."""
import json
import math

import pytest
import torch
import torch.nn.functional as F

from edlm.models.llada import LLaDADenoiser, from_causal_lm
from edlm.train import TrainConfig, build_model, train

from ..conftest import TINY


def _ar(trained):
    from transformers import LlamaForCausalLM

    return LlamaForCausalLM.from_pretrained(trained["ar"], use_safetensors=True, dtype=torch.float32).eval()


def test_ar_initialised_denoiser_is_the_ar_model_with_the_causal_mask_dropped(trained, tokenizer, monkeypatch):
    ar = _ar(trained)
    mask, bos = tokenizer.mask_token_id, tokenizer.bos_token_id
    den = from_causal_lm(ar, mask, 32).eval()
    assert den.config.shift and den.config.bos_token_id == bos
    torch.manual_seed(0)
    x = torch.randint(10, len(tokenizer), (2, 16))
    x[:, 3::4] = mask
    with torch.no_grad():  # the AR reads [BOS] + x_t; its output at position i predicts token i
        logits = ar(input_ids=torch.cat([torch.full_like(x[:, :1], bos), x[:, :-1]], 1)).logits
        logits[..., mask] = float("-inf")
        expected = logits.log_softmax(-1)
        sdpa = F.scaled_dot_product_attention
        monkeypatch.setattr(F, "scaled_dot_product_attention", lambda q, k, v, **kw: sdpa(q, k, v, is_causal=True))
        causal = den(x).logits
        monkeypatch.undo()
        both = den(x).logits
        changed = x.clone()
        changed[:, -1] = (changed[:, -1] + 1) % len(tokenizer)
        later = den(changed).logits
    at = x == mask
    assert torch.allclose(causal[at], expected[at], atol=1e-4)  # same weights, same positions, same rotary
    assert torch.all(causal[~at].argmax(-1) == x[~at])           # SUBS: visible tokens are copied
    assert not torch.allclose(both[at], causal[at], atol=1e-3)   # attention is bidirectional without the patch
    assert not torch.allclose(later[:, 3], both[:, 3], atol=1e-5)  # a later token changes an earlier prediction


def test_llama_denoiser_trains_from_the_ar_model_and_from_scratch(trained, corpus, tokenizer_dir, tokenizer,
                                                                  tmp_path):
    from edlm.data import consecutive_windows, read_split, token_stream
    from edlm.evaluate import elbo_perplexity

    cfg = dict(kind="denoiser", corpus=str(corpus), tokenizer=str(tokenizer_dir), lr=3e-3, arch="llama", **TINY)
    windows = consecutive_windows(token_stream(tokenizer, read_split(str(corpus), "validation")), 32, limit=16)
    torch.manual_seed(0)
    scratch = build_model(TrainConfig(out_dir=str(tmp_path / "s"), **cfg), tokenizer).eval()
    from_ar = build_model(TrainConfig(out_dir=str(tmp_path / "a"), init_ar=str(trained["ar"]), **cfg),
                          tokenizer).eval()
    # Before any denoiser training the AR weights already know the corpus: the ELBO bound is far lower.
    assert elbo_perplexity(from_ar, windows, draws=2) < 0.5 * elbo_perplexity(scratch, windows, draws=2)
    best = train(TrainConfig(out_dir=str(tmp_path / "a"), init_ar=str(trained["ar"]), max_steps=20, **cfg))
    log = [json.loads(line) for line in (tmp_path / "a" / "log.jsonl").read_text().splitlines()]
    assert log[-1]["step"] == 20 and "nelbo" in log[-1]["val"]
    model = LLaDADenoiser.from_pretrained(best, use_safetensors=True)
    assert model.config.shift and model.config.mask_token_id == tokenizer.mask_token_id
    from safetensors.torch import load_file

    saved = load_file(str(best / "model.safetensors"))  # loading never re-initialises a saved weight
    assert all(torch.equal(model.state_dict()[k], v) for k, v in saved.items())


def test_llama_denoiser_refuses_what_it_does_not_do(trained, corpus, tokenizer_dir, tokenizer, tmp_path):
    cfg = dict(kind="denoiser", out_dir=str(tmp_path / "x"), corpus=str(corpus), tokenizer=str(tokenizer_dir),
               **TINY)
    with pytest.raises(ValueError, match="masked diffusion only"):
        build_model(TrainConfig(arch="llama", self_conditioning=True, **cfg), tokenizer)
    with pytest.raises(ValueError, match="--arch llama"):
        build_model(TrainConfig(init_ar=str(trained["ar"]), **cfg), tokenizer)
    with pytest.raises(ValueError, match="bos_token_id"):
        from edlm.models.llada import LLaDAConfig

        LLaDAConfig(shift=True)


def test_nce_energy_fine_tunes_on_the_llama_denoisers_samples(trained, corpus, tokenizer_dir, tokenizer, tmp_path):
    """The NCE energy is a DiT; with an AR-initialised denoiser drawing the negatives it starts from a trained
    energy (or a DiT denoiser) given as --init, and says so when it has none."""
    from safetensors.torch import load_file

    from edlm.models import EnergyModel
    from edlm.train import Objective

    llama = tmp_path / "llama"
    from_causal_lm(_ar(trained), tokenizer.mask_token_id, TINY["seq_len"]).save_pretrained(llama)
    cfg = dict(kind="nce", corpus=str(corpus), tokenizer=str(tokenizer_dir), denoiser=str(llama), lr=1e-3, **TINY)
    with pytest.raises(ValueError, match="DiT denoiser or a trained energy"):
        build_model(TrainConfig(out_dir=str(tmp_path / "x"), **cfg), tokenizer)
    assert isinstance(Objective(TrainConfig(out_dir="x", **cfg), tokenizer, "cpu").sampler_denoiser, LLaDADenoiser)
    half = tmp_path / "nce16"  # the shipped energy is a float16 export: training it must still run in float32
    EnergyModel.from_pretrained(trained["nce"], use_safetensors=True).half().save_pretrained(half)
    best = train(TrainConfig(out_dir=str(tmp_path / "nce"), init_from=str(half), max_steps=10, **cfg))
    log = [json.loads(line) for line in (tmp_path / "nce" / "log.jsonl").read_text().splitlines()]
    assert log[-1]["step"] == 10 and 0.0 <= log[-1]["val"]["acc"] <= 1.0
    assert all(math.isfinite(x["train"]["nce"]) and math.isfinite(x["val"]["nce"]) for x in log)
    start, tuned = load_file(str(half / "model.safetensors")), load_file(str(best / "model.safetensors"))
    assert start.keys() == tuned.keys()  # the same energy, fine-tuned: no weight re-initialised or dropped
    assert all(v.dtype == torch.float32 for v in tuned.values())
    assert any(not torch.equal(start[k].float(), tuned[k]) for k in start)
    from_dit = build_model(TrainConfig(out_dir="x", init_from=str(trained["denoiser"]), **cfg), tokenizer)
    assert from_dit.config.model_type == "edlm-energy"
