"""EDLM Studio: controllable text infilling with an energy-based diffusion language model.

    from edlm import load_bundle, infill
    bundle = load_bundle("default")
    print(infill(bundle, "The state of the [MASK:4] is strong.", sampler="edlm-ar").text)
"""
from .augment import augment
from .pipeline import generate, infill, infill_stream
from .presets import load_bundle

__all__ = ["augment", "generate", "infill", "infill_stream", "load_bundle"]
__version__ = "0.1.0"
