import json

from edlm.train import TrainConfig, lr_at, train

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


def test_lr_schedule():
    cfg = TrainConfig(kind="ar", out_dir="x", corpus="x", tokenizer="x", lr=1.0, warmup_steps=10, max_steps=110)
    assert lr_at(0, cfg) == 0.1 and lr_at(9, cfg) == 1.0
    assert abs(lr_at(110, cfg) - cfg.min_lr_ratio) < 1e-9
