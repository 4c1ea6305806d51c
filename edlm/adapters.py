"""A causal LM adapted into a masked denoiser with LoRA (peft): what training wraps, saves and what loading merges.

A LoRA adapter of SmolLM2-135M is a few megabytes where the model is 270; the base weights come from the GGUF file
that a package ships, so the project ships only the adapter (`assets/general-diffusion`). The folder holds peft's
adapter_config.json and adapter_model.safetensors, plus adapter_base.json: which causal LM it adapts (a name
`edlm.hub.load_causal_lm` reads), the mask id and the window. Loading reads safetensors only and runs no code.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import torch

# Every linear layer of every block (the published LLaDA names); the embedding and output layer stay frozen.
LORA_TARGETS = r".*blocks\.\d+\.(q_proj|k_proj|v_proj|attn_out|ff_proj|up_proj|ff_out)"
BASE_FILE = "adapter_base.json"


def with_lora(model: torch.nn.Module, rank: int, alpha: float | None = None) -> torch.nn.Module:
    """`model` with trainable rank-`rank` adapters on every block's linear layers; all else frozen."""
    from peft import LoraConfig, get_peft_model

    if rank < 1:
        raise ValueError(f"the LoRA rank must be at least 1, not {rank}")
    return get_peft_model(model, LoraConfig(r=rank, lora_alpha=alpha or 2 * rank, lora_dropout=0.0,
                                            target_modules=LORA_TARGETS))


def write_base(folder: str | os.PathLike, base: str, mask_token_id: int, length: int) -> None:
    """Name the causal LM an adapter folder adapts (read back by `read_base`)."""
    (Path(folder) / BASE_FILE).write_text(json.dumps({"base": base, "mask_token_id": mask_token_id,
                                                      "length": length}, indent=1) + "\n")


def read_base(folder: str | os.PathLike) -> dict:
    from .bundle import ModelFilesError, read_json

    info = read_json(Path(folder) / BASE_FILE)
    ok = isinstance(info.get("base"), str) and all(isinstance(info.get(k), int) and not isinstance(info[k], bool)
                                                   for k in ("mask_token_id", "length"))
    if not ok or info["mask_token_id"] < 0 or not 8 <= info["length"] <= 1 << 16:
        raise ModelFilesError(f"{folder}/{BASE_FILE} needs a base name, a mask_token_id and a length from 8 to "
                              "65536 (the window)")
    return info


def _weights(folder: str | os.PathLike) -> Path:
    """The adapter's weights file; a folder without one (a pickled adapter_model.bin, say) is refused."""
    from .bundle import ModelFilesError

    weights = Path(folder) / "adapter_model.safetensors"
    if not weights.is_file():
        raise ModelFilesError(f"no adapter_model.safetensors in {folder} (only safetensors adapters are read)")
    return weights


def load_adapter(peft_model: torch.nn.Module, folder: str | os.PathLike) -> None:
    """Put the adapter weights of `folder` (safetensors only) into a model `with_lora` wrapped, to run or to train
    on from there (a later session resumes from the shipped adapter)."""
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    from .bundle import ModelFilesError

    weights = _weights(folder)
    state = {k: v.float() for k, v in load_file(str(weights)).items()}
    result = set_peft_model_state_dict(peft_model, state)
    if not state or getattr(result, "unexpected_keys", None):
        raise ModelFilesError(f"{weights.name} in {folder} does not fit the model: "
                              f"{(getattr(result, 'unexpected_keys', None) or ['no weights'])[:3]}")


def merge_adapter(model: torch.nn.Module, folder: str | os.PathLike) -> torch.nn.Module:
    """`model` with the LoRA adapter in `folder` added into its weights (no adapter layers left to run)."""
    from peft import LoraConfig, get_peft_model

    _weights(folder)  # before anything else is read
    peft_model = get_peft_model(model, LoraConfig.from_pretrained(str(folder)))  # the config is JSON only
    load_adapter(peft_model, folder)
    return peft_model.merge_and_unload()


def export_adapter(src: str | os.PathLike, dst: str | os.PathLike, dtype: torch.dtype = torch.bfloat16) -> Path:
    """Copy a trained adapter folder as shipped: its configs and the weights in `dtype` (nothing else: no
    tokenizer, which comes from the base model's own file)."""
    from safetensors.torch import load_file, save_file

    src, dst = Path(src), Path(dst)
    dst.mkdir(parents=True, exist_ok=True)
    for name in ("adapter_config.json", BASE_FILE):
        (dst / name).write_text((src / name).read_text())
    weights = load_file(str(src / "adapter_model.safetensors"))
    save_file({k: v.to(dtype).contiguous() for k, v in weights.items()}, str(dst / "adapter_model.safetensors"))
    return dst
