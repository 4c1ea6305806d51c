"""Datasets for `augment` at scale: Parquet files and Hugging Face `datasets` folders read in batches (never
whole), and deterministic shards of any input, one per process (`--shard i/n`, or `--shard auto` under
`accelerate launch`, which also merges the shards into the file a single process writes).

Shard i of n takes the records whose position in the input is i, i + n, i + 2n, ...; each keeps its position as
its index (so its seeds, and so its rewrites, are those of a single run), and the merge interleaves the shards by
index, refusing shards that overlap or miss a record.
"""
from __future__ import annotations

import heapq
import json
from collections.abc import Iterator
from pathlib import Path

TABLE_FORMATS = ("parquet", "dataset", "datasets")  # a file; a save_to_disk folder; NAME:SPLIT for load_dataset
BATCH_ROWS = 1024  # rows read at a time: memory is bounded by a batch, not by the file


def is_dataset_spec(spec: str | Path) -> bool:
    """NAME:SPLIT (a Hub dataset, or a local folder of data files, and a split), not an existing path."""
    name, sep, split = str(spec).rpartition(":")
    return bool(sep and name and split) and not Path(spec).exists() and "/" not in split


def table_format(path: str | Path) -> str | None:
    """parquet for a .parquet file, dataset for a folder written by `datasets`' save_to_disk, datasets for
    NAME:SPLIT, else None."""
    if is_dataset_spec(path):
        return "datasets"
    path = Path(path)
    if path.suffix.lower() == ".parquet":
        return "parquet"
    if path.is_dir() and ((path / "dataset_info.json").is_file() and (path / "state.json").is_file()
                          or (path / "dataset_dict.json").is_file()):
        return "dataset"
    return None


def _need(package: str):
    import importlib

    try:
        return importlib.import_module(package)
    except ImportError:
        raise ValueError(f"reading this input needs the {package.split('.')[0]} package: pip install pyarrow "
                         "datasets") from None


def read_table(path: str | Path, fmt: str, column: str | None) -> Iterator:
    """(record, text) pairs, or a BadRecord naming the row (1-based) whose text is missing or not a string, or
    whose values cannot be stored as JSON. A missing column raises ValueError before any row is read."""
    from .augment import BadRecord, _storable

    if not column:
        raise ValueError(f"a {fmt} input needs --column: the name of the text column")
    path = Path(path)
    if fmt == "parquet":
        if not path.is_file():
            raise FileNotFoundError(f"no such input file: {path}")
        pq = _need("pyarrow.parquet")
        try:
            pf = pq.ParquetFile(path)
        except Exception as e:  # pyarrow's errors for a file that is not Parquet
            raise ValueError(f"{path.name} is not a readable Parquet file ({type(e).__name__})") from None
        names = pf.schema_arrow.names
        batches = (b.to_pylist() for b in pf.iter_batches(batch_size=BATCH_ROWS))
    elif fmt == "datasets":  # streamed: rows arrive as the files are read (from the Hub where one is reachable)
        name, _, split = str(path).rpartition(":")
        try:
            ds = _need("datasets").load_dataset(name, split=split, streaming=True)
        except Exception as e:  # unknown name or split, offline, no data files: one line
            raise ValueError(f"cannot open the dataset {name!r} (split {split!r}): {type(e).__name__}: "
                             f"{(str(e).splitlines() or [''])[0][:160]}") from None
        names = list(ds.features) if ds.features is not None else None
        if names is None:
            first = next(iter(ds), {})
            names = list(first)
        batches = _chunks(iter(ds), BATCH_ROWS)
    else:
        ds = _need("datasets").load_from_disk(str(path))  # memory-mapped Arrow files
        if not hasattr(ds, "column_names") or isinstance(ds.column_names, dict):
            raise ValueError(f"{path.name} holds several splits ({', '.join(ds)}): give the folder of one split")
        names = ds.column_names
        batches = ([dict(zip(b, vals)) for vals in zip(*b.values())] for b in ds.iter(batch_size=BATCH_ROWS))
    if column not in names:
        raise ValueError(f"{path.name}: no column {column!r} (columns: {names})")
    no = 0
    for rows in batches:
        for row in rows:
            no += 1
            text = row.get(column)
            if not isinstance(text, str):
                yield BadRecord(no, f"column {column!r} is {'empty (null)' if text is None else type(text).__name__}"
                                    ", not text")
                continue
            why = _storable(row)
            yield BadRecord(no, why) if why else (row, text)


def _chunks(it: Iterator, n: int) -> Iterator[list]:
    chunk = []
    for x in it:
        chunk.append(x)
        if len(chunk) >= n:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def parse_shard(spec: str | None) -> tuple[int, int] | None:
    """"i/n" -> (i, n); "auto" -> this process's place under `accelerate launch` (one process: None)."""
    if spec is None:
        return None
    if spec == "auto":
        state = process_state()
        return (state.process_index, state.num_processes) if state.num_processes > 1 else None
    try:
        i, n = (int(x) for x in spec.split("/"))
    except ValueError:
        raise ValueError(f"--shard takes i/n (e.g. 0/4) or auto, not {spec!r}") from None
    if not (1 <= n <= 4096 and 0 <= i < n):
        raise ValueError(f"--shard {spec}: need 0 <= i < n <= 4096")
    return i, n


def process_state():
    """accelerate's view of the processes: `accelerate launch` on GPUs, `torchrun` (or MPI) on CPUs, where it needs
    to be told that there is no accelerator to find."""
    import torch
    from accelerate import PartialState

    return PartialState(cpu=not torch.cuda.is_available())


def shard_path(out: str | Path, i: int, n: int) -> Path:
    """Where shard i of n writes: OUT.shard-i-of-n beside OUT (its suffix kept)."""
    out = Path(out)
    return out.with_name(f"{out.stem}.shard-{i}-of-{n}{out.suffix}")


def take_shard(records: Iterator, i: int, n: int) -> Iterator:
    """The records at positions i, i + n, i + 2n, ... of the input."""
    for pos, rec in enumerate(records):
        if pos % n == i:
            yield rec


def merge_shards(out: str | Path, n: int) -> int:
    """Interleave the n shard files of OUT by record index into OUT (which must not exist), with the run file a
    single run writes; every index from 0 on must come exactly once. Returns the number of records."""
    from .augment import RUN_FILE_SUFFIX, run_file_of

    out = Path(out)
    if out.exists():
        raise ValueError(f"{out} exists: the merge never overwrites a file")
    parts = [shard_path(out, i, n) for i in range(n)]
    missing = [p.name for p in parts if not p.is_file()]
    if missing:
        raise ValueError(f"cannot merge: no shard file {', '.join(missing)}")
    identities = []
    for p in parts:
        ident = json.loads(p.with_name(p.name + RUN_FILE_SUFFIX).read_text("utf-8"))
        identities.append({k: v for k, v in ident.items() if k != "shard"})
    if any(i != identities[0] for i in identities):
        raise ValueError("cannot merge: the shards were written with different inputs or settings")

    def lines(p: Path):
        with open(p, encoding="utf-8") as f:
            for line in f:
                yield json.loads(line)["index"], line

    tmp = out.with_name(out.name + ".merging")
    expected = 0
    try:
        with open(tmp, "w", encoding="utf-8", newline="\n") as f:
            for index, line in heapq.merge(*(lines(p) for p in parts), key=lambda x: x[0]):
                if index != expected:
                    raise ValueError(f"cannot merge: record {expected} is {'missing' if index > expected else 'twice'}"
                                     " in the shards")
                f.write(line)
                expected += 1
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    tmp.rename(out)
    run_file_of(out).write_text(json.dumps(identities[0], indent=1) + "\n", encoding="utf-8")
    return expected


def parquet_schema():
    """The columns of an augmentation output in Parquet: the record as JSON text (its columns are the input's,
    whatever they were), everything else typed."""
    pa = _need("pyarrow")
    span = pa.list_(pa.list_(pa.int64()))
    variant = pa.struct([("text", pa.string()), ("rewritten", span), ("replaced", span), ("score", pa.float64()),
                         ("edit_distance", pa.int64())])
    return pa.schema([("index", pa.int64()), ("status", pa.string()), ("record", pa.string()),
                      ("source_score", pa.float64()), ("variants", pa.list_(variant)), ("dropped", pa.string())])


def jsonl_to_parquet(src: str | Path, dst: str | Path) -> int:
    """Write an augmentation output (JSON Lines, as `augment` writes it) as Parquet, BATCH_ROWS rows per row
    group, never holding the whole file; the file appears only once complete. Returns the number of rows."""
    pa, pq = _need("pyarrow"), _need("pyarrow.parquet")
    dst = Path(dst)
    tmp, schema, rows, count = dst.with_name(dst.name + ".writing"), parquet_schema(), [], 0
    try:
        with pq.ParquetWriter(tmp, schema) as writer, open(src, encoding="utf-8") as f:
            for line in f:
                rec = json.loads(line)
                rows.append({"index": rec["index"], "status": rec["status"],
                             "record": None if rec.get("record") is None else json.dumps(rec["record"],
                                                                                       ensure_ascii=False),
                             "source_score": rec.get("source_score"), "variants": rec.get("variants", []),
                             "dropped": json.dumps(rec.get("dropped", {}), ensure_ascii=False)})
                if len(rows) >= BATCH_ROWS:
                    writer.write_table(pa.Table.from_pylist(rows, schema=schema))
                    count, rows = count + len(rows), []
            if rows:
                writer.write_table(pa.Table.from_pylist(rows, schema=schema))
                count += len(rows)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    tmp.replace(dst)
    return count
