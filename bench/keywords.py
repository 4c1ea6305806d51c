"""Keywords to sentence on TEST pairs: every noise process (masked, uniform, continuous), with and without the AR
energy, against the AR model's own infilling (`ar-is`) and a plain AR continuation of the keywords as a prompt.
Prints a Markdown table (and writes it with the raw rows under --out).

    python bench/keywords.py [--pairs 48] [--steps 16] [--systems masked,masked-ar,...] [--out results/keywords]

Pairs: scripts/build_keywords.py's TEST split of the corpus (built in memory, seed 0). Each system writes one
sentence per pair (`edlm.keywords.from_keywords`: the keywords as fixed text, 3 orders tried, the embedded AR
model's likeliest kept; the same seed per pair for every system). Judge: the embedded judge model (neither the
denoisers nor the energy), perplexity of the whole sentence per token, with the real TEST sentence as the
reference and the paired log difference against it (standard error over pairs). Beside it: keyword coverage
(whole words), distinct-2 over all sentences' word bigrams, repeated word trigrams inside a sentence, seconds.
"""
from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

ROOT = Path(__file__).resolve().parent.parent
PLAIN = dict(temperature=1.0, top_p=0.95, unmask="random", target_ess=0.0, final="sample")
SYSTEMS = {  # name -> (model, settings)
    "masked": ("default", {"sampler": "mdlm", **PLAIN}),
    "masked-ar": ("default", {"sampler": "edlm-ar", "ar_weighting": "product", "k": 4, **PLAIN}),
    "uniform": ("uniform", {"sampler": "mdlm", **PLAIN}),
    "uniform-ar": ("uniform", {"sampler": "edlm-ar", "ar_weighting": "product", "k": 4, **PLAIN}),
    "continuous": ("continuous", {"sampler": "mdlm", **PLAIN}),
    "continuous-ar": ("continuous", {"sampler": "edlm-ar", "ar_weighting": "product", "k": 4, **PLAIN}),
    "ar-is": ("default", {"sampler": "ar-is", "k": 4, "temperature": 1.0, "top_p": 0.95, "target_ess": 0.0}),
    "ar-prompt": ("default", {"sampler": "ar", "temperature": 1.0, "top_p": 0.95}),
}
PROMPT_TOKENS = 24  # ar-prompt: tokens continued after "KEYWORDS:", cut at the first full stop


def test_pairs(n: int, corpus: str | None) -> list[dict]:
    from edlm.commands import DEFAULT_CORPUS
    from scripts.build_keywords import build

    with tempfile.TemporaryDirectory() as tmp:
        build(corpus or DEFAULT_CORPUS, tmp, seed=0, per_split=max(n, 1))
        rows = [json.loads(line) for line in open(Path(tmp) / "test.jsonl", encoding="utf-8")]
    return rows[:n]


def judge_nll(bundle, text: str) -> tuple[float, int]:
    """The judge's summed NLL of the text from BOS, and its token count."""
    import torch

    from edlm.energy import ar_log_likelihood
    from edlm.tokenizer import encode

    ids = encode(bundle.tokenizer, text)[: bundle.judge.config.max_position_embeddings - 1]
    x = torch.tensor([ids], device=bundle.device)
    return -float(ar_log_likelihood(bundle.judge, x, bundle.tokenizer.bos_token_id)), len(ids)


def write(bundle, system: str, keywords: list[str], seed: int, steps: int, orders: int) -> str:
    from edlm.keywords import from_keywords
    from edlm.pipeline import generate

    settings = dict(SYSTEMS[system][1], seed=seed)
    if system == "ar-prompt":  # the AR model continues a prompt of the keywords: no constraint makes it use them
        ev = generate(bundle, PROMPT_TOKENS, prefix=", ".join(keywords) + ":", **settings)[0]
        text = ev.spans[0].strip()
        return text.split(".")[0] + "." if "." in text else text
    return from_keywords(bundle, ", ".join(keywords), orders=orders, steps=steps, **settings).text


def bigrams(text: str) -> list[tuple[str, str]]:
    w = text.lower().split()
    return list(zip(w, w[1:]))


def main() -> None:
    from edlm.bench import trigram_repeat_share
    from edlm.keywords import coverage
    from edlm.presets import load_bundle

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=int, default=48)
    ap.add_argument("--steps", type=int, default=16)
    ap.add_argument("--orders", type=int, default=3)
    ap.add_argument("--systems", default=",".join(SYSTEMS))
    ap.add_argument("--corpus", default=None)
    ap.add_argument("--out", default="results/keywords")
    args = ap.parse_args()
    systems = args.systems.split(",")
    unknown = [s for s in systems if s not in SYSTEMS]
    if unknown:
        raise SystemExit(f"unknown systems {unknown}: choose from {', '.join(SYSTEMS)}")
    pairs = test_pairs(args.pairs, args.corpus)
    bundles = {}
    judge = load_bundle("default")
    real = [judge_nll(judge, p["sentence"]) for p in pairs]
    rows = {"reference": [{"text": p["sentence"], "nll": nll, "tokens": n, "seconds": 0.0,
                           "coverage": coverage(p["keywords"], p["sentence"])} for p, (nll, n) in zip(pairs, real)]}
    for system in systems:
        model = SYSTEMS[system][0]
        bundles.setdefault(model, load_bundle(model))
        out = []
        for i, p in enumerate(pairs):
            start = time.perf_counter()
            text = write(bundles[model], system, p["keywords"], seed=i, steps=args.steps, orders=args.orders)
            seconds = time.perf_counter() - start
            nll, n = judge_nll(judge, text)
            out.append({"text": text, "nll": nll, "tokens": n, "seconds": seconds,
                        "coverage": coverage(p["keywords"], text)})
        rows[system] = out
        print(f"{system}: done", file=sys.stderr)
    lines = [f"Keywords to sentence, {len(pairs)} TEST pairs, T = {args.steps} steps, {args.orders} orders per "
             "sentence, judge: the embedded judge (perplexity per token of the whole sentence).", "",
             "| system | judge ppl | vs real: log diff (SE) | coverage | distinct-2 | repeated trigrams | s/sentence |",
             "|---|---|---|---|---|---|---|"]
    for name, out in rows.items():
        ppl = math.exp(sum(r["nll"] for r in out) / sum(r["tokens"] for r in out))
        d = [r["nll"] / max(1, r["tokens"]) - a / max(1, b) for r, (a, b) in zip(out, real)]
        se = statistics.stdev(d) / math.sqrt(len(d)) if len(d) > 1 else float("nan")
        grams = [g for r in out for g in bigrams(r["text"])]
        distinct = len(set(grams)) / max(1, len(grams))
        rep = statistics.mean(trigram_repeat_share(r["text"]) for r in out)
        diff = "-" if name == "reference" else f"{statistics.mean(d):+.3f} ({se:.3f})"
        lines.append(f"| {name} | {ppl:.1f} | {diff} | {statistics.mean(r['coverage'] for r in out):.2f} | "
                     f"{distinct:.3f} | {rep:.3f} | {statistics.mean(r['seconds'] for r in out):.2f} |")
    table = "\n".join(lines)
    print(table)
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "keywords.md").write_text(table + "\n", encoding="utf-8")
    (out_dir / "rows.json").write_text(json.dumps({"pairs": pairs, "rows": rows}, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
