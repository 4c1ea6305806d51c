"""Reliability round 2: each broken promise of the adversarial pass, kept fixed. A fault suite over model folders
(missing, truncated, flipped, wrong types, hostile auto_map) and the command line's edges."""
import json
import shutil
import subprocess
import sys
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edlm.bundle import ModelFilesError, load_folder
from edlm.pipeline import infill
from edlm.spans import SpanSyntaxError, parse, split_decoded
from edlm.tokenizer import decode, encode

PWNED = "import pathlib; pathlib.Path(__file__).with_name('PWNED').write_text('ran')\n"


def cli(*args, stdin: bytes | None = None, timeout=300):
    return subprocess.run([sys.executable, "-m", "edlm", *args], capture_output=True, input=stdin, timeout=timeout)


@pytest.fixture
def copy(bundle_dir, tmp_path):
    dst = tmp_path / "bundle"
    shutil.copytree(bundle_dir, dst)
    return dst


# 2. A model folder never runs its own code.
@pytest.mark.parametrize("part, config", [("tokenizer", "tokenizer_config.json"), ("denoiser", "config.json"),
                                          ("ar", "config.json"), ("nce", "config.json")])
def test_hostile_auto_map_is_refused_and_nothing_runs(copy, part, config):
    path = copy / part / config
    cfg = json.loads(path.read_text())
    cfg["auto_map"] = {"AutoTokenizer": ["evil.EvilTok", None], "AutoConfig": "evil.EvilConfig",
                       "AutoModel": "evil.Evil", "AutoModelForCausalLM": "evil.Evil"}
    path.write_text(json.dumps(cfg))
    (copy / part / "evil.py").write_text(PWNED)
    (copy / "manifest.json").unlink()  # an unverified user folder
    with pytest.raises(ModelFilesError, match="auto_map"):
        load_folder(copy)
    r = cli("infill", "--model", str(copy), "--text", "a [MASK:2] b", "--json", timeout=120)
    assert r.returncode == 2 and json.loads(r.stdout)["error"]  # one JSON line, no prompt before it
    assert b"custom code" not in r.stdout + r.stderr
    assert not (copy / part / "PWNED").exists()


@pytest.mark.parametrize("fault, message", [
    ("no-sha", "no sha256"), ("config-list", "JSON dict"), ("truncated", "denoiser"), ("length-0", "length"),
    ("mask-id", "mask_token_id"), ("bad-json", "cannot read"), ("no-manifest-embedded", "manifest.json is missing"),
])
def test_faulty_model_folders_get_one_clear_message(copy, fault, message, monkeypatch):
    manifest = json.loads((copy / "manifest.json").read_text())
    require = False
    if fault == "no-sha":
        manifest["denoiser/config.json"].pop("sha256")
        (copy / "manifest.json").write_text(json.dumps(manifest))
    else:
        (copy / "manifest.json").unlink()
    if fault == "config-list":
        (copy / "denoiser" / "config.json").write_text("[1, 2]")
    if fault == "truncated":
        w = copy / "denoiser" / "model.safetensors"
        w.write_bytes(w.read_bytes()[:100])
    if fault in ("length-0", "mask-id"):
        cfg = json.loads((copy / "denoiser" / "config.json").read_text())
        cfg.update({"length": 0} if fault == "length-0" else {"mask_token_id": 3})
        (copy / "denoiser" / "config.json").write_text(json.dumps(cfg))
    if fault == "bad-json":
        (copy / "denoiser" / "config.json").write_text("{not json")
    if fault == "no-manifest-embedded":
        require = True
    with pytest.raises(ModelFilesError, match=message):
        load_folder(copy, require_manifest=require)


def test_unverified_folder_loads_with_a_plain_warning(copy, caplog):
    (copy / "manifest.json").unlink()
    with caplog.at_level("WARNING", logger="edlm"):
        load_folder(copy)
    assert "unverified" in caplog.text


# 3. Text files are byte-exact (CRLF, lone CR) and read with a bound.
def test_text_file_keeps_line_endings(bundle_dir, tmp_path):
    f = tmp_path / "t.txt"
    f.write_bytes(b"Line one.\r\nThe [MASK:3] of it.\r\nOld Mac\rline.")
    r = cli("infill", "--model", str(bundle_dir), "--text-file", str(f), "--sampler", "mdlm", "--steps", "3",
            "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["text"].startswith("Line one.\r\nThe ") and out["text"].endswith(" of it.\r\nOld Mac\rline.")
    r = cli("infill", "--model", str(bundle_dir), "--text-file", "-", "--sampler", "mdlm", "--steps", "2", "--json",
            stdin=b"A\r\nB [MASK:2]\r\n")
    assert json.loads(r.stdout)["text"].startswith("A\r\nB ") and json.loads(r.stdout)["text"].endswith("\r\n")


def test_endless_stdin_is_cut_at_the_limit_not_read_whole():
    from edlm.commands import read_bounded
    from edlm.limits import LIMITS

    class Endless:
        read_calls = 0

        def read(self, n):
            self.read_calls += 1
            return b"a" * n

    stream = Endless()
    with pytest.raises(ValueError, match="more than 20,000 characters"):
        read_bounded(stream, LIMITS.max_text_chars, "standard input")
    assert stream.read_calls <= 2


# 4. Characters split across tokens are never garbled, in the whole text and the spans alike.
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text(min_size=1, max_size=30), st.data())
def test_runs_decode_like_the_whole(tokenizer, text, data):
    ids = encode(tokenizer, text)
    kinds = data.draw(st.lists(st.sampled_from(["new", "filled"]), min_size=len(ids), max_size=len(ids)))
    pieces = split_decoded(tokenizer, ids, kinds, "[MASK]")
    assert "".join(t for t, _ in pieces) == decode(tokenizer, ids) == text


def test_whole_text_equals_fixed_parts_and_spans_over_many_seeds(bundle):
    text = "We must act [MASK:12] and so we will."
    for seed in range(12):
        ev = infill(bundle, text, sampler="mdlm", steps=2, seed=seed)
        assert ev.text == "We must act " + ev.spans[0] + " and so we will."
        assert ev.text.count("\ufffd") == "".join(ev.spans).count("\ufffd")


# 5. A work budget checked before anything runs.
def test_work_budget_refuses_before_running(bundle):
    text = " ".join(f"part {i} [MASK:90]" for i in range(11))
    start = time.perf_counter()
    with pytest.raises(ValueError, match="token-passes, over the limit"):
        infill(bundle, text, sampler="edlm-ar", steps=256, k=32, is_window=1.0)
    assert time.perf_counter() - start < 5


def test_too_many_auto_spans_fail_before_drafting(bundle):
    text = " ".join(f"w{i} [MASK]" for i in range(260))
    start = time.perf_counter()
    with pytest.raises(ValueError, match="masked tokens"):
        infill(bundle, text, sampler="mdlm", steps=4)
    assert time.perf_counter() - start < 5


# Smaller holes.
def test_lone_surrogates_and_non_ascii_lengths_are_refused():
    with pytest.raises(ValueError, match="lone surrogate"):
        parse("\ud800 [MASK:2]")
    for bad in ("[MASK:\u0663]", "[MASK:\uff13]", "[MASK:+3]"):
        with pytest.raises(SpanSyntaxError, match="bad span length"):
            parse(f"a {bad} b")


@pytest.mark.parametrize("args, message", [
    (["infill", "--text", "a [MASK:2]", "--device", "xpu"], "unknown device"),
    (["infill", "--text", "a [MASK:2]", "--steps", "many"], "invalid int value"),
    (["infill", "--text", "a [MASK:2]", "--nope"], "unrecognized arguments"),
    (["infill"], "one of the arguments --text --text-file is required"),
])
def test_cli_errors_are_one_line_also_as_json(args, message):
    r = cli(*args, "--json", timeout=120)
    assert r.returncode == 2 and r.stderr.strip() == b""
    out = json.loads(r.stdout)
    assert message in out["error"] and "\n" not in out["error"]
    r = cli(*args, timeout=120)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and b"Traceback" not in r.stderr


@pytest.mark.parametrize("part, field, value", [
    ("denoiser", "n_heads", 0), ("denoiser", "hidden_size", "256"), ("denoiser", "hidden_size", None),
    ("denoiser", "hidden_size", 256.0), ("denoiser", "n_blocks", 10_000_000), ("denoiser", "hidden_size", 31),
    ("ar", "num_attention_heads", 0), ("ar", "num_hidden_layers", -1), ("nce", "vocab_size", True)])
def test_hostile_shape_fields_are_one_line_naming_the_field(copy, part, field, value):
    """A config whose shaping field has the wrong type or range is refused before any network is built, even
    with a manifest made to match (no ZeroDivisionError at the first forward, no endless allocation)."""
    import hashlib

    path = copy / part / "config.json"
    cfg = json.loads(path.read_text())
    cfg[field] = value
    path.write_text(json.dumps(cfg))
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest[f"{part}/config.json"] = {"sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
                                       "bytes": path.stat().st_size}
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ModelFilesError, match=field if field != "hidden_size" or value != 31 else "split"):
        load_folder(copy)
