"""Shared fixtures: tiny models trained in seconds on the fixture corpus, assembled into a bundle."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

FIXTURE_CORPUS = Path(__file__).parent / "fixtures" / "corpus"
TINY = dict(seq_len=32, batch_size=16, hidden_size=32, n_layers=1, n_heads=2, mixed_precision="no",
            eval_every=20, eval_batches=2, save_every=20, warmup_steps=5)


def random_denoiser(mask_id: int, vocab: int = 40):
    """A one-block DiT with random weights (its zero-initialised output made to say something): for sampler
    tests that need a network, not a trained one."""
    from edlm.models import DenoiserModel, DiTConfig

    torch.manual_seed(0)
    model = DenoiserModel(DiTConfig(vocab_size=vocab, hidden_size=32, n_blocks=1, n_heads=2, cond_dim=16,
                                    length=32, mask_token_id=mask_id, dropout=0.0))
    for p in model.parameters():
        torch.nn.init.normal_(p, std=0.3)
    return model.eval()


@pytest.fixture(scope="session")
def corpus() -> Path:
    return FIXTURE_CORPUS


@pytest.fixture(scope="session")
def tokenizer_dir(tmp_path_factory, corpus) -> Path:
    from edlm.data import read_split
    from edlm.tokenizer import train_tokenizer

    out = tmp_path_factory.mktemp("tokenizer")
    train_tokenizer(read_split(corpus, "train"), out, vocab_size=400)
    return out


@pytest.fixture(scope="session")
def tokenizer(tokenizer_dir):
    from edlm.tokenizer import load_tokenizer

    return load_tokenizer(tokenizer_dir)


@pytest.fixture(scope="session")
def trained(tmp_path_factory, corpus, tokenizer_dir) -> dict[str, Path]:
    """Train the tiny denoiser, AR model and NCE energy with the project's own training loop."""
    from edlm.train import TrainConfig, train

    root = tmp_path_factory.mktemp("runs")
    out = {"tokenizer": tokenizer_dir}
    for kind, steps in (("denoiser", 40), ("ar", 40)):
        out[kind] = train(TrainConfig(kind=kind, out_dir=str(root / kind), corpus=str(corpus),
                                      tokenizer=str(tokenizer_dir), max_steps=steps, lr=3e-3, **TINY))
    out["nce"] = train(TrainConfig(kind="nce", out_dir=str(root / "nce"), corpus=str(corpus),
                                   tokenizer=str(tokenizer_dir), denoiser=str(out["denoiser"]), max_steps=10,
                                   lr=1e-3, **TINY))
    out["judge"] = out["ar"]
    out["root"] = root
    return out


@pytest.fixture(scope="session")
def bundle_dir(tmp_path_factory, trained) -> Path:
    from edlm.bundle import export_bundle

    parts = {k: v for k, v in trained.items() if k != "root"}
    return export_bundle(parts, tmp_path_factory.mktemp("bundle") / "tiny", dtype=torch.float32)


@pytest.fixture(scope="session")
def bundle(bundle_dir):
    from edlm.bundle import load_folder

    return load_folder(bundle_dir, device="cpu")
