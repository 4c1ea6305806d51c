import shutil

import pytest

from edlm.bundle import ModelFilesError, load_folder, verify_manifest


def test_manifest_lists_every_file(bundle_dir):
    import json

    manifest = json.loads((bundle_dir / "manifest.json").read_text())
    assert "denoiser/model.safetensors" in manifest and "tokenizer/tokenizer.json" in manifest
    verify_manifest(bundle_dir)


def test_corrupt_and_missing_files_are_named(bundle_dir, tmp_path):
    copy = tmp_path / "b"
    shutil.copytree(bundle_dir, copy)
    weights = copy / "ar" / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(ModelFilesError, match="corrupt.*ar/model.safetensors"):
        load_folder(copy)
    weights.unlink()
    with pytest.raises(ModelFilesError, match="missing.*ar/model.safetensors"):
        load_folder(copy)


def test_not_a_bundle(tmp_path):
    with pytest.raises(ModelFilesError, match="no model bundle"):
        load_folder(tmp_path)


def test_only_safetensors_are_loaded(bundle_dir):
    files = [p.name for p in bundle_dir.rglob("*") if p.is_file()]
    assert not any(f.endswith((".bin", ".pt", ".pkl", ".pth", ".ckpt")) for f in files)


def test_requests_arriving_together_load_a_model_once(monkeypatch):
    """Eight threads ask for a model not loaded yet at the same moment: one load, and all get the same bundle."""
    import threading
    import time

    from edlm import presets

    loads = []

    def slow_resolve(model, device=None, dtype=None):
        loads.append(model)
        time.sleep(0.3)
        return presets.Bundle(name=model, tokenizer=None, denoiser=None)

    monkeypatch.setattr(presets, "resolve", slow_resolve)
    monkeypatch.setattr(presets, "_CACHE", {})
    start, got = threading.Barrier(8), []

    def ask():
        start.wait()
        got.append(presets.load_bundle("a-model-not-loaded-yet", device="cpu", dtype="float32"))

    threads = [threading.Thread(target=ask) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert loads == ["a-model-not-loaded-yet"] and len(got) == 8 and all(b is got[0] for b in got)


def test_auto_dtype_is_bfloat16_only_where_the_cpu_computes_it(monkeypatch):
    import torch

    from edlm import bundle as b

    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    monkeypatch.setattr(b, "cpu_computes_bfloat16", lambda: True)
    assert b.resolve_dtype("auto", cpu) is torch.bfloat16 and b.resolve_dtype(None, cuda) is torch.bfloat16
    monkeypatch.setattr(b, "cpu_computes_bfloat16", lambda: False)
    assert b.resolve_dtype("auto", cpu) is torch.float32 and b.resolve_dtype("bfloat16", cpu) is torch.bfloat16


def test_auto_dtype_is_float32_for_the_particle_sampler(monkeypatch, bundle_dir, tmp_path):
    """edlm-smc's registry entry asks for float32 (its win over mdlm fell within noise in bfloat16): `auto` loads
    the models in float32 for it, a named dtype is kept, and other samplers keep the device's pick."""
    import torch

    from edlm import bundle as b
    from edlm.presets import load_bundle

    cpu = torch.device("cpu")
    monkeypatch.setattr(b, "cpu_computes_bfloat16", lambda: True)
    assert b.resolve_dtype("auto", cpu, "edlm-smc") is torch.float32
    assert b.resolve_dtype(None, torch.device("cuda"), "edlm-smc") is torch.float32
    assert b.resolve_dtype("auto", cpu, "edlm-ar") is torch.bfloat16 and b.resolve_dtype("auto", cpu) is torch.bfloat16
    assert b.resolve_dtype("bfloat16", cpu, "edlm-smc") is torch.bfloat16
    from edlm.presets import is_loaded

    folder = str(shutil.copytree(bundle_dir, tmp_path / "fresh"))  # a name no other test has loaded
    plain = load_bundle(folder, sampler="mdlm")
    assert next(plain.denoiser.parameters()).dtype == torch.bfloat16
    # the app shows "loading" before the float32 copy: the bf16 bundle is not the one edlm-smc runs
    assert is_loaded(folder, "mdlm") and is_loaded(folder) and not is_loaded(folder, "edlm-smc")
    smc = load_bundle(folder, sampler="edlm-smc")
    assert next(smc.denoiser.parameters()).dtype == torch.float32 and next(smc.ar.parameters()).dtype == torch.float32
    assert is_loaded(folder, "edlm-smc")
    # no sampler named: the one a run on that model uses by default (the library's particles: float32)
    assert load_bundle(folder) is smc


def test_a_models_default_sampler_is_known_before_it_loads(tmp_path):
    from edlm.limits import DEFAULTS
    from edlm.presets import default_sampler

    assert DEFAULTS.sampler == "edlm-smc" and default_sampler("default") == "edlm-smc"
    assert default_sampler("general") == "ar-is" and default_sampler("general-diffusion") == "mdlm"
    assert default_sampler("uniform") == "edlm-ar" and default_sampler("continuous") == "edlm-ar"
    (tmp_path / "adapter_base.json").write_text("{}")
    assert default_sampler(str(tmp_path)) == "mdlm"  # an adapted causal LM's folder, as its bundle says
    folder = tmp_path / "bundle"
    (folder / "denoiser").mkdir(parents=True)
    (folder / "denoiser" / "config.json").write_text('{"process": "continuous"}')
    assert default_sampler(str(folder)) == "edlm-ar"  # the particles cannot run a continuous model: the fallback
    (folder / "denoiser" / "config.json").write_text('{"process": "uniform"}')
    assert default_sampler(str(folder)) == "edlm-smc"
