import math

import torch
from transformers import LlamaConfig, LlamaForCausalLM

from edlm.energy import AREnergy, NCEEnergy, ar_log_likelihood, normalise


def tiny_ar():
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=20, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                      num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=16)
    return LlamaForCausalLM(cfg).eval()


@torch.no_grad()
def brute_force_log_p(model, ids, bos):
    total = 0.0
    seq = [bos] + ids
    for i in range(1, len(seq)):
        logits = model(input_ids=torch.tensor([seq[:i]])).logits[0, -1]
        total += float(logits.log_softmax(-1)[seq[i]])
    return total


def test_ar_weights_are_log_likelihood_minus_log_proposal():
    """Pins the reference code's defects: log-probabilities (not probabilities), and + log p_AR (not -)."""
    model = tiny_ar()
    cands = torch.tensor([[5, 6, 7, 8], [9, 9, 9, 9]])
    x_t = torch.tensor([[5, 3, 7, 3], [9, 3, 9, 3]])
    log_q = torch.tensor([-2.0, -3.5])
    w = AREnergy(model, bos_id=1, mask_id=3).log_weights(cands, x_t, torch.tensor([0.5, 0.5]), log_q)
    for i in range(2):
        expected = brute_force_log_p(model, cands[i].tolist(), 1) - float(log_q[i])
        assert math.isclose(float(w[i]), expected, rel_tol=1e-4, abs_tol=1e-4)


def test_carry_over_scores_only_masked_positions():
    model = tiny_ar()
    cands = torch.tensor([[5, 6, 7, 8]])
    x_t = torch.tensor([[5, 3, 7, 3]])
    co = AREnergy(model, 1, 3, carry_over=True).log_weights(cands, x_t, torch.tensor([0.5]), torch.zeros(1))
    logp = model(input_ids=torch.tensor([[1, 5, 6, 7]])).logits.log_softmax(-1)[0]
    expected = float(logp[1, 6] + logp[3, 8])
    assert math.isclose(float(co[0]), expected, rel_tol=1e-4)
    full = ar_log_likelihood(model, cands, 1)
    assert float(full[0]) < float(co[0])  # the full score also counts the fixed tokens


class FixedEnergy(torch.nn.Module):
    def __init__(self, energies):
        super().__init__()
        self.energies = energies

    def forward(self, x0, x_t, t):
        from types import SimpleNamespace
        return SimpleNamespace(logits=self.energies[: x0.shape[0]])


def test_low_energy_means_high_weight():
    """Pins the sign: weights are softmax(-E), not softmax(+E)."""
    e = NCEEnergy(FixedEnergy(torch.tensor([5.0, -5.0, 0.0])))
    log_w = e.log_weights(torch.zeros(3, 4, dtype=torch.long), torch.zeros(3, 4, dtype=torch.long),
                          torch.full((3,), 0.5), torch.zeros(3))
    w, ess = normalise(log_w)
    assert int(w.argmax()) == 1
    assert math.isclose(float(w.sum()), 1.0, rel_tol=1e-6)


def test_normalise_and_ess():
    w, ess = normalise(torch.tensor([[0.0, 0.0, 0.0, 0.0], [0.0, -1e9, -1e9, -1e9]]))
    assert torch.allclose(w[0], torch.full((4,), 0.25))
    assert math.isclose(float(ess[0]), 4.0, rel_tol=1e-6) and math.isclose(float(ess[1]), 1.0, rel_tol=1e-6)
    big, _ = normalise(torch.tensor([[1000.0, 999.0]]))  # stable in log space
    assert torch.isfinite(big).all()


def test_product_weighting_keeps_the_denoiser_in_the_target():
    model = tiny_ar()
    cands = torch.tensor([[5, 6, 7, 8]])
    x_t = torch.tensor([[5, 3, 7, 3]])
    log_q = torch.tensor([-2.5])
    ratio = AREnergy(model, 1, 3).log_weights(cands, x_t, torch.tensor([0.5]), log_q)
    product = AREnergy(model, 1, 3, weighting="product").log_weights(cands, x_t, torch.tensor([0.5]), log_q)
    assert math.isclose(float(ratio[0]) - float(product[0]), 2.5, rel_tol=1e-5)
    import pytest

    with pytest.raises(ValueError, match="weighting"):
        AREnergy(model, 1, 3, weighting="nope")


def test_shared_prefix_scores_match_full_scores_up_to_a_group_constant():
    """Two groups of k = 3 candidates: the prefix before the first difference runs once per group, and the
    within-group differences of the scores equal those of the full likelihood (with and without carry-over)."""
    from edlm.energy import ar_candidate_log_likelihood

    model = tiny_ar()
    gen = torch.Generator().manual_seed(0)
    B, k, L = 2, 3, 10
    x_t = torch.randint(4, 20, (B, L), generator=gen)
    x_t[0, 4:8] = 3
    x_t[1, 6:9] = 3
    cands = x_t.unsqueeze(1).repeat(1, k, 1)
    masked = (x_t == 3).unsqueeze(1).expand(B, k, L)
    cands[masked] = torch.randint(4, 20, (int(masked.sum()),), generator=gen)
    flat, score = cands.view(B * k, L), masked.reshape(B * k, L)
    seen = []
    hook = model.model.embed_tokens.register_forward_hook(lambda m, i, o: seen.append(i[0].numel()))
    for sel in (None, score):
        for chunk in (64, 4):  # 4 rows per chunk = 1 group: groups are never split across chunks
            seen.clear()
            fast = ar_candidate_log_likelihood(model, flat, k, bos_id=1, score=sel, chunk=chunk).view(B, k)
            assert sum(seen) < B * k * L  # the shared prefix was not run k times
            full = ar_log_likelihood(model, flat, 1, sel).view(B, k)
            assert torch.allclose(fast - fast[:, :1], full - full[:, :1], atol=1e-4)
    hook.remove()
    no_prefix = cands.clone()
    no_prefix[:, :, 0] = torch.arange(k) + 4  # differ at position 0: nothing to share, exact scores
    exact = ar_candidate_log_likelihood(model, no_prefix.view(B * k, L), k, bos_id=1)
    assert torch.allclose(exact, ar_log_likelihood(model, no_prefix.view(B * k, L), 1), atol=1e-4)


def test_energy_horizon_scores_up_to_n_tokens_past_the_last_difference():
    """With a horizon H the scores are the full likelihood of positions up to H after the last position where a
    group's candidates differ (up to a group constant), the text further on never goes through the model, and a
    horizon past the window's end changes nothing."""
    from edlm.energy import ar_candidate_log_likelihood

    model = tiny_ar()
    gen = torch.Generator().manual_seed(1)
    B, k, L = 2, 3, 14
    x_t = torch.randint(4, 20, (B, L), generator=gen)
    x_t[0, 3:6] = 3
    x_t[1, 4:7] = 3  # last difference at position 6 (some group): the horizon counts from there
    cands = x_t.unsqueeze(1).repeat(1, k, 1)
    masked = (x_t == 3).unsqueeze(1).expand(B, k, L)
    cands[masked] = torch.randint(4, 20, (int(masked.sum()),), generator=gen)
    flat = cands.view(B * k, L)
    seen = []
    hook = model.model.embed_tokens.register_forward_hook(lambda m, i, o: seen.append(i[0].shape[-1]))
    for horizon in (1, 3):
        seen.clear()
        near = ar_candidate_log_likelihood(model, flat, k, bos_id=1, horizon=horizon).view(B, k)
        assert seen == [3, 4 + horizon]  # the prefix (BOS + positions 0-1), then positions 2 .. 6 + horizon - 1
        upto = torch.zeros(B * k, L, dtype=torch.bool)
        upto[:, :7 + horizon] = True
        full = ar_log_likelihood(model, flat, 1, upto).view(B, k)
        assert torch.allclose(near - near[:, :1], full - full[:, :1], atol=1e-4)
        whole = ar_log_likelihood(model, flat, 1).view(B, k)  # the left-out text counts without the horizon
        assert not torch.allclose(near - near[:, :1], whole - whole[:, :1], atol=1e-3)
    hook.remove()
    assert torch.allclose(ar_candidate_log_likelihood(model, flat, k, 1, horizon=L),
                          ar_candidate_log_likelihood(model, flat, k, 1), atol=1e-5)
    energy = AREnergy(model, 1, 3, weighting="product", horizon=2)
    assert torch.allclose(energy.log_weights(flat, x_t.repeat_interleave(k, 0), torch.full((B * k,), 0.5),
                                             torch.zeros(B * k), k=k),
                          ar_candidate_log_likelihood(model, flat, k, 1, horizon=2))


def test_identical_candidates_get_equal_weights_without_a_model_pass():
    """Greedy decoding (temperature 0) draws k identical candidates: nothing to tell apart, nothing to run."""
    from edlm.energy import ar_candidate_log_likelihood

    model = tiny_ar()
    calls = []
    hook = model.register_forward_hook(lambda m, i, o: calls.append(1))
    same = torch.tensor([[5, 6, 7, 8]] * 3 + [[9, 9, 9, 9]] * 3)
    scores = ar_candidate_log_likelihood(model, same, 3, bos_id=1)
    hook.remove()
    assert not calls and torch.equal(scores, torch.zeros(6))
    w, ess = normalise(AREnergy(model, 1, 3).log_weights(same, same, torch.full((6,), 0.5), torch.zeros(6),
                                                         k=3).view(2, 3))
    assert torch.allclose(w, torch.full((2, 3), 1 / 3)) and torch.allclose(ess, torch.full((2,), 3.0))


def test_tempering_to_a_target_ess_raises_the_temperature_only_as_far_as_needed():
    import pytest
    import torch

    from edlm.energy import normalise, temper

    lw = torch.tensor([[0.0, -12.0, -15.0, -20.0], [0.0, -0.1, -0.2, -0.3], [0.0, -1.0, -2.0, -3.0]])
    tempered, tau = temper(lw, 1.0, 0.5)
    ess = normalise(tempered)[1]
    assert tau[0] > 5 and ess[0] == pytest.approx(2.0, abs=1e-3)  # one winner: tempered until ESS = 2 of 4
    assert tau[1] == 1.0 and ess[1] > 3.9  # already varied: untouched
    assert tau[2] == 1.0 and ess[2] > 2.0  # ESS 2.08 at the floor already: untouched
    assert torch.equal(temper(lw, 2.0, 0.0)[0], lw.double() / 2.0)  # off: the fixed IS temperature
    assert bool((temper(lw, 3.0, 0.5)[1] >= 3.0).all())  # never below the IS temperature
    same = torch.zeros(2, 4)
    assert bool((temper(same, 1.0, 1.0)[1] == 1.0).all())  # all equal: nothing to temper


def test_a_target_ess_reaches_the_sampler_and_is_reported(bundle):
    from edlm.pipeline import infill_stream
    from edlm.limits import validate

    assert validate(target_ess=0.5).target_ess == 0.5
    import pytest

    with pytest.raises(ValueError, match="target_ess"):
        validate(target_ess=1.5)
    text = "We shall [MASK:12] and we shall not fail."
    steps = [e for e in infill_stream(bundle, text, sampler="edlm-ar", k=4, is_window=1.0, steps=6, seed=2,
                                      target_ess=0.75) if e.is_step]
    assert steps and all(e.ess >= 0.75 * 4 - 1e-3 for e in steps)
