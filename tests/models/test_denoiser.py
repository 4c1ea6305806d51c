import torch
from transformers import AutoModelForMaskedLM

from edlm.models import DenoiserModel, DiTConfig, EnergyModel


def tiny(**kw):
    torch.manual_seed(0)
    model = DenoiserModel(DiTConfig(vocab_size=50, hidden_size=32, n_blocks=2, n_heads=2, cond_dim=16, length=16,
                                    mask_token_id=4, dropout=0.0, **kw))
    for p in model.parameters():  # the DiT zero-initialises its output: give it something to say
        torch.nn.init.normal_(p, std=0.2)
    return model.eval()


def test_subs_parameterisation():
    model = tiny()
    x = torch.tensor([[5, 4, 7, 4, 9, 4]])
    log_p = model(x, torch.tensor([0.5])).logits
    probs = log_p.exp()
    assert torch.allclose(probs.sum(-1), torch.ones(1, 6), atol=1e-5)
    assert bool((probs[..., 4] == 0).all())  # the mask token is never predicted
    for i in (0, 2, 4):                      # visible tokens are copied
        assert probs[0, i, x[0, i]] == 1.0


def test_positions_restrict_the_output():
    model = tiny()
    x = torch.tensor([[5, 4, 7, 4], [4, 4, 8, 9]])
    full = model(x, torch.tensor([0.5, 0.5])).logits
    sel = x == 4
    part = model(x, torch.tensor([0.5, 0.5]), positions=sel).logits
    assert torch.allclose(full[sel], part, atol=1e-5)


def test_time_conditioning_switch():
    x = torch.tensor([[5, 4, 7, 4]])
    plain = tiny()
    assert torch.allclose(plain(x, torch.tensor([0.1])).logits, plain(x, torch.tensor([0.9])).logits)
    timed = tiny(time_conditioning=True)
    assert not torch.allclose(timed(x, torch.tensor([0.1])).logits, timed(x, torch.tensor([0.9])).logits)


def test_save_and_load_round_trip_with_safetensors(tmp_path):
    import edlm.models  # noqa: F401

    model = tiny()
    model.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").exists()
    again = AutoModelForMaskedLM.from_pretrained(tmp_path, use_safetensors=True).eval()
    x = torch.tensor([[5, 4, 7, 4]])
    assert torch.allclose(model(x).logits, again(x).logits, atol=1e-5)


def test_energy_starts_from_the_denoiser_and_returns_one_scalar():
    den = tiny()
    energy = EnergyModel.from_denoiser(den).eval()
    assert torch.equal(energy.backbone.blocks[0].attn_qkv.weight, den.backbone.blocks[0].attn_qkv.weight)
    x0 = torch.tensor([[5, 6, 7, 8], [9, 10, 11, 12]])
    x_t = torch.tensor([[5, 4, 7, 4], [4, 4, 11, 12]])
    e = energy(x0, x_t, torch.tensor([0.5, 0.5])).logits
    assert e.shape == (2,)


def test_sampler_feeds_the_previous_prediction_to_a_self_conditioning_denoiser():
    """Step 1 gets no self-conditioning input (as in half of training); later steps get the previous step's
    probabilities at the still-masked positions and one-hot rows at the visible ones."""
    from edlm.sampling import SamplerConfig, sample

    torch.manual_seed(0)
    model = DenoiserModel(DiTConfig(vocab_size=30, hidden_size=32, n_blocks=1, n_heads=2, cond_dim=16, length=16,
                                    mask_token_id=4, dropout=0.0, self_conditioning=True)).eval()
    for p in model.parameters():
        torch.nn.init.normal_(p, std=0.3)
    seen, original = [], model.forward

    def spy(x, t, positions=None, self_cond="auto"):
        out = original(x, t, positions=positions, self_cond=self_cond)
        seen.append((x.clone(), positions.clone(), self_cond, out.logits))
        return out

    model.forward = spy
    x = torch.full((1, 16), 4)
    x[0, 0] = 9
    list(sample(model, x, SamplerConfig(steps=6, seed=0)))
    assert seen[0][2] is None and len(seen) > 1
    (x1, pos1, _, lp1), (x2, pos2, sc2, _) = seen[0], seen[1]
    dense = torch.zeros(1, 16, 30)
    dense[pos1] = lp1.exp()
    assert torch.equal(sc2.positions, pos2) and torch.allclose(sc2.probs, dense[pos2])
    # The sparse input means what the dense one of training means: one-hot rows at visible positions.
    dense_input = dense.clone()
    visible = x2 != 4
    dense_input[visible] = torch.nn.functional.one_hot(x2[visible], 30).float()
    dense_input[~visible & ~pos2] = 0.0
    t = torch.full((1,), 0.5)
    with torch.inference_mode():
        sparse_out, dense_out = original(x2, t, self_cond=sc2).logits, original(x2, t, self_cond=dense_input).logits
    assert torch.allclose(sparse_out.exp(), dense_out.exp(), atol=1e-5)


def test_a_position_masked_again_gets_no_stale_prediction():
    """With remasking, a position may be masked now that the previous proposal did not predict: its
    self-conditioning row is zero, as in training's "no prediction"."""
    from edlm.sampling import Proposal, SamplerConfig

    torch.manual_seed(0)
    model = DenoiserModel(DiTConfig(vocab_size=30, hidden_size=32, n_blocks=1, n_heads=2, cond_dim=16, length=8,
                                    mask_token_id=4, dropout=0.0, self_conditioning=True)).eval()
    x = torch.tensor([[4, 4, 9, 4, 10, 4, 4, 4]])
    prev = Proposal(model, x, 0.8, x == 4, SamplerConfig())
    now = x.clone()
    now[0, 1], now[0, 2] = 11, 4  # position 1 revealed, position 2 masked again
    sc = prev.self_cond_for(now, now == 4, model.config)
    rows = (now == 4).nonzero()[:, 1].tolist()
    assert rows == [0, 2, 3, 5, 6, 7]
    assert torch.all(sc.probs[1] == 0)
    assert torch.allclose(sc.probs[0], prev.log_p[0].exp()) and torch.allclose(sc.probs[2], prev.log_p[2].exp())
