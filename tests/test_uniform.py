"""The uniform-noise process against brute force on a tiny vocabulary (5 ids, the mask id 4 excluded: N = 4)."""
import math

import pytest
import torch

from edlm.noise import LogLinearSchedule
from edlm.uniform import UniformProcess

V, MASK = 5, 4
PROC = UniformProcess(V, LogLinearSchedule(), exclude=(MASK,))


def q_marginal(x0: int, t: float) -> torch.Tensor:
    """q(x_t | x_0) over the 5 ids, from the definition."""
    a = 1.0 - (1.0 - 1e-3) * t
    p = torch.tensor([(1.0 - a) / 4] * 4 + [0.0], dtype=torch.float64)
    p[x0] += a
    return p


def transition(t: float, s: float) -> torch.Tensor:
    """Q[y, z] = q(x_t = z | x_s = y), an explicit 5 x 5 matrix (row and column of the mask id zero)."""
    a_t, a_s = 1.0 - (1.0 - 1e-3) * t, (1.0 if s <= 0 else 1.0 - (1.0 - 1e-3) * s)
    a = a_t / a_s
    Q = torch.full((V, V), (1.0 - a) / 4, dtype=torch.float64) + a * torch.eye(V, dtype=torch.float64)
    Q[MASK, :], Q[:, MASK] = 0.0, 0.0
    return Q


@pytest.mark.parametrize("t,s", [(0.9, 0.6), (0.5, 0.49), (0.2, 0.0)])
def test_posterior_is_bayes_rule(t, s):
    for x0 in range(4):
        for z in range(4):
            brute = transition(t, s)[:, z] * q_marginal(x0, s)
            brute = brute / brute.sum()
            onehot = torch.nn.functional.one_hot(torch.tensor(x0), V).double()
            got = PROC.posterior(torch.tensor(z), onehot, t, s)
            assert torch.allclose(got, brute, atol=1e-12)


def test_unroll_step_draws_from_the_posterior_row_by_row():
    """The batched reverse step of unrolled training: each row at its own (t, s), every (x0, x_t) pair, draws
    with the frequencies of Bayes' rule (4 SE), and never writes the excluded id."""
    times = [(0.9, 0.45), (0.3, 0.0), (0.6, 0.2)]
    n = 40_000
    gen = torch.Generator().manual_seed(0)
    for x0 in range(4):
        for z in range(4):
            t = torch.tensor([a for a, _ in times]).repeat_interleave(n)
            s = torch.tensor([b for _, b in times]).repeat_interleave(n)
            x0s, zs = torch.full((len(t), 1), x0), torch.full((len(t), 1), z)
            drawn = PROC.unroll_step(zs, x0s, t, s, gen)[:, 0].view(len(times), n)
            assert (drawn != MASK).all()
            for row, (tt, ss) in enumerate(times):
                onehot = torch.nn.functional.one_hot(torch.tensor(x0), V).double()
                want = PROC.posterior(torch.tensor(z), onehot, tt, ss)
                got = torch.bincount(drawn[row], minlength=V).double() / n
                se = (want * (1 - want) / n).sqrt()
                assert ((got - want).abs() <= 4 * se + 1e-12).all(), (x0, z, tt, ss, got, want)


def test_forward_noise_marginals_and_the_excluded_id():
    g = torch.Generator().manual_seed(0)
    x0 = torch.full((400, 50), 2)
    t = torch.full((400,), 0.6)
    x_t = PROC.add_noise(x0, t, g)
    assert not bool((x_t == MASK).any())
    expected = q_marginal(2, 0.6)
    seen = torch.bincount(x_t.flatten(), minlength=V).double() / x_t.numel()
    assert torch.allclose(seen, expected, atol=0.01)


def test_a_perfect_prediction_costs_nothing():
    x0 = torch.tensor([[0, 1, 2, 3]])
    log_p = torch.full((1, 4, V), -math.inf)
    log_p[0, torch.arange(4), x0[0]] = 0.0
    for z in ([0, 1, 2, 3], [1, 1, 0, 2]):
        assert PROC.loss(log_p, x0, torch.tensor([z]), torch.tensor([0.7])).item() == pytest.approx(0.0, abs=1e-9)


def test_continuous_loss_is_the_limit_of_the_discrete_kl_sum():
    """sum over T steps of E_{x_t ~ q(.|x_0)} KL(q(x_s | x_t, x_0) || q(x_s | x_t, x_theta)) approaches the
    integral of the closed-form loss over [t_min, 1]."""
    x0, t_min, T = 1, 0.05, 3000
    theta = torch.tensor([0.1, 0.5, 0.3, 0.1, 0.0], dtype=torch.float64)
    log_theta = torch.where(theta > 0, theta.log(), torch.full_like(theta, -math.inf))
    onehot = torch.nn.functional.one_hot(torch.tensor(x0), V).double()
    grid = torch.linspace(1.0, t_min, T + 1, dtype=torch.float64)
    discrete = 0.0
    for k in range(T):
        t, s = float(grid[k]), float(grid[k + 1])
        qz = q_marginal(x0, t)
        for z in range(4):
            p_true = PROC.posterior(torch.tensor(z), onehot, t, s)
            p_model = PROC.posterior(torch.tensor(z), theta, t, s)
            keep = p_true > 0
            discrete += float(qz[z] * (p_true[keep] * (p_true[keep] / p_model[keep]).log()).sum())
    continuous, zs = 0.0, torch.arange(4).unsqueeze(-1)
    for k in range(T):
        t = 0.5 * float(grid[k] + grid[k + 1])
        per_z = PROC.loss(log_theta.expand(4, 1, V), torch.full((4, 1), x0), zs, torch.full((4,), t)).double()
        continuous += float((q_marginal(x0, t)[:4] * per_z).sum()) * float(grid[k] - grid[k + 1])
    assert continuous > 0 and continuous == pytest.approx(discrete, rel=2e-3)


def test_step_writes_the_noise_vocabulary_only_and_ends_at_x0():
    from edlm.rand import RowRandom
    from edlm.sampling import SamplerConfig
    from edlm.transitions import StepContext

    g = torch.Generator().manual_seed(1)
    x_t = PROC.random_tokens((8, 16), g)
    x0 = torch.randint(4, (8, 16), generator=g)
    every = torch.ones_like(x_t, dtype=torch.bool)

    def step(t, s):
        return PROC.step(StepContext(x=x_t, x0=x0, masked=every, editable=every, log_q=torch.zeros(0, V), t=t, s=s,
                                     schedule=PROC.schedule, generator=RowRandom(0, 8)), SamplerConfig())

    x_s, again = step(0.8, 0.5)
    assert not bool((x_s == MASK).any()) and x_s.shape == x_t.shape and again is None
    assert not torch.equal(x_s, x_t) and not torch.equal(x_s, x0)
    assert torch.equal(step(0.1, 0.0)[0], x0)
    with pytest.raises(ValueError, match="remasking is for masked diffusion"):
        PROC.check(SamplerConfig(remask="remdm"))
    with pytest.raises(ValueError, match="lookahead score .* uniform process leaves none"):
        PROC.check(SamplerConfig(potential="lookahead"))
    PROC.check(SamplerConfig(potential="draw"))


def uniform_denoiser(mask_id: int = 4, vocab: int = 40):
    from edlm.models import DenoiserModel, DiTConfig

    torch.manual_seed(0)
    model = DenoiserModel(DiTConfig(vocab_size=vocab, hidden_size=32, n_blocks=1, n_heads=2, cond_dim=16,
                                    length=32, mask_token_id=mask_id, dropout=0.0, time_conditioning=True,
                                    process="uniform"))
    for p in model.parameters():
        torch.nn.init.normal_(p, std=0.3)
    return model.eval()


class PreferSeven:
    def log_weights(self, cands, x_t, t, log_q, k=1):
        return 3.0 * (cands == 7).sum(-1).float()


@pytest.mark.parametrize("energy", [None, PreferSeven()])
def test_uniform_sampling_keeps_fixed_text_is_seeded_and_ends_without_masks(energy):
    """The sampler invariants of the masked process hold for the uniform one: fixed text (a literal mask id
    included) never changes, the same seed gives the same result, rows do not depend on the batch, and the
    finished spans hold no mask. Unlike masking, tokens change more than once."""
    from edlm.sampling import SamplerConfig, sample

    model = uniform_denoiser()
    x = torch.full((3, 20), 4)
    editable = torch.ones(3, 20, dtype=torch.bool)
    for p, tok in ((0, 10), (6, 4), (19, 12)):
        x[:, p], editable[:, p] = tok, False
    cfg = SamplerConfig(steps=12, k=3, is_window=0.5, seed=3)
    events = list(sample(model, x, cfg, energy, editable=editable))
    out = events[-1].tokens
    assert torch.equal(out[~editable], x[~editable]) and not bool((out[editable] == 4).any())
    assert torch.equal(out, list(sample(model, x, cfg, energy, editable=editable))[-1].tokens)
    one = list(sample(model, x[1:2], cfg, energy, editable=editable[1:2], row_seeds=[3 + 1_000_003]))[-1].tokens
    assert torch.equal(one[0], out[1])
    changes = sum(ev.revealed.long() for ev in events)
    assert int(changes.max()) > 1 and not bool(changes[~editable].any())
    with pytest.raises(ValueError, match="remasking is for masked diffusion"):
        list(sample(model, x, SamplerConfig(steps=4, remask="remdm"), editable=editable))


@pytest.fixture(scope="module")
def uniform_bundle(bundle, corpus, tokenizer_dir, tmp_path_factory):
    """The tiny test bundle with a uniform-noise denoiser trained like the masked one."""
    import dataclasses

    from edlm.models import DenoiserModel
    from edlm.train import TrainConfig, train

    from .conftest import TINY

    out = train(TrainConfig(kind="denoiser", out_dir=str(tmp_path_factory.mktemp("uniform")), corpus=str(corpus),
                            tokenizer=str(tokenizer_dir), max_steps=40, lr=3e-3, process="uniform", **TINY))
    return dataclasses.replace(bundle, name="tiny-uniform", denoiser=DenoiserModel.from_pretrained(out).eval())


def test_infill_through_the_pipeline_with_the_uniform_process(uniform_bundle):
    from edlm.pipeline import infill, infill_stream

    text = "We the people of the [MASK:6], in order to [MASK:3] a more perfect union."
    events = list(infill_stream(uniform_bundle, text, sampler="edlm-ar", steps=10, k=2, seed=4))
    final = events[-1]
    assert len(events) == 10 and final.final and final.step == final.total_steps == 10
    assert final.text.startswith("We the people of the ") and final.text.endswith(" a more perfect union.")
    assert "[MASK" not in final.text and final.masked == 0 and len(final.changes) == 9
    assert any(e.changed for e in events[:-1]) and max(final.changes) > 1
    assert any(kind == "changed" for e in events[:-1] for _, kind, _ in e.segments)
    assert all(kind != "changed" for _, kind, _ in final.segments)
    assert infill(uniform_bundle, text, sampler="edlm-ar", steps=10, k=2, seed=4).text == final.text
    with pytest.raises(ValueError, match="NCE energy was trained on masked text"):
        infill(uniform_bundle, text, sampler="edlm-nce")


def test_the_app_charts_how_often_each_token_was_written(uniform_bundle, monkeypatch):
    """With a uniform model the app's last chart counts the writes per span token (live and in the replay)."""
    from app import handlers as ui

    monkeypatch.setattr("app.models.get_bundle", lambda model, progress=None, sampler=None: uniform_bundle)
    text = "We the people of the [MASK:6], in order to [MASK:3] a more perfect union."
    outs = list(ui.run_infill(text, "mdlm", 10, 2, 0.5, 1.0, 1.0, 4, None, "random", "none"))
    reveal, replay = outs[-1][8], outs[-1][9]
    from edlm.pipeline import infill_stream

    final = list(infill_stream(uniform_bundle, text, sampler="mdlm", steps=10, seed=4, unmask="random"))[-1]
    assert list(reveal.data[0].y) == final.changes and max(final.changes) > 1
    assert "times each token" in reveal.layout.title.text
    early = replay.view(3)[7]
    assert "times each token" in early.layout.title.text and sum(early.data[0].y) <= sum(final.changes)
    assert sum(early.data[0].y) < sum(final.changes)
