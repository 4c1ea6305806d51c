import pytest
import torch

from edlm.masked import AbsorbingProcess
from edlm.noise import LogLinearSchedule
from edlm.rand import RowRandom
from edlm.sampling import SamplerConfig
from edlm.transitions import StepContext

MASK = 4


def ctx_for(x_t, x0, t, s, schedule, seed=0):
    editable = torch.ones_like(x_t, dtype=torch.bool)
    masked = (x_t == MASK) & editable
    log_q = torch.zeros(int(masked.sum()), 10)
    return StepContext(x=x_t, x0=x0, masked=masked, editable=editable, log_q=log_q, t=t, s=s, schedule=schedule,
                       generator=RowRandom(seed, x_t.shape[0]))


def test_random_order_step_reveals_with_the_posterior_probability_and_keeps_revealed():
    proc = AbsorbingProcess(MASK, LogLinearSchedule(eps=0.0))
    x_t = torch.full((1, 20000), MASK)
    x_t[0, :100] = 7
    x0 = torch.full_like(x_t, 9)
    x0[0, :100] = 7
    x_s, again = proc.step(ctx_for(x_t, x0, 0.5, 0.25, proc.schedule), SamplerConfig(unmask="random"))
    assert bool((x_s[0, :100] == 7).all()) and not bool(again.any())
    frac = float((x_s[0, 100:] == 9).float().mean())  # (alpha_s - alpha_t) / (1 - alpha_t) = 0.5
    assert abs(frac - 0.5) < 0.02
    assert set(x_s.unique().tolist()) == {MASK, 7, 9}
    last, _ = proc.step(ctx_for(x_t, x0, 0.1, 0.0, LogLinearSchedule()), SamplerConfig(unmask="random"))
    assert not bool((last == MASK).any())


def test_remasking_masks_written_tokens_only_inside_its_window():
    proc = AbsorbingProcess(MASK, LogLinearSchedule())
    x_t = torch.full((1, 4000), 7)
    x_t[0, :2000] = MASK
    x0 = torch.full_like(x_t, 9)
    x0[0, 2000:] = 7
    cfg = SamplerConfig(unmask="random", remask="remdm", remask_strength=0.5, remask_window=(0.55, 0.05))
    x_s, again = proc.step(ctx_for(x_t, x0, 0.5, 0.45, proc.schedule), cfg)
    assert bool(again.any()) and bool((again[0, :2000] == 0).all())  # only written positions are masked again
    assert bool((x_s[again] == MASK).all())
    _, outside = proc.step(ctx_for(x_t, x0, 0.9, 0.85, proc.schedule), cfg)
    assert not bool(outside.any())


def test_start_keeps_the_spans_masked_and_predicted_is_the_editable_masks():
    proc = AbsorbingProcess(MASK, LogLinearSchedule())
    x = torch.tensor([[1, MASK, 2, MASK]])
    editable = torch.tensor([[False, True, False, False]])
    assert torch.equal(proc.start(x, editable, RowRandom(0, 1)), x)
    assert proc.predicted(x, editable).tolist() == [[False, True, False, False]]
    proc.check(SamplerConfig(remask="remdm"))  # every rule applies to masked diffusion
    with pytest.raises(ValueError, match="unknown unmask order"):
        SamplerConfig(unmask="sideways")
