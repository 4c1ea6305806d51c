"""The context cache: exact at a full pass and on unchanged text, approximate between refreshes, per-row schedules,
and the samplers that use it."""
import pytest
import torch

from edlm.models.cache import ContextCache, active_positions
from edlm.models.llada import LLaDAConfig, LLaDADenoiser
from edlm.sampling import SamplerConfig, sample, shape_log_probs
from edlm.smc import sample_smc
from tests.conftest import random_denoiser
from tests.test_sampling import MASK, CountingEnergy

VOCAB, L = 40, 24


def llada(shift: bool) -> LLaDADenoiser:
    torch.manual_seed(0)
    model = LLaDADenoiser(LLaDAConfig(d_model=32, n_heads=4, n_kv_heads=2, n_layers=2, mlp_hidden_size=48,
                                      vocab_size=VOCAB, mask_token_id=MASK, length=L, shift=shift,
                                      bos_token_id=1 if shift else None))
    for p in model.parameters():
        torch.nn.init.normal_(p, std=0.3)
    return model.eval()


def spans() -> tuple[torch.Tensor, torch.Tensor]:
    """Two rows with different spans (row 0: 6-11; row 1: 2-4 and 15-19), the rest fixed text."""
    torch.manual_seed(1)
    x = torch.randint(10, VOCAB, (2, L))
    editable = torch.zeros(2, L, dtype=torch.bool)
    editable[0, 6:12], editable[1, 2:5], editable[1, 15:20] = True, True, True
    x[editable] = MASK
    return x, editable


def probs(model, x, **kw):
    with torch.inference_mode():
        return model(x, positions=x == MASK, **kw).logits.exp()


def reveal(x: torch.Tensor, where: list[tuple[int, int]]) -> torch.Tensor:
    y = x.clone()
    for b, j in where:
        y[b, j] = 20 + j
    return y


def test_active_positions_of_a_shifted_network_hold_or_predict_a_span_token():
    editable = torch.tensor([[False, True, True, False, False]])
    assert active_positions(editable, shift=False).tolist() == editable.tolist()
    # input i holds token i - 1 and predicts token i: inputs 1-3 (predict 1, 2; hold 1, 2), of six
    assert active_positions(editable, shift=True).tolist() == [[False, True, True, True, False, False]]


@pytest.mark.parametrize("shift", [True, False])
def test_full_pass_is_exact_and_a_cached_pass_on_unchanged_text_repeats_it(shift):
    model, (x, editable) = llada(shift), spans()
    cache = ContextCache(editable, refresh=100, shift=shift)
    full = probs(model, x)
    assert torch.equal(probs(model, x, cache=cache), full)  # the first pass is a full one
    assert torch.allclose(probs(model, x, cache=cache), full, atol=1e-5)  # spans alone, same keys and values
    assert cache.age.tolist() == [1, 1]


@pytest.mark.parametrize("shift", [True, False])
def test_between_refreshes_the_fixed_text_lags_and_a_refresh_catches_up(shift):
    model, (x, editable) = llada(shift), spans()
    cache = ContextCache(editable, refresh=2, shift=shift)
    probs(model, x, cache=cache)                         # full
    y = reveal(x, [(0, 7), (0, 9), (1, 3), (1, 16)])
    exact = probs(model, y)
    cached = probs(model, y, cache=cache)                # spans recomputed, fixed text's keys from x
    assert not torch.allclose(cached, exact, atol=1e-4)  # an approximation, not a copy of the full pass
    assert (cached - exact).abs().sum(-1).max() < 1.0    # ... of the same distributions
    assert torch.equal(probs(model, y, cache=cache), exact)  # the second pass after a refresh is full again


def test_rows_keep_their_own_schedule_and_never_depend_on_the_batch():
    model, (x, editable) = llada(True), spans()
    y = reveal(x, [(0, 7), (1, 3)])
    together = ContextCache(editable, refresh=3, shift=True)
    probs(model, x, cache=together)
    both = probs(model, y, cache=together)
    alone = ContextCache(editable[1:], refresh=3, shift=True)
    probs(model, x[1:], cache=alone)
    n0 = int((y[0] == MASK).sum())
    assert torch.allclose(both[n0:], probs(model, y[1:], cache=alone), atol=1e-6)
    # row 1 alone through the shared cache (cache_rows) ages only row 1, and is due for its refresh first
    probs(model, y[1:], cache=together, cache_rows=torch.tensor([1]))
    assert together.age.tolist() == [1, 2]
    mixed = probs(model, y, cache=together)              # row 0 cached, row 1 full: one output, row order kept
    assert torch.equal(mixed[n0:], probs(model, y[1:]))
    assert together.age.tolist() == [2, 0]


def test_take_gives_each_particle_its_ancestors_cache():
    model, (x, editable) = llada(True), spans()
    cache = ContextCache(editable, refresh=10, shift=True)
    probs(model, x, cache=cache)
    cache.take([1, 1])
    y = reveal(x[[1, 1]], [(0, 3), (1, 16)])
    ref = ContextCache(editable[[1, 1]], refresh=10, shift=True)
    probs(model, x[[1, 1]], cache=ref)
    assert torch.allclose(probs(model, y, cache=cache), probs(model, y, cache=ref), atol=1e-6)


def test_sampler_with_cache_refresh_one_is_the_plain_loop_and_any_refresh_keeps_the_text():
    model, (x, editable) = llada(True), spans()
    run = lambda **kw: list(sample(model, x.clone(), SamplerConfig(steps=6, seed=5, top_p=0.9, **kw)))  # noqa: E731
    plain, every = run(), run(cache_refresh=1)
    assert torch.equal(plain[-1].tokens, every[-1].tokens)
    cached = run(cache_refresh=4)
    assert torch.equal(cached[-1].tokens, run(cache_refresh=4)[-1].tokens)  # same seed, same fill
    assert not bool((cached[-1].tokens == MASK).any())
    assert torch.equal(cached[-1].tokens[~editable], x[~editable])
    assert cached[-1].denoiser_calls == plain[-1].denoiser_calls  # the same passes, cheaper ones


def test_particles_carry_their_caches_through_resampling():
    model, (x, editable) = llada(True), spans()
    cfg = SamplerConfig(steps=6, k=3, is_window=1.0, seed=2, resample_ess=1.0, cache_refresh=3)
    runs = [list(sample_smc(model, x.clone(), cfg, CountingEnergy(21, bonus=3.0))) for _ in range(2)]
    assert any("ancestors" in ev.extra for ev in runs[0])  # resampled at least once
    last = runs[0][-1]
    assert torch.equal(last.tokens, runs[1][-1].tokens) and not bool((last.tokens == MASK).any())
    assert torch.equal(last.tokens[~editable], x[~editable])


def test_a_network_without_a_cache_is_told_so():
    x = torch.full((1, 12), MASK)
    with pytest.raises(ValueError, match="cache_refresh needs a denoiser with a context cache"):
        list(sample(random_denoiser(MASK), x, SamplerConfig(steps=2, cache_refresh=2)))
    with pytest.raises(ValueError, match="cache_refresh = -1"):
        SamplerConfig(cache_refresh=-1)
    with pytest.raises(ValueError, match="refreshes every 1 or more"):
        ContextCache(x == MASK, refresh=0, shift=False)


@pytest.mark.parametrize("top_p", [0.3, 0.9, 0.999])
def test_nucleus_keeps_the_smallest_set_reaching_top_p(top_p):
    torch.manual_seed(0)
    lp = torch.cat([torch.randn(3, 500) * 4, torch.randn(2, 500) * 0.1]).log_softmax(-1)  # peaked and flat rows
    out = shape_log_probs(lp, 1.0, top_p)
    for row, kept in zip(lp, torch.isfinite(out)):
        order = row.argsort(descending=True)
        n = int((row[order].exp().cumsum(0) < top_p).sum()) + 1  # tokens needed to reach top_p
        assert kept.sum() == n and bool(kept[order[:n]].all())
    assert torch.allclose(out.exp().sum(-1), torch.ones(5))
