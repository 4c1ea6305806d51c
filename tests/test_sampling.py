
import pytest
import torch

from edlm.energy import normalise
from tests.conftest import random_denoiser
from edlm.sampling import SamplerConfig, sample_edlm, sample_mdlm, shape_log_probs

MASK = 4


@pytest.fixture(scope="module")
def denoiser():
    return random_denoiser(MASK)


def start(batch=1, length=24):
    x = torch.full((batch, length), MASK)
    x[:, 0], x[:, 5], x[:, -1] = 10, 11, 12
    if batch > 1:
        x[1, 3] = 20
    return x


class CountingEnergy:
    """Energy = -bonus * (number of `token` in x0); records what it was shown."""

    name = "test"

    def __init__(self, token, bonus=5.0):
        self.token, self.bonus, self.seen = token, bonus, []

    def log_weights(self, cands, x_t, t, log_q, k=1):
        self.seen.append((cands.clone(), x_t.clone()))
        return self.bonus * (cands == self.token).sum(-1).float()


def run(gen):
    events = list(gen)
    return events, events[-1]


@pytest.mark.parametrize("sampler", ["mdlm", "edlm"])
def test_invariants(denoiser, sampler):
    x = start(batch=2)
    cfg = SamplerConfig(steps=8, k=3, is_window=1.0, seed=1)
    gen = sample_mdlm(denoiser, x, cfg) if sampler == "mdlm" else sample_edlm(denoiser, CountingEnergy(7), x, cfg)
    events, last = run(gen)
    assert len(events) == 8 and last.final
    assert not bool((last.tokens == MASK).any())
    fixed = x != MASK
    for ev in events:
        assert torch.equal(ev.tokens[fixed], x[fixed])
        assert torch.equal(ev.fixed, fixed)
        if ev.is_step:
            assert torch.allclose(ev.weights.sum(-1), torch.ones(2))
            assert bool(((ev.ess >= 1 - 1e-5) & (ev.ess <= 3 + 1e-5)).all())


@pytest.mark.parametrize("sampler", ["mdlm", "edlm"])
def test_same_seed_same_output(denoiser, sampler):
    def once(seed):
        cfg = SamplerConfig(steps=6, k=4, is_window=1.0, seed=seed)
        gen = sample_mdlm(denoiser, start(), cfg) if sampler == "mdlm" else \
            sample_edlm(denoiser, CountingEnergy(7), start(), cfg)
        return run(gen)[1].tokens

    assert torch.equal(once(3), once(3))
    assert not torch.equal(once(3), once(4))


def test_cache_skips_the_forward_when_nothing_was_revealed(denoiser):
    calls = []
    original = denoiser.forward

    def counted(*a, **kw):
        calls.append(1)
        return original(*a, **kw)

    denoiser.forward = counted
    try:
        x = torch.full((1, 8), MASK)
        x[0, :6] = 9  # two masked positions over 64 steps: most steps reveal nothing
        events, last = run(sample_mdlm(denoiser, x, SamplerConfig(steps=64, seed=0)))
    finally:
        del denoiser.forward
    revealing_steps = sum(1 for ev in events[:-1] if ev.revealed.any())
    assert len(calls) == last.denoiser_calls == 1 + revealing_steps < 64


def test_candidates_are_ordered_per_row_for_batches(denoiser):
    """Pins the reference code's layout defect: row b*k + j is candidate j of batch row b."""
    energy = CountingEnergy(7)
    x = start(batch=3)
    x[2, 1] = 30
    k = 4
    events, last = run(sample_edlm(denoiser, energy, x, SamplerConfig(steps=4, k=k, is_window=1.0, seed=0)))
    for cands, x_t in energy.seen:
        assert cands.shape[0] == 3 * k
        for row in range(3 * k):
            b = row // k
            keep = x_t[row] != MASK
            assert torch.equal(x_t[row], x_t[b * k])
            assert torch.equal(cands[row][keep], x_t[row][keep])
    for ev in events:
        if ev.is_step:
            for b in range(3):
                chosen = ev.candidates[b, ev.chosen[b]]
                revealed = ev.revealed[b]
                assert torch.equal(ev.tokens[b][revealed], chosen[revealed])
    assert torch.equal(last.tokens[x != MASK], x[x != MASK])


def test_importance_sampling_follows_the_energy(denoiser):
    x = torch.full((16, 24), MASK)
    probs = denoiser(x, torch.ones(16)).logits.exp().mean((0, 1))
    token = int((probs - 0.05).abs().argmin())  # a token the denoiser proposes now and then

    def count(gen):
        return int((run(gen)[1].tokens == token).sum())

    plain = sum(count(sample_mdlm(denoiser, x, SamplerConfig(steps=8, seed=s))) for s in range(3))
    steered = sum(count(sample_edlm(denoiser, CountingEnergy(token, bonus=3.0), x,
                                    SamplerConfig(steps=8, k=16, is_window=1.0, seed=s))) for s in range(3))
    assert steered > 2 * plain + 10


def test_is_window_limits_energy_calls(denoiser):
    x = torch.full((1, 16), MASK)
    _, last = run(sample_edlm(denoiser, CountingEnergy(7), x, SamplerConfig(steps=10, k=2, is_window=0.3)))
    assert last.energy_calls == 3  # t = 1.0, 0.9, 0.8 are inside (0.7, 1]


def test_shape_log_probs():
    lp = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    greedy = shape_log_probs(lp, 0.0, 1.0)
    assert greedy.exp().tolist() == [[1.0, 0.0, 0.0, 0.0]]
    nucleus = shape_log_probs(lp, 1.0, 0.8).exp()
    assert torch.allclose(nucleus, torch.tensor([[0.5 / 0.8, 0.3 / 0.8, 0.0, 0.0]]))
    banned = shape_log_probs(lp, 1.0, 1.0, banned=(0,)).exp()
    assert banned[0, 0] == 0 and torch.isclose(banned.sum(), torch.tensor(1.0))
    hot = shape_log_probs(lp, 2.0, 1.0).exp()
    assert hot[0, 0] < 0.5 and hot[0, 3] > 0.05


def test_weights_sum_to_one_helper():
    w, _ = normalise(torch.randn(5, 7))
    assert torch.allclose(w.sum(-1), torch.ones(5))




def test_categorical_sampling_matches_the_distribution_and_never_draws_zero_mass():
    from edlm.sampling import sample_categorical

    probs = torch.tensor([[0.5, 0.0, 0.3, 0.2], [0.0, 0.0, 1.0, 0.0]])
    draws = sample_categorical(probs.cumsum(-1), 20000, torch.Generator().manual_seed(0))
    freq = torch.stack([(draws[0] == i).float().mean() for i in range(4)])
    assert torch.allclose(freq, probs[0], atol=0.015)
    assert not bool((draws[0] == 1).any()) and bool((draws[1] == 2).all())


@pytest.mark.parametrize("process", ["absorbing", "uniform"])
def test_greedy_final_step_takes_the_likeliest_tokens(denoiser, process):
    """final="greedy": the last step writes each position's likeliest token (with one step, the temperature-0
    result); the steps before it still draw, so seeds still differ over longer runs."""
    from edlm.sampling import sample
    from tests.test_uniform import uniform_denoiser

    model = denoiser if process == "absorbing" else uniform_denoiser(MASK)
    x = start(batch=2)

    def last(steps, seed, **kw):
        return run(sample(model, x, SamplerConfig(steps=steps, seed=seed, **kw)))[1].tokens

    greedy = last(1, 1, final="greedy")
    if process == "absorbing":  # (a uniform run starts from seeded random tokens, so its input depends on the seed)
        assert torch.equal(greedy, last(1, 2, final="greedy"))
    assert torch.equal(greedy, last(1, 1, temperature=0.0))
    assert not torch.equal(last(1, 1), last(1, 2))
    assert not torch.equal(last(8, 1, final="greedy"), last(8, 2, final="greedy"))
    with pytest.raises(ValueError, match="unknown final step"):
        SamplerConfig(final="best")


def test_the_is_temperature_flattens_the_weights_by_dividing_the_log_weights(bundle):
    """Tempered importance sampling: weights = softmax(log w / tau); tau = 1 is the EDLM target, larger tau gives
    a larger effective sample size."""
    from edlm import infill_stream

    text = "We the people of the [MASK:6], in order to form a more perfect union."
    runs = {tau: [e for e in infill_stream(bundle, text, sampler="edlm-ar", k=4, is_window=1.0, steps=4, seed=1,
                                           is_temperature=tau, target_ess=0.0) if e.is_step] for tau in (1.0, 4.0)}
    for tau, steps in runs.items():
        for e in steps:
            want = torch.softmax(torch.tensor(e.log_weights) / tau, -1)
            assert torch.allclose(torch.tensor(e.weights), want, atol=1e-5)
    first = {tau: steps[0] for tau, steps in runs.items()}
    assert first[1.0].log_weights == pytest.approx(first[4.0].log_weights)  # same candidates, same energies
    assert first[4.0].ess >= first[1.0].ess
