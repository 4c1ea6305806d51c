"""A model bundle: the tokenizer and the networks that work together, loaded from one folder.

Folder layout (what `assets/` ships): tokenizer/, denoiser/, ar/ (EDLM-AR energy and `ar` baseline), nce/ (EDLM-NCE
energy), judge/ (benchmarks only), each a transformers `save_pretrained` folder with safetensors weights, and
manifest.json with the sha256 of every file, checked on load. Only denoiser/ and tokenizer/ are required.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import torch

ASSETS = Path(os.environ.get("EDLM_ASSETS", Path(__file__).resolve().parent.parent / "assets"))
PARTS = ("tokenizer", "denoiser", "ar", "nce", "judge")


class ModelFilesError(RuntimeError):
    """A model file is missing or does not match its manifest."""


@dataclass
class Bundle:
    name: str
    tokenizer: object
    denoiser: torch.nn.Module
    ar: torch.nn.Module | None = None
    nce: torch.nn.Module | None = None
    judge: torch.nn.Module | None = None
    device: torch.device = torch.device("cpu")
    energy_tokenizer: object | None = None  # set when the AR model uses another tokenizer (text-level energy)

    @property
    def window(self) -> int:
        return int(self.denoiser.config.length)


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


def verify_manifest(folder: Path) -> None:
    """Fail with a clear message naming the first missing or corrupt file."""
    path = folder / "manifest.json"
    if not path.exists():
        return
    for rel, entry in json.loads(path.read_text()).items():
        f = folder / rel
        if not f.exists():
            raise ModelFilesError(f"model file missing: {f} (reinstall, or rerun scripts/train_default_models.sh "
                                  "and scripts/export_assets.py)")
        if sha256_of(f) != entry["sha256"]:
            raise ModelFilesError(f"model file corrupt (sha256 mismatch): {f}; restore it from the repository "
                                  "(git checkout -- assets) or retrain it")


def pick_device(device: str | None = None) -> torch.device:
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError("--device cuda was asked for, but no CUDA GPU is available")
    return torch.device(device)


def load_folder(folder: str | os.PathLike, device: str | None = None, dtype: torch.dtype = torch.float32,
                name: str | None = None) -> Bundle:
    """Load a bundle folder (see the module docstring). Weights are read from safetensors only."""
    from transformers import AutoModel, AutoModelForCausalLM, AutoModelForMaskedLM
    from transformers.utils import logging as hf_logging

    from . import models  # noqa: F401  (registers the model classes with the Auto classes)
    from .tokenizer import load_tokenizer

    hf_logging.disable_progress_bar()
    folder = Path(folder)
    if not (folder / "denoiser").is_dir():
        raise ModelFilesError(f"no model bundle at {folder}: expected {folder}/denoiser and {folder}/tokenizer")
    verify_manifest(folder)
    dev = pick_device(device)

    def load(cls, part):
        if not (folder / part).is_dir():
            return None
        model = cls.from_pretrained(folder / part, use_safetensors=True, trust_remote_code=False, dtype=dtype)
        return model.to(dev).eval()

    tok_dir = folder / "tokenizer" if (folder / "tokenizer").is_dir() else folder / "denoiser"
    return Bundle(name=name or folder.name, tokenizer=load_tokenizer(tok_dir),
                  denoiser=load(AutoModelForMaskedLM, "denoiser"), ar=load(AutoModelForCausalLM, "ar"),
                  nce=load(AutoModel, "nce"), judge=load(AutoModelForCausalLM, "judge"), device=dev)


_CACHE: dict[tuple, Bundle] = {}


def resolve_dtype(dtype: str | torch.dtype | None, device: torch.device) -> torch.dtype:
    """`auto` (or None): bfloat16 on a GPU, float32 on a CPU; otherwise the named dtype."""
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype in (None, "auto"):
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    names = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
    if dtype not in names:
        raise ValueError(f"unknown dtype {dtype!r}: choose auto, float32, bfloat16 or float16")
    return names[dtype]


def load_bundle(model: str = "default", device: str | None = None, dtype: str | torch.dtype | None = "auto") -> Bundle:
    """Load (once per process) a bundle by preset name or folder path."""
    from .presets import resolve

    dtype = resolve_dtype(dtype, pick_device(device))
    key = (model, device, dtype)
    if key not in _CACHE:
        _CACHE[key] = resolve(model, device=device, dtype=dtype)
    return _CACHE[key]


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
               "judge": AutoModelForCausalLM}
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
