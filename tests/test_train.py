import json

import pytest

from edlm.train import TrainConfig, lr_at, resolve_precision, train

from .conftest import TINY


def test_training_improves_and_resumes(trained, corpus, tokenizer_dir, tmp_path):
    log = [json.loads(line) for line in (trained["root"] / "denoiser" / "log.jsonl").read_text().splitlines()]
    assert log[-1]["val"]["nelbo"] < log[0]["val"]["nelbo"] or log[-1]["train"]["nelbo"] < 6.0
    out = tmp_path / "run"
    cfg = dict(kind="ar", out_dir=str(out), corpus=str(corpus), tokenizer=str(tokenizer_dir), lr=3e-3, **TINY)
    train(TrainConfig(max_steps=20, **cfg))
    state = json.loads((out / "checkpoint" / "state.json").read_text())
    assert state["step"] == 20
    train(TrainConfig(max_steps=30, **cfg))
    lines = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [x["step"] for x in lines] == [20, 30]  # resumed at 20, not from scratch
    assert (out / "best" / "model" / "model.safetensors").exists()


def test_nce_training_records_accuracy(trained):
    log = [json.loads(line) for line in (trained["root"] / "nce" / "log.jsonl").read_text().splitlines()]
    assert "acc" in log[-1]["val"] and 0.0 <= log[-1]["val"]["acc"] <= 1.0


def test_auto_precision_uses_bf16_only_where_the_hardware_computes_it(monkeypatch):
    import torch

    import edlm.bundle
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(edlm.bundle, "cpu_computes_bfloat16", lambda: False)
    assert resolve_precision("auto") == "no"        # emulated bf16 on such a CPU is tens of times slower
    monkeypatch.setattr(edlm.bundle, "cpu_computes_bfloat16", lambda: True)
    assert resolve_precision("auto") == "bf16"
    monkeypatch.setattr(edlm.bundle, "cpu_computes_bfloat16", lambda: False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_precision("auto") == "bf16"
    assert resolve_precision("no") == "no" and resolve_precision("fp16") == "fp16"
    assert TrainConfig(kind="denoiser", corpus="c", tokenizer="t", out_dir="o").mixed_precision == "auto"


def test_lr_schedule():
    cfg = TrainConfig(kind="ar", out_dir="x", corpus="x", tokenizer="x", lr=1.0, warmup_steps=10, max_steps=110)
    assert lr_at(0, cfg) == 0.1 and lr_at(9, cfg) == 1.0
    assert abs(lr_at(110, cfg) - cfg.min_lr_ratio) < 1e-9


def test_self_conditioning_ema_and_warm_start(trained, corpus, tokenizer_dir, tmp_path):
    """A self-conditioning denoiser warm-started from a plain one computes the same function at first (the new
    projection starts at zero), trains its projection, keeps EMA copies scored on validation, and resumes."""
    import torch
    from safetensors.torch import load_file

    from edlm.models import DenoiserModel
    from edlm.train import build_model, warm_start

    base = DenoiserModel.from_pretrained(trained["denoiser"]).eval()
    cfg = dict(kind="denoiser", out_dir=str(tmp_path / "sc"), corpus=str(corpus), tokenizer=str(tokenizer_dir),
               lr=3e-3, self_conditioning=True, ema_decays=(0.9, 0.99), init_from=str(trained["denoiser"]), **TINY)
    from edlm.tokenizer import load_tokenizer

    fresh = build_model(TrainConfig(max_steps=1, **cfg), load_tokenizer(tokenizer_dir)).eval()
    x = torch.randint(5, 50, (2, 32))
    x[:, ::3] = base.config.mask_token_id
    t = torch.full((2,), 0.5)
    probs = torch.rand(2, 32, base.config.vocab_size).softmax(-1)
    assert torch.allclose(fresh(x, t, self_cond=probs).logits, base(x, t).logits, atol=1e-5)
    best = train(TrainConfig(max_steps=20, **cfg))
    log = [json.loads(line) for line in (tmp_path / "sc" / "log.jsonl").read_text().splitlines()]
    assert set(log[-1]["val_by_weights"]) == {"live", "ema0.9", "ema0.99"}
    assert log[-1]["weights"] in log[-1]["val_by_weights"]
    model = DenoiserModel.from_pretrained(best)
    assert model.config.self_conditioning and model.backbone.self_cond_proj.weight.abs().sum() > 0
    assert (tmp_path / "sc" / "checkpoint" / "ema.safetensors").exists()
    before = load_file(str(tmp_path / "sc" / "checkpoint" / "ema.safetensors"))
    train(TrainConfig(max_steps=30, **cfg))  # resumes with its EMA copies
    after = load_file(str(tmp_path / "sc" / "checkpoint" / "ema.safetensors"))
    assert set(before) == set(after) and any(not torch.equal(before[k], after[k]) for k in before)
    with pytest.raises(ValueError, match="shapes differ"):
        warm_start(build_model(TrainConfig(max_steps=1, **{**cfg, "hidden_size": 64, "init_from": None}),
                               load_tokenizer(tokenizer_dir)), str(trained["denoiser"]))
    # A uniform denoiser warm-started from the self-conditioned one takes every shared weight and leaves out the
    # self-conditioning input it does not have.
    uniform = build_model(TrainConfig(max_steps=1, **{**cfg, "self_conditioning": False, "process": "uniform",
                                                      "init_from": best}), load_tokenizer(tokenizer_dir))
    assert uniform.backbone.self_cond_proj is None
    saved = DenoiserModel.from_pretrained(best).backbone.vocab_embed.embedding
    assert torch.equal(uniform.backbone.vocab_embed.embedding, saved)


def test_ema_swap_is_exact_and_averages():
    import torch

    from edlm.train import EMA

    model = torch.nn.Linear(3, 2)
    ema = EMA(model, (0.5,))
    start = [p.detach().clone() for p in model.parameters()]
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    ema.update(step=10**6)  # past the warm-up: decay 0.5
    ema.swap(0)
    assert all(torch.allclose(p, s + 0.5) for p, s in zip(model.parameters(), start))
    ema.swap(0)
    assert all(torch.allclose(p, s + 1.0) for p, s in zip(model.parameters(), start))


def test_stop_at_ends_early_with_the_schedule_of_the_full_run(corpus, tokenizer_dir, tmp_path):
    out = tmp_path / "run"
    cfg = dict(kind="ar", out_dir=str(out), corpus=str(corpus), tokenizer=str(tokenizer_dir), lr=3e-3, **TINY)
    train(TrainConfig(max_steps=100, stop_at=20, **cfg))
    lines = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert lines[-1]["step"] == 20
    assert abs(lines[-1]["lr"] - lr_at(19, TrainConfig(max_steps=100, **cfg))) < 1e-12
    train(TrainConfig(max_steps=100, stop_at=20, **cfg))  # a rerun of a finished run trains nothing more
    assert json.loads((out / "checkpoint" / "state.json").read_text())["step"] == 20


def test_uniform_denoiser_trains_and_its_elbo_falls(corpus, tokenizer_dir, tmp_path):
    """`--process uniform`: a time-conditioned denoiser whose outputs cover every token but the mask; the
    continuous-time ELBO falls with training (the tiny model, 60 steps on the fixture corpus)."""
    import torch

    from edlm.data import consecutive_windows, read_split, token_stream
    from edlm.evaluate import elbo_perplexity
    from edlm.models import DenoiserModel
    from edlm.tokenizer import load_tokenizer

    cfg = dict(kind="denoiser", out_dir=str(tmp_path / "u"), corpus=str(corpus), tokenizer=str(tokenizer_dir),
               lr=3e-3, process="uniform", **TINY)
    first = train(TrainConfig(max_steps=1, **cfg))
    model = DenoiserModel.from_pretrained(first).eval()
    assert model.config.process == "uniform" and model.config.time_conditioning
    tok = load_tokenizer(str(tokenizer_dir))
    windows = consecutive_windows(token_stream(tok, read_split(str(corpus), "validation")), 32, limit=16)
    x = windows[:2]
    with torch.no_grad():
        log_p = model(x, torch.full((2,), 0.5)).logits
    assert torch.isinf(log_p[..., tok.mask_token_id]).all() and torch.allclose(log_p.exp().sum(-1), torch.ones(2, 32))
    before = elbo_perplexity(model, windows, draws=2)
    trained = DenoiserModel.from_pretrained(train(TrainConfig(max_steps=60, **cfg))).eval()
    assert elbo_perplexity(trained, windows, draws=2) < before
    with pytest.raises(ValueError, match="absorbing process only"):
        train(TrainConfig(max_steps=1, self_conditioning=True, **{**cfg, "out_dir": str(tmp_path / "v")}))


def test_unrolled_training_scores_the_models_own_states(corpus, tokenizer_dir, tmp_path):
    """`--unroll 2` (SUNDAE-style): the log carries the ELBO of fresh noise and the loss on the states the model's
    own reverse step reached; the objective is their mean, so it differs from the plain one on the same batch;
    a process without a batched reverse step refuses it by name."""
    import torch

    from edlm.tokenizer import load_tokenizer
    from edlm.train import Objective, build_model

    cfg = dict(kind="denoiser", out_dir=str(tmp_path / "u"), corpus=str(corpus), tokenizer=str(tokenizer_dir),
               lr=3e-3, process="uniform", **TINY)
    train(TrainConfig(max_steps=4, unroll=2, **cfg))
    last = json.loads((tmp_path / "u" / "log.jsonl").read_text().splitlines()[-1])
    assert {"nelbo", "unrolled"} <= set(last["train"]) and {"nelbo", "unrolled"} <= set(last["val"])
    tok = load_tokenizer(str(tokenizer_dir))
    model = build_model(TrainConfig(max_steps=1, **cfg), tok).eval()
    x0 = torch.randint(5, len(tok), (4, 32))
    plain, _ = Objective(TrainConfig(max_steps=1, **cfg), tok, "cpu").loss(model, x0, torch.Generator().manual_seed(1))
    both, m = Objective(TrainConfig(max_steps=1, unroll=2, **cfg), tok, "cpu").loss(
        model, x0, torch.Generator().manual_seed(1))
    assert abs(plain.item() - m["nelbo"]) < 1e-5  # same draws: the first term is the plain loss
    assert abs(both.item() - (m["nelbo"] + m["unrolled"]) / 2) < 1e-5 and m["unrolled"] != m["nelbo"]
    with pytest.raises(ValueError, match="unroll"):
        train(TrainConfig(max_steps=1, unroll=2, **{**cfg, "process": "absorbing", "out_dir": str(tmp_path / "a")}))
    with pytest.raises(ValueError, match=">= 1"):
        Objective(TrainConfig(max_steps=1, unroll=0, **cfg), tok, "cpu")


def test_spindle_denoiser_carries_its_schedule_and_its_elbo_falls(corpus, tokenizer_dir, tmp_path):
    """`--process spindle`: the saved config holds the per-token information from the TRAIN split and the
    strength; the model reloads as a spindle process and its ELBO (under that schedule) falls with training."""
    import torch

    from edlm.data import consecutive_windows, read_split, token_stream
    from edlm.evaluate import elbo_perplexity
    from edlm.models import DenoiserModel
    from edlm.processes import process_for
    from edlm.spindle import SpindleProcess
    from edlm.tokenizer import load_tokenizer

    cfg = dict(kind="denoiser", out_dir=str(tmp_path / "s"), corpus=str(corpus), tokenizer=str(tokenizer_dir),
               lr=3e-3, process="spindle", spindle_lambda=0.2, **TINY)
    first = DenoiserModel.from_pretrained(train(TrainConfig(max_steps=1, **cfg))).eval()
    tok = load_tokenizer(str(tokenizer_dir))
    assert first.config.process == "spindle" and first.config.spindle_lambda == 0.2
    info = torch.tensor(first.config.spindle_info)
    assert len(info) == len(tok) and info.abs().max() == 1.0
    assert (info[list(tok.all_special_ids)] == 0).all()
    assert isinstance(process_for(first.config), SpindleProcess)
    windows = consecutive_windows(token_stream(tok, read_split(str(corpus), "validation")), 32, limit=16)
    before = elbo_perplexity(first, windows, draws=2)
    trained = DenoiserModel.from_pretrained(train(TrainConfig(max_steps=60, **cfg))).eval()
    assert elbo_perplexity(trained, windows, draws=2) < before
    with pytest.raises(ValueError, match="spindle_lambda"):
        train(TrainConfig(max_steps=1, **{**cfg, "spindle_lambda": 0.5, "out_dir": str(tmp_path / "bad")}))
