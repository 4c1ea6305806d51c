"""Where one fill's time goes, and whether bfloat16 pays on this machine.

For each weight dtype and sampler: one fill of 64 masked tokens in a 128-token TEST window at 32 steps (the
latency benchmark's setting), at batch 1 and at batch 4, timed as the median of --repeats runs after a warm-up and
split into the denoiser's forward passes, the energy's (AR or NCE model), and the rest (sampling, the Python loop,
bookkeeping). Run it on an idle machine; it prints a table.

    python bench/step_profile.py
    python bench/step_profile.py --model general --samplers ar-is --dtypes float32,bfloat16
"""
from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def profile(bundle, ids, req, repeats: int) -> dict:
    """Median seconds of one fill of the masked positions of `ids`, and its split into the forward passes of the
    denoiser, of the energy, and the rest."""
    from edlm.bench import ForwardTimer, _run_batch

    runs = []
    for r in range(repeats + 1):  # the first run warms up
        den, energy = ForwardTimer([bundle.denoiser]), ForwardTimer([bundle.ar, bundle.nce])
        start = time.perf_counter()
        _, d_calls, e_calls = _run_batch(bundle, ids.clone(), dataclasses.replace(req, seed=r))
        wall = time.perf_counter() - start
        den.close(), energy.close()
        runs.append((wall, den.total, energy.total, d_calls, e_calls))
    wall, den_s, en_s, d_calls, e_calls = (statistics.median(x) for x in zip(*runs[1:]))
    return {"wall": wall, "denoiser": den_s, "energy": en_s, "rest": wall - den_s - en_s, "passes": (d_calls, e_calls)}


def main() -> None:
    import torch

    from edlm.bench import PLAIN
    from edlm.data import consecutive_windows, read_split, token_stream
    from edlm.limits import DEFAULTS
    from edlm.presets import load_bundle
    from edlm.runner import Request

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="default")
    ap.add_argument("--samplers", default="mdlm,default,edlm-ar,edlm-smc",
                    help="comma-separated: mdlm, default (the shipped settings), edlm-ar (k 8), edlm-smc (k 4), ar-is")
    ap.add_argument("--dtypes", default="float32,bfloat16")
    ap.add_argument("--batches", default="1,4")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    torch.set_num_threads(torch.get_num_threads())
    plain = dict(steps=32, temperature=1.0, top_p=1.0, **PLAIN)
    requests = {"mdlm": Request(sampler="mdlm", k=1, is_window=0.0, **plain),
                "default": Request(**{**dataclasses.asdict(DEFAULTS), "steps": 32}),
                "edlm-ar": Request(sampler="edlm-ar", k=8, is_window=0.5, **plain),
                "edlm-smc": Request(sampler="edlm-smc", k=4, is_window=0.5, **plain),
                "ar-is": Request(sampler="ar-is", k=16, is_window=0.0, **{**plain, "temperature": 0.8})}
    print(f"machine: {torch.get_num_threads()} torch threads, torch {torch.__version__}; model {args.model}; "
          f"64 masked tokens in a 128-token TEST window, 32 steps; median of {args.repeats} after a warm-up\n")
    print("| dtype | sampler | batch | s per fill | denoiser s | energy s | rest s | passes (denoiser / energy) |")
    print("|---|---|---|---|---|---|---|---|")
    for dtype in args.dtypes.split(","):
        bundle = load_bundle(args.model, device="cpu", dtype=dtype)
        tok = bundle.tokenizer
        window = consecutive_windows(token_stream(tok, read_split(ROOT / "corpus" / "sotu", "test")), 128, 1)[0]
        for batch in (int(b) for b in args.batches.split(",")):
            ids = window.clone().unsqueeze(0).repeat(batch, 1)
            ids[:, 32:96] = tok.mask_token_id
            for name in args.samplers.split(","):
                req = requests[name]
                if (req.sampler == "ar-is") != (bundle.denoiser is None):
                    continue
                p = profile(bundle, ids, req, args.repeats)
                print(f"| {dtype} | {name} (k {req.k}) | {batch} | {p['wall']:.3f} | {p['denoiser']:.3f} | "
                      f"{p['energy']:.3f} | {p['rest']:.3f} | {p['passes'][0]:.0f} / {p['passes'][1]:.0f} |",
                      flush=True)


if __name__ == "__main__":
    main()
