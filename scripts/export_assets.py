"""Export trained models from a run folder into the shipped bundle (float16 safetensors + sha256 manifest).

Usage: python scripts/export_assets.py [RUN_DIR] [OUT_DIR]     (defaults: runs assets)
       python scripts/export_assets.py --adapter ADAPTER_DIR assets/general-diffusion   (a LoRA adapter, bfloat16)
"""
from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from edlm.bundle import export_bundle  # noqa: E402


def main() -> None:
    if sys.argv[1:2] == ["--adapter"]:
        from edlm.adapters import export_adapter
        from edlm.bundle import write_manifest

        out = export_adapter(sys.argv[2], sys.argv[3])
        write_manifest(out.parent)
        print(f"exported to {out}: {(out / 'adapter_model.safetensors').stat().st_size / 1e6:.1f} MB")
        return
    runs = Path(sys.argv[1] if len(sys.argv) > 1 else "runs")
    out = Path(sys.argv[2] if len(sys.argv) > 2 else "assets")
    parts = {"tokenizer": runs / "tokenizer"}
    for part in ("denoiser", "ar", "nce", "judge"):
        folder = runs / part / "best" / "model"
        if not folder.exists():
            raise SystemExit(f"missing {folder}: train it first (scripts/train_default_models.sh)")
        parts[part] = folder
    for folder in ("uniform-unrolled", "uniform"):  # the uniform-noise denoiser (the `uniform` preset)
        if (runs / folder / "best" / "model").exists():
            parts["uniform"] = runs / folder / "best" / "model"
            break
    if (runs / "continuous" / "best" / "model").exists():  # the continuous-embedding denoiser (`continuous`)
        parts["continuous"] = runs / "continuous" / "best" / "model"
    export_bundle(parts, out, dtype=torch.float16)
    total = sum(p.stat().st_size for p in out.rglob("*.safetensors"))
    print(f"exported to {out}: weights {total / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
