"""Data augmentation: varied rewrites of every record of a data set. Part of each text is masked in spans (random
token or word spans, never the protected words), the diffusion model refills them, and each variant is scored.

Records stream in and out: they are read in chunks, the (record, variant) rows of a chunk are sorted by length and
sampled in batches (one denoiser pass serves many records), and results are written in input order, one JSON line
per record, so an interrupted run leaves a valid file and `resume` continues without duplicates.
"""
from __future__ import annotations

import csv
import io
import itertools
import json
import math
import random
import re
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch

from .bundle import Bundle
from .energy import ar_log_likelihood
from .limits import LIMITS, Request, validate
from .pipeline import _run, banned_ids, energy_for, layout_editable
from .sampling import SamplerConfig, sample
from .spans import Span, Template, build_layout, check_text
from .tokenizer import encode

MAX_VARIANTS = 32
FORMATS = ("txt", "jsonl", "csv")


@dataclass(frozen=True)
class AugmentConfig:
    """What to rewrite and how; sampling settings are those of `edlm.limits.SETTINGS`."""

    n: int = 4                        # variants per record, 1..32
    rewrite: float = 0.25             # share of the units (tokens or words) rewritten, 0.05..0.9
    span_mean: float = 2.0            # mean span length in units (spans are geometric, at least 1 unit)
    unit: str = "tokens"              # "tokens" or "words" (whole words only)
    keep: tuple[str, ...] = ()        # words that never change (whole-word, case-sensitive)
    keep_regex: str | None = None     # a regular expression whose matches never change
    min_units: int = 3                # records with fewer rewritable units pass through unchanged
    min_score: float | None = None    # drop variants whose AR log-likelihood per token is below this
    batch_size: int = 32              # (record, variant) rows per sampling batch
    chunk: int = 256                  # records read, sorted by length and batched together
    seed: int = 0
    settings: dict = field(default_factory=dict)  # sampler, steps, k, ... (validated)

    def check(self) -> Request:
        if isinstance(self.n, bool) or not isinstance(self.n, int) or not 1 <= self.n <= MAX_VARIANTS:
            raise ValueError(f"n must be a whole number from 1 to {MAX_VARIANTS}, not {self.n!r}")
        if not 0.05 <= self.rewrite <= 0.9:
            raise ValueError(f"rewrite must be a fraction from 0.05 to 0.9, not {self.rewrite!r}")
        if not 1.0 <= self.span_mean <= 32:
            raise ValueError(f"span_mean must be from 1 to 32 units, not {self.span_mean!r}")
        if self.unit not in ("tokens", "words"):
            raise ValueError(f"unit must be tokens or words, not {self.unit!r}")
        if not 1 <= self.batch_size <= 512:
            raise ValueError(f"batch_size must be from 1 to 512, not {self.batch_size!r}")
        if self.keep_regex is not None:
            try:
                re.compile(self.keep_regex)
            except re.error as e:
                raise ValueError(f"keep_regex is not a valid regular expression: {e}") from None
        return validate(**{"seed": self.seed, **self.settings})


@dataclass
class Variant:
    text: str
    rewritten: list[tuple[int, int]]  # character ranges of `text` that the model wrote
    replaced: list[tuple[int, int]]   # the character ranges of the source they replace (all else is identical)
    score: float                      # AR log-likelihood per token (higher = more fluent)
    edit_distance: int                # word-level edit distance to the source


@dataclass
class Result:
    index: int
    record: dict
    text: str
    status: str                       # "ok", or passed through: "too_short" | "empty" | "invalid"
    variants: list[Variant] = field(default_factory=list)
    source_score: float | None = None
    dropped: dict = field(default_factory=dict)  # reason -> count

    def to_json(self) -> dict:
        return {"index": self.index, "record": self.record, "status": self.status,
                "source_score": self.source_score, "variants": [asdict(v) for v in self.variants],
                "dropped": self.dropped}


# ----------------------------------------------------------------------------------------------- reading, writing
def read_records(path: str | Path, fmt: str | None = None, field_name: str | None = None,
                 column: str | None = None) -> Iterator[tuple[dict, str]]:
    """(record, text) pairs from a file, streamed: txt (one record per line), jsonl (`field_name` holds the text;
    every field travels), csv (`column` holds the text). Errors name the line."""
    path = Path(path)
    fmt = fmt or {".txt": "txt", ".jsonl": "jsonl", ".csv": "csv"}.get(path.suffix.lower())
    if fmt not in FORMATS:
        raise ValueError(f"cannot tell the format of {path.name}: pass --format txt, jsonl or csv")
    if not path.is_file():
        raise FileNotFoundError(f"no such input file: {path}")
    if fmt == "jsonl" and not field_name:
        raise ValueError("a JSON Lines input needs --field: the name of the text field")
    if fmt == "csv" and not column:
        raise ValueError("a CSV input needs --column: the name of the text column")
    with open(path, encoding="utf-8", newline="") as f:
        try:
            if fmt == "txt":
                for line in f:
                    text = line[:-2] if line.endswith("\r\n") else line.rstrip("\n")
                    yield {"text": text}, text
            elif fmt == "jsonl":
                for no, line in enumerate(f, 1):
                    if not line.strip():
                        continue
                    try:
                        rec = json.loads(line)
                    except json.JSONDecodeError as e:
                        raise ValueError(f"{path.name} line {no}: not JSON ({e.msg})") from None
                    if not isinstance(rec, dict) or not isinstance(rec.get(field_name), str):
                        raise ValueError(f"{path.name} line {no}: no text field {field_name!r}")
                    yield rec, rec[field_name]
            else:
                reader = csv.DictReader(f, strict=True)
                if reader.fieldnames is None or column not in reader.fieldnames:
                    raise ValueError(f"{path.name}: no column {column!r} (columns: {reader.fieldnames})")
                try:
                    for row in reader:
                        if None in row or row.get(column) is None:
                            raise ValueError(f"{path.name} line {reader.line_num}: wrong number of fields")
                        yield dict(row), row[column]
                except csv.Error as e:
                    raise ValueError(f"{path.name} line {reader.line_num}: bad CSV ({e})") from None
        except UnicodeDecodeError:
            raise ValueError(f"{path.name} is not UTF-8 text") from None


def done_count(out: Path) -> int:
    """Records already in an output file (whole lines only; a torn last line is cut off)."""
    if not out.exists():
        return 0
    data = out.read_bytes()
    keep = data[: data.rfind(b"\n") + 1]
    if len(keep) != len(data):
        out.write_bytes(keep)
    return keep.count(b"\n")


# ----------------------------------------------------------------------------------------------- choosing spans
def units_of(tokenizer, text: str, unit: str) -> list[tuple[int, int]]:
    """Character ranges of the rewritable units: whole words, or tokens (from the tokenizer's offsets)."""
    if unit == "words" or "\u2581" in text:
        return [m.span() for m in re.finditer(r"\S+", text)]
    enc = tokenizer.backend_tokenizer.encode(text, add_special_tokens=False)
    out = []
    for a, b in enc.offsets:
        if b <= a:
            continue
        while a < b and text[a].isspace():  # a leading space stays with the fixed text
            a += 1
        if out and a < out[-1][1]:  # byte pieces of one character share its offsets
            a = out[-1][1]
        if a < b:
            out.append((a, b))
    return out


def protected_ranges(text: str, keep: tuple[str, ...], keep_regex: str | None) -> list[tuple[int, int]]:
    spans = []
    for word in keep:
        spans += [m.span() for m in re.finditer(r"(?<!\w)" + re.escape(word) + r"(?!\w)", text)]
    if keep_regex:
        spans += [m.span() for m in re.finditer(keep_regex, text) if m.end() > m.start()]
    return spans


def choose_spans(units: list[tuple[int, int]], blocked: list[tuple[int, int]], cfg: AugmentConfig,
                 rng: random.Random) -> list[tuple[int, int]]:
    """Character ranges to rewrite: runs of free units with geometric lengths (mean cfg.span_mean) until about
    cfg.rewrite of the free units are covered. Protected units are never inside a range."""
    free = [not any(a < e and s < b for s, e in blocked) for a, b in units]
    n_free = sum(free)
    target = max(1, round(cfg.rewrite * n_free))
    chosen = [False] * len(units)
    p = 1.0 / cfg.span_mean
    for _ in range(20 * len(units)):
        if sum(chosen) >= target:
            break
        length = 1
        while rng.random() > p and length < target:
            length += 1
        start = rng.randrange(len(units))
        for i in range(start, min(len(units), start + length)):
            if not free[i] or sum(chosen) >= target:
                break
            chosen[i] = True
    ranges: list[tuple[int, int]] = []
    for i, c in enumerate(chosen):
        if not c:
            continue
        if ranges and chosen[i - 1] and i > 0:
            ranges[-1] = (ranges[-1][0], units[i][1])
        else:
            ranges.append(units[i])
    return ranges


def template_of(text: str, ranges: list[tuple[int, int]], tokenizer) -> tuple[Template, list[int]]:
    """The text as fixed parts and spans, each span as long in tokens as the text it replaces."""
    parts: list = []
    lengths, pos = [], 0
    for a, b in ranges:
        parts.append(text[pos:a])
        parts.append(Span(None))
        lengths.append(max(1, min(LIMITS.max_span_tokens, len(encode(tokenizer, text[a:b])))))
        pos = b
    parts.append(text[pos:])
    return Template(parts), lengths


# ----------------------------------------------------------------------------------------------- scoring
def word_edit_distance(a: str, b: str) -> int:
    x, y = a.split(), b.split()
    prev = list(range(len(y) + 1))
    for i, wx in enumerate(x, 1):
        cur = [i] + [0] * len(y)
        for j, wy in enumerate(y, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (wx != wy))
        prev = cur
    return prev[-1]


def distinct2(texts: list[str]) -> float:
    """Distinct word bigrams / all word bigrams across the texts (1 = no bigram repeated across variants)."""
    grams = [tuple(w[i:i + 2]) for t in texts for w in [t.split()] for i in range(len(w) - 1)]
    return len(set(grams)) / len(grams) if grams else 0.0


@torch.inference_mode()
def ar_scores(bundle: Bundle, texts: list[str]) -> list[float | None]:
    """AR log-likelihood per token of each text (None without an AR model of the same tokenizer)."""
    if bundle.ar is None or bundle.energy_tokenizer is not None:
        return [None] * len(texts)
    tok = bundle.tokenizer
    limit = bundle.ar.config.max_position_embeddings - 1
    seqs = [encode(tok, text)[:limit] or [tok.eos_token_id] for text in texts]
    L = max(len(s) for s in seqs)  # one batch, padded at the end (a causal model never looks ahead)
    x = torch.full((len(seqs), L), tok.eos_token_id)
    score = torch.zeros(len(seqs), L, dtype=torch.bool)
    for i, s in enumerate(seqs):
        x[i, :len(s)] = torch.tensor(s)
        score[i, :len(s)] = True
    ll = ar_log_likelihood(bundle.ar, x.to(bundle.device), tok.bos_token_id, score.to(bundle.device))
    return [float(v) / len(s) for v, s in zip(ll.cpu(), seqs)]


# ----------------------------------------------------------------------------------------------- sampling
@dataclass
class _Row:
    result: Result
    variant: int
    layout: object
    ranges_in: list
    ranges_out: list | None = None
    text_out: str | None = None


def _fill_rows(bundle: Bundle, rows: list[_Row], req: Request, cfg: AugmentConfig, banned: tuple[int, ...]) -> None:
    """Sample every row's spans: rows that fit the model's window are batched with rows of the same token length
    (no padding), longer ones go through the windowed pipeline one by one."""
    tok = bundle.tokenizer
    short = [r for r in rows if len(r.layout.ids) <= bundle.window]
    for r in rows:
        if len(r.layout.ids) > bundle.window:
            ids = torch.tensor([r.layout.ids])
            for _ in _run(bundle, ids, replace(req, seed=_row_seed(cfg, r)), layout_editable(r.layout)):
                pass
            _finish(r, ids[0].tolist(), tok)
    short.sort(key=lambda r: len(r.layout.ids))
    energy = energy_for(bundle, req)
    if energy is None or req.k == 1 or req.is_window == 0:
        energy = None
    scfg = SamplerConfig(steps=req.steps, k=req.k, is_window=req.is_window, temperature=req.temperature,
                         top_p=req.top_p, seed=req.seed, banned=banned,
                         unmask=req.unmask, remask=req.remask, final=req.final)
    # Rows of one token length share a batch: no padding, so a row never sees another row's length (the
    # denoiser attends both ways) and its result does not depend on the batch it runs in.
    batches = []
    for _, group in itertools.groupby(short, key=lambda r: len(r.layout.ids)):
        group = list(group)
        batches += [group[i:i + cfg.batch_size] for i in range(0, len(group), cfg.batch_size)]
    for batch in batches:
        x = torch.tensor([r.layout.ids for r in batch])
        editable = torch.stack([layout_editable(r.layout) for r in batch])
        last = None
        for last in sample(bundle.denoiser, x.to(bundle.device), scfg, energy, editable=editable.to(bundle.device),
                           row_seeds=[_row_seed(cfg, r) for r in batch]):
            pass
        for b, r in enumerate(batch):
            _finish(r, last.tokens[b].tolist(), tok)


def line_break_ids(tokenizer) -> tuple[int, ...]:
    """Tokens that write a line break: never in a rewrite, so one-record-per-line data stays one per line."""
    from .tokenizer import decode

    return tuple(i for i in range(len(tokenizer)) if any(c in decode(tokenizer, [i]) for c in "\n\r\u2028"))


def _row_seed(cfg: AugmentConfig, r: _Row) -> int:
    """A row's seed depends on the record's index and the variant only: batching and resuming change nothing."""
    return cfg.seed * 1_000_003 + r.result.index * 64 + r.variant


def _finish(r: _Row, ids: list[int], tok) -> None:
    text, spans = r.layout.render(tok, ids)
    fixed = [p for p in r.layout.template.parts if isinstance(p, str)]
    ranges, pos = [], 0
    for f, s in zip(fixed, spans):
        pos += len(f)
        ranges.append((pos, pos + len(s)))
        pos += len(s)
    r.text_out, r.ranges_out = text, ranges


def augment(bundle: Bundle, records: Iterable[dict | str], cfg: AugmentConfig | None = None,
            field_name: str = "text", start_index: int = 0, **options) -> Iterator[Result]:
    """Rewrites of every record (a string, or a dict whose `field_name` holds the text), in input order.
    `options` are AugmentConfig fields (n, rewrite, unit, keep, ...) plus sampling settings (sampler, steps, k,
    ...). Same records, settings and seed give the same results, however the records are batched or resumed."""
    if cfg is None:
        own = {f for f in AugmentConfig.__dataclass_fields__ if f != "settings"}
        cfg = AugmentConfig(**{k: v for k, v in options.items() if k in own},
                            settings={k: v for k, v in options.items() if k not in own})
    elif options:
        raise ValueError("pass either cfg or keyword options, not both")
    req = cfg.check()
    banned = banned_ids(bundle.tokenizer) + line_break_ids(bundle.tokenizer)  # once per call, not per chunk
    it = iter(records)
    index = start_index
    while True:
        chunk = []
        for rec in it:
            rec = {field_name: rec} if isinstance(rec, str) else rec
            chunk.append(Result(index=index, record=rec, text=rec[field_name], status="ok"))
            index += 1
            if len(chunk) >= cfg.chunk:
                break
        if not chunk:
            return
        rows = []
        for res in chunk:
            rows += _plan(bundle, res, cfg)
        _fill_rows(bundle, rows, req, cfg, banned)
        by_record: dict[int, list[_Row]] = {}
        for r in rows:
            by_record.setdefault(r.result.index, []).append(r)
        for res in chunk:
            _collect(bundle, res, sorted(by_record.get(res.index, []), key=lambda r: r.variant), cfg)
            yield res


def _plan(bundle: Bundle, res: Result, cfg: AugmentConfig) -> list[_Row]:
    text = res.text
    if not text.strip():
        res.status = "empty"
        return []
    try:
        check_text(text)
    except ValueError as e:  # control characters, lone surrogates, over the length limit: passed through
        res.status = "invalid"
        res.dropped = {"reason": str(e)}
        return []
    units = units_of(bundle.tokenizer, text, cfg.unit)
    blocked = protected_ranges(text, cfg.keep, cfg.keep_regex)
    free = [u for u in units if not any(u[0] < e and s < u[1] for s, e in blocked)]
    if len(free) < cfg.min_units:
        res.status = "too_short"
        return []
    rows = []
    for v in range(cfg.n):
        rng = random.Random(cfg.seed * 1_000_003 + res.index * 64 + v)
        ranges = choose_spans(units, blocked, cfg, rng)
        template, lengths = template_of(text, ranges, bundle.tokenizer)
        rows.append(_Row(res, v, build_layout(template, bundle.tokenizer, lengths), ranges))
    return rows


def _collect(bundle: Bundle, res: Result, rows: list[_Row], cfg: AugmentConfig) -> None:
    if res.status != "ok":
        return
    scores = ar_scores(bundle, [res.text] + [r.text_out for r in rows])
    res.source_score = scores[0]
    seen, dropped = set(), {"identical_to_source": 0, "duplicate": 0, "below_min_score": 0}
    for r, score in zip(rows, scores[1:]):
        if r.text_out == res.text:
            dropped["identical_to_source"] += 1
        elif r.text_out in seen:
            dropped["duplicate"] += 1
        elif cfg.min_score is not None and score is not None and score < cfg.min_score:
            dropped["below_min_score"] += 1
        else:
            seen.add(r.text_out)
            res.variants.append(Variant(r.text_out, r.ranges_out, r.ranges_in,
                                        score if score is not None else math.nan,
                                        word_edit_distance(res.text, r.text_out)))
    res.dropped = {k: v for k, v in dropped.items() if v}


# ----------------------------------------------------------------------------------------------- the command
@dataclass
class Summary:
    records: int = 0
    passed_through: int = 0
    variants_kept: int = 0
    dropped: dict = field(default_factory=dict)
    distinct2: list = field(default_factory=list)
    variant_scores: list = field(default_factory=list)
    source_scores: list = field(default_factory=list)

    def add(self, res: Result) -> None:
        self.records += 1
        if res.status != "ok":
            self.passed_through += 1
            return
        self.variants_kept += len(res.variants)
        for k, v in res.dropped.items():
            self.dropped[k] = self.dropped.get(k, 0) + v
        if len(res.variants) > 1:
            self.distinct2.append(distinct2([v.text for v in res.variants]))
        self.variant_scores += [v.score for v in res.variants if not math.isnan(v.score)]
        if res.source_score is not None:
            self.source_scores.append(res.source_score)

    def report(self) -> dict:
        mean = (lambda xs: sum(xs) / len(xs) if xs else None)
        return {"records": self.records, "passed_through": self.passed_through, "variants_kept": self.variants_kept,
                "dropped": self.dropped, "distinct2_across_variants": mean(self.distinct2),
                "mean_variant_score": mean(self.variant_scores), "mean_source_score": mean(self.source_scores)}


def run_file(bundle: Bundle, inp: str | Path, out: str | Path, cfg: AugmentConfig, fmt: str | None = None,
             field_name: str | None = None, column: str | None = None, resume: bool = False,
             progress: bool = True) -> dict:
    """Augment a file into JSON Lines (one line per input record, in order). Writes whole lines only, flushed as
    they finish, so Ctrl-C or a crash leaves a valid file; `resume` skips the records already there."""
    from tqdm.auto import tqdm

    cfg.check()
    out = Path(out)
    if out.exists() and not resume:
        raise ValueError(f"{out} exists: pass --resume to continue it, or choose another output file")
    list(_peek(read_records(inp, fmt, field_name, column)))  # fail on a bad header or first line before any work
    skip = done_count(out) if resume else 0
    key = field_name or column or "text"
    records = _records(inp, fmt, field_name, column, key)
    summary = Summary()
    with open(out, "a", encoding="utf-8", newline="\n") as f, \
            tqdm(desc="augment", unit="rec", initial=skip, disable=not progress) as bar:
        for _ in range(skip):
            next(records, None)
        for res in augment(bundle, records, cfg, field_name=key, start_index=skip):
            f.write(json.dumps(res.to_json(), ensure_ascii=False) + "\n")
            f.flush()
            summary.add(res)
            bar.update(1)
    rep = summary.report()
    if summary.records == 0 and skip == 0:
        raise ValueError(f"{Path(inp).name} holds no records")
    rep["resumed_after"] = skip
    return rep


def _peek(it: Iterator) -> Iterator:
    for x in it:
        yield x
        return


def _records(inp, fmt, field_name, column, key) -> Iterator[dict]:
    for rec, text in read_records(inp, fmt, field_name, column):
        yield rec if key in rec else {**rec, key: text}


def parse_keep(words: str | None) -> tuple[str, ...]:
    return tuple(w for w in (words or "").split(",") if w.strip()) if words else ()


def read_text_lines(text: str) -> list[str]:
    """Lines of pasted text (the app's augmentation tab), blank lines dropped."""
    return [line for line in io.StringIO(text).read().splitlines() if line.strip()]
