"""Sharded augmentation against one process: records per second with 1 process (all cores) and with N processes
under torchrun (`--shard auto`, one core each on a CPU), and whether the merged file equals the single run's.

    python bench/shards.py --records 64 --processes 2
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from edlm.data import default_corpus, read_split

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--records", type=int, default=64, help="VALIDATION sentences (20 to 200 characters)")
    p.add_argument("--processes", type=int, default=2)
    p.add_argument("--sampler", default="mdlm")
    p.add_argument("--steps", type=int, default=16)
    p.add_argument("--n", type=int, default=4)
    args = p.parse_args()
    sentences = [s.strip() for doc in read_split(str(default_corpus()), "validation") for s in doc.split(". ")
                 if 20 <= len(s.strip()) <= 200][: args.records]
    with tempfile.TemporaryDirectory() as tmp:
        inp = Path(tmp) / "in.parquet"
        pq.write_table(pa.Table.from_pylist([{"id": i, "text": s} for i, s in enumerate(sentences)]), inp)
        common = ["-m", "edlm", "augment", "--input", str(inp), "--column", "text", "--sampler", args.sampler,
                  "--steps", str(args.steps), "--num-variants", str(args.n), "--json"]
        rows = []
        for label, cmd in (("1 process", [sys.executable, *common, "--output", f"{tmp}/one.jsonl"]),
                           (f"{args.processes} processes (torchrun, --shard auto)",
                            [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(args.processes),
                             *common, "--output", f"{tmp}/many.jsonl", "--shard", "auto"])):
            t0 = time.perf_counter()
            r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
            if r.returncode:
                raise SystemExit(f"{label} failed: {r.stderr[-500:]}")
            rows.append((label, time.perf_counter() - t0))
        same = Path(f"{tmp}/one.jsonl").read_bytes() == Path(f"{tmp}/many.jsonl").read_bytes()
    print(f"{len(sentences)} records, n = {args.n}, {args.sampler}, {args.steps} steps (wall time includes each "
          "process's start and model load)\n")
    print("| run | wall s | records/s | records/s per process |\n|---|---|---|---|")
    for (label, sec), procs in zip(rows, (1, args.processes)):
        print(f"| {label} | {sec:.1f} | {len(sentences) / sec:.2f} | {len(sentences) / sec / procs:.2f} |")
    print(f"\nspeed-up {rows[0][1] / rows[1][1]:.2f}x; merged file identical to the single run's: {same}")


if __name__ == "__main__":
    main()
