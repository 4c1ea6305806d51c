"""The sampler registry: each named sampler is the one masked-diffusion loop plus, optionally, a residual energy
(found by name in `edlm.energy.ENERGIES`), or the left-to-right AR baseline.

Adding a sampler is one `register_sampler(...)` call (with an `@energy_source` in the same file when it needs a new
energy); the command line's choices, the app's controls, the benchmark's variants and the API read this registry.
This module imports nothing heavy, so the limits and `--help` can read it.
"""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Sampler:
    name: str
    help: str
    energy: str | None = None    # a name in edlm.energy.ENERGIES (importance sampling), or None (denoiser only)
    autoregressive: bool = False  # left to right with the bundle's AR model instead of the diffusion loop
    loop: str | None = None      # a module with its own run / choose_lengths / steps / work (edlm.ar_infill)
    short: str = ""              # a few words for the app's sampler list (default: `help`)
    diffusion: str | None = None  # "module:function": a diffusion loop of its own, called like sampling.sample
    #                               (the module may say its denoiser rows per sample and step: work_rows(req))
    dtype: str | None = None     # what `--dtype auto` loads the models in for this sampler (None: the device's pick)
    settings: dict = field(default_factory=dict)  # what this sampler runs with where neither the call nor the
    #                                                model gives a setting (the library's DEFAULTS otherwise)
    generate_temperature: float | None = None  # generation's temperature where none is given (None: the library's)
    cannot_run: tuple[str, ...] = ()  # noise processes it cannot sample (a model of one defaults to FALLBACK_SAMPLER)

    @property
    def ar_driven(self) -> bool:
        """Whether the AR model, not a diffusion denoiser, writes the text (its passes are AR passes)."""
        return self.autoregressive or self.loop is not None

    def module(self):
        """The sampler's own loop module (imported on first use: this registry stays light)."""
        import importlib

        return importlib.import_module(self.loop) if self.loop else None

    def diffusion_loop(self):
        """The diffusion loop this sampler runs (`edlm.sampling.sample` unless it names its own)."""
        import importlib

        module, _, fn = (self.diffusion or "edlm.sampling:sample").partition(":")
        return getattr(importlib.import_module(module), fn)

    def denoiser_rows(self, req) -> float:
        """Denoiser rows per sample and step, for the work budget: 1, or what the module of the sampler's own
        diffusion loop says (`work_rows(req)`: k for edlm-smc's particles)."""
        if not self.diffusion:
            return 1.0
        import importlib

        rows = getattr(importlib.import_module(self.diffusion.partition(":")[0]), "work_rows", None)
        return rows(req) if rows else 1.0


SAMPLERS: dict[str, Sampler] = {}


def register_sampler(sampler: Sampler) -> Sampler:
    """Add a sampler to the registry (a name may be registered once)."""
    if sampler.name in SAMPLERS:
        raise ValueError(f"a sampler named {sampler.name!r} is already registered")
    if sampler.autoregressive and sampler.energy:
        raise ValueError("an autoregressive sampler takes no energy")
    SAMPLERS[sampler.name] = sampler
    return sampler


def has_energy(name: str) -> bool:
    """Whether a sampler (or a benchmark variant's first part, e.g. "edlm-ar/product") is a diffusion sampler
    weighed by an energy; "reference", mdlm and the AR-driven samplers are not."""
    spec = SAMPLERS.get(name.split("/")[0])
    return spec is not None and spec.energy is not None and not spec.ar_driven


def runs_on(name: str, process: str) -> bool:
    """Whether a registered sampler can sample a model of this noise process."""
    return process not in get_sampler(name).cannot_run


def sampler_settings(name: str) -> dict:
    """The settings a sampler's registry entry gives where a call gives none ({} for an unknown name: the
    settings' validation names that error)."""
    spec = SAMPLERS.get(name)
    return dict(spec.settings) if spec else {}


def get_sampler(name: str) -> Sampler:
    if name not in SAMPLERS:
        raise ValueError(f"unknown sampler {name!r}: choose one of {', '.join(SAMPLERS)}")
    return SAMPLERS[name]


register_sampler(Sampler("mdlm", "the denoiser alone (MDLM ancestral sampling)", short="plain diffusion"))
register_sampler(Sampler("edlm-ar", "EDLM: importance sampling of the denoiser's candidates weighted by the AR "
                         "model's likelihood", energy="ar", short="diffusion with the AR energy"))
register_sampler(Sampler("edlm-nce", "EDLM: importance sampling weighted by the NCE-trained energy", energy="nce",
                         short="diffusion with the NCE energy"))
register_sampler(Sampler("ar", "the AR model left to right (baseline; one span at the end of the text)",
                         autoregressive=True, short="left to right (prefix only)"))
register_sampler(Sampler("ar-is", "infilling with the AR model's own posterior: k fills drawn left to right, "
                         "weighted by how well the text after each span follows, one kept by resampling (the "
                         "general model's sampler; needs no denoiser)", loop="edlm.ar_infill",
                         short="the AR model's own posterior (the general model)"))
register_sampler(Sampler("edlm-smc", "EDLM with k particles: each keeps its own text through the reverse steps, "
                         "weighted by the AR energy of its draws and resampled when the weights sit on a few "
                         "(sequential Monte Carlo; k denoiser rows per step)", energy="ar",
                         diffusion="edlm.smc:sample_smc", short="k particles weighted by the AR energy",
                         # in bfloat16 its win over mdlm at real text's diversity (float32: 2.2-5.4 SE on infilling
                         # at T = 8, 16, 32) fell within noise; docs/bench_smc_every_step_cpu.md
                         dtype="float32",
                         # weighted at every step, in the random order, untempered (a target ESS of 0.5 lost its
                         # win at T = 16 and in generation): measured best at real text's diversity
                         # (docs/bench_smc_every_step_cpu.md, docs/bench_smc_default_cpu.md)
                         # (generation, with no context around its span, reaches that diversity hotter: 0.85)
                         settings={"unmask": "random", "is_window": 1.0, "target_ess": 0.0, "temperature": 0.7},
                         generate_temperature=0.85, cannot_run=("continuous",)))
