import pytest

from edlm.limits import LIMITS, validate


def test_defaults_are_valid():
    r = validate()
    assert r.sampler in ("mdlm", "edlm-ar", "edlm-nce", "ar")


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
