"""Bundles in the Hub's format: `edlm bundle` writes the parts, manifest and a model card with YAML front matter
and TEST figures; `load_bundle("owner/repo")` loads it from a Hugging Face cache standing in for the Hub, every
file checked; `push_bundle` uploads only a checked bundle."""
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from edlm.share import is_repo_id, model_card, push_bundle

ROOT = Path(__file__).resolve().parent.parent


def run_cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", "edlm", *args], capture_output=True, text=True, timeout=300,
                          cwd=ROOT, env=env)


@pytest.fixture(scope="module")
def hub_bundle(trained, corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("hubfmt") / "tiny-bundle"
    r = run_cli("bundle", "--out", str(out), "--tokenizer", str(trained["tokenizer"]),
                "--denoiser", str(trained["denoiser"]), "--ar", str(trained["ar"]), "--judge", str(trained["judge"]),
                "--name", "someone/tiny-edlm", "--eval-windows", "4", "--corpus", str(corpus), "--json")
    assert r.returncode == 0, r.stderr
    return out, json.loads(r.stdout)


def test_bundle_writes_a_card_the_hub_reads_with_the_test_figures(hub_bundle):
    out, res = hub_bundle
    card = (out / "README.md").read_text()
    front = card.split("---")[1]
    assert "license: mit" in front and "pipeline_tag: fill-mask" in front and "model-index:" in front
    assert f"value: {res['denoiser_elbo_ppl']:.2f}" in front
    assert 'load_bundle("someone/tiny-edlm")' in card
    manifest = json.loads((out / "manifest.json").read_text())
    assert "denoiser/model.safetensors" in manifest and not any(k.endswith(".bin") for k in manifest)
    r = run_cli("bundle", "--out", str(out), "--tokenizer", "x", "--denoiser", "y")
    assert r.returncode == 2 and "no such folder" in r.stderr


def stand_in_hub(cache: Path, repo: str, bundle: Path, commit: str = "a" * 40) -> Path:
    """The Hugging Face cache layout for repo at one commit, as a download leaves it."""
    base = cache / f"models--{repo.replace('/', '--')}"
    snap = base / "snapshots" / commit
    shutil.copytree(bundle, snap)
    (base / "refs").mkdir(parents=True)
    (base / "refs" / "main").write_text(commit)
    return snap


def test_load_bundle_by_repo_id_checks_every_file(hub_bundle, tmp_path):
    import os

    out, _ = hub_bundle
    snap = stand_in_hub(tmp_path / "cache", "someone/tiny-edlm", out)
    env = dict(os.environ, HF_HUB_CACHE=str(tmp_path / "cache"), HF_HUB_OFFLINE="1")
    code = ("from edlm.presets import load_bundle; b = load_bundle('someone/tiny-edlm', device='cpu'); "
            "print(b.name, b.process, b.ar is not None)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=ROOT, env=env)
    assert r.returncode == 0, r.stderr[-1500:]
    assert r.stdout.split() == ["someone/tiny-edlm", "absorbing", "True"]
    weights = snap / "denoiser" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-8] + b"\0" * 8)  # a file that changed after it was published
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=ROOT, env=env)
    assert r.returncode != 0 and "denoiser/model.safetensors" in r.stderr
    r = subprocess.run([sys.executable, "-c", code.replace("tiny-edlm", "not-there")], capture_output=True,
                       text=True, timeout=300, cwd=ROOT, env=env)
    assert r.returncode != 0 and "hf download someone/not-there" in r.stderr


class FakeApi:
    def __init__(self):
        self.calls = []

    def create_repo(self, repo_id, **kw):
        self.calls.append(("create_repo", repo_id, kw))
        return f"https://huggingface.co/{repo_id}"

    def upload_folder(self, **kw):
        self.calls.append(("upload_folder", kw))


def test_push_uploads_only_a_checked_bundle(hub_bundle, tmp_path):
    out, _ = hub_bundle
    api = FakeApi()
    assert push_bundle(out, "someone/tiny-edlm", api=api) == "https://huggingface.co/someone/tiny-edlm"
    (kind, repo, kw), (kind2, up) = api.calls
    assert kind == "create_repo" and repo == "someone/tiny-edlm" and kw["exist_ok"] and not kw["private"]
    assert up["folder_path"] == str(out) and "manifest.json" in up["allow_patterns"]
    copy = tmp_path / "b"
    shutil.copytree(out, copy)
    (copy / "README.md").unlink()
    with pytest.raises(ValueError, match="model card"):
        push_bundle(copy, "someone/x", api=FakeApi())
    (copy / "manifest.json").unlink()
    with pytest.raises(Exception, match="manifest"):
        push_bundle(copy, "someone/x", api=FakeApi())
    with pytest.raises(ValueError, match="not a Hub repository id"):
        push_bundle(out, "../etc", api=FakeApi())
    assert is_repo_id("owner/name") and not is_repo_id("a/b/c") and not is_repo_id("name")


def test_a_card_without_figures_has_no_model_index(hub_bundle):
    out, _ = hub_bundle
    card = model_card(out, "x/y")
    assert "model-index" not in card and card.startswith("---\nlicense: mit")
