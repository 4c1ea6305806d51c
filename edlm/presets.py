"""Named models: `default` is the embedded bundle in assets/; any other value is a bundle folder."""
from __future__ import annotations

from pathlib import Path

import torch

from .bundle import ASSETS, Bundle, ModelFilesError, load_folder

PRESETS = {
    "default": "the embedded models (assets/): trained on US State of the Union addresses, CPU-friendly",
}


def resolve(model: str, device: str | None = None, dtype: torch.dtype = torch.float32) -> Bundle:
    if model == "default":
        if not (ASSETS / "denoiser").is_dir():
            raise ModelFilesError(f"the embedded models are missing from {ASSETS}; reinstall the project or train "
                                  "them with scripts/train_default_models.sh")
        return load_folder(ASSETS, device=device, dtype=dtype, name="default")
    if Path(model).is_dir():
        return load_folder(model, device=device, dtype=dtype)
    raise ValueError(f"unknown model {model!r}: use a preset ({', '.join(PRESETS)}) or a bundle folder")
