"""The continuous-embedding process: forward noising with fixed text left clean, the Gaussian posterior step,
the loss, the sampler's invariants, the 2-D view, and a tiny trained model through the pipeline."""
import math

import pytest
import torch

from edlm.continuous import GaussianProcess, Points, embedding_space, projection, training_noised
from edlm.noise import LogSNRSchedule, alphas
from edlm.rand import RowRandom
from edlm.transitions import StepContext


def continuous_denoiser(vocab: int = 40, mask_id: int = 4):
    """A one-block continuous DiT with random weights (its zero-initialised output made to say something)."""
    from edlm.models import DenoiserModel, DiTConfig

    torch.manual_seed(0)
    model = DenoiserModel(DiTConfig(vocab_size=vocab, hidden_size=32, n_blocks=1, n_heads=2, cond_dim=16, length=32,
                                    mask_token_id=mask_id, dropout=0.0, time_conditioning=True,
                                    process="continuous", schedule="logsnr"))
    for p in model.parameters():
        torch.nn.init.normal_(p, std=0.3)
    model.backbone.fit_in_proj()
    return model.eval()


def test_the_space_has_rows_of_norm_sqrt_d_and_the_projection_fits_points_to_embeddings():
    model = continuous_denoiser()
    space = model.embedding_space()
    assert torch.allclose(space.norm(dim=-1), torch.full((40,), math.sqrt(32)), atol=1e-4)
    table = model.backbone.vocab_embed.embedding.detach()
    fitted = model.backbone.in_proj(space)
    assert float((fitted - table).norm() / table.norm()) < 0.2  # least squares: close to each word's embedding
    assert not model.backbone.vocab_embed.embedding.requires_grad  # the space is frozen


def test_forward_noising_leaves_fixed_text_clean_and_ends_in_noise():
    space = embedding_space(torch.randn(50, 64))
    proc = GaussianProcess(space, LogSNRSchedule(), mask_id=4)
    x0 = torch.randint(50, (256, 16))
    gen = torch.Generator().manual_seed(0)
    for t in (0.1, 0.5, 1.0):
        pts = proc.add_noise(x0, torch.full((256,), t), gen)
        assert torch.equal(pts.z[~pts.noised], space[x0][~pts.noised])  # byte-exact where not noised
        a = float(LogSNRSchedule().alpha(torch.tensor(t)))
        noised = pts.z[pts.noised]
        signal = (noised * space[x0][pts.noised]).sum(-1) / 64  # about sqrt(a) per dimension
        assert abs(float(signal.mean()) - math.sqrt(a)) < 0.05
        assert abs(float(noised.var()) - 1.0) < 0.1  # variance preserving: points stay at the words' scale


def test_training_noises_everything_a_span_or_a_suffix_and_never_nothing():
    x0 = torch.zeros(600, 20, dtype=torch.long)
    noised = training_noised(x0, torch.Generator().manual_seed(1))
    assert bool((noised.sum(-1) >= 1).all())
    whole = noised.all(-1)
    suffix = noised[:, -1] & ~whole
    inner = ~noised[:, -1] & noised.any(-1)
    assert 150 < int(whole.sum()) and 150 < int(suffix.sum()) and 100 < int(inner.sum())
    runs = (noised[:, 1:] & ~noised[:, :-1]).sum(-1) + noised[:, 0].long()
    assert bool((runs == 1).all())  # one contiguous stretch per row


def test_the_loss_counts_noised_positions_and_a_perfect_prediction_costs_nothing():
    space = embedding_space(torch.randn(30, 8))
    proc = GaussianProcess(space, LogSNRSchedule(), mask_id=4)
    x0 = torch.randint(30, (4, 10))
    t = torch.full((4,), 0.5)
    pts = proc.add_noise(x0, t, torch.Generator().manual_seed(2))
    perfect = torch.full((4, 10, 30), -1e4).scatter(-1, x0.unsqueeze(-1), 0.0).log_softmax(-1)
    assert float(proc.loss(perfect, x0, pts, t).abs().max()) < 1e-3
    flat = torch.zeros(4, 10, 30).log_softmax(-1)
    assert torch.allclose(proc.loss(flat, x0, pts, t), torch.full((4,), math.log(30)), atol=1e-5)
    wrong = flat.clone()
    wrong[~pts.noised] = perfect[~pts.noised] - 50  # the clean positions are not scored at all
    assert torch.allclose(proc.loss(wrong, x0, pts, t), torch.full((4,), math.log(30)), atol=1e-5)


@pytest.mark.parametrize("t,s", [(1.0, 0.5), (0.5, 0.25), (0.3, 0.2)])
def test_the_reverse_step_is_the_gaussian_posterior(t, s):
    """z_s given z_t and x0 has the mean and variance of Bayes' rule for N(z_t; sqrt(a_t|s) z_s, 1 - a_t|s)
    times N(z_s; sqrt(a_s) x0, 1 - a_s), estimated from many draws."""
    D, n = 4, 40_000
    space = embedding_space(torch.randn(6, D))
    sched = LogSNRSchedule()
    proc = GaussianProcess(space, sched, mask_id=0)
    x = torch.full((1, n), 0)
    editable = torch.ones(1, n, dtype=torch.bool)
    gen = RowRandom(0, 1)
    proc.start(x, editable, gen)
    z_t = proc.z.clone()
    x0 = torch.full((1, n), 3)
    ctx = StepContext(x=x, x0=x0, masked=editable, editable=editable, log_q=torch.zeros(n, 6), t=t, s=s,
                      schedule=sched, generator=gen)
    proc.step(ctx, None)
    a_t, a_s = alphas(sched, t, s)
    a_ts = a_t / a_s
    precision = a_ts / (1 - a_ts) + 1 / (1 - a_s)
    mean = (a_ts ** 0.5 * z_t[0] / (1 - a_ts) + a_s ** 0.5 * space[3] / (1 - a_s)) / precision
    resid = proc.z[0] - mean
    assert float(resid.mean(0).abs().max()) < 0.02
    assert abs(float(resid.var(0).mean()) - 1 / precision) < 0.02 / precision ** 0.5


def test_sampling_keeps_fixed_text_is_seeded_and_ends_on_the_drawn_words():
    from edlm.sampling import SamplerConfig, sample

    model = continuous_denoiser()
    x = torch.full((3, 20), 4)
    editable = torch.ones(3, 20, dtype=torch.bool)
    for p, tok in ((0, 10), (6, 4), (19, 12)):
        x[:, p], editable[:, p] = tok, False
    cfg = SamplerConfig(steps=10, seed=3, banned=(4, 0, 1, 2))
    events = list(sample(model, x, cfg, editable=editable))
    shown = torch.stack([ev.tokens for ev in events])[:, editable]
    assert not bool(torch.isin(shown, torch.tensor([0, 1, 2, 4])).any())  # never a banned word, mid-run either
    out = events[-1].tokens
    assert torch.equal(out[~editable], x[~editable]) and not bool((out[editable] == 4).any())
    assert torch.equal(out, list(sample(model, x, cfg, editable=editable))[-1].tokens)
    one = list(sample(model, x[1:2], cfg, editable=editable[1:2], row_seeds=[3 + 1_000_003]))[-1].tokens
    assert torch.equal(one[0], out[1])
    assert all(ev.extra["points"].shape == (3, 20, 2) for ev in events)
    moved = (events[0].extra["points"] - events[-1].extra["points"]).norm(dim=-1)
    assert bool((moved[~editable] < 1e-5).all()) and bool((moved[editable] > 0).all())
    # the last step's points sit on the finished words in the 2-D view
    mean, axes = projection(model.embedding_space())
    words = (model.embedding_space()[out] - mean) @ axes
    assert torch.allclose(events[-1].extra["points"], words, atol=1e-4)
    with pytest.raises(ValueError, match="remasking is for masked diffusion"):
        list(sample(model, x, SamplerConfig(steps=4, remask="remdm"), editable=editable))


def test_the_projection_is_fixed_and_orthonormal():
    space = embedding_space(torch.randn(100, 16))
    mean, axes = projection(space)
    again = projection(space.clone())
    assert torch.equal(axes, again[1]) and torch.allclose(axes.T @ axes, torch.eye(2), atol=1e-5)
    assert bool((axes.gather(0, axes.abs().argmax(0, keepdim=True)) > 0).all())


def test_token_ids_given_to_a_continuous_network_read_as_their_clean_points():
    from edlm.models.denoiser import DenoiserModel

    model = continuous_denoiser()
    ids = torch.randint(5, 40, (2, 7))
    t = torch.full((2,), 0.3)
    clean = Points(model.embedding_space()[ids], torch.zeros(2, 7, dtype=torch.bool))
    assert torch.equal(model(ids, t).logits, model(clean, t).logits)
    assert isinstance(model, DenoiserModel) and bool((model(ids, t).logits[..., 4] == float("-inf")).all())


def test_points_index_and_move_like_a_batch():
    pts = Points(torch.randn(3, 5, 4), torch.ones(3, 5, dtype=torch.bool))
    assert pts[1:].shape == (2, 5) and pts.to("cpu").device.type == "cpu"


def test_the_process_needs_its_model_space():
    from edlm.processes import process_for

    model = continuous_denoiser()
    with pytest.raises(ValueError, match="embedding space"):
        process_for(model.config).start(torch.zeros(1, 4, dtype=torch.long), torch.ones(1, 4, dtype=torch.bool),
                                        RowRandom(0, 1))


@pytest.fixture(scope="module")
def continuous_bundle(bundle, corpus, tokenizer_dir, tmp_path_factory):
    """The tiny test bundle with a continuous denoiser trained by the project's loop."""
    import dataclasses
    import json

    from edlm.models import DenoiserModel
    from edlm.train import TrainConfig, train

    from .conftest import TINY

    root = tmp_path_factory.mktemp("continuous")
    out = train(TrainConfig(kind="denoiser", out_dir=str(root), corpus=str(corpus), tokenizer=str(tokenizer_dir),
                            max_steps=40, lr=3e-3, process="continuous", **TINY))
    log = [json.loads(line) for line in (root / "log.jsonl").read_text().splitlines()]
    model = DenoiserModel.from_pretrained(out).eval()
    return dataclasses.replace(bundle, name="tiny-continuous", denoiser=model), log


def test_training_lowers_the_loss_and_saves_a_continuous_model(continuous_bundle):
    bundle, log = continuous_bundle
    cfg = bundle.denoiser.config
    assert cfg.process == "continuous" and cfg.schedule == "logsnr" and cfg.time_conditioning
    assert log[-1]["val"]["nelbo"] < log[0]["train"]["nelbo"]


def test_infill_and_generate_through_the_pipeline(continuous_bundle):
    from edlm.pipeline import generate, infill, infill_stream

    bundle, _ = continuous_bundle
    text = "We the people of the [MASK:6], in order to [MASK:3] a more perfect union."
    events = list(infill_stream(bundle, text, sampler="edlm-ar", steps=8, k=2, seed=4))
    final = events[-1]
    assert len(events) == 8 and final.final and "[MASK" not in final.text
    assert final.text.startswith("We the people of the ") and final.text.endswith(" a more perfect union.")
    assert all(len(e.points) == 9 for e in events) and events[0].points != final.points
    assert infill(bundle, text, sampler="edlm-ar", steps=8, k=2, seed=4).text == final.text
    out = generate(bundle, 12, prefix="We the people", num_samples=2, sampler="mdlm", steps=6, seed=1)
    assert len(out) == 2 and all(e.text.startswith("We the people") for e in out)
    with pytest.raises(ValueError, match="resamples its particles"):
        infill(bundle, text, sampler="edlm-smc", steps=4, k=2)
    # naming no sampler: the library's default (the particles) cannot move points, so the fallback runs
    assert infill(bundle, text, steps=8, k=2, seed=4).text == final.text
    with pytest.raises(ValueError, match="NCE energy"):
        infill(bundle, text, sampler="edlm-nce", steps=4)


def test_the_app_draws_the_points_moving_toward_words_live_and_in_the_replay(continuous_bundle, monkeypatch):
    from app import handlers as ui
    from app.words import status_line

    bundle, _ = continuous_bundle
    monkeypatch.setattr("app.models.get_bundle", lambda model, progress=None, sampler=None: bundle)
    text = "We the people of the [MASK:6], in order to [MASK:3] a more perfect union."
    outs = list(ui.run_infill(text, "mdlm", 8, 2, 0.5, 1.0, 1.0, 4, None, "random", "none"))
    last, replay = outs[-1][8], outs[-1][9]
    assert "embedding space" in last.layout.title.text and "step 8 of 8" in last.layout.title.text
    words, *positions = last.data
    assert len(words.x) == len(bundle.tokenizer) - len(set(bundle.tokenizer.all_special_ids))
    trails, heads = positions[0::2], positions[1::2]
    assert len(heads) == 9 and all(len(tr.x) == 8 for tr in trails)  # one point per step for each position
    from edlm.pipeline import infill_stream

    final = list(infill_stream(bundle, text, sampler="mdlm", steps=8, seed=4, unmask="random", temperature=1.0,
                               top_p=1.0))[-1]
    assert [h.text[0] for h in heads] == [p.strip() or "·" for p in final.pieces]
    record = replay.to_json()["points"]
    assert [r["step"] for r in record] == list(range(1, 9)) and len(record[-1]["points"]) == 9
    assert record[-1]["nearest"] == final.pieces
    early = replay.view(3)[7]
    assert "step 3 of 8" in early.layout.title.text and all(len(tr.x) == 3 for tr in early.data[1::2])
    assert "embedding space" in outs[0][8]["label"]  # the chart's label follows the process
    events = list(infill_stream(bundle, text, sampler="mdlm", steps=8, seed=4))
    assert any("moved to another nearest word" in status_line(e, 2) for e in events)
    assert "changed its nearest word" in status_line(events[-1], 2)


def test_any_text_around_the_spans_survives_and_every_point_is_finite(continuous_bundle):
    """Property test (hypothesis): odd text around two spans (the robustness suite's edge strings), any step count
    and the AR energy or none: the fixed text comes back byte-exact, spans longer than the window included, and
    every point the process reports is a finite number."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    from edlm.pipeline import infill_stream

    from .test_robustness import EDGES

    bundle, _ = continuous_bundle

    @settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(st.sampled_from(["mdlm", "edlm-ar"]), st.integers(1, 5), st.tuples(EDGES, EDGES, EDGES),
           st.sampled_from([1, 3, bundle.window + 2]))
    def check(sampler, steps, parts, n):
        a, b, c = parts
        events = list(infill_stream(bundle, f"{a}[MASK:{n}]{b}[MASK:2]{c}", sampler=sampler, k=2, steps=steps,
                                    seed=0))
        ev = events[-1]
        plain = [p.replace("\\[MASK]", "[MASK]") for p in parts]
        assert ev.final and ev.text == plain[0] + ev.spans[0] + plain[1] + ev.spans[1] + plain[2]
        assert all(math.isfinite(v) for e in events for pt in e.points if pt is not None for v in pt)

    check()
