"""Build the keywords-to-sentence task (CommonGen-style) from a corpus: for each sentence of 8 to 30 words, its
content words (3 to 5 of them, not function words, in a seeded shuffle) are the source and the sentence is the
target. TRAIN, VALIDATION and TEST pairs come from the corpus's own splits, so TEST sentences are never trained on.

Usage: python scripts/build_keywords.py [CORPUS] [OUT] [--seed N] [--per-split N]
       (defaults: corpus/sotu data/keywords, seed 0, at most 2,000 pairs per split; JSON Lines out)
"""
from __future__ import annotations

import argparse
import json
import random
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from edlm.data import SPLITS, read_split  # noqa: E402

# English function words: never a keyword (a keyword carries content the sentence must be about).
FUNCTION_WORDS = frozenset("""
a about above after again against all also am an and any are as at be because been before being below between both
but by can could did do does doing down during each either every few for from further had has have having he her
here hers herself him himself his how i if in into is it its itself just may me might more most must my myself
neither no nor not now of off on once only or other ought our ours ourselves out over own same shall she should so
some such than that the their theirs them themselves then there these they this those through thus to too under
until up upon us very was we were what when where whether which while who whom whose why will with within without
would yet you your yours yourself yourselves one two three many much made make great good new
""".split())
SENTENCE = re.compile(r"[^.!?]+[.!?]")
WORD = re.compile(r"[A-Za-z]+(?:'[a-z]+)?")


def sentences(text: str) -> list[str]:
    """The corpus text cut into sentences, whitespace collapsed."""
    return [" ".join(s.split()) for s in SENTENCE.findall(text)]


def keywords_of(sentence: str, rng: random.Random) -> list[str] | None:
    """3 to 5 distinct content words of the sentence, shuffled; None for a sentence outside 8-30 words or with
    fewer than 3 content words."""
    words = WORD.findall(sentence)
    if not 8 <= len(words) <= 30:
        return None
    content = []
    for w in words:
        low = w.lower()
        if low not in FUNCTION_WORDS and len(low) >= 3 and low not in content:
            content.append(low)
    if len(content) < 3:
        return None
    picked = rng.sample(content, min(len(content), rng.randint(3, 5)))
    rng.shuffle(picked)
    return picked


def build(corpus: str, out: str, seed: int = 0, per_split: int = 2000) -> dict[str, int]:
    """Write OUT/{train,validation,test}.jsonl ({"keywords": [...], "sentence": "..."}); returns pairs per split."""
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    counts = {}
    for split in SPLITS:
        rng = random.Random(f"{seed}:{split}")
        seen, pairs = set(), []
        for text in read_split(corpus, split):
            for s in sentences(text):
                if s.lower() in seen:
                    continue  # deduplicated within the split
                kw = keywords_of(s, rng)
                if kw is not None:
                    seen.add(s.lower())
                    pairs.append({"keywords": kw, "sentence": s})
        rng.shuffle(pairs)
        pairs = pairs[:per_split]
        with open(out_dir / f"{split}.jsonl", "w", encoding="utf-8") as f:
            for p in pairs:
                f.write(json.dumps(p, ensure_ascii=False) + "\n")
        counts[split] = len(pairs)
    return counts


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("corpus", nargs="?", default="corpus/sotu")
    ap.add_argument("out", nargs="?", default="data/keywords")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--per-split", type=int, default=2000)
    args = ap.parse_args()
    counts = build(args.corpus, args.out, args.seed, args.per_split)
    print(" · ".join(f"{split}: {n} pairs" for split, n in counts.items()), f"-> {args.out}")


if __name__ == "__main__":
    main()
