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
import random
import re
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch

from .bundle import Bundle
from .energy import ar_log_likelihood
from .limits import LIMITS, Request, validate
from .runner import Tick, banned_ids, layout_editable, run, work_of
from .samplers import get_sampler
from .spans import Span, Template, build_layout, check_text, plan_windows
from .tokenizer import encode, line_break_ids

MAX_VARIANTS = 32
FORMATS = ("txt", "jsonl", "csv")
EXTENSIONS = {".txt": "txt", ".jsonl": "jsonl", ".csv": "csv"}  # a file's format from its name


def format_of(path: str | Path) -> str | None:
    """The input format a file's extension names (txt, jsonl, csv, parquet), a `datasets` folder's, or None."""
    from .tables import table_format

    return EXTENSIONS.get(Path(path).suffix.lower()) or table_format(path)


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
        req = validate(**{"seed": self.seed, **self.settings})
        if get_sampler(req.sampler).autoregressive:
            raise ValueError(f"augmentation rewrites spans inside the text, which the {req.sampler} sampler (left "
                             "to right, a prefix only) cannot do: use mdlm, edlm-ar or edlm-nce")
        return req


@dataclass
class Variant:
    text: str
    rewritten: list[tuple[int, int]]  # character ranges of `text` that the model wrote
    replaced: list[tuple[int, int]]   # the character ranges of the source they replace (all else is identical)
    score: float | None               # AR log-likelihood per token (higher = more fluent); None without an AR
    #                                   model of the diffusion tokenizer (JSON null, never NaN)
    edit_distance: int                # word-level edit distance to the source


@dataclass
class Result:
    index: int
    record: dict
    text: str
    status: str                       # "ok"; passed through: "too_short" | "empty" | "invalid"; or "skipped": the
    #                                   input line could not be read as a record (dropped: its line and why)
    variants: list[Variant] = field(default_factory=list)
    source_score: float | None = None
    dropped: dict = field(default_factory=dict)  # reason -> count

    def to_json(self) -> dict:
        return {"index": self.index, "record": self.record, "status": self.status,
                "source_score": self.source_score, "variants": [asdict(v) for v in self.variants],
                "dropped": self.dropped}


# ----------------------------------------------------------------------------------------------- reading, writing
MAX_LINE_BYTES = 1_000_000  # one input line (record) at most; longer lines are skipped without being held whole


@dataclass(frozen=True)
class BadRecord:
    """An input record that cannot be augmented (not JSON, no text field, not UTF-8, too long, ...): it is skipped
    with its line number and counted, and the rest of the file goes on."""

    line: int
    reason: str


def _no_constant(name: str):
    raise ValueError(f"{name} is not valid JSON")


def _storable(rec: dict) -> str | None:
    """Why a record cannot be written back as UTF-8 JSON (a lone surrogate from a \\ud800 escape, a non-finite
    number, or a value JSON has no type for: a date or bytes from a Parquet row), or None."""
    try:
        json.dumps(rec, ensure_ascii=False, allow_nan=False).encode("utf-8")
    except (UnicodeEncodeError, ValueError) as e:
        return f"cannot be stored as UTF-8 JSON ({type(e).__name__}: a lone surrogate or a non-finite number)"
    except TypeError as e:
        return f"a value JSON cannot hold ({str(e)[:80]})"
    return None


def _binary_lines(f) -> Iterator[tuple[int, bytes | None]]:
    """(line number, bytes without the line end) of a binary file, split at \\n only (a lone CR stays inside its
    record); None for a line over MAX_LINE_BYTES, which is skipped in pieces, never held whole."""
    no = 0
    while True:
        raw = f.readline(MAX_LINE_BYTES + 1)
        if not raw:
            return
        no += 1
        if no == 1 and raw.startswith(b"\xef\xbb\xbf"):  # a byte-order mark is not part of the first record
            raw = raw[3:]
        if len(raw) > MAX_LINE_BYTES and not raw.endswith(b"\n"):
            while raw and not raw.endswith(b"\n"):
                raw = f.readline(1 << 20)
            yield no, None
            continue
        if raw.endswith(b"\n"):  # the line end: \n or \r\n
            raw = raw[:-2] if raw.endswith(b"\r\n") else raw[:-1]
        yield no, raw


def read_records(path: str | Path, fmt: str | None = None, field_name: str | None = None,
                 column: str | None = None) -> Iterator[tuple[dict, str] | BadRecord]:
    """(record, text) pairs from a file, streamed: txt (one record per line), jsonl (`field_name` holds the text;
    every field travels), csv (`column` holds the text). A record that cannot be used comes as a `BadRecord`
    naming its line; problems of the whole file (format, header) raise ValueError."""
    from .tables import TABLE_FORMATS, read_table

    path = Path(path)
    fmt = fmt or format_of(path)
    if fmt in TABLE_FORMATS:  # Parquet, a datasets folder: read in batches
        yield from read_table(path, fmt, column or field_name)
        return
    if fmt not in FORMATS:
        raise ValueError(f"cannot tell the format of {path.name}: pass --format txt, jsonl, csv, parquet or "
                         "dataset")
    if not path.is_file():
        raise FileNotFoundError(f"no such input file: {path}")
    if fmt == "jsonl" and not field_name:
        raise ValueError("a JSON Lines input needs --field: the name of the text field")
    if fmt == "csv" and not column:
        raise ValueError("a CSV input needs --column: the name of the text column")
    if fmt == "csv":
        yield from _read_csv(path, column)
        return
    with open(path, "rb") as f:
        for no, raw in _binary_lines(f):
            if raw is None:
                yield BadRecord(no, f"longer than {MAX_LINE_BYTES:,} bytes")
                continue
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError:
                yield BadRecord(no, "not UTF-8 text")
                continue
            if fmt == "txt":
                yield {"text": line}, line
                continue
            if not line.strip():
                continue
            try:
                rec = json.loads(line, parse_constant=_no_constant)
            except json.JSONDecodeError as e:
                yield BadRecord(no, f"not JSON ({e.msg})")
                continue
            except ValueError as e:
                yield BadRecord(no, str(e))
                continue
            if not isinstance(rec, dict) or not isinstance(rec.get(field_name), str):
                yield BadRecord(no, f"no text field {field_name!r}")
                continue
            why = _storable(rec)
            yield BadRecord(no, why) if why else (rec, rec[field_name])


def _read_csv(path: Path, column: str) -> Iterator[tuple[dict, str] | BadRecord]:
    with open(path, encoding="utf-8-sig", newline="") as f:  # -sig: a byte-order mark is not in the first name
        try:
            reader = csv.DictReader(f, strict=True)
            if reader.fieldnames is None or column not in reader.fieldnames:
                raise ValueError(f"{path.name}: no column {column!r} (columns: {reader.fieldnames})")
            while True:
                try:
                    row = next(reader)
                except StopIteration:
                    return
                except csv.Error as e:
                    yield BadRecord(reader.line_num, f"bad CSV ({e})")
                    continue
                if None in row or row.get(column) is None:
                    yield BadRecord(reader.line_num, "wrong number of fields")
                    continue
                why = _storable(row)
                yield BadRecord(reader.line_num, why) if why else (dict(row), row[column])
        except UnicodeDecodeError:
            raise ValueError(f"{path.name} is not UTF-8 text") from None


def records_of(path: str | Path, fmt: str | None = None, field_name: str | None = None,
               column: str | None = None) -> Iterator[dict | BadRecord]:
    """The records of a file as `augment` takes them: each a dict holding its text under `field_name or column
    or "text"`, or a `BadRecord`."""
    key = field_name or column or "text"
    for item in read_records(path, fmt, field_name, column):
        if isinstance(item, BadRecord):
            yield item
        else:
            rec, text = item
            yield rec if key in rec else {**rec, key: text}


# ----------------------------------------------------------------------------------------------- choosing spans
def units_of(tokenizer, text: str, unit: str) -> list[tuple[int, int]]:
    """Character ranges of the rewritable units: whole words, or tokens (from the tokenizer's offsets), each
    without the punctuation around it; a unit with no letter or digit (a comma, a final period) is never
    rewritten, so a variant keeps the source's punctuation."""
    return [u for u in (_core(text, a, b) for a, b in _raw_units(tokenizer, text, unit)) if u is not None]


def _core(text: str, a: int, b: int) -> tuple[int, int] | None:
    while a < b and not text[a].isalnum():
        a += 1
    while b > a and not text[b - 1].isalnum():
        b -= 1
    return (a, b) if a < b else None


def _raw_units(tokenizer, text: str, unit: str) -> list[tuple[int, int]]:
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


def _fill_rows(bundle: Bundle, rows: list[_Row], req: Request, cfg: AugmentConfig,
               banned: tuple[int, ...]) -> Iterator[Tick]:
    """Sample every row's spans, yielding a `Tick` after every reverse step (so a caller can stop between steps):
    rows that fit the model's window are batched with rows of the same token length (no padding), longer ones
    go through the windowed pipeline one by one."""
    tok = bundle.tokenizer
    short = [r for r in rows if len(r.layout.ids) <= bundle.window]
    long = [r for r in rows if len(r.layout.ids) > bundle.window]
    short.sort(key=lambda r: len(r.layout.ids))
    # Rows of one token length share a batch: no padding, so a row never sees another row's length (the
    # denoiser attends both ways) and its result does not depend on the batch it runs in.
    batches = []
    for _, group in itertools.groupby(short, key=lambda r: len(r.layout.ids)):
        group = list(group)
        batches += [group[i:i + cfg.batch_size] for i in range(0, len(group), cfg.batch_size)]
    total = req.steps * (len(batches) + sum(len(plan_windows(layout_editable(r.layout).tolist(), bundle.window))
                                            for r in long))
    done = 0
    for r in long:  # longer than a window: the runner's windows, one row at a time
        ids = torch.tensor([r.layout.ids])
        for _ in run(bundle, ids, replace(req, seed=_row_seed(cfg, r)), layout_editable(r.layout), banned=banned):
            done += 1
            yield Tick(done, total)
        _finish(r, ids[0].tolist(), tok)
    for batch in batches:  # one pass of the runner per batch, each row with its own spans and random stream
        x = torch.tensor([r.layout.ids for r in batch])
        editable = torch.stack([layout_editable(r.layout) for r in batch])
        for _ in run(bundle, x, req, editable, row_seeds=[_row_seed(cfg, r) for r in batch], banned=banned):
            done += 1
            yield Tick(done, total)
        for b, r in enumerate(batch):
            _finish(r, x[b].tolist(), tok)


def rows_work(rows: list[_Row], req: Request, window: int) -> int:
    """Token-passes the rows will cost, in the measure of `LIMITS.max_work` (see `edlm.pipeline.work_of`)."""
    return sum(work_of(req, layout_editable(r.layout), window) for r in rows)


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


def augment(bundle: Bundle, records: Iterable[dict | str | BadRecord], cfg: AugmentConfig | None = None,
            field_name: str = "text", start_index: int = 0, stride: int = 1, **options) -> Iterator[Result]:
    """Rewrites of every record (a string, or a dict whose `field_name` holds the text), in input order; a
    `BadRecord` comes back as a "skipped" result. `options` are AugmentConfig fields (n, rewrite, unit, keep, ...)
    plus sampling settings (sampler, steps, k, ...). Same records, settings and seed give the same results,
    however the records are batched or resumed."""
    for item in augment_steps(bundle, records, cfg, field_name, start_index, stride=stride, **options):
        if isinstance(item, Result):
            yield item


def augment_steps(bundle: Bundle, records: Iterable[dict | str | BadRecord], cfg: AugmentConfig | None = None,
                  field_name: str = "text", start_index: int = 0, max_work: int | None = None, stride: int = 1,
                  **options) -> Iterator[Result | Tick]:
    """`augment`, with a `Tick` after every reverse step between the results, so that a caller (the app) can
    show progress and stop the work between two steps. `max_work` bounds the token-passes of all records
    together, checked for each chunk of records before it is sampled. The records get the indexes start_index,
    start_index + stride, ... (a shard's records keep their places in the whole input)."""
    if cfg is None:
        own = {f for f in AugmentConfig.__dataclass_fields__ if f != "settings"}
        cfg = AugmentConfig(**{k: v for k, v in options.items() if k in own},
                            settings={k: v for k, v in options.items() if k not in own})
    elif options:
        raise ValueError("pass either cfg or keyword options, not both")
    req = cfg.check()
    if bundle.denoiser is None or get_sampler(req.sampler).loop:
        raise ValueError(f"augmentation runs the diffusion samplers, which model {bundle.name!r} or the "
                         f"{req.sampler} sampler does not have: use a diffusion model (--model default) and mdlm, "
                         "edlm-ar or edlm-nce")
    banned = banned_ids(bundle.tokenizer) + line_break_ids(bundle.tokenizer)  # once per call, not per chunk
    it = iter(records)
    index, work = start_index, 0
    while True:
        chunk = []
        for rec in it:
            if isinstance(rec, BadRecord):
                chunk.append(Result(index=index, record=None, text="", status="skipped",
                                    dropped={"line": rec.line, "reason": rec.reason}))
            else:
                rec = {field_name: rec} if isinstance(rec, str) else rec
                chunk.append(Result(index=index, record=rec, text=rec[field_name], status="ok"))
            index += stride
            if len(chunk) >= cfg.chunk:
                break
        if not chunk:
            return
        rows = []
        for res in chunk:
            rows += _plan(bundle, res, cfg)
        work += rows_work(rows, req, bundle.window)
        if max_work is not None and work > max_work:
            raise ValueError(f"these records need about {work:,} token-passes, over the limit of {max_work:,}: use "
                             "fewer records, fewer variants, fewer steps or a smaller rewrite share")
        yield from _fill_rows(bundle, rows, req, cfg, banned)
        by_record: dict[int, list[_Row]] = {}
        for r in rows:
            by_record.setdefault(r.result.index, []).append(r)
        for res in chunk:
            _collect(bundle, res, sorted(by_record.get(res.index, []), key=lambda r: r.variant), cfg)
            yield res


def _plan(bundle: Bundle, res: Result, cfg: AugmentConfig) -> list[_Row]:
    if res.status != "ok":  # skipped: nothing to plan
        return []
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
        try:
            layout = build_layout(template, bundle.tokenizer, lengths)
        except ValueError as e:  # over the masked-token limit: this record passes through, the run goes on
            res.status, res.dropped = "invalid", {"reason": str(e)}
            return []
        rows.append(_Row(res, v, layout, ranges))
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
                                        score,
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

    skipped: list = field(default_factory=list)  # input line numbers of records that could not be read

    def add(self, res: Result) -> None:
        self.records += 1
        if res.status == "skipped":
            self.skipped.append(res.dropped.get("line"))
            return
        if res.status != "ok":
            self.passed_through += 1
            return
        self.variants_kept += len(res.variants)
        for k, v in res.dropped.items():
            self.dropped[k] = self.dropped.get(k, 0) + v
        if len(res.variants) > 1:
            self.distinct2.append(distinct2([v.text for v in res.variants]))
        self.variant_scores += [v.score for v in res.variants if v.score is not None]
        if res.source_score is not None:
            self.source_scores.append(res.source_score)

    def report(self) -> dict:
        mean = (lambda xs: sum(xs) / len(xs) if xs else None)
        return {"records": self.records, "passed_through": self.passed_through, "variants_kept": self.variants_kept,
                "skipped": len(self.skipped), "skipped_lines": self.skipped[:20],
                "dropped": self.dropped, "distinct2_across_variants": mean(self.distinct2),
                "mean_variant_score": mean(self.variant_scores), "mean_source_score": mean(self.source_scores)}


RUN_FILE_SUFFIX = ".run.json"  # beside an output: what wrote it (format, input, model, settings), for --resume


def run_file_of(out: Path) -> Path:
    return out.with_name(out.name + RUN_FILE_SUFFIX)


def _run_identity(bundle: Bundle, inp: Path, cfg: AugmentConfig, fmt, field_name, column) -> dict:
    settings = {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(cfg).items()}
    return {"written_by": "edlm augment", "format_version": 1, "input": inp.name, "input_format": fmt,
            "field": field_name, "column": column, "model": bundle.name, "config": settings}


def _check_resumable(out: Path, identity: dict, records: Iterator, first: int = 0, stride: int = 1) -> int:
    """How many records `out` already holds, after checking that it is this command's output for this input and
    these settings: its run file matches, and each whole line is the result for the input record of its index.
    Raises ValueError (changing nothing) otherwise; then cuts a torn last line."""
    side = run_file_of(out)
    foreign = (f"{out} was not written by `edlm augment` for this input with these settings ({{}}); nothing was "
               "changed: choose another --output")
    try:
        saved = json.loads(side.read_text("utf-8"))
    except FileNotFoundError:
        raise ValueError(foreign.format(f"no {side.name} beside it")) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        raise ValueError(foreign.format(f"{side.name} is not readable")) from None
    if saved != identity:
        diff = sorted(k for k in identity if not isinstance(saved, dict) or saved.get(k) != identity[k])
        raise ValueError(foreign.format(f"{side.name} differs in: {', '.join(diff) or 'its form'}"))
    data = out.read_bytes()
    whole = data[: data.rfind(b"\n") + 1]
    for i, raw in enumerate(whole.splitlines()):
        try:
            line = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise ValueError(foreign.format(f"line {i + 1} is not JSON")) from None
        want = next(records, None)
        if not isinstance(line, dict) or line.get("index") != first + i * stride or want is None:
            raise ValueError(foreign.format(f"line {i + 1} is not the result for input record {i + 1}"))
        got = line.get("record") if line.get("status") != "skipped" else line.get("dropped", {}).get("line")
        expected = want if not isinstance(want, BadRecord) else want.line
        if got != expected:
            raise ValueError(foreign.format(f"line {i + 1} holds another record than the input's record {i + 1}"))
    if len(whole) != len(data):
        out.write_bytes(whole)
    return whole.count(b"\n")


def run_file(bundle: Bundle, inp: str | Path, out: str | Path, cfg: AugmentConfig, fmt: str | None = None,
             field_name: str | None = None, column: str | None = None, resume: bool = False,
             progress: bool = True, shard: tuple[int, int] | None = None) -> dict:
    """Augment a file into JSON Lines (one line per input record, in order). Writes whole lines only, flushed as
    they finish, so Ctrl-C or a crash leaves a valid file; `resume` skips the records already there, after
    checking that the file is this command's output for this input (its run file, `OUT.run.json`, and every
    line). The output may never be the input file (links resolved); an existing output is never overwritten.
    `shard` (i, n) augments the records at positions i, i + n, ... only, each under its place in the input
    (`edlm.tables.merge_shards` joins the shards into the single run's file)."""
    from .tables import take_shard

    from tqdm.auto import tqdm

    cfg.check()
    inp, out = Path(inp), Path(out)
    if out.resolve() == inp.resolve() or (out.exists() and inp.exists() and out.samefile(inp)):
        raise ValueError(f"the output {out} is the input file: choose another --output")
    if out.exists() and not resume:
        raise ValueError(f"{out} exists: pass --resume to continue it, or choose another output file")
    fmt = fmt or format_of(inp)
    list(_peek(read_records(inp, fmt, field_name, column)))  # fail on a bad header before any work
    key = field_name or column or "text"
    identity = _run_identity(bundle, inp, cfg, fmt, field_name, column)
    first, stride = shard or (0, 1)
    records = records_of(inp, fmt, field_name, column)
    if shard:
        identity["shard"] = list(shard)
        records = take_shard(records, first, stride)
    if resume and out.exists():
        skip = _check_resumable(out, identity, records, first, stride)
    else:
        skip = 0
        run_file_of(out).write_text(json.dumps(identity, indent=1) + "\n", encoding="utf-8")
    summary = Summary()
    with open(out, "a", encoding="utf-8", newline="\n") as f, \
            tqdm(desc="augment", unit="rec", initial=skip, disable=not progress) as bar:
        for res in augment(bundle, records, cfg, field_name=key, start_index=first + skip * stride, stride=stride):
            f.write(json.dumps(res.to_json(), ensure_ascii=False, allow_nan=False) + "\n")
            f.flush()
            summary.add(res)
            bar.update(1)
    rep = summary.report()
    if skip == 0 and summary.records == len(summary.skipped) and not (shard and not summary.records):
        out.unlink(missing_ok=True)  # (a shard may be empty: more processes than records)
        run_file_of(out).unlink(missing_ok=True)
        if not summary.records:
            raise ValueError(f"{inp.name} holds no records")
        bad = next(r for r in _bad_records(inp, fmt, field_name, column))
        raise ValueError(f"{inp.name} holds no usable record (line {bad.line}: {bad.reason})")
    rep["resumed_after"] = skip
    return rep


def _peek(it: Iterator) -> Iterator:
    for x in it:
        yield x
        return


def _bad_records(inp, fmt, field_name, column) -> Iterator[BadRecord]:
    return (r for r in read_records(inp, fmt, field_name, column) if isinstance(r, BadRecord))


def parse_keep(words: str | None) -> tuple[str, ...]:
    """Comma-separated words; the spaces people type after a comma are not part of a word."""
    return tuple(w.strip() for w in (words or "").split(",") if w.strip())


def read_text_lines(text: str) -> list[str]:
    """Lines of pasted text (the app's augmentation tab), blank lines dropped."""
    return [line for line in io.StringIO(text).read().splitlines() if line.strip()]
