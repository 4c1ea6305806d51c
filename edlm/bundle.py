"""A model bundle: the tokenizer and the networks that work together, loaded from one folder.

Folder layout (what `assets/` ships): tokenizer/, denoiser/, ar/ (EDLM-AR energy and `ar` baseline), nce/ (EDLM-NCE
energy), judge/ (benchmarks only), uniform/ (a second denoiser trained with uniform noise: the `uniform` preset), each
a transformers `save_pretrained` folder with safetensors weights, and manifest.json with the sha256 of every file,
checked on load. Only denoiser/ and tokenizer/ are required.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch


from .processes import MASKED, process_name

def _assets_folder() -> Path:
    """The embedded models: $EDLM_ASSETS, else assets/ of a source checkout, else edlm/assets of an installed
    wheel (where pyproject.toml puts the same folder)."""
    if os.environ.get("EDLM_ASSETS"):
        return Path(os.environ["EDLM_ASSETS"])
    checkout = Path(__file__).resolve().parent.parent / "assets"
    return checkout if (checkout / "manifest.json").exists() else Path(__file__).resolve().parent / "assets"


ASSETS = _assets_folder()
PARTS = ("tokenizer", "denoiser", "ar", "nce", "judge", "uniform", "continuous", "general-diffusion")


class ModelFilesError(RuntimeError):
    """A model file is missing or does not match its manifest."""


@dataclass
class Bundle:
    name: str
    tokenizer: object
    denoiser: torch.nn.Module | None  # None: an AR-only bundle (the `general` preset), run by `ar-is`
    ar: torch.nn.Module | None = None
    nce: torch.nn.Module | None = None
    judge: torch.nn.Module | None = None
    device: torch.device = torch.device("cpu")
    energy_tokenizer: object | None = None  # set when the AR model uses another tokenizer (text-level energy)
    defaults: dict = field(default_factory=dict)  # settings used where a call gives none (the general model's
    #                                               sampler, k and temperature); the rest: edlm.limits.DEFAULTS

    @property
    def window(self) -> int:
        """Tokens the denoiser reads at once (for a bundle with no denoiser: the AR model's context cap)."""
        if self.denoiser is None:
            from .ar_infill import CONTEXT

            return int(min(CONTEXT, getattr(self.ar.config, "max_position_embeddings", CONTEXT)))
        return int(self.denoiser.config.length)

    @property
    def process(self) -> str:
        """The denoiser's noise process ("absorbing", "uniform", "continuous", ...), or "none" without one."""
        return "none" if self.denoiser is None else process_name(self.denoiser.config)


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def write_manifest(folder: str | os.PathLike) -> Path:
    """Record the sha256 and size of every file of the model parts (tokenizer/, denoiser/, ...) under `folder`."""
    folder = Path(folder)
    files = sorted(p for part in PARTS if (folder / part).is_dir() for p in (folder / part).rglob("*") if p.is_file())
    manifest = {str(p.relative_to(folder)): {"sha256": sha256_of(p), "bytes": p.stat().st_size} for p in files}
    out = folder / "manifest.json"
    out.write_text(json.dumps(manifest, indent=1) + "\n")
    return out


def read_json(path: Path, want: type = dict):
    """A JSON file of the expected top-level type, or a ModelFilesError naming the file."""
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ModelFilesError(f"cannot read {path}: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
                              ) from None
    if not isinstance(value, want):
        raise ModelFilesError(f"{path} must hold a JSON {want.__name__}, not a {type(value).__name__}")
    return value


def verify_manifest(folder: Path, required: bool = False) -> bool:
    """Check every file against manifest.json; fail with a clear message naming the first missing or corrupt file.
    Returns False when there is no manifest (the folder is unverified); `required` makes that an error too."""
    path = folder / "manifest.json"
    if not path.exists():
        if required:
            raise ModelFilesError(f"{path} is missing, so the model files cannot be verified; restore it from the "
                                  "repository (git checkout -- assets) or reinstall the package")
        return False
    for rel, entry in read_json(path).items():
        f = folder / rel
        if not isinstance(entry, dict) or not isinstance(entry.get("sha256"), str):
            raise ModelFilesError(f"{path}: the entry for {rel} has no sha256; restore the manifest")
        if not f.resolve().is_relative_to(folder.resolve()):
            raise ModelFilesError(f"{path}: the entry {rel} points outside the model folder")
        if not f.exists():
            raise ModelFilesError(f"model file missing: {f} (reinstall, or rerun scripts/train_default_models.sh "
                                  "and scripts/export_assets.py)")
        if sha256_of(f) != entry["sha256"]:
            raise ModelFilesError(f"model file corrupt (sha256 mismatch): {f}; restore it from the repository "
                                  "(git checkout -- assets) or retrain it")
    return True


def pick_device(device: str | None = None) -> torch.device:
    """cpu, cuda, cuda:N or auto (None): a GPU when there is one."""
    import re

    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if not isinstance(device, str) or not re.fullmatch(r"cpu|cuda(:[0-9]+)?", device):
        raise ValueError(f"unknown device {device!r}: use cpu, cuda, cuda:N or auto")
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ValueError("--device cuda was asked for, but no CUDA GPU is available")
        if ":" in device and int(device.split(":")[1]) >= torch.cuda.device_count():
            raise ValueError(f"--device {device}: there are only {torch.cuda.device_count()} GPUs")
    return torch.device(device)


# The fields that shape a network, checked for type and range before anything is built (a zero head count, a
# width given as a string or a float, a million layers would otherwise fail deep inside a constructor or a
# forward pass, or allocate without end). Pairs: the width must split into the heads.
SHAPE_FIELDS = {"hidden_size": (1, 65_536), "n_blocks": (1, 1_024), "n_heads": (1, 1_024), "cond_dim": (1, 65_536),
                "mlp_ratio": (1, 64), "vocab_size": (2, 1 << 22), "mask_token_id": (0, (1 << 22) - 1),
                "num_hidden_layers": (1, 1_024), "num_attention_heads": (1, 1_024),
                "num_key_value_heads": (1, 1_024), "intermediate_size": (1, 1 << 20), "d_model": (1, 65_536),
                "n_layers": (1, 1_024), "max_position_embeddings": (1, 1 << 20)}
HEAD_PAIRS = (("hidden_size", "n_heads"), ("hidden_size", "num_attention_heads"), ("d_model", "n_heads"),
              ("num_attention_heads", "num_key_value_heads"))


def check_shape_fields(config: dict, path: Path) -> None:
    """One line naming the field of a config.json whose shaping value is of the wrong type or out of range."""
    for name, (lo, hi) in SHAPE_FIELDS.items():
        if name not in config or config[name] is None and name == "num_key_value_heads":
            continue
        value = config[name]
        if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
            raise ModelFilesError(f"{path}: {name} must be a whole number from {lo} to {hi}, not {value!r}")
    for wide, heads in HEAD_PAIRS:
        if isinstance(config.get(wide), int) and isinstance(config.get(heads), int) and config[wide] % config[heads]:
            raise ModelFilesError(f"{path}: {wide} {config[wide]} does not split into {heads} {config[heads]}")


def load_folder(folder: str | os.PathLike, device: str | None = None, dtype: torch.dtype = torch.float32,
                name: str | None = None, require_manifest: bool = False, denoiser: str = "denoiser") -> Bundle:
    """Load a bundle folder (see the module docstring). Weights are read from safetensors only; a folder without
    a manifest loads with a warning that it is unverified (the embedded bundle requires its manifest). `denoiser`
    names the part to sample with (`uniform` for the uniform-noise one, which has no NCE energy)."""
    from transformers import AutoModel, AutoModelForCausalLM, AutoModelForMaskedLM
    from transformers.utils import logging as hf_logging

    from . import models  # noqa: F401  (registers the model classes with the Auto classes)
    from .tokenizer import load_tokenizer

    hf_logging.disable_progress_bar()
    folder = Path(folder)
    if not (folder / denoiser).is_dir():
        raise ModelFilesError(f"no model bundle at {folder}: expected {folder}/{denoiser} and {folder}/tokenizer")
    if not verify_manifest(folder, required=require_manifest):
        import logging

        logging.getLogger("edlm").warning("model folder %s has no manifest.json: its files are unverified",
                                          folder.name)
    dev = pick_device(device)

    def load(cls, part):
        if not (folder / part).is_dir():
            return None
        config = read_json(folder / part / "config.json")
        if "auto_map" in config:
            raise ModelFilesError(f"{folder / part}/config.json asks for the folder's own code (auto_map); this "
                                  "project never runs code from a model folder")
        check_shape_fields(config, folder / part / "config.json")
        try:
            model = cls.from_pretrained(folder / part, use_safetensors=True, trust_remote_code=False, dtype=dtype)
        except (OSError, ValueError, KeyError, TypeError, AttributeError, RuntimeError) as e:
            raise ModelFilesError(f"cannot load {folder / part}: {type(e).__name__}: "
                                  f"{(str(e).splitlines() or [''])[0][:200]}") from None
        except Exception as e:  # safetensors' own error type for a corrupt file, and the like
            raise ModelFilesError(f"cannot load {folder / part}: {type(e).__name__} (is the weights file "
                                  "complete?)") from None
        return model.to(dev).eval()

    tok_dir = folder / "tokenizer" if (folder / "tokenizer").is_dir() else folder / "denoiser"
    if (tok_dir / "tokenizer_config.json").exists() and "auto_map" in read_json(tok_dir / "tokenizer_config.json"):
        raise ModelFilesError(f"{tok_dir}/tokenizer_config.json asks for the folder's own code (auto_map); this "
                              "project never runs code from a model folder")
    try:
        tokenizer = load_tokenizer(tok_dir)
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        raise ModelFilesError(f"cannot load the tokenizer in {tok_dir}: {type(e).__name__}") from None
    main = load(AutoModelForMaskedLM, denoiser)
    nce = load(AutoModel, "nce") if process_name(main.config) in MASKED else None
    bundle = Bundle(name=name or folder.name, tokenizer=tokenizer, denoiser=main,
                    ar=load(AutoModelForCausalLM, "ar"), nce=nce,
                    judge=load(AutoModelForCausalLM, "judge"), device=dev)
    check_bundle(bundle, folder)
    return bundle


def check_bundle(bundle: Bundle, folder: Path) -> None:
    """Settings that would make every run fail or hang, caught at load time with the file to fix."""
    cfg = bundle.denoiser.config
    length = getattr(cfg, "length", None)
    if not isinstance(length, int) or isinstance(length, bool) or not 8 <= length <= 1 << 16:
        raise ModelFilesError(f"{folder}/denoiser/config.json: length must be a whole number from 8 to 65536, "
                              f"not {length!r}")
    if cfg.mask_token_id != bundle.tokenizer.mask_token_id:
        raise ModelFilesError(f"{folder}: the denoiser's mask_token_id ({cfg.mask_token_id}) is not the "
                              f"tokenizer's mask token ({bundle.tokenizer.mask_token_id}); they must agree")


def cpu_computes_bfloat16() -> bool:
    """Whether this CPU has native bfloat16 arithmetic (AVX-512 BF16 or AMX, as oneDNN reports it)."""
    try:
        return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def resolve_dtype(dtype: str | torch.dtype | None, device: torch.device, sampler: str | None = None) -> torch.dtype:
    """`auto` (or None): the dtype the sampler's registry entry asks for, if any (`edlm-smc`: float32); else bfloat16
    on a GPU, and on a CPU with native bfloat16 arithmetic (measured there: 1.3-2.3x faster per fill for the
    embedded models, 1.6x for the general one, judge perplexity and likelihoods unchanged within noise;
    `bench/step_profile.py`); float32 on other CPUs. Otherwise the named dtype."""
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype in (None, "auto"):
        from .samplers import SAMPLERS

        wanted = SAMPLERS[sampler].dtype if sampler in SAMPLERS else None
        if wanted:
            return resolve_dtype(wanted, device)
        if device.type == "cuda" or (device.type == "cpu" and cpu_computes_bfloat16()):
            return torch.bfloat16
        return torch.float32
    names = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
    if dtype not in names:
        raise ValueError(f"unknown dtype {dtype!r}: choose auto, float32, bfloat16 or float16")
    return names[dtype]


def export_bundle(parts: dict[str, str | os.PathLike], out_dir: str | os.PathLike,
                  dtype: torch.dtype = torch.float16) -> Path:
    """Assemble a bundle folder from trained model folders ({"denoiser": path, "ar": path, ...} plus
    "tokenizer"), storing weights as safetensors in `dtype`, and write its manifest."""
    import shutil

    from transformers import AutoModel, AutoModelForCausalLM, AutoModelForMaskedLM

    from . import models  # noqa: F401
    from .tokenizer import load_tokenizer

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    classes = {"denoiser": AutoModelForMaskedLM, "ar": AutoModelForCausalLM, "nce": AutoModel,
               "judge": AutoModelForCausalLM, "uniform": AutoModelForMaskedLM,
               "continuous": AutoModelForMaskedLM}
    for part, src in parts.items():
        dst = out / part
        if dst.exists():
            shutil.rmtree(dst)
        if part == "tokenizer":
            load_tokenizer(src).save_pretrained(dst)
            continue
        model = classes[part].from_pretrained(src, use_safetensors=True, dtype=dtype)
        model.save_pretrained(dst, safe_serialization=True)
    write_manifest(out)
    return out
