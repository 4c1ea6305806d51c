"""Limits and defaults shared by the library, the command line and the app: enforced in one place."""
from __future__ import annotations

from dataclasses import dataclass

SAMPLERS = ("mdlm", "edlm-ar", "edlm-nce", "ar")


@dataclass(frozen=True)
class Limits:
    max_text_chars: int = 20_000      # characters of input text
    max_span_tokens: int = 96         # tokens in one [MASK:n] span (must fit a 128-token window with context)
    max_masked_tokens: int = 1024     # masked tokens in one request, all spans together
    max_steps: int = 1024             # reverse steps
    max_k: int = 32                   # importance-sampling candidates
    max_samples: int = 64             # samples in one generate call
    max_generate_tokens: int = 1024   # tokens in one generated sample
    max_seed: int = 2**63 - 1
    queue_size: int = 32              # app: requests waiting
    concurrency: int = 2              # app: runs at a time
    session_capacity: int = 500       # app: browser/client sessions whose state Gradio keeps (oldest dropped):
    #                                   each holds ~150 KB, so this bounds that memory near 75 MB


@dataclass(frozen=True)
class Defaults:
    sampler: str = "edlm-ar"
    steps: int = 32
    k: int = 4
    is_window: float = 0.5
    temperature: float = 1.0
    top_p: float = 0.95
    seed: int = 0


LIMITS = Limits()
DEFAULTS = Defaults()


@dataclass(frozen=True)
class Request:
    """Sampling settings after validation."""

    sampler: str = DEFAULTS.sampler
    steps: int = DEFAULTS.steps
    k: int = DEFAULTS.k
    is_window: float = DEFAULTS.is_window
    temperature: float = DEFAULTS.temperature
    top_p: float = DEFAULTS.top_p
    seed: int = DEFAULTS.seed
    carry_over: bool = False
    ar_weighting: str = "ratio"


def _number(name: str, value, kind: type, lo, hi):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (kind is int and isinstance(value, float)
                                                                          and not value.is_integer()):
        raise ValueError(f"{name} must be {'a whole number' if kind is int else 'a number'}, not {value!r}")
    if value != value or not lo <= value <= hi:
        raise ValueError(f"{name} = {value!r} is out of range: it must be from {lo} to {hi}")
    return kind(value)


def validate(sampler: str = DEFAULTS.sampler, steps=DEFAULTS.steps, k=DEFAULTS.k, is_window=DEFAULTS.is_window,
             temperature=DEFAULTS.temperature, top_p=DEFAULTS.top_p, seed=DEFAULTS.seed,
             carry_over: bool = False, ar_weighting: str = "ratio") -> Request:
    """Check every sampling setting against the limits; raise ValueError naming the first bad one."""
    if sampler not in SAMPLERS:
        raise ValueError(f"unknown sampler {sampler!r}: choose one of {', '.join(SAMPLERS)}")
    steps = _number("steps", steps, int, 1, LIMITS.max_steps)
    k = _number("k", k, int, 1, LIMITS.max_k)
    is_window = _number("is_window", is_window, float, 0.0, 1.0)
    temperature = _number("temperature", temperature, float, 0.0, 10.0)
    top_p = _number("top_p", top_p, float, 1e-6, 1.0)
    seed = _number("seed", seed, int, 0, LIMITS.max_seed)
    if ar_weighting not in ("ratio", "product"):
        raise ValueError(f"unknown ar_weighting {ar_weighting!r}: choose ratio (the paper) or product")
    return Request(sampler, steps, k, is_window, temperature, top_p, seed, bool(carry_over), ar_weighting)
