import math

import pytest
import torch

from edlm.noise import (CosineSchedule, LogLinearSchedule, add_noise, alphas, diffusion_loss, elbo_weight,
                        get_schedule, sample_times)


def test_loglinear_schedule_values():
    s = LogLinearSchedule(eps=1e-3)
    t = torch.tensor([0.0, 0.5, 1.0])
    assert torch.allclose(s.alpha(t), torch.tensor([1.0, 1 - 0.999 * 0.5, 0.001]))
    assert torch.allclose(s.sigma(t), -torch.log(s.alpha(t)))
    assert torch.allclose(elbo_weight(torch.tensor([0.25]), s), torch.tensor([4.0]))  # 1/t for log-linear


def test_cosine_schedule_is_monotone_and_unknown_name_is_rejected():
    s = CosineSchedule()
    a = s.alpha(torch.linspace(0, 1, 11))
    assert bool((a[1:] < a[:-1]).all()) and abs(float(a[0]) - 1) < 1e-6
    with pytest.raises(ValueError, match="unknown noise schedule"):
        get_schedule("nope")


def test_add_noise_masks_at_the_scheduled_rate():
    g = torch.Generator().manual_seed(0)
    x0 = torch.randint(5, 100, (64, 512), generator=g)
    for t in (0.1, 0.5, 0.9):
        x_t = add_noise(x0, torch.full((64,), t), 4, LogLinearSchedule(), g)
        rate = float((x_t == 4).float().mean())
        assert abs(rate - 0.999 * t) < 0.01
        assert bool((x_t[x_t != 4] == x0[x_t != 4]).all())


def test_sample_times_cover_the_interval():
    t = sample_times(8, torch.Generator().manual_seed(1))
    assert t.min() >= 1e-3 and t.max() <= 1.0
    assert len(set((t * 8).floor().clamp(max=7).tolist())) == 8  # one per stratum


def test_alphas_of_a_step_end_at_one_exactly():
    s = LogLinearSchedule(eps=0.0)
    assert alphas(s, 1.0, 0.75) == pytest.approx((0.0, 0.25))
    assert alphas(s, 0.5, 0.25) == pytest.approx((0.5, 0.75))
    assert alphas(LogLinearSchedule(), 0.3, 0.0)[1] == 1.0  # alpha_0 = 1 whatever eps: the last step reveals all


def test_diffusion_loss_hand_computed():
    # vocabulary 3 (+ mask id 3), length 2, one masked position with p(true) = 0.5 at t = 0.5
    log_p = torch.log(torch.tensor([[[0.5, 0.25, 0.25, 1e-30], [1.0, 1e-30, 1e-30, 1e-30]]]))
    x0 = torch.tensor([[0, 0]])
    x_t = torch.tensor([[3, 0]])
    loss = diffusion_loss(log_p, x0, x_t, torch.tensor([0.5]), 3, LogLinearSchedule(eps=0.0))
    assert float(loss) == pytest.approx((1 / 0.5) * math.log(2) / 2)
