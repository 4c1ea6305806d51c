"""The one sampling loop with every unmasking order and remasking rule: invariants, registries, float64 draws."""
import pytest
import torch

from edlm import transitions
from tests.conftest import random_denoiser
from edlm.sampling import RowRandom, SamplerConfig, sample, sample_categorical
from edlm.transitions import UNMASK, unmask_order

MASK = 4


@pytest.fixture(scope="module")
def denoiser():
    return random_denoiser(MASK)


class TokenEnergy:
    name = "test"

    def log_weights(self, cands, x_t, t, log_q, k=1):
        return 2.0 * (cands == 7).sum(-1).float()


def layout(batch=2, length=24):
    """Fixed tokens (one of them a literal mask id, which must stay) around editable spans."""
    x = torch.full((batch, length), MASK)
    editable = torch.ones(batch, length, dtype=torch.bool)
    for p, tok in ((0, 10), (5, 11), (6, MASK), (length - 1, 12)):
        x[:, p] = tok
        editable[:, p] = False
    return x, editable


ORDERS = ["random", "confidence", "confidence-noisy", "margin", "entropy"]


@pytest.mark.parametrize("remask", ["none", "remdm"])
@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("with_energy", [False, True])
def test_invariants_of_every_transition(denoiser, order, remask, with_energy):
    x, editable = layout()
    cfg = SamplerConfig(steps=12, k=3, is_window=0.5, seed=3, unmask=order, remask=remask, remask_strength=0.3)
    energy = TokenEnergy() if with_energy else None
    events = list(sample(denoiser, x, cfg, energy, editable=editable))
    assert len(events) == 12
    for ev in events:
        assert torch.equal(ev.tokens[~editable], x[~editable])  # fixed text, literal mask id included
        if ev.remasked is not None:
            assert not bool((ev.remasked & ~editable).any())
    last = events[-1].tokens
    assert not bool(((last == MASK) & editable).any())  # every editable mask is filled at the end
    again = list(sample(denoiser, x, cfg, energy, editable=editable))
    assert torch.equal(again[-1].tokens, last)  # same seed, same output


def test_remasking_rewrites_written_tokens(denoiser):
    x, editable = layout(batch=4)
    cfg = SamplerConfig(steps=24, seed=0, remask="remdm", remask_strength=0.5)
    events = list(sample(denoiser, x, cfg, editable=editable))
    assert sum(int(ev.remasked.sum()) for ev in events) > 0
    counts = [int(((ev.tokens == MASK) & editable).sum()) for ev in events]
    assert any(b > a for a, b in zip(counts, counts[1:]))  # the masked count rises again
    for ev in events:  # remasking happens only inside the window t in [0.05, 0.55], never at the last step
        if ev.remasked.any():
            assert 0.05 <= ev.t <= 0.55 and ev.s > 0


def test_ordered_reveals_take_the_surest_positions(denoiser):
    x, editable = layout(batch=1)
    cfg = SamplerConfig(steps=4, seed=0, unmask="margin")
    first = next(iter(sample(denoiser, x, cfg, editable=editable)))
    masked = (x == MASK) & editable
    log_p = denoiser(x, torch.ones(1), positions=masked).logits.float()
    top2 = log_p.exp().topk(2, -1).values
    margin = torch.full(x.shape, -1.0)
    margin[masked] = top2[:, 0] - top2[:, 1]
    revealed = first.revealed & masked
    n = int(revealed.sum())
    assert n > 0
    best = set(margin[0].argsort(descending=True)[:n].tolist())
    assert set(revealed[0].nonzero().flatten().tolist()) == best


@pytest.mark.parametrize("order", ["random", "confidence"])
def test_batch_rows_do_not_depend_on_batch_size(denoiser, order):
    x, editable = layout(batch=3)
    cfg = SamplerConfig(steps=8, k=3, is_window=1.0, seed=5, unmask=order)
    big = list(sample(denoiser, x, cfg, TokenEnergy(), editable=editable))[-1].tokens
    one = list(sample(denoiser, x[:1], cfg, TokenEnergy(), editable=editable[:1]))[-1].tokens
    assert torch.equal(big[0], one[0])


def test_self_conditioning_rows_do_not_depend_on_batch_size_and_idle_rows_skip_the_denoiser():
    """Many steps for few tokens: at most steps some rows reveal nothing. Such a row keeps its prediction (only
    changed rows are recomputed), so each row equals its run alone, self-conditioning input included."""
    from edlm.models import DenoiserModel, DiTConfig

    torch.manual_seed(1)
    model = DenoiserModel(DiTConfig(vocab_size=40, hidden_size=32, n_blocks=1, n_heads=2, cond_dim=16, length=32,
                                    mask_token_id=MASK, dropout=0.0, self_conditioning=True)).eval()
    for p in model.parameters():
        torch.nn.init.normal_(p, std=0.3)
    rows_seen, forward = [], model.forward
    model.forward = lambda x, t, **kw: rows_seen.append(x.shape[0]) or forward(x, t, **kw)
    x, editable = layout(batch=3, length=12)
    cfg = SamplerConfig(steps=40, seed=0)
    big = list(sample(model, x, cfg, editable=editable, row_seeds=[11, 12, 13]))[-1].tokens
    assert 1 in rows_seen or 2 in rows_seen  # steps where only some rows changed
    for b, seed in enumerate([11, 12, 13]):
        one = list(sample(model, x[b:b + 1], cfg, editable=editable[b:b + 1], row_seeds=[seed]))[-1].tokens
        assert torch.equal(big[b], one[0])


def test_a_new_order_is_one_registered_function(denoiser):
    @unmask_order("left-to-right")
    def reveal_leftmost(ctx):
        first = ctx.masked.float().argmax(-1, keepdim=True)
        return torch.zeros_like(ctx.masked).scatter(-1, first, True) & ctx.masked if ctx.s > 0 else ctx.masked

    try:
        x, editable = layout(batch=1)
        cfg = SamplerConfig(steps=30, seed=0, unmask="left-to-right")
        events = list(sample(denoiser, x, cfg, editable=editable))
        order = [int(ev.revealed[0].nonzero()[0]) for ev in events[:-1] if ev.revealed.any()]
        assert order == sorted(order) and len(order) > 5
        from edlm.limits import validate

        assert validate(unmask="left-to-right").unmask == "left-to-right"
    finally:
        del UNMASK["left-to-right"]


def test_unknown_transition_names_are_refused():
    with pytest.raises(ValueError, match="unknown unmask order"):
        SamplerConfig(unmask="sideways")
    with pytest.raises(ValueError, match="unknown remask rule"):
        SamplerConfig(remask="sometimes")


def test_float64_draws_keep_the_tail_that_float32_loses(denoiser):
    """A head token with 0.999 and a long tail of tiny probabilities: near 1 a float32 cumulative sum cannot step
    by 1e-8, so most tail tokens get zero mass and can never be drawn (a silently lower temperature, Zheng et al.
    2024). The sampler's float64 cdf gives every tail token its mass."""
    probs = torch.full((1, 100_001), 1e-8, dtype=torch.float64)
    probs[0, 0] = 1.0 - 1e-3
    lost32 = int((probs.float().cumsum(-1).diff() == 0).sum())
    lost64 = int((probs.cumsum(-1).diff() == 0).sum())
    assert lost32 > 50_000 and lost64 == 0
    u = torch.tensor([[float(probs[0, :5001].sum()) - 5e-9]], dtype=torch.float64)  # inside tail token 5000
    assert int(sample_categorical(probs.cumsum(-1), 1, u)) == 5000
    from edlm.sampling import Proposal

    x, editable = layout(batch=1)
    q = Proposal(denoiser, x, 1.0, (x == MASK) & editable, SamplerConfig())
    assert q.cdf.dtype == torch.float64


def test_row_random_streams_are_per_row():
    a = RowRandom(7, 3).rand(2, 4)
    b = RowRandom(7, 1).rand(2, 4)
    assert torch.equal(a[:2], b)


def test_remdm_probability_is_capped_by_the_schedule():
    from edlm.noise import get_schedule

    sch = get_schedule("loglinear")
    assert transitions.remdm_probability(0.5, 0.45, sch, 0.02) == pytest.approx(0.02)
    assert transitions.remdm_probability(0.06, 0.0, sch, 0.5) == 0.0
    assert transitions.remdm_probability(0.2, 0.19, sch, 0.5) < 0.5


def test_adaptive_orders_end_early_on_sure_text_and_within_the_budget_otherwise(bundle, monkeypatch):
    """`threshold` and `entropy-bound` end within the step budget when nothing is sure (at least one reveal per
    step), and after one step per context window when everything is; fixed text is kept either way."""
    from edlm import infill, transitions

    text = "The state of the [MASK:6] is strong, and the [MASK:8] of our people."
    for order, knob, never, always in (("threshold", "THRESHOLD", 1.01, 0.0),
                                       ("entropy-bound", "ENTROPY_BOUND", -1.0, 1e9)):
        monkeypatch.setattr(transitions, knob, never)
        ev = infill(bundle, text, unmask=order, sampler="mdlm", steps=8, seed=3)
        assert ev.step <= ev.total_steps and ev.masked == 0 and ev.text.endswith(" of our people.")
        monkeypatch.setattr(transitions, knob, always)
        ev = infill(bundle, text, unmask=order, sampler="edlm-ar", k=2, steps=8, seed=3)
        assert ev.step == ev.windows < ev.total_steps and ev.ended_early and ev.masked == 0
        assert ev.text.startswith("The state of the ") and ev.text.endswith(" of our people.")
