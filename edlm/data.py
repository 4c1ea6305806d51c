"""The text corpus: its split rule, and token windows for training and evaluation."""
from __future__ import annotations

import os
from pathlib import Path

SPLITS = ("train", "validation", "test")


def default_corpus() -> Path:
    """The State of the Union corpus shipped with the project: $EDLM_CORPUS, else corpus/sotu of a source
    checkout, else edlm/corpus/sotu of an installed wheel (where pyproject.toml puts the same folder)."""
    if os.environ.get("EDLM_CORPUS"):
        return Path(os.environ["EDLM_CORPUS"])
    checkout = Path(__file__).resolve().parent.parent / "corpus" / "sotu"
    return checkout if checkout.is_dir() else Path(__file__).resolve().parent / "corpus" / "sotu"


def split_of(filename: str) -> str:
    """Split by the speech's year (first 4 characters of the name): year % 10 == 7 test, == 3 validation."""
    year = int(Path(filename).name[:4])
    if year % 10 == 7:
        return "test"
    if year % 10 == 3:
        return "validation"
    return "train"


def read_split(corpus_dir: str | os.PathLike, split: str) -> list[str]:
    """Texts of one split, in file-name order: a directory of .txt files named YEAR_*.txt (split by year), or a
    directory already split into train.jsonl / validation.jsonl / test.jsonl (one {"text": ...} per line)."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose one of {SPLITS}")
    folder = Path(corpus_dir)
    if not folder.is_dir():
        raise FileNotFoundError(f"corpus folder not found: {folder}")
    if any((folder / f"{s}.jsonl").is_file() for s in SPLITS):
        import json

        path = folder / f"{split}.jsonl"
        if not path.is_file():
            raise FileNotFoundError(f"corpus {folder} has no {path.name} (a folder of .jsonl splits)")
        with open(path, encoding="utf-8") as f:
            return [json.loads(line)["text"] for line in f if line.strip()]
    files = sorted(f for f in folder.glob("*.txt") if f.name[:4].isdigit())
    if not files:
        raise FileNotFoundError(f"no YEAR_*.txt files in {folder}")
    return [f.read_text(encoding="utf-8") for f in files if split_of(f.name) == split]


def token_stream(tokenizer, texts: list[str]) -> torch.Tensor:
    """All texts tokenised and joined, each followed by the end-of-document token: a 1-D LongTensor."""
    import torch

    from .tokenizer import encode

    ids: list[int] = []
    for text in texts:
        ids.extend(encode(tokenizer, text))
        ids.append(tokenizer.eos_token_id)
    return torch.tensor(ids, dtype=torch.long)


def random_windows(stream: torch.Tensor, batch: int, length: int, generator: torch.Generator) -> torch.Tensor:
    """`batch` windows of `length` tokens at random offsets: [batch, length]."""
    import torch

    if len(stream) <= length:
        raise ValueError(f"corpus has {len(stream)} tokens, fewer than one window of {length}")
    starts = torch.randint(0, len(stream) - length, (batch,), generator=generator)
    return torch.stack([stream[s:s + length] for s in starts.tolist()])


def consecutive_windows(stream: torch.Tensor, length: int, limit: int | None = None) -> torch.Tensor:
    """Non-overlapping windows covering the stream (the tail shorter than `length` is dropped): [N, length]."""
    import torch

    n = len(stream) // length
    if limit is not None:
        n = min(n, limit)
    return stream[: n * length].view(n, length)
