"""Augmentation at dataset scale: Parquet and `datasets` folders streamed in, shards that merge into the single
run's file byte for byte, resumable shards, and hostile tables (wrong types, nulls, missing columns, overlaps)."""
import json

import pytest

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

from edlm.augment import AugmentConfig, run_file  # noqa: E402
from edlm.tables import merge_shards, parse_shard, read_table, shard_path  # noqa: E402

SENTENCES = ["The Congress shall have power to lay and collect taxes.",
             "We the people of the United States, in order to form a more perfect union.",
             "Peace, commerce, and honest friendship with all nations.",
             "The public debt of the country must be paid in full.",
             "Every citizen has a duty to the law and to the Union.",
             "Hi",
             "The revenue of the government has grown this year."]
CFG = AugmentConfig(n=2, chunk=2, settings=dict(sampler="mdlm", steps=3))


def write_parquet(path, rows, row_group_size=2):
    pq.write_table(pa.Table.from_pylist(rows), path, row_group_size=row_group_size)
    return path


def test_parquet_streams_in_with_every_column_carried(bundle, tmp_path):
    inp = write_parquet(tmp_path / "in.parquet", [{"id": i, "body": s, "tags": [f"t{i}"]} for i, s in enumerate(SENTENCES)])
    out = tmp_path / "out.jsonl"
    rep = run_file(bundle, inp, out, CFG, column="body", progress=False)
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert rep["records"] == len(SENTENCES) and [x["record"]["id"] for x in lines] == list(range(len(SENTENCES)))
    assert lines[0]["record"]["tags"] == ["t0"] and lines[0]["variants"]


def test_shards_merge_into_the_single_runs_file_byte_for_byte(bundle, tmp_path):
    inp = write_parquet(tmp_path / "in.parquet", [{"body": s} for s in SENTENCES])
    single = tmp_path / "single.jsonl"
    run_file(bundle, inp, single, CFG, column="body", progress=False)
    out = tmp_path / "merged.jsonl"
    for i in range(3):
        run_file(bundle, inp, shard_path(out, i, 3), CFG, column="body", progress=False, shard=(i, 3))
    assert [json.loads(x)["index"] for x in shard_path(out, 1, 3).read_text().splitlines()] == [1, 4]
    assert merge_shards(out, 3) == len(SENTENCES)
    assert out.read_bytes() == single.read_bytes()
    assert (tmp_path / "merged.jsonl.run.json").read_text() == (tmp_path / "single.jsonl.run.json").read_text() \
        .replace('"single.jsonl', '"merged.jsonl')
    with pytest.raises(ValueError, match="exists"):
        merge_shards(out, 3)


def test_a_killed_shard_resumes_without_duplicates_or_loss(bundle, tmp_path):
    inp = write_parquet(tmp_path / "in.parquet", [{"body": s} for s in SENTENCES])
    whole = shard_path(tmp_path / "a.jsonl", 0, 2)
    run_file(bundle, inp, whole, CFG, column="body", progress=False, shard=(0, 2))
    part = shard_path(tmp_path / "b.jsonl", 0, 2)
    run_file(bundle, inp, part, CFG, column="body", progress=False, shard=(0, 2))
    text = part.read_text().splitlines(keepends=True)
    part.write_text("".join(text[:2]) + text[2][:15])  # killed in the middle of its third record
    (part.with_name(part.name + ".run.json")).write_text(
        (whole.with_name(whole.name + ".run.json")).read_text())
    rep = run_file(bundle, inp, part, CFG, column="body", progress=False, shard=(0, 2), resume=True)
    assert rep["resumed_after"] == 2 and part.read_text() == whole.read_text()
    with pytest.raises(ValueError, match="differs in: shard"):
        run_file(bundle, inp, part, CFG, column="body", progress=False, shard=(1, 2), resume=True)


def test_merge_refuses_overlapping_or_missing_records(bundle, tmp_path):
    inp = write_parquet(tmp_path / "in.parquet", [{"body": s} for s in SENTENCES[:4]])
    out = tmp_path / "m.jsonl"
    for i in range(2):
        run_file(bundle, inp, shard_path(out, i, 2), CFG, column="body", progress=False, shard=(i, 2))
    first = shard_path(out, 0, 2)
    good = first.read_text()
    first.write_text(good.splitlines(keepends=True)[0])  # record 2 lost
    with pytest.raises(ValueError, match="record 2 is missing"):
        merge_shards(out, 2)
    first.write_text(good + shard_path(out, 1, 2).read_text().splitlines(keepends=True)[0])  # record 1 twice
    with pytest.raises(ValueError, match="twice"):
        merge_shards(out, 2)
    assert not out.exists() and not (tmp_path / "m.jsonl.merging").exists()
    shard_path(out, 1, 2).unlink()
    with pytest.raises(ValueError, match="no shard file"):
        merge_shards(out, 2)


def test_hostile_tables_are_skipped_row_by_row_or_refused_in_one_line(tmp_path):
    inp = write_parquet(tmp_path / "h.parquet", [{"body": "fine text here", "n": 1}, {"body": None, "n": 2},
                                                 {"body": "x", "n": float("nan")}])
    got = list(read_table(inp, "parquet", "body"))
    assert got[0][1] == "fine text here"
    assert got[1].line == 2 and "null" in got[1].reason
    assert got[2].line == 3 and "JSON" in got[2].reason
    import datetime

    dated = write_parquet(tmp_path / "d.parquet", [{"body": "a dated row", "when": datetime.date(2026, 12, 1)}])
    assert "JSON cannot hold" in next(read_table(dated, "parquet", "body")).reason
    ints = write_parquet(tmp_path / "i.parquet", [{"body": 5}])
    assert "int" in next(read_table(ints, "parquet", "body")).reason
    with pytest.raises(ValueError, match="no column 'text'"):
        list(read_table(inp, "parquet", "text"))
    with pytest.raises(ValueError, match="needs --column"):
        list(read_table(inp, "parquet", None))
    junk = tmp_path / "junk.parquet"
    junk.write_bytes(b"not parquet at all")
    with pytest.raises(ValueError, match="not a readable Parquet"):
        list(read_table(junk, "parquet", "body"))
    for bad in ("1", "2/2", "-1/3", "a/b", "0/0"):
        with pytest.raises(ValueError, match="shard"):
            parse_shard(bad)
    assert parse_shard("1/4") == (1, 4) and parse_shard("auto") is None  # one process: no shards


def test_a_datasets_folder_streams_in(bundle, tmp_path):
    datasets = pytest.importorskip("datasets")
    folder = tmp_path / "ds"
    datasets.Dataset.from_dict({"text": SENTENCES[:3], "label": [0, 1, 0]}).save_to_disk(str(folder))
    out = tmp_path / "out.jsonl"
    rep = run_file(bundle, folder, out, CFG, column="text", progress=False)
    assert rep["records"] == 3
    assert [json.loads(x)["record"]["label"] for x in out.read_text().splitlines()] == [0, 1, 0]
    both = tmp_path / "dd"
    datasets.DatasetDict({"train": datasets.Dataset.from_dict({"text": ["a b c"]})}).save_to_disk(str(both))
    with pytest.raises(ValueError, match="several splits"):
        run_file(bundle, both, tmp_path / "o2.jsonl", CFG, column="text", progress=False)


def test_one_shard_per_process_under_a_launcher_merges_into_the_single_run(bundle_dir, tmp_path):
    """`--shard auto` under torchrun (what `accelerate launch` runs on GPUs): each process takes its shard, the
    main one merges, and the file equals one process's output byte for byte."""
    import subprocess
    import sys

    inp = write_parquet(tmp_path / "in.parquet", [{"text": s} for s in SENTENCES])
    args = ["-m", "edlm", "augment", "--model", str(bundle_dir), "--input", str(inp), "--column", "text",
            "--sampler", "mdlm", "--steps", "3", "--json"]
    one = subprocess.run([sys.executable, *args, "--output", str(tmp_path / "one.jsonl")], capture_output=True,
                         text=True, timeout=300)
    assert one.returncode == 0, one.stderr
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", *args,
                          "--output", str(tmp_path / "two.jsonl"), "--shard", "auto"], capture_output=True, text=True,
                         timeout=300)
    assert two.returncode == 0, two.stderr[-2000:]
    assert (tmp_path / "two.shard-1-of-2.jsonl").is_file()
    assert (tmp_path / "two.jsonl").read_bytes() == (tmp_path / "one.jsonl").read_bytes()


def test_parquet_out_holds_the_json_lines_typed_and_never_replaces_the_input(bundle_dir, tmp_path):
    """--output X.parquet: the run keeps its resumable JSON Lines (X.parquet.jsonl) and writes X.parquet when
    done, variants as typed structs; an output that is the input (or exists) is refused, the input untouched."""
    import subprocess
    import sys

    inp = write_parquet(tmp_path / "in.parquet", [{"id": i, "text": s} for i, s in enumerate(SENTENCES[:4])])
    before = inp.read_bytes()
    args = [sys.executable, "-m", "edlm", "augment", "--model", str(bundle_dir), "--input", str(inp), "--column",
            "text", "--sampler", "mdlm", "--steps", "3", "--json", "--output"]
    r = subprocess.run([*args, str(tmp_path / "out.parquet")], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    table = pq.read_table(tmp_path / "out.parquet")
    assert table.num_rows == 4 and table.schema.field("variants").type.value_type.field("score").type == pa.float64()
    lines = [json.loads(x) for x in (tmp_path / "out.parquet.jsonl").read_text().splitlines()]
    rows = table.to_pylist()
    assert [json.loads(r["record"]) for r in rows] == [x["record"] for x in lines]
    assert [[v["text"] for v in r["variants"]] for r in rows] == [[v["text"] for v in x["variants"]] for x in lines]
    r = subprocess.run([*args, str(inp)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and "exists" in r.stdout and inp.read_bytes() == before  # (--json: the error on stdout)


def test_a_hundred_thousand_rows_stream_through_in_batches(tmp_path):
    """10^5 records: read batch by batch (the reader is lazy: its first record comes before the file is read),
    with every bad row found by its number."""
    import tracemalloc

    n = 100_000
    texts = [f"record {i} of the test" for i in range(n)]
    texts[-3] = None
    inp = tmp_path / "big.parquet"
    pq.write_table(pa.table({"text": texts, "id": list(range(n))}), inp, row_group_size=10_000)
    it = read_table(inp, "parquet", "text")
    tracemalloc.start()
    first = next(it)
    _, peak_first = tracemalloc.get_traced_memory()
    bad, count = [], 1
    for item in it:
        count += 1
        if not isinstance(item, tuple):
            bad.append(item.line)
    tracemalloc.stop()
    assert first[1] == "record 0 of the test" and count == n and bad == [n - 2]
    assert peak_first < 20 * 2**20  # the first record costs a batch, not the file


def test_a_dataset_by_name_and_split_streams_in(bundle, tmp_path):
    """--input NAME:SPLIT goes through datasets' load_dataset in streaming mode (a Hub dataset where one is
    reachable; here a local folder of Parquet files, offline); an unknown split is one line."""
    pytest.importorskip("datasets")
    folder = tmp_path / "corpus"
    folder.mkdir()
    write_parquet(folder / "train-00000.parquet", [{"text": s, "n": i} for i, s in enumerate(SENTENCES[:3])])
    spec = f"{folder}:train"
    got = list(read_table(spec, "datasets", "text"))
    assert [g[0]["n"] for g in got] == [0, 1, 2]
    out = tmp_path / "out.jsonl"
    assert run_file(bundle, spec, out, CFG, column="text", progress=False)["records"] == 3
    with pytest.raises(ValueError, match="cannot open the dataset"):
        list(read_table(f"{folder}:nosuchsplit", "datasets", "text"))
