"""EDLM Studio: controllable text infilling with an energy-based diffusion language model.

    from edlm import load_bundle, infill
    bundle = load_bundle("default")
    print(infill(bundle, "The state of the [MASK:4] is strong.", sampler="edlm-ar").text)
"""
from __future__ import annotations

import importlib
import sys
import types

# The public names load their modules on first use, so `python -m edlm --help` (which imports this package)
# does not import torch or transformers.
_PUBLIC = {"augment": "augment", "generate": "pipeline", "infill": "pipeline", "infill_stream": "pipeline",
           "variants": "pipeline", "load_bundle": "presets"}

__all__ = sorted(_PUBLIC)
__version__ = "0.1.0"


def __getattr__(name: str):
    if name in _PUBLIC:
        return getattr(importlib.import_module(f".{_PUBLIC[name]}", __name__), name)
    raise AttributeError(f"module 'edlm' has no attribute {name!r}")


class _Package(types.ModuleType):
    """`edlm.augment` stays the function although a submodule has the same name (importing the submodule would
    otherwise replace the package's attribute with the module)."""

    @property
    def augment(self):
        return importlib.import_module(".augment", __name__).augment

    @augment.setter
    def augment(self, value):  # the import system records the submodule here; sys.modules keeps it
        pass


sys.modules[__name__].__class__ = _Package
