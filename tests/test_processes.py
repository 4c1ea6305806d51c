"""The process registry: a new noise process is one class plus its registration, and the loop, the bundle and
training find it by the name in a denoiser's config."""
import pytest
import torch

from edlm.masked import AbsorbingProcess
from edlm.processes import PROCESSES, process_for, process_name, register_process


class OneShot(AbsorbingProcess):
    """A toy process: masked diffusion whose reverse step reveals every masked position at once."""

    name = "one-shot"

    def step(self, ctx, cfg):
        return torch.where(ctx.masked, ctx.x0, ctx.x), None


@pytest.fixture
def one_shot(bundle):
    register_process("one-shot", OneShot.from_config)
    bundle.denoiser.config.process = "one-shot"
    yield bundle
    bundle.denoiser.config.process = "absorbing"
    del PROCESSES["one-shot"]


def test_a_registered_process_drives_the_loop_through_the_config(one_shot):
    assert one_shot.process == "one-shot" and isinstance(process_for(one_shot.denoiser.config), OneShot)
    from edlm.pipeline import infill_stream

    events = list(infill_stream(one_shot, "We shall [MASK:6] fail.", sampler="mdlm", steps=8, seed=0,
                                unmask="random"))
    assert events[0].masked == 0 and events[0].to_fill == 6  # the toy step revealed everything at once
    assert events[-1].text.startswith("We shall ") and events[-1].text.endswith(" fail.")


def test_an_unknown_or_twice_registered_process_is_refused(bundle):
    class Cfg:
        process = "sideways"

    with pytest.raises(ValueError, match="unknown noise process 'sideways'"):
        process_name(Cfg())
    with pytest.raises(ValueError, match="already registered"):
        register_process("uniform", OneShot.from_config)
    assert process_name(object()) == "absorbing"  # configs saved before processes had names
    from edlm.train import TrainConfig, build_model

    with pytest.raises(ValueError, match="unknown noise process 'sideways'"):
        build_model(TrainConfig(kind="denoiser", out_dir="x", corpus="x", tokenizer="x", process="sideways"),
                    bundle.tokenizer)


def test_a_registered_process_trains_with_its_own_loss(one_shot):
    from edlm.noise import sample_times

    proc = process_for(one_shot.denoiser.config)
    x0 = torch.randint(10, 100, (2, one_shot.window))
    t = sample_times(2, torch.Generator().manual_seed(0))
    x_t = proc.add_noise(x0, t, torch.Generator().manual_seed(1))
    loss = proc.loss(one_shot.denoiser(x_t, t).logits, x0, x_t, t)
    assert loss.shape == (2,) and bool(torch.isfinite(loss).all()) and float(loss.sum()) > 0
