"""The sampler registry: each named sampler is the one masked-diffusion loop plus, optionally, a residual energy
(found by name in `edlm.energy.ENERGIES`), or the left-to-right AR baseline.

Adding a sampler is one `register_sampler(...)` call (with an `@energy_source` in the same file when it needs a new
energy); the command line's choices, the app's controls, the benchmark's variants and the API read this registry.
This module imports nothing heavy, so the limits and `--help` can read it.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Sampler:
    name: str
    help: str
    energy: str | None = None    # a name in edlm.energy.ENERGIES (importance sampling), or None (denoiser only)
    autoregressive: bool = False  # left to right with the bundle's AR model instead of the diffusion loop
    loop: str | None = None      # a module with its own run / choose_lengths / steps / work (edlm.ar_infill)

    @property
    def ar_driven(self) -> bool:
        """Whether the AR model, not a diffusion denoiser, writes the text (its passes are AR passes)."""
        return self.autoregressive or self.loop is not None

    def module(self):
        """The sampler's own loop module (imported on first use: this registry stays light)."""
        import importlib

        return importlib.import_module(self.loop) if self.loop else None


SAMPLERS: dict[str, Sampler] = {}


def register_sampler(sampler: Sampler) -> Sampler:
    """Add a sampler to the registry (a name may be registered once)."""
    if sampler.name in SAMPLERS:
        raise ValueError(f"a sampler named {sampler.name!r} is already registered")
    if sampler.autoregressive and sampler.energy:
        raise ValueError("an autoregressive sampler takes no energy")
    SAMPLERS[sampler.name] = sampler
    return sampler


def get_sampler(name: str) -> Sampler:
    if name not in SAMPLERS:
        raise ValueError(f"unknown sampler {name!r}: choose one of {', '.join(SAMPLERS)}")
    return SAMPLERS[name]


register_sampler(Sampler("mdlm", "the denoiser alone (MDLM ancestral sampling)"))
register_sampler(Sampler("edlm-ar", "EDLM: importance sampling of the denoiser's candidates weighted by the AR "
                         "model's likelihood", energy="ar"))
register_sampler(Sampler("edlm-nce", "EDLM: importance sampling weighted by the NCE-trained energy", energy="nce"))
register_sampler(Sampler("ar", "the AR model left to right (baseline; one span at the end of the text)",
                         autoregressive=True))
register_sampler(Sampler("ar-is", "infilling with the AR model's own posterior: k fills drawn left to right, "
                         "weighted by how well the text after each span follows, one kept by resampling (the "
                         "general model's sampler; needs no denoiser)", loop="edlm.ar_infill"))
