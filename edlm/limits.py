"""Limits and defaults shared by the library, the command line and the app: enforced in one place."""
from __future__ import annotations

from dataclasses import dataclass

@dataclass(frozen=True)
class Limits:
    max_text_chars: int = 20_000      # characters of input text
    max_span_tokens: int = 96         # tokens in one [MASK:n] span (must fit a 128-token window with context)
    max_masked_tokens: int = 1024     # masked tokens in one request, all spans together
    max_steps: int = 1024             # reverse steps
    max_k: int = 32                   # importance-sampling candidates
    max_samples: int = 64             # samples in one generate call
    max_variants: int = 8             # fills of the same text in one variants call (one batch)
    max_generate_tokens: int = 1024   # tokens in one generated sample
    max_seed: int = 2**63 - 1
    max_work: int = 4_000_000         # token-passes in one request (windows x steps x window tokens x (1 + k x IS
    #                                   share) x samples), checked before a run starts: ~4-6 min on a 2-core CPU
    app_run_seconds: float = 120.0    # app: wall-clock limit of one run (it stops with a message)
    app_upload_bytes: int = 1_000_000  # app: largest uploaded file (the augmentation tab; nothing else takes files)
    app_file_seconds: int = 600       # app: an augmentation download is deleted from the server after this long
    queue_size: int = 32              # app: requests waiting
    concurrency: int = 2              # app: runs at a time
    session_capacity: int = 500       # app: browser/client sessions whose state Gradio keeps (oldest dropped):
    #                                   each holds ~150 KB, so this bounds that memory near 75 MB


@dataclass(frozen=True)
class Defaults:
    # The default sampler, chosen at real text's diversity (README "Benchmarks", the quality-diversity frontier on
    # the embedded models): of every setting whose infills are within 0.05 of real text's distinct-2 and 0.01 of its
    # repeated trigrams, the particles weighted at every step have the lowest judge perplexity. They run with their
    # registry entry's own settings (edlm.samplers: random order, IS window 1, temperature 0.7, untempered weights);
    # the settings below are every other sampler's, chosen the same way for `edlm-ar` (39.8 at T = 32; the
    # confidence order at temperature 1 scored 22.9 by repeating itself: distinct-2 0.78). Generation needs a
    # hotter proposal: GENERATE_TEMPERATURE (and the sampler's own generate_temperature).
    sampler: str = "edlm-smc"
    steps: int = 32
    k: int = 4
    is_window: float = 0.5
    temperature: float = 1.15
    top_p: float = 0.95
    seed: int = 0
    unmask: str = "confidence-noisy"  # confidence plus annealed Gumbel noise: fluent without looping
    remask: str = "none"
    final: str = "sample"        # the last step's x0: drawn, or each position's likeliest token (greedy)
    carry_over: bool = False
    ar_weighting: str = "product"
    is_temperature: float = 1.0  # importance log-weights are divided by this (1 = the EDLM target exactly)
    resample_ess: float = 0.5    # edlm-smc: resample the particles when the ESS falls below this share of k
    target_ess: float = 0.5      # each IS step's weights tempered, as little as needed, to an ESS of k / 2: the same
    #                              judge within noise (41.4 against 39.8) and the energy visibly chooses among a few
    cache_refresh: int = 0       # no context cache: every denoiser pass sees the whole window as it stands
    energy_horizon: int = 0      # the AR energy scores the whole window after the first difference
    potential: str = "draw"      # edlm-smc: each step weighs the energy of the particle's x0 draw


LIMITS = Limits()
DEFAULTS = Defaults()
POTENTIALS = ("draw", "lookahead")  # edlm-smc: what a step's weight scores (see the `potential` setting)
GENERATE_TEMPERATURE = 1.35  # generation (no context around the span) reaches real text's diversity only here
FALLBACK_SAMPLER = "edlm-ar"  # the default for a model whose process the default sampler cannot run (continuous)


def default_settings(sampler: str | None = None) -> dict:
    """Every setting a run of `sampler` (default: the library's default sampler) takes where neither the call nor
    the model gives one: the library's DEFAULTS with the sampler's registry settings on top."""
    from dataclasses import asdict

    from .samplers import sampler_settings

    sampler = sampler or DEFAULTS.sampler
    return {**asdict(DEFAULTS), **sampler_settings(sampler), "sampler": sampler}


@dataclass(frozen=True)
class Setting:
    """One sampling setting: the single place its type, range, choices and help text are written. The library's
    `validate`, the command line's flags, the app's controls and the benchmark read it from `SETTINGS`."""

    name: str
    kind: type
    lo: float | None = None
    hi: float | None = None
    choices: str | None = None  # name of the registry whose keys are the allowed values
    help: str = ""
    # How the app shows it: a control (slider, number, choice, checkbox), its label and one-line hint, and for a
    # slider the range it spans when the useful range is narrower than the valid one (lo, hi, step).
    control: str = "slider"
    label: str = ""
    hint: str = ""
    widget: tuple[float, float, float] | None = None

    @property
    def default(self):
        return getattr(DEFAULTS, self.name)


def choices(registry: str) -> tuple[str, ...]:
    """The names registered for a setting: samplers, unmask orders, remask rules, AR weightings, final steps."""
    if registry == "sampler":
        from .samplers import SAMPLERS

        return tuple(SAMPLERS)
    if registry == "ar_weighting":
        return ("ratio", "product")
    if registry == "potential":
        return POTENTIALS
    if registry == "final":
        from .transitions import FINALS

        return FINALS
    from . import transitions  # registries of the loop's transitions (imports torch: only when asked)

    return tuple(transitions.UNMASK if registry == "unmask" else transitions.REMASK)


SETTINGS = (
    Setting("sampler", str, choices="sampler", control="choice", label="Sampler",
            help="mdlm (denoiser only), edlm-ar / edlm-nce (importance sampling with the AR or NCE energy), ar "
            "(left-to-right baseline), ar-is (the AR model's own posterior: the general model), or another "
            "registered sampler"),
    Setting("steps", int, 1, LIMITS.max_steps, help="reverse steps", label="Steps",
            hint="reverse diffusion steps: more = slower, usually better"),
    Setting("k", int, 1, LIMITS.max_k, help="importance-sampling candidates per step", label="Candidates k",
            hint="EDLM drafts k full candidates per importance-sampling step and keeps one"),
    Setting("is_window", float, 0.0, 1.0, help="fraction of the run, from the noisiest step, that uses "
            "importance sampling", label="IS window", widget=(0.0, 1.0, 0.05),
            hint="share of the run, from the noisiest step, that uses importance sampling"),
    Setting("temperature", float, 0.0, 10.0, help="sampling temperature (0 = greedy)", label="Temperature",
            widget=(0.0, 2.0, 0.05), hint="0 = always the likeliest token (the slider spans the useful 0-2; the "
            "API takes up to 10)"),
    Setting("top_p", float, 1e-6, 1.0, help="nucleus sampling mass", label="Top-p", widget=(0.05, 1.0, 0.05),
            hint="sample only from the likeliest tokens holding this mass"),
    Setting("seed", int, 0, LIMITS.max_seed, help="random seed (same inputs + seed = same output)",
            control="number", label="Seed", hint="same text + settings + seed = same result"),
    Setting("unmask", str, choices="unmask", control="choice", label="Unmask order",
            help="which masked positions a step reveals: random (ancestral), "
            "confidence, margin or entropy (the surest first), confidence-noisy (confidence plus annealed noise: "
            "far less repetition; best for free generation and long spans), threshold or entropy-bound "
            "(adaptive: also every position the denoiser is sure of, so easy text ends in fewer steps)"),
    Setting("remask", str, choices="remask", control="choice", label="Remasking",
            help="none, or remdm: written tokens may be masked again and rewritten (ReMDM)"),
    Setting("final", str, choices="final", control="choice", label="Last step",
            help="the last step's tokens: sample (drawn like every step), or "
            "greedy (each position's likeliest token: halves the uniform model's judge perplexity, helps the "
            "masked one at 4-8 steps; no extra cost)"),
    Setting("carry_over", bool, control="checkbox", label="Score masked positions only",
            help="EDLM-AR: score only the masked positions (coAR)"),
    Setting("ar_weighting", str, choices="ar_weighting", control="choice", label="AR weighting",
            help="EDLM-AR weights: ratio = p_AR/q (the paper), product = p_AR (target q*p_AR)"),
    Setting("is_temperature", float, 0.05, 100.0, label="IS temperature", widget=(0.25, 16.0, 0.25),
            help="importance-sampling temperature: the log-weights are divided by it; above 1 the energy "
            "chooses more gently (a larger ESS), 1 is the EDLM target"),
    Setting("resample_ess", float, 0.0, 1.0, label="Resample below ESS", widget=(0.0, 1.0, 0.05),
            help="edlm-smc: resample the particles when their effective sample size falls below this share of k "
            "(0 = never, 1 = at every weighting step)"),
    Setting("target_ess", float, 0.0, 1.0, label="Target ESS", widget=(0.0, 1.0, 0.05),
            help="0 = off; else each importance-sampling step's weights are tempered, as little as needed (never "
            "below the IS temperature), until their effective sample size reaches this share of k: the energy then "
            "chooses among a few candidates however long the spans"),
    Setting("cache_refresh", int, 0, LIMITS.max_steps, label="Context cache", control="number",
            help="0 = off; else a full denoiser pass every this many passes, and the passes between recompute only "
            "the spans, reading the rest of the window's keys and values from the last full pass (Fast-dLLM's "
            "cache, for infilling): faster where the spans are a small part of the window, approximate between "
            "refreshes (llama-architecture denoisers)",
            hint="0 = off; N = a full pass every N, the spans alone between"),
    Setting("energy_horizon", int, 0, LIMITS.max_span_tokens, label="Energy horizon", control="number",
            help="EDLM-AR: 0 = the energy scores the whole window from the first token where the candidates "
            "differ; N = only up to N tokens after the last such token, so the fixed text further on costs "
            "nothing (an approximation: how each candidate leads into the next N tokens is still scored)",
            hint="0 = score to the window's end; N = N tokens past the spans"),
    Setting("potential", str, choices="potential", control="choice", label="Particle score",
            help="edlm-smc: what each step's weight scores: draw = the energy of each particle's x0 draw (its "
            "still-masked positions drawn at random), lookahead = the particle after its step, its still-masked "
            "positions filled with the denoiser's likeliest tokens (no noise from the draw: the energy weighs what "
            "the particle keeps; masked models only); both end at the finished text's energy",
            hint="edlm-smc: draw = score each particle's x0 draw; lookahead = its new text, the rest at the likeliest"),
)
SETTING = {s.name: s for s in SETTINGS}


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
    carry_over: bool = DEFAULTS.carry_over
    ar_weighting: str = DEFAULTS.ar_weighting
    is_temperature: float = DEFAULTS.is_temperature
    resample_ess: float = DEFAULTS.resample_ess
    target_ess: float = DEFAULTS.target_ess
    unmask: str = DEFAULTS.unmask
    remask: str = DEFAULTS.remask
    final: str = DEFAULTS.final
    cache_refresh: int = DEFAULTS.cache_refresh
    energy_horizon: int = DEFAULTS.energy_horizon
    potential: str = DEFAULTS.potential


def _number(name: str, value, kind: type, lo, hi):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (kind is int and isinstance(value, float)
                                                                          and not value.is_integer()):
        raise ValueError(f"{name} must be {'a whole number' if kind is int else 'a number'}, not {value!r}")
    if value != value or not lo <= value <= hi:
        raise ValueError(f"{name} = {value!r} is out of range: it must be from {lo} to {hi}")
    return kind(value)


def validate(**settings) -> Request:
    """Check every sampling setting against `SETTINGS`; raise ValueError naming the first bad one. Settings not
    given take the sampler's own (its registry entry's, e.g. edlm-smc's IS window 1), then the library's defaults;
    an unknown name is an error."""
    unknown = set(settings) - {s.name for s in SETTINGS}
    if unknown:
        raise ValueError(f"unknown setting {sorted(unknown)[0]!r}: the settings are "
                         f"{', '.join(s.name for s in SETTINGS)}")
    from .samplers import sampler_settings

    sampler = settings.get("sampler", DEFAULTS.sampler)
    settings = {**(sampler_settings(sampler) if isinstance(sampler, str) else {}), **settings}
    out = {}
    for s in SETTINGS:
        value = settings.get(s.name, s.default)
        if s.choices:
            allowed = choices(s.choices)
            if value not in allowed:
                what = "sampler" if s.name == "sampler" else s.name
                raise ValueError(f"unknown {what} {value!r}: choose one of {', '.join(allowed)}")
        elif s.kind is bool:
            if not isinstance(value, bool):
                raise ValueError(f"{s.name} must be true or false, not {value!r}")
        else:
            value = _number(s.name, value, s.kind, s.lo, s.hi)
        out[s.name] = value
    return Request(**out)
