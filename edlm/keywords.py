"""A sentence from keywords (CommonGen's task): the keywords a writer wants used become fixed text and the model
writes around them, which any infilling model can do (masked, uniform or continuous noise; the AR model's `ar-is`
too), with no paired training and every keyword used verbatim.

    source "tax, families, relief"  ->  orders of the keywords (the given one first, then shuffled ones)
                                    ->  per order "[MASK:3] tax [MASK:3] families [MASK:3] relief [MASK:3]."
                                    ->  each filled by the sampler; the AR model's likeliest sentence kept

Trying several orders matters because a source is a set: the order in which the words read best is part of what
the model must find. Without an AR model only the given order is filled.
"""
from __future__ import annotations

import math
import random
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .spans import escape

if TYPE_CHECKING:
    from .runner import Tick

MAX_KEYWORDS = 8     # keywords per source
MAX_KEYWORD_CHARS = 40
ORDERS = 3           # orders of the keywords tried per sentence (the given order first)
MAX_ORDERS = 8
GAP = 3              # tokens written before, between and after the keywords


@dataclass
class KeywordResult:
    text: str                     # the kept sentence
    keywords: list[str]
    order: list[str]              # the keywords in the order the kept sentence uses them
    tried: list[dict] = field(default_factory=list)  # every order: its sentence and AR score (nats per token)
    seconds: float = 0.0


def parse_keywords(source: str) -> list[str]:
    """The keywords of a source: separated by commas (a keyword may then hold spaces) or else by spaces."""
    parts = (source.split(",") if "," in source else source.split()) if isinstance(source, str) else []
    words = [" ".join(w.split()) for w in parts if w.strip()]
    if not words:
        raise ValueError("give the keywords to use, separated by commas or spaces (e.g. 'tax, families, relief')")
    if len(words) > MAX_KEYWORDS:
        raise ValueError(f"{len(words)} keywords; the limit is {MAX_KEYWORDS} per sentence")
    long = [w for w in words if len(w) > MAX_KEYWORD_CHARS]
    if long:
        raise ValueError(f"keyword {long[0][:20]!r}... is longer than {MAX_KEYWORD_CHARS} characters")
    return words


def template(order: list[str], gap: int = GAP) -> str:
    """The text to fill for one order: a span before, between and after the keywords, then a full stop. Keywords are
    escaped, so a keyword can never become span markup."""
    span = f"[MASK:{gap}]"
    return span + "".join(f" {escape(w)} {span}" for w in order) + "."


def orders_of(keywords: list[str], n: int, seed: int) -> list[list[str]]:
    """Up to n distinct orders: the given one first, then seeded shuffles."""
    if not 1 <= n <= MAX_ORDERS:
        raise ValueError(f"orders must be from 1 to {MAX_ORDERS}, not {n}")
    rng, out = random.Random(seed), [list(keywords)]
    for _ in range(20 * n):
        if len(out) >= min(n, math.factorial(len(keywords))):
            break
        cand = rng.sample(keywords, len(keywords))
        if cand not in out:
            out.append(cand)
    return out


def coverage(keywords: list[str], text: str) -> float:
    """Share of the keywords the text uses as whole words (case-insensitive)."""
    if not keywords:
        return 1.0
    low = text.lower()
    return sum(1 for w in keywords if re.search(rf"(?<!\w){re.escape(w.lower())}(?!\w)", low)) / len(keywords)


def keywords_stream(bundle, source: str, orders: int = ORDERS, gap: int = GAP,
                    **settings) -> Iterator[Tick | KeywordResult]:
    """`from_keywords` step by step: a `Tick` after every reverse step of every order (a consumer shows it, or stops
    the work there by closing the generator), then the `KeywordResult`."""
    import time

    from .pipeline import infill_stream
    from .runner import Tick

    keywords = parse_keywords(source)
    start = time.perf_counter()
    tried_orders = orders_of(keywords, orders if bundle.ar is not None else 1, int(settings.get("seed", 0)))
    tried, done = [], 0
    for order in tried_orders:
        last = None
        for ev in infill_stream(bundle, template(order, gap), **settings):
            last = ev
            done += 1
            yield Tick(done, ev.total_steps * len(tried_orders))
        tried.append({"order": order, "text": last.text, "ar_nll": ar_score(bundle, last.text)})
    best = min(tried, key=lambda r: r["ar_nll"] if r["ar_nll"] is not None else 0.0)
    yield KeywordResult(text=best["text"], keywords=keywords, order=best["order"], tried=tried,
                        seconds=time.perf_counter() - start)


def from_keywords(bundle, source: str, orders: int = ORDERS, gap: int = GAP, **settings) -> KeywordResult:
    """Write a sentence that uses the keywords of `source` (see the module's docstring); `settings` are the
    sampler's (`edlm.limits.SETTINGS`), the same for every order tried."""
    for item in keywords_stream(bundle, source, orders, gap, **settings):
        pass
    return item


def ar_score(bundle, text: str) -> float | None:
    """The AR model's mean negative log-likelihood of a sentence (per token, `edlm.augment.ar_scores`; per character
    for an AR model with its own tokenizer); None without an AR model."""
    if bundle.ar is None:
        return None
    if bundle.energy_tokenizer is not None:
        from .energy import TextAREnergy

        energy = TextAREnergy(bundle.ar, bundle.energy_tokenizer, bundle.tokenizer)
        return -float(energy.text_log_likelihood([text])[0]) / max(1, len(text))
    from .augment import ar_scores

    return -ar_scores(bundle, [text])[0]
