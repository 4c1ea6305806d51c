"""edlm-smc: k particles through the reverse steps, weighted by the energy, resampled when the ESS is low."""
import dataclasses

import pytest
import torch

from edlm.sampling import SamplerConfig
from edlm.smc import sample_smc, systematic
from tests.conftest import random_denoiser
from tests.test_sampling import MASK, CountingEnergy, start


@pytest.fixture(scope="module")
def denoiser():
    return random_denoiser(MASK)


def test_systematic_resampling_follows_the_weights():
    w = torch.tensor([[0.0, 1.0, 0.0, 0.0], [0.25, 0.25, 0.25, 0.25], [0.5, 0.0, 0.0, 0.5]])
    a = systematic(w, torch.tensor([0.3, 0.3, 0.3], dtype=torch.float64))
    assert a[0].tolist() == [1, 1, 1, 1] and a[1].tolist() == [0, 1, 2, 3] and a[2].tolist() == [0, 0, 3, 3]


def sometimes_proposed(denoiser) -> int:
    probs = denoiser(torch.full((16, 24), MASK), torch.ones(16)).logits.exp().mean((0, 1))
    return int((probs - 0.05).abs().argmin())  # a token the denoiser proposes now and then


def test_particles_fill_the_spans_keep_the_text_and_weigh_toward_the_energy(denoiser):
    x = start(batch=2)
    fixed, token = x != MASK, sometimes_proposed(denoiser)
    cfg = SamplerConfig(steps=8, k=4, is_window=1.0, seed=3, resample_ess=0.5)
    events = list(sample_smc(denoiser, x, cfg, CountingEnergy(token, bonus=3.0)))
    last = events[-1]
    assert last.final and not bool((last.tokens == MASK).any())
    for ev in events:
        assert torch.equal(ev.tokens[fixed], x[fixed]) and ev.tokens.shape == x.shape
        if ev.is_step:
            assert ev.candidates.shape == (2, 4, x.shape[1]) and torch.allclose(ev.weights.sum(-1), torch.ones(2))
            assert bool(((ev.ess >= 1 - 1e-5) & (ev.ess <= 4 + 1e-5)).all())
        if "ancestors" in ev.extra:
            anc = ev.extra["ancestors"]
            assert anc.shape == (2, 4) and bool(((anc >= 0) & (anc < 4)).all())
            keep = ~ev.extra["resampled"]
            assert torch.equal(anc[keep], torch.arange(4).expand(2, 4)[keep])  # rows not resampled keep theirs
    assert any("ancestors" in ev.extra for ev in events)  # a strong energy leaves few particles with weight
    count = lambda t: int((t == token).sum())  # noqa: E731
    steered = sum(count(list(sample_smc(denoiser, x, SamplerConfig(steps=8, k=8, is_window=1.0, seed=s),
                                        CountingEnergy(token, bonus=3.0)))[-1].tokens) for s in range(3))
    plain = sum(count(list(sample_smc(denoiser, x, SamplerConfig(steps=8, k=8, seed=s), None))[-1].tokens)
                for s in range(3))
    assert steered > 2 * plain + 2


@pytest.mark.parametrize("potential", ["draw", "lookahead"])
def test_weights_telescope_to_the_finished_texts_energy(denoiser, potential):
    """Never resampled, a particle's log-weight at the end is the energy of its finished text, whatever each step
    scored: the target is the denoiser's chain times exp(-E) with either potential."""
    x, token = start(batch=2), sometimes_proposed(denoiser)
    energy = CountingEnergy(token, bonus=1.5)
    cfg = SamplerConfig(steps=6, k=4, is_window=1.0, seed=1, resample_ess=0.0, potential=potential)
    events = list(sample_smc(denoiser, x, cfg, energy))
    last = events[-1]
    assert sum(ev.is_step for ev in events) == 6 and not bool((last.candidates == MASK).any())
    finished = 1.5 * (last.candidates == token).sum(-1).double()
    assert torch.allclose(last.log_weights.double(), finished, atol=1e-4)


def test_the_lookahead_scores_each_particles_new_text_with_the_rest_at_the_likeliest(denoiser):
    x, token = start(batch=2), sometimes_proposed(denoiser)
    energy = CountingEnergy(token, bonus=3.0)
    cfg = SamplerConfig(steps=8, k=4, is_window=1.0, seed=3, resample_ess=0.0, potential="lookahead")
    events = list(sample_smc(denoiser, x, cfg, energy))
    draws = CountingEnergy(token, bonus=3.0)
    list(sample_smc(denoiser, x, SamplerConfig(steps=8, k=4, is_window=1.0, seed=3, resample_ess=0.0), draws))
    for (scored, before), (drawn, _) in zip(energy.seen, draws.seen):
        assert not bool((scored == MASK).any()) and torch.equal(scored[before != MASK], before[before != MASK])
    # the same particles (same seeds, never resampled): only what is scored differs, not the texts
    assert any(not torch.equal(a, b) for (a, _), (b, _) in zip(energy.seen, draws.seen))
    assert torch.equal(events[-1].candidates, list(sample_smc(denoiser, x, dataclasses.replace(cfg, potential="draw"),
                                                              CountingEnergy(token, bonus=3.0)))[-1].candidates)
    count = lambda t: int((t == token).sum())  # noqa: E731
    steered = sum(count(list(sample_smc(denoiser, x, SamplerConfig(steps=8, k=8, is_window=1.0, seed=s,
                                                                   potential="lookahead"),
                                        CountingEnergy(token, bonus=3.0)))[-1].tokens) for s in range(3))
    plain = sum(count(list(sample_smc(denoiser, x, SamplerConfig(steps=8, k=8, seed=s), None))[-1].tokens)
                for s in range(3))
    assert steered > 2 * plain + 2


def test_same_seed_same_output_and_rows_do_not_depend_on_their_batch(denoiser):
    cfg = SamplerConfig(steps=6, k=3, is_window=1.0, seed=5)
    two = start(batch=2)
    a = list(sample_smc(denoiser, two, cfg, CountingEnergy(7)))[-1].tokens
    assert torch.equal(a, list(sample_smc(denoiser, two, cfg, CountingEnergy(7)))[-1].tokens)
    one = list(sample_smc(denoiser, two[:1], cfg, CountingEnergy(7), row_seeds=[5]))[-1].tokens
    assert torch.equal(one[0], a[0])


def test_never_resampling_and_one_particle_are_the_plain_loop_in_shape(denoiser):
    x = start()
    cfg = SamplerConfig(steps=5, k=3, is_window=1.0, seed=2, resample_ess=0.0)
    assert not any("ancestors" in ev.extra for ev in sample_smc(denoiser, x, cfg, CountingEnergy(7)))
    one = SamplerConfig(steps=5, k=1, is_window=1.0, seed=2)
    assert not bool((list(sample_smc(denoiser, x, one, CountingEnergy(7)))[-1].tokens == MASK).any())


def test_edlm_smc_is_a_registered_sampler_with_its_cost_in_the_budget(bundle):
    from edlm.limits import choices, validate
    from edlm.pipeline import infill
    from edlm.runner import work_of

    assert "edlm-smc" in choices("sampler")
    editable = torch.zeros(128, dtype=torch.bool)
    editable[10:30] = True
    smc, ar = validate(sampler="edlm-smc", k=4, steps=8), validate(sampler="edlm-ar", k=4, steps=8)
    assert work_of(smc, editable, 128) > work_of(ar, editable, 128)  # k denoiser rows per step
    text = "We shall [MASK:5] and we shall not fail."
    out = infill(bundle, text, sampler="edlm-smc", k=3, steps=8, seed=0, unmask="threshold")
    assert out.text.startswith("We shall ") and out.text.endswith(" and we shall not fail.")
    assert out.text == infill(bundle, text, sampler="edlm-smc", k=3, steps=8, seed=0, unmask="threshold").text
