"""Augmentation benchmark: records per second by sampler and batch size, and diversity against fidelity by
rewrite fraction. Prints two Markdown tables.

    python bench/augment.py [--records 1000] [--n 4] [--model default] [--corpus corpus/sotu]

Records are sentences of the corpus's VALIDATION split (30 to 200 characters), in file order.
"""
from __future__ import annotations

import argparse
import re
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def sentences(corpus: str, limit: int) -> list[str]:
    from edlm.data import read_split

    out = []
    for text in read_split(corpus, "validation"):
        for s in re.split(r"(?<=[.!?])\s+", " ".join(text.split())):
            if 30 <= len(s) <= 200:
                out.append(s)
                if len(out) >= limit:
                    return out
    return out


def main() -> None:
    from edlm.augment import AugmentConfig, Summary, augment
    from edlm.limits import DEFAULTS
    from edlm.presets import load_bundle

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--records", type=int, default=1000)
    p.add_argument("--n", type=int, default=4)
    p.add_argument("--steps", type=int, default=DEFAULTS.steps)
    p.add_argument("--batches", default="1,8,32")
    p.add_argument("--rewrites", default="0.15,0.3,0.5")
    p.add_argument("--samplers", default=None, help="comma-separated (default: mdlm and the default sampler)")
    p.add_argument("--parts", default="speed,quality", help="speed (records/s), quality (diversity vs fidelity)")
    p.add_argument("--model", default="default")
    from edlm.data import default_corpus

    p.add_argument("--corpus", default=str(default_corpus()))
    args = p.parse_args()
    bundle = load_bundle(args.model)
    recs = sentences(args.corpus, args.records)
    samplers = args.samplers.split(",") if args.samplers else ["mdlm", DEFAULTS.sampler]
    parts = set(args.parts.split(","))
    print(f"{len(recs)} sentences, n = {args.n}, {args.steps} steps, top-p {DEFAULTS.top_p}\n")
    if "speed" in parts:
        print("| sampler | batch (rows) | records/s | variants/s |\n|---|---|---|---|")
    for sampler in samplers if "speed" in parts else []:
        for batch in (int(b) for b in args.batches.split(",")):
            cfg = AugmentConfig(n=args.n, batch_size=batch, settings=dict(sampler=sampler, steps=args.steps))
            t0 = time.perf_counter()
            kept = sum(len(r.variants) for r in augment(bundle, recs, cfg))
            dt = time.perf_counter() - t0
            print(f"| {sampler} | {batch} | {len(recs) / dt:.2f} | {kept / dt:.2f} |", flush=True)
    if "quality" in parts:
        print("\n| sampler | rewrite | distinct-2 across variants | mean AR score / token (source) | "
              "mean word edits |\n|---|---|---|---|---|")
    for sampler in samplers if "quality" in parts else []:
        for rw in (float(r) for r in args.rewrites.split(",")):
            cfg = AugmentConfig(n=args.n, rewrite=rw, batch_size=32, settings=dict(sampler=sampler, steps=args.steps))
            summary, edits = Summary(), []
            for res in augment(bundle, recs, cfg):
                summary.add(res)
                edits += [v.edit_distance for v in res.variants]
            rep = summary.report()
            print(f"| {sampler} | {rw:g} | {rep['distinct2_across_variants']:.3f} | "
                  f"{rep['mean_variant_score']:.3f} ({rep['mean_source_score']:.3f}) | "
                  f"{statistics.mean(edits):.1f} |", flush=True)


if __name__ == "__main__":
    main()
