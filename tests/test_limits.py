from dataclasses import asdict

import pytest

from edlm.limits import LIMITS, validate


def test_defaults_are_valid():
    r = validate()
    assert r.sampler in ("mdlm", "edlm-ar", "edlm-nce", "edlm-smc", "ar")


def test_a_sampler_runs_with_its_own_settings_where_none_is_given():
    """The particles (the library's default) take their registry entry's settings (weighted at every step, the
    random order, untempered weights, a cooler proposal); a setting the call gives wins; other samplers keep the
    library's."""
    from edlm.limits import DEFAULTS, default_settings

    smc = validate()
    assert (smc.sampler, smc.is_window, smc.unmask, smc.target_ess, smc.temperature) == (
        "edlm-smc", 1.0, "random", 0.0, 0.7)
    assert validate(sampler="edlm-smc", is_window=0.5, temperature=1.0).is_window == 0.5
    assert validate(sampler="edlm-smc", temperature=1.0).temperature == 1.0
    ar = validate(sampler="edlm-ar")
    assert (ar.is_window, ar.unmask, ar.target_ess, ar.temperature) == (
        DEFAULTS.is_window, DEFAULTS.unmask, DEFAULTS.target_ess, DEFAULTS.temperature)
    assert ar.is_window != smc.is_window and ar.unmask != smc.unmask and ar.temperature != smc.temperature
    assert default_settings() == asdict(smc) and default_settings("edlm-ar") == asdict(ar)
    assert default_settings("edlm-ar")["unmask"] == DEFAULTS.unmask


@pytest.mark.parametrize("kwargs, message", [
    ({"sampler": "nope"}, "unknown sampler"), ({"steps": 0}, "steps"), ({"steps": LIMITS.max_steps + 1}, "steps"),
    ({"steps": "ten"}, "whole number"), ({"steps": 2.5}, "whole number"), ({"k": 0}, "k ="),
    ({"k": LIMITS.max_k + 1}, "k ="), ({"temperature": -1}, "temperature"), ({"top_p": 0}, "top_p"),
    ({"top_p": 1.5}, "top_p"), ({"seed": -1}, "seed"), ({"is_window": 2}, "is_window"),
    ({"temperature": float("nan")}, "temperature"), ({"steps": True}, "whole number"),
])
def test_bad_settings_have_specific_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        validate(**kwargs)


def test_generation_takes_the_samplers_own_hotter_temperature():
    """With no context around the span, generation needs a hotter proposal than infilling: the sampler's own
    generate_temperature (the particles'), else the library's GENERATE_TEMPERATURE; a given one always wins."""
    from types import SimpleNamespace

    from edlm.limits import GENERATE_TEMPERATURE
    from edlm.pipeline import generation_settings
    from edlm.samplers import SAMPLERS

    plain = SimpleNamespace(defaults={}, process="absorbing")
    smc_t = SAMPLERS["edlm-smc"].generate_temperature
    assert smc_t is not None and smc_t != GENERATE_TEMPERATURE
    assert generation_settings(plain, {})["temperature"] == smc_t
    assert generation_settings(plain, {"sampler": "edlm-ar"})["temperature"] == GENERATE_TEMPERATURE
    assert generation_settings(plain, {"sampler": "edlm-smc", "temperature": 0.5})["temperature"] == 0.5
    model = SimpleNamespace(defaults={"sampler": "edlm-ar"}, process="absorbing")  # the model's sampler
    assert generation_settings(model, {})["temperature"] == GENERATE_TEMPERATURE
    hot = SimpleNamespace(defaults={"temperature": 1.0}, process="absorbing")
    assert "temperature" not in generation_settings(hot, {})  # left to the model's own
    continuous = SimpleNamespace(defaults={}, process="continuous")  # runs the fallback sampler, at its temperature
    assert generation_settings(continuous, {})["temperature"] == GENERATE_TEMPERATURE
