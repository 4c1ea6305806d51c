"""A causal LM made a masked denoiser with LoRA: the mask row a vocabulary without one gets, attention-mask
annealing, training an adapter from a GGUF file on a .jsonl corpus, and the adapter folder loaded back merged."""
import importlib.util
import json

import pytest
import torch

from edlm import infill
from edlm.adapters import merge_adapter, read_base, with_lora
from edlm.bundle import ModelFilesError
from edlm.data import read_split
from edlm.models.llada import from_causal_lm
from edlm.train import TrainConfig, set_future_share, train

from .conftest import TINY

needs_gguf = pytest.mark.skipif(importlib.util.find_spec("gguf") is None, reason="the gguf package is not installed")


def _tiny_llama(vocab: int = 40):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    return LlamaForCausalLM(LlamaConfig(vocab_size=vocab, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                        num_attention_heads=4, num_key_value_heads=2, bos_token_id=1,
                                        eos_token_id=2, tie_word_embeddings=True)).eval()


def test_a_vocabulary_without_a_mask_gets_a_mean_row_that_is_never_drawn():
    ar = _tiny_llama()
    den = from_causal_lm(ar, mask_token_id=40, length=16).eval()
    wte = den.model.transformer.wte.weight
    assert wte.shape == (41, 32) and torch.allclose(wte[40], ar.model.embed_tokens.weight.mean(0))
    x = torch.full((2, 8), 40)
    x[:, ::3] = 7
    with torch.no_grad():
        lp = den(x).logits
    assert lp.shape == (2, 8, 41) and torch.isinf(lp[..., 40]).all() and torch.isfinite(lp[x == 40][:, :40]).all()


def test_annealed_attention_runs_from_causal_to_bidirectional():
    ar = _tiny_llama()
    den = from_causal_lm(ar, mask_token_id=40, length=16).eval()
    x = torch.randint(3, 40, (1, 10))
    x[0, 2:5] = 40
    later = x.clone()
    later[0, 9] = (later[0, 9] + 1) % 40
    with torch.no_grad():
        set_future_share(den, 0.0)  # a causal LM's attention: nothing later changes an earlier prediction
        ids = torch.cat([torch.tensor([[1]]), x[:, :-1]], 1)  # the AR reads the mask as its mean row
        logits = ar(inputs_embeds=den.model.transformer.wte(ids)).logits[0, 2:5].log_softmax(-1)
        assert torch.allclose(den(x).logits[0, 2:5, :40], logits, atol=1e-5)
        assert torch.allclose(den(later).logits[0, 2:5], den(x).logits[0, 2:5])
        set_future_share(den, 1.0)
        assert not torch.allclose(den(later).logits[0, 2:5], den(x).logits[0, 2:5])


def test_a_jsonl_corpus_is_read_by_split(tmp_path):
    for split, texts in (("train", ["a b", "c"]), ("validation", ["d"])):
        (tmp_path / f"{split}.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    assert read_split(tmp_path, "train") == ["a b", "c"] and read_split(tmp_path, "validation") == ["d"]
    with pytest.raises(FileNotFoundError, match="test.jsonl"):
        read_split(tmp_path, "test")


@pytest.fixture(scope="module")
def adapter(bundle, tokenizer_dir, corpus, tmp_path_factory):
    """A rank-4 adapter of the tiny AR model (written as a GGUF file, as SmolLM2 ships), trained 6 steps."""
    from .gguf_writer import write_gguf

    root = tmp_path_factory.mktemp("adapter")
    gguf_file = write_gguf(bundle.ar, tokenizer_dir, root / "tiny-ar.gguf")
    data = root / "corpus"
    data.mkdir()
    for split in ("train", "validation"):
        with open(data / f"{split}.jsonl", "w") as f:
            for text in read_split(corpus, split):
                f.write(json.dumps({"text": text}) + "\n")
    cfg = TrainConfig(kind="denoiser", out_dir=str(root / "run"), corpus=str(data), tokenizer=None, arch="llama",
                      init_ar=str(gguf_file), lora=4, anneal_steps=3, lr=1e-2,
                      **(TINY | {"eval_every": 6, "save_every": 6}), max_steps=6)
    return train(cfg), gguf_file


@needs_gguf
def test_an_adapter_trains_from_a_gguf_file_and_ships_only_itself(adapter):
    folder, gguf_file = adapter
    names = {p.name for p in folder.iterdir()}
    assert {"adapter_model.safetensors", "adapter_config.json", "adapter_base.json"} <= names
    assert "model.safetensors" not in names  # the base weights come from the GGUF file, not this folder
    info = read_base(folder)
    assert info["base"] == str(gguf_file) and info["length"] == TINY["seq_len"]
    log = [json.loads(line) for line in (folder.parent.parent / "log.jsonl").read_text().splitlines()]
    assert log[-1]["step"] == 6 and "nelbo" in log[-1]["val"]


@needs_gguf
def test_the_merged_adapter_is_the_trained_network_and_fills_text(adapter, monkeypatch, tmp_path):
    from peft import LoraConfig, get_peft_model, set_peft_model_state_dict
    from safetensors.torch import load_file

    from edlm import hub
    from edlm.presets import resolve

    monkeypatch.setenv("EDLM_CACHE", str(tmp_path))
    folder, gguf_file = adapter
    bundle = resolve(str(folder))
    assert bundle.ar is not None and bundle.denoiser.config.shift
    ar, tok = hub.load_causal_lm(str(gguf_file))
    tok = hub.with_mask_token(tok)
    base = from_causal_lm(ar, tok.mask_token_id, 32).eval()
    unmerged = get_peft_model(from_causal_lm(ar, tok.mask_token_id, 32), LoraConfig.from_pretrained(str(folder)))
    set_peft_model_state_dict(unmerged, load_file(str(folder / "adapter_model.safetensors")))
    x = torch.tensor([tok("We the people of the United States", add_special_tokens=False)["input_ids"]])
    x[0, 2:4] = tok.mask_token_id
    with torch.no_grad():
        merged, lora, before = bundle.denoiser(x).logits, unmerged.eval()(x).logits, base(x).logits
    at = x == tok.mask_token_id
    assert torch.allclose(merged[at], lora[at], atol=1e-4)  # merging changes nothing the network computes
    assert not torch.allclose(merged[at], before[at], atol=1e-3)  # and the adapter did change the network
    text = "We the people of the [MASK:3], in order to form a more [MASK] union."
    for sampler in ("mdlm", "edlm-ar"):
        ev = infill(bundle, text, sampler=sampler, steps=4, seed=0)
        assert ev.text == "We the people of the " + ev.spans[0] + ", in order to form a more " + ev.spans[1] + \
            " union."
        assert infill(bundle, text, sampler=sampler, steps=4, seed=0).text == ev.text
    plain = infill(bundle, text, steps=4, seed=0)  # the adapted model's own defaults: `mdlm`, no energy pass
    assert plain.energy_calls == 0 and plain.text == infill(bundle, text, sampler="mdlm", steps=4, seed=0,
                                                            unmask="confidence", temperature=1.3).text


def test_adapter_folders_that_do_not_fit_are_one_clear_error(tmp_path):
    den = from_causal_lm(_tiny_llama(), mask_token_id=40, length=16)
    with pytest.raises(ModelFilesError, match="only safetensors"):
        merge_adapter(den, tmp_path)  # a pickled adapter_model.bin is never read
    for bad in ({"base": "smollm2", "length": 128}, {"base": "smollm2", "mask_token_id": 5, "length": 1 << 20}):
        (tmp_path / "adapter_base.json").write_text(json.dumps(bad))
        with pytest.raises(ModelFilesError, match="mask_token_id and a length from 8"):
            read_base(tmp_path)
    with pytest.raises(ValueError, match="at least 1"):
        with_lora(den, 0)


def test_the_general_diffusion_preset_names_a_missing_adapter_folder(tmp_path):
    from edlm.presets import resolve

    with pytest.raises(ModelFilesError, match="no adapter folder"):
        resolve(f"general-diffusion:{tmp_path / 'absent'}")


@needs_gguf
def test_training_resumes_from_a_shipped_adapter_folder(adapter, tmp_path):
    from peft import get_peft_model_state_dict
    from safetensors.torch import load_file

    from edlm.train import build_model, training_tokenizer

    folder, gguf_file = adapter
    cfg = TrainConfig(kind="denoiser", out_dir=str(tmp_path / "again"), corpus=str(folder), tokenizer=None,
                      arch="llama", init_ar=str(gguf_file), lora=4, init_from=str(folder), **TINY)
    model = build_model(cfg, training_tokenizer(cfg))
    saved, own = load_file(str(folder / "adapter_model.safetensors")), get_peft_model_state_dict(model)
    assert saved.keys() == own.keys() and all(torch.equal(saved[k], own[k]) for k in saved)
    with pytest.raises(ValueError, match=r"rank 4 \(alpha 8\), not --lora 8"):
        build_model(TrainConfig(**{**cfg.__dict__, "lora": 8}), training_tokenizer(cfg))
