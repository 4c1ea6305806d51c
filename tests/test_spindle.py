"""The spindle schedule (DiffusionBERT) against its definition and the discrete-time ELBO on a tiny vocabulary
(5 ids, the mask id 4)."""
import math

import pytest
import torch

from edlm.noise import LogLinearSchedule
from edlm.sampling import SamplerConfig, sample
from edlm.spindle import MAX_LAMBDA, SpindleProcess, SpindleSchedule, token_information

V, MASK, LAM = 5, 4, 0.3
INFO = torch.tensor([-1.0, -0.3, 0.4, 1.0, 0.0])
PROC = SpindleProcess(MASK, LogLinearSchedule(), SpindleSchedule(INFO, LAM))
P_THETA = torch.tensor([0.1, 0.2, 0.3, 0.4, 0.0], dtype=torch.float64)  # a fixed model; never the mask


def alpha(v: int, t: float) -> float:
    return 1.0 - (1.0 - 1e-3) * t - LAM * math.sin(math.pi * t) * float(INFO[v])


def step_kl(v: int, t: float, s: float) -> float:
    """KL(q(x_s | x_t = mask, x_0 = v) || p_theta(x_s | x_t = mask)) from the definitions: each token u unmasks
    with its own chance r_u = (alpha_u(s) - alpha_u(t)) / (1 - alpha_u(t))."""
    r = [(1.0 if s <= 0 else (alpha(u, s) - alpha(u, t)) / (1.0 - alpha(u, t))) for u in range(4)]
    stay_model = sum(float(P_THETA[u]) * (1.0 - r[u]) for u in range(4))
    kl = r[v] * math.log(r[v] / (float(P_THETA[v]) * r[v]))
    if r[v] < 1.0:
        kl += (1.0 - r[v]) * math.log((1.0 - r[v]) / stay_model)
    return kl


def continuous(v: int, loss_fn) -> float:
    """integral over t of P(masked at t) * the loss of one masked position, by the midpoint rule."""
    n = 20_000
    t = (torch.arange(n, dtype=torch.float64) + 0.5) / n
    x0 = torch.full((n, 1), v)
    log_p = P_THETA.log().expand(n, 1, V)
    per = loss_fn(log_p, x0, torch.full((n, 1), MASK), t).double()
    masked = 1.0 - PROC.spindle.alpha(t, x0)[:, 0]
    return float((masked * per).mean())


@pytest.mark.parametrize("v", [0, 1, 2, 3])
def test_continuous_loss_is_the_limit_of_the_discrete_kl_sum(v):
    """The ELBO with token-dependent rates equals sum_k P(masked at t_k) KL_k as the steps shrink; the plain
    MDLM-style loss (without the E_p[w] - w_v term) does not, so the extra term is needed."""
    steps = 4000
    grid = [1.0 - k / steps for k in range(steps + 1)]
    discrete = sum((1.0 - alpha(v, t)) * step_kl(v, t, s) for t, s in zip(grid[:-1], grid[1:]))
    exact = continuous(v, PROC.loss)
    assert abs(exact - discrete) < 5e-3 * abs(discrete)

    def naive(log_p, x0, x_t, t):
        w = PROC.spindle.rate(t, x0)
        return (w * -log_p.gather(-1, x0.unsqueeze(-1)).squeeze(-1)).sum(-1)
    assert abs(continuous(v, naive) - discrete) > 0.05 * abs(discrete)


def test_schedule_masks_informative_tokens_first_and_stays_a_schedule():
    t = torch.linspace(0, 1, 101, dtype=torch.float64)
    a = PROC.spindle.alpha(t)[:, :4]                       # [T, 4]
    assert torch.allclose(a[0], torch.ones(4, dtype=torch.float64))
    assert torch.allclose(a[-1], torch.full((4,), 1e-3, dtype=torch.float64), atol=1e-9)
    assert (a[1:] < a[:-1]).all()                          # every token's alpha falls with t
    mid = a[50]
    assert mid[0] > mid[1] > mid[2] > mid[3]               # the frequent token stays visible longest
    assert torch.allclose(SpindleSchedule(INFO, 0.0).alpha(t)[:, 0], LogLinearSchedule().alpha(t))
    with pytest.raises(ValueError, match="spindle_lambda"):
        SpindleSchedule(INFO, MAX_LAMBDA)


def test_forward_noise_follows_each_tokens_schedule():
    x0 = torch.arange(4).repeat(20_000, 1)
    t = torch.full((x0.shape[0],), 0.5)
    x_t = PROC.add_noise(x0, t, torch.Generator().manual_seed(0))
    share = (x_t == MASK).double().mean(0)
    want = torch.tensor([1.0 - alpha(v, 0.5) for v in range(4)], dtype=torch.float64)
    assert (share - want).abs().max() < 4 * math.sqrt(0.25 / x0.shape[0])
    assert ((x_t == x0) | (x_t == MASK)).all()


def test_token_information_is_centred_surprisal():
    counts = torch.tensor([1000.0, 100.0, 10.0, 0.0, 0.0])
    d = token_information(counts, special=(4,))
    assert d[4] == 0 and d.abs().max() == 1.0 and d[0] < d[1] < d[2] < d[3]
    p = (counts[:4] + 1) / (counts[:4] + 1).sum()
    assert abs(float((p * d[:4].double()).sum())) < 1e-6   # the corpus-average token keeps the base schedule


class Fixed(torch.nn.Module):
    """A denoiser that always proposes P_THETA at the masked positions, for checking the reverse step."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(()))
        self.config = type("C", (), dict(mask_token_id=MASK, vocab_size=V, time_conditioning=False,
                                         self_conditioning=False, process="spindle", schedule="loglinear",
                                         spindle_info=INFO.tolist(), spindle_lambda=LAM))()

    def forward(self, x, t=None, positions=None, **kw):
        """Log-probs at `positions` [N, V] (the loop asks for the masked ones only)."""
        n = int(positions.sum()) if positions is not None else x.numel()
        return type("O", (), {"logits": P_THETA.float().log().expand(n, V).clone()})()


def test_random_order_reveals_each_token_at_its_own_pace():
    """One reverse step 1 -> 0.5 from all masks: token v appears with chance p_v (alpha_v(0.5) - alpha_v(1)) /
    (1 - alpha_v(1)); frequent tokens are revealed early. Fixed text is never touched and seeds repeat."""
    x = torch.full((4000, 8), MASK)
    x[:, 0] = 2
    cfg = SamplerConfig(steps=2, unmask="random", seed=3)
    first = next(iter(sample(Fixed(), x, cfg)))
    got = torch.stack([(first.tokens[:, 1:] == v).double().mean() for v in range(4)])
    want = torch.tensor([float(P_THETA[v]) * (alpha(v, 0.5) - alpha(v, 1.0)) / (1.0 - alpha(v, 1.0))
                         for v in range(4)], dtype=torch.float64)
    assert (got - want).abs().max() < 4 * math.sqrt(0.25 / (4000 * 7))
    events = list(sample(Fixed(), x, cfg))
    assert (events[-1].tokens[:, 0] == 2).all() and not (events[-1].tokens == MASK).any()
    assert torch.equal(events[-1].tokens, list(sample(Fixed(), x, cfg))[-1].tokens)
    with pytest.raises(ValueError, match="remask"):
        list(sample(Fixed(), x, SamplerConfig(steps=2, remask="remdm")))
