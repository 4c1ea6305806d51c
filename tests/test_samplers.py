"""The sampler, energy and model-preset registries: adding one is one registration, and every layer sees it."""
import pytest
import torch

from edlm import energy as energy_mod
from edlm import infill, presets
from edlm.limits import choices, validate
from edlm.runner import energy_for, work_of
from edlm.samplers import SAMPLERS, Sampler, get_sampler, register_sampler


class PreferToken:
    """A toy energy: each candidate's log-weight is a large multiple of how often it uses one token."""

    name = "prefer-token"

    def __init__(self, token: int):
        self.token = token

    def log_weights(self, candidates, x_t, t, log_q, k=1):
        return 50.0 * (candidates == self.token).sum(-1).float()


@pytest.fixture
def toy_sampler():
    """What a new sampler's file does: one energy source and one sampler entry (removed again after the test)."""
    @energy_mod.energy_source("prefer-token")
    def _source(bundle, req):
        return PreferToken(bundle.tokenizer.convert_tokens_to_ids("▁the"))

    register_sampler(Sampler("edlm-toy", "importance sampling towards one token (test)", energy="prefer-token"))
    yield "edlm-toy"
    del SAMPLERS["edlm-toy"], energy_mod.ENERGIES["prefer-token"]


def test_the_shipped_registries():
    assert choices("sampler") == ("mdlm", "edlm-ar", "edlm-nce", "ar", "ar-is", "edlm-smc")
    from edlm.sampling import sample
    from edlm.smc import sample_smc

    assert get_sampler("edlm-smc").diffusion_loop() is sample_smc and get_sampler("mdlm").diffusion_loop() is sample
    assert get_sampler("ar-is").ar_driven and get_sampler("ar-is").module().__name__ == "edlm.ar_infill"
    assert get_sampler("edlm-ar").energy == "ar" and get_sampler("edlm-nce").energy == "nce"
    assert get_sampler("ar").autoregressive and get_sampler("mdlm").energy is None
    assert {"ar", "nce"} <= set(energy_mod.ENERGIES)
    assert {"default", "mdlm-owt"} <= set(presets.PRESETS)


def test_registering_twice_or_inconsistently_is_refused():
    with pytest.raises(ValueError, match="already registered"):
        register_sampler(Sampler("mdlm", "again"))
    with pytest.raises(ValueError, match="takes no energy"):
        register_sampler(Sampler("ar-2", "x", energy="ar", autoregressive=True))
    with pytest.raises(ValueError, match="already registered"):
        energy_mod.energy_source("ar")(lambda bundle, req: None)
    with pytest.raises(ValueError, match="unknown sampler 'nope'"):
        get_sampler("nope")


def test_a_registered_sampler_reaches_validation_pipeline_and_energy(bundle, toy_sampler):
    assert toy_sampler in choices("sampler")
    req = validate(sampler=toy_sampler, k=8, is_window=1.0, unmask="random")
    assert isinstance(energy_for(bundle, req), PreferToken)
    editable = torch.tensor([False, True, True, False])
    assert work_of(req, editable, window=128) > work_of(validate(sampler="mdlm"), editable, window=128)
    text = "We shall [MASK:6] and we shall not fail."
    mdlm = [infill(bundle, text, sampler="mdlm", seed=s, unmask="random").spans[0] for s in range(4)]
    toy = [infill(bundle, text, sampler=toy_sampler, k=8, is_window=1.0, seed=s, unmask="random",
                  target_ess=0.0).spans[0] for s in range(4)]  # the untempered energy
    count = lambda fills: sum(f.split().count("the") for f in fills)  # noqa: E731
    assert count(toy) > count(mdlm)  # the energy steers the fills towards its token
    assert all(infill(bundle, text, sampler=toy_sampler, seed=s).text.endswith(" and we shall not fail.")
               for s in range(2))


def test_an_unregistered_sampler_is_refused_everywhere(bundle):
    with pytest.raises(ValueError, match="unknown sampler 'edlm-toy'"):
        validate(sampler="edlm-toy")
    with pytest.raises(ValueError, match="unknown sampler 'edlm-toy'"):
        infill(bundle, "a [MASK:2] b", sampler="edlm-toy")


def test_a_registered_preset_loads_by_name_and_argument(bundle_dir):
    seen = []

    @presets.preset("toy-preset", "the test bundle, by name")
    def _load(arg, device, dtype):
        seen.append(arg)
        return presets.load_folder(bundle_dir, device=device, dtype=dtype, name="toy-preset")

    try:
        assert presets.resolve("toy-preset").name == "toy-preset"
        presets.resolve("toy-preset:variant")
        assert seen == [None, "variant"]
        with pytest.raises(ValueError, match="unknown model 'not-a-preset'"):
            presets.resolve("not-a-preset")
    finally:
        del presets.PRESETS["toy-preset"]


def test_a_sampler_with_its_own_loop_is_one_registration_seen_by_every_layer(bundle):
    """The registry holds the runnable: the pipeline, the length choice, the work budget and the app's sampler
    dropdown find the toy loop (tests/toy_loop.py) through its registration alone."""
    register_sampler(Sampler("toy-loop", "every span token becomes 'the' (test)", loop="tests.toy_loop"))
    try:
        assert "toy-loop" in choices("sampler") and get_sampler("toy-loop").ar_driven
        ev = infill(bundle, "We shall [MASK:3] and [MASK] fail.", sampler="toy-loop")
        assert ev.text == "We shall the the the and the the fail." and ev.lengths == [3, 2]
        assert work_of(validate(sampler="toy-loop"), torch.tensor([True, True, False]), 128, bundle=bundle) == 2
        from app import ui

        with ui.build() as demo:
            pass
        dropdowns = [c for c in demo.blocks.values() if getattr(c, "elem_id", None) == "edlm-sampler"]
        assert dropdowns and "toy-loop" in [v for _, v in dropdowns[0].choices]
    finally:
        del SAMPLERS["toy-loop"]
