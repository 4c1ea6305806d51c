"""SEDD and LLaDA checkpoints in their published formats (config fields and state-dict keys as published, random
weights, built here: no network), loaded and run through the same code a user runs."""
import json
import math

import pytest
import torch
from safetensors.torch import save_file

from edlm.bundle import ModelFilesError
from edlm.models import subs_log_probs
from edlm.pipeline import infill
from tests.test_hub import gpt2_style, published_mdlm_state_dict  # noqa: F401  (the shared GPT-2 fixture)

SEDD_CONFIG = {"ngpus": 8, "tokens": None, "training": {"batch_size": 512, "ema": 0.9999},
               "graph": {"type": "absorb", "file": "data", "report_all": False},
               "noise": {"type": "loglinear", "sigma_min": 1e-4, "sigma_max": 20},
               "sampling": {"predictor": "euler", "steps": 128, "noise_removal": True},
               "model": {"name": "small", "type": "ddit", "hidden_size": 32, "cond_dim": 16, "length": 64,
                         "n_blocks": 2, "n_heads": 2, "scale_by_sigma": True, "dropout": 0.1}}


@pytest.fixture(scope="module")
def sedd_dir(tmp_path_factory, gpt2_style):  # noqa: F811
    folder = tmp_path_factory.mktemp("sedd")
    cfg = dict(SEDD_CONFIG, tokens=gpt2_style[1])  # the absorbing graph adds the mask after the GPT-2 tokens
    (folder / "config.json").write_text(json.dumps(cfg))
    mdlm_like = {"hidden_dim": 32, "cond_dim": 16, "vocab_size": cfg["tokens"] + 1, "n_blocks": 2, "n_heads": 2}
    state = {k.removeprefix("backbone."): v for k, v in published_mdlm_state_dict(mdlm_like).items()}
    save_file(state, str(folder / "model.safetensors"))  # SEDD's keys have no backbone. prefix
    return folder


def test_sedd_scores_become_the_x0_distribution():
    """The conversion, on an exact case: for a true p0 over a small vocabulary, the absorbing forward marginals give
    the concentration ratios s_y = p_t(y) / p_t(mask) = p0(y) / (e^sigma - 1); SEDD's shifted log-scores (any
    per-position constant added) through the SUBS head give back p0."""
    V, mask = 7, 6
    p0 = torch.tensor([0.1, 0.3, 0.05, 0.25, 0.2, 0.1])
    for sigma in (0.01, 0.7, 4.0):
        alpha = math.exp(-sigma)
        ratios = alpha * p0 / (1 - alpha)  # brute force: p_t(x_t = y) / p_t(x_t = mask) for one position
        assert torch.allclose(ratios, p0 / math.expm1(sigma))
        log_scores = torch.cat([ratios.log(), torch.zeros(1)]) - math.log(math.expm1(sigma)) - math.log(V - 1)
        out = subs_log_probs(log_scores.view(1, 1, V), torch.tensor([[mask]]), mask).exp()[0, 0]
        assert torch.allclose(out[:mask], p0, atol=1e-6) and out[mask] == 0


def test_sedd_checkpoint_loads_and_infills(sedd_dir, gpt2_style):  # noqa: F811
    from edlm.hub import load_mdlm_bundle, load_sedd_checkpoint
    from edlm.noise import get_schedule

    model = load_sedd_checkpoint(sedd_dir)
    vocab = gpt2_style[1] + 1
    assert model.config.mask_token_id == vocab - 1 and model.config.time_conditioning and model.config.length == 64
    t = torch.tensor([0.3, 0.9])  # SEDD conditions on the total noise of its log-linear schedule (eps 1e-3)
    assert torch.allclose(model.sigma_of(t), -torch.log1p(-(1 - 1e-3) * t))
    assert torch.allclose(get_schedule("loglinear").sigma(t), model.sigma_of(t))
    x = torch.tensor([[5, vocab - 1, 7, vocab - 1]])
    a, b = model(x, torch.tensor([0.2])).logits.exp(), model(x, torch.tensor([0.9])).logits.exp()
    assert not torch.allclose(a[0, 1], b[0, 1])  # the noise level is an input
    assert abs(float(a[0, 1].sum()) - 1) < 1e-5 and a[0, 0, 5] == 1 and bool((a[..., vocab - 1] == 0).all())
    gpt2_dir = str(gpt2_style[0])
    bundle = load_mdlm_bundle(denoiser=str(sedd_dir), tokenizer=gpt2_dir, energy=gpt2_dir, device="cpu", name="sedd")
    ev = infill(bundle, "The Congress shall [MASK:5] the law.", sampler="edlm-ar", steps=6, k=3, is_window=1.0)
    assert ev.final and ev.text.startswith("The Congress shall ") and ev.text.endswith(" the law.")
    bad = json.loads((sedd_dir / "config.json").read_text())
    bad["graph"]["type"] = "uniform"
    from edlm.hub import dit_config_from_sedd

    with pytest.raises(ModelFilesError, match="only absorbing"):
        dit_config_from_sedd(bad)
    broken = sedd_dir.parent / "sedd-broken"
    broken.mkdir()
    (broken / "model.safetensors").write_bytes((sedd_dir / "model.safetensors").read_bytes())
    cfg = json.loads((sedd_dir / "config.json").read_text())
    del cfg["tokens"]
    (broken / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ModelFilesError, match="sedd-broken/config.json lacks or misstates a field.*tokens"):
        load_sedd_checkpoint(broken)


def llada_config(vocab: int, mask: int, **over) -> dict:
    """A published LLaDA config.json, shrunk (field names and the values of the 8B release's switches)."""
    cfg = {"model_type": "llada", "architectures": ["LLaDAModelLM"],
           "auto_map": {"AutoConfig": "configuration_llada.LLaDAConfig",
                        "AutoModelForCausalLM": "modeling_llada.LLaDAModelLM"},
           "activation_type": "silu", "alibi": False, "alibi_bias_max": 8.0, "attention_dropout": 0.0,
           "attention_layer_norm": False, "attention_layer_norm_with_affine": True, "bias_for_layer_norm": False,
           "block_group_size": 1, "block_type": "llama", "d_model": 32, "embedding_dropout": 0.0,
           "embedding_size": vocab, "eos_token_id": 0, "flash_attention": False, "include_bias": False,
           "include_qkv_bias": False, "init_device": "meta", "init_fn": "mitchell", "input_emb_norm": False,
           "layer_norm_type": "rms", "layer_norm_with_affine": True, "mask_token_id": mask,
           "max_sequence_length": 64, "mlp_hidden_size": 48, "mlp_ratio": 4, "multi_query_attention": None,
           "n_heads": 4, "n_kv_heads": 4, "n_layers": 2, "pad_token_id": 0, "precision": "amp_bf16",
           "residual_dropout": 0.0, "rms_norm_eps": 1e-05, "rope": True, "rope_full_precision": True,
           "rope_theta": 500000.0, "scale_logits": False, "use_cache": False, "vocab_size": vocab,
           "weight_tying": False}
    cfg.update(over)
    return cfg


def published_llada_state_dict(cfg: dict) -> dict:
    g = torch.Generator().manual_seed(1)
    d, h, v = cfg["d_model"], cfg["mlp_hidden_size"], cfg["embedding_size"]
    kv = cfg["n_kv_heads"] * d // cfg["n_heads"]

    def r(*shape):
        return torch.randn(*shape, generator=g) * 0.2

    sd = {"model.transformer.wte.weight": r(v, d), "model.transformer.ln_f.weight": 1 + r(d),
          "model.transformer.ff_out.weight": r(v, d)}
    for i in range(cfg["n_layers"]):
        p = f"model.transformer.blocks.{i}."
        sd.update({p + "attn_norm.weight": 1 + r(d), p + "ff_norm.weight": 1 + r(d), p + "q_proj.weight": r(d, d),
                   p + "k_proj.weight": r(kv, d), p + "v_proj.weight": r(kv, d), p + "attn_out.weight": r(d, d),
                   p + "ff_proj.weight": r(h, d), p + "up_proj.weight": r(h, d), p + "ff_out.weight": r(d, h)})
    return {k: t.to(torch.bfloat16) for k, t in sd.items()}  # published in bfloat16


def write_llada(folder, gpt2_dir, **over):
    """Config, two safetensors shards with their index, and the tokenizer with <|mdm_mask|> added (as published)."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(gpt2_dir)
    tok.add_special_tokens({"additional_special_tokens": ["<|mdm_mask|>"]})
    mask = tok.convert_tokens_to_ids("<|mdm_mask|>")
    tok.save_pretrained(folder)
    cfg = llada_config(len(tok), mask, **over)
    (folder / "config.json").write_text(json.dumps(cfg))
    state = published_llada_state_dict(cfg)
    keys = sorted(state)
    shards = {"model-00001-of-00002.safetensors": keys[: len(keys) // 2],
              "model-00002-of-00002.safetensors": keys[len(keys) // 2:]}
    for name, part in shards.items():
        save_file({k: state[k] for k in part}, str(folder / name))
    index = {"metadata": {}, "weight_map": {k: n for n, part in shards.items() for k in part}}
    (folder / "model.safetensors.index.json").write_text(json.dumps(index))
    return cfg


def test_llada_checkpoint_is_a_bidirectional_x0_denoiser(tmp_path, gpt2_style):  # noqa: F811
    from edlm.hub import load_llada_checkpoint

    cfg = write_llada(tmp_path, str(gpt2_style[0]))
    model = load_llada_checkpoint(tmp_path, dtype=torch.float32)
    mask = cfg["mask_token_id"]
    assert model.config.mask_token_id == mask and model.config.length == 64 and not model.config.time_conditioning
    assert model.model.transformer.wte.weight.dtype == torch.float32
    x = torch.tensor([[5, mask, 7, mask, 9, 11]])
    probs = model(x).logits.exp()
    assert probs.shape == (1, 6, cfg["vocab_size"]) and probs[0, 0, 5] == 1 and probs[0, 2, 7] == 1
    assert bool((probs[..., mask] == 0).all()) and abs(float(probs[0, 1].sum()) - 1) < 1e-5
    later = x.clone()
    later[0, 5] = 12  # a token after the masked position changes its prediction: attention is bidirectional
    assert not torch.allclose(model(later).logits[0, 1], model(x).logits[0, 1])
    positions = x == mask
    assert torch.allclose(model(x, positions=positions).logits, model(x).logits[positions], atol=1e-5)
    from edlm.bundle import load_folder
    from edlm.hub import llada_tokenizer

    saved = tmp_path / "as-bundle"  # saved with save_pretrained, it loads as a bundle folder like ours
    model.save_pretrained(saved / "denoiser")
    llada_tokenizer(tmp_path, mask).save_pretrained(saved / "tokenizer")
    again = load_folder(saved)
    assert type(again.denoiser) is type(model) and torch.equal(again.denoiser(x).logits, model(x).logits)
    gqa = tmp_path / "gqa"
    gqa.mkdir()
    write_llada(gqa, str(gpt2_style[0]), n_kv_heads=2)  # grouped-query attention loads too
    assert load_llada_checkpoint(gqa).model.transformer.blocks[0].k_proj.out_features == 16
    big = tmp_path / "big"
    big.mkdir()
    (big / "config.json").write_text(json.dumps(llada_config(126464, 126336, d_model=4096, n_heads=32, n_kv_heads=32,
                                                             n_layers=32, mlp_hidden_size=12288)))
    with pytest.raises(ModelFilesError, match="8.0 B parameters: on a CPU.*GPU"):  # the 8B release, refused
        load_llada_checkpoint(big, device="cpu")  # before any weight is read (there are none here)
    from edlm.hub import load_llada_bundle

    with pytest.raises(ModelFilesError, match="8.0 B parameters"):  # the bundle loader refuses it the same way
        load_llada_bundle(str(big), energy=None, device="cpu")
    bad = tmp_path / "bad"
    bad.mkdir()
    write_llada(bad, str(gpt2_style[0]), block_type="sequential")
    with pytest.raises(ModelFilesError, match="block_type = 'sequential' is not supported"):
        load_llada_checkpoint(bad)


def test_llada_folder_infills_with_an_energy(tmp_path, gpt2_style, monkeypatch):  # noqa: F811
    """A LLaDA folder passed as the model: its own tokenizer (mask named from the config), a GPT-2 LM as the
    energy; fixed text is kept byte for byte."""
    from edlm.presets import resolve

    write_llada(tmp_path, str(gpt2_style[0]))
    from edlm import hub

    bundle = hub.load_llada_bundle(str(tmp_path), energy=str(gpt2_style[0]), device="cpu", dtype=torch.float32)
    assert bundle.tokenizer.mask_token == "<|mdm_mask|>"
    # (this tiny tokenizer is GPT-2's plus the mask, so ids are scored directly; LLaDA's own vocabulary differs
    # from any energy's and goes through the text-level energy, tested in test_hub.py)
    assert bundle.energy_tokenizer is None
    text = "The Congress shall [MASK:5] the law."
    ev = infill(bundle, text, sampler="edlm-ar", steps=6, k=3, is_window=1.0, seed=2)
    assert ev.final and ev.text.startswith("The Congress shall ") and ev.text.endswith(" the law.")
    assert ev.energy_calls > 0
    monkeypatch.setattr(hub, "DEFAULT_ENERGY", str(gpt2_style[0]))  # (GPT-2 itself is not downloaded in tests)
    again = resolve(str(tmp_path), device="cpu")  # the same folder through --model PATH
    assert again.denoiser.config.model_type == "edlm-llada" and again.ar is not None
    assert infill(again, text, sampler="edlm-ar", steps=6, k=3, is_window=1.0, seed=2).text == ev.text


@pytest.mark.parametrize("preset, repo", [("sedd", "louaaron/sedd-small"), ("llada", "GSAI-ML/LLaDA-8B-Base"),
                                          ("llada-instruct", "GSAI-ML/LLaDA-8B-Instruct")])
def test_presets_name_their_checkpoint_and_say_what_to_download_offline(preset, repo, monkeypatch):
    from edlm.presets import resolve

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelFilesError, match=f"could not get '{repo}'.*hf download {repo}"):
        resolve(preset, device="cpu")


@pytest.mark.parametrize("field, value, message", [
    ("n_layers", 10_000_000, "n_layers"), ("d_model", 2, "heads of an even width"), ("n_heads", 0, "n_heads"),
    ("d_model", "32", "d_model"), ("d_model", None, "d_model"), ("d_model", 32.0, "d_model"),
    ("n_kv_heads", 3, "multiple of n_kv_heads"), ("rope_theta", float("nan"), "rope_theta"),
    ("mask_token_id", 10**9, "mask_token_id"), ("vocab_size", True, "vocab_size")])
def test_hostile_llada_configs_are_refused_before_anything_is_built(tmp_path, gpt2_style, field, value,  # noqa: F811
                                                                    message):
    import json

    from edlm import hub

    write_llada(tmp_path, str(gpt2_style[0]))
    cfg = json.loads((tmp_path / "config.json").read_text())
    cfg[field] = value
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ModelFilesError, match=message):
        hub.load_llada_checkpoint(tmp_path)
