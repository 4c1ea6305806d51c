"""Quality against seconds at real text's diversity: which sampler reaches `mdlm`'s 32-step quality fastest.

Quality comes from finished frontier cells (`python -m edlm bench --preset frontier --steps 4,8,16,32 --variants
... --out DIR`, 64 TEST windows each): each family's temperature sweep read at real text's distinct-2, per sample
(`edlm.frontier.matched`). Seconds are measured here, on an idle machine: one fill at batch 1 (infill: the middle 64
of a 128-token TEST window; generate: 128 tokens), median of --repeats after a warm-up, in the dtype the family's
cells were sampled in, at the swept temperature nearest the matched one. The reference is `mdlm` (plain, or with
the confidence-noisy order) at 32 steps; for each family its fastest cell whose judge perplexity at real diversity
is as good on average (paired per-sample log difference <= 0, shown with its standard error) gives its speed-up. The
same variants sampled in two dtypes (two folders, `--dtype float32` and `--dtype bfloat16`) are two families, each
timed in its own dtype, so precision is a lever like the step count. Prints a table, writes a figure per task.

    python bench/speed_frontier.py --cells results/speed,results/speed-paper --out docs
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

REFERENCES = ("mdlm+confidence-noisy", "mdlm")  # the project's mdlm at 32 steps, with its default order, and plain


def load_cells(folders: list[str]) -> list[tuple]:
    """Every cell of the folders' cells.jsonl as (cell, dtype name), the last one of a repeated key winning; the
    same variant sampled in two dtypes (two folders) stays two cells. Real text's cell has dtype None."""
    from edlm.bench import Cell

    seen = {}
    for folder in folders:
        # real TEST text's cell (the same windows for both tasks) is in results.json, not in cells.jsonl
        for rec in json.loads((Path(folder) / "results.json").read_text())["cells"]:
            if rec["sampler"] == "reference":
                for task in ("infill", "generate"):
                    seen[(task, "reference", 0, None)] = (Cell(**{**rec, "task": task}), None)
        for line in (Path(folder) / "cells.jsonl").read_text().splitlines():
            rec = json.loads(line)
            cell, dtype = Cell(**rec["cell"]), rec["dtype"].removeprefix("torch.")
            seen[(cell.task, cell.sampler, cell.steps, dtype)] = (cell, dtype)
    return list(seen.values())


def matched_rows(cells: list[tuple]) -> dict:
    """(task, steps, family, dtype) -> the family read at real text's distinct-2 (with per-sample log judge
    perplexity) and the swept sampler name nearest the matched temperature."""
    from edlm.frontier import family_of, matched

    refs = {c.task: c for c, _ in cells if c.sampler == "reference"}
    groups: dict = {}
    for c, dtype in cells:
        if c.sampler != "reference" and c.task in refs:
            groups.setdefault((c.task, c.steps, family_of(c.sampler)[0], dtype), []).append(c)
    out = {}
    for key, cs in groups.items():
        m = matched(cs, refs[key[0]].extra["distinct2"])
        if m:
            nearest = min(cs, key=lambda c: abs(family_of(c.sampler)[1] - m["temperature"]))
            out[key] = {**m, "nearest": nearest.sampler, "passes": (nearest.denoiser_calls, nearest.energy_calls)}
    return out


def seconds_per_fill(bundle, task: str, name: str, steps: int, repeats: int, top_p: float) -> float:
    """Median seconds of one fill at batch 1 of the benchmark's window for the variant `name` at `steps`."""
    from edlm.bench import _run_batch, parse_variant
    from edlm.data import consecutive_windows, read_split, token_stream

    L = bundle.window
    window = consecutive_windows(token_stream(bundle.tokenizer, read_split(str(ROOT / "corpus" / "sotu"), "test")),
                                 L, 1)[0]
    ids = window.clone().unsqueeze(0)
    mask = bundle.tokenizer.mask_token_id
    if task == "generate":
        ids[:] = mask
    else:
        ids[:, L // 4: L // 4 + L // 2] = mask
    req = parse_variant(name, steps, 4, 0.5, top_p, 0)
    times = []
    for r in range(repeats + 1):  # the first run warms up
        start = time.perf_counter()
        _run_batch(bundle, ids.clone(), dataclasses.replace(req, seed=r))
        times.append(time.perf_counter() - start)
    return statistics.median(times[1:])


def fastest_as_good(ref: dict, rows: list[dict]) -> tuple[dict, float, float] | None:
    """The fastest of `rows` whose judge perplexity at real diversity is as good as the reference's on average
    (mean per-sample log difference <= 0, paired on the same windows and seeds), with that mean and its SE."""
    good = []
    for r in rows:
        d = [a - b for a, b in zip(r["log_ppl"], ref["log_ppl"])]
        mean, se = statistics.mean(d), statistics.stdev(d) / math.sqrt(len(d))
        if mean <= 0:
            good.append((r, mean, se))
    return min(good, key=lambda x: x[0]["seconds"]) if good else None


def figure(task: str, rows: list[dict], out: Path) -> Path:
    import plotly.graph_objects as go

    fig = go.Figure()
    for fam in sorted({r["family"] for r in rows}):
        pts = sorted((r for r in rows if r["family"] == fam), key=lambda r: r["seconds"])
        fig.add_trace(go.Scatter(x=[r["seconds"] for r in pts], y=[r["judge_ppl"] for r in pts], mode="lines+markers+text",
                                 text=[f"T={r['steps']}" for r in pts], textposition="top center", name=fam))
    fig.update_layout(title=f"{task}: judge perplexity at real text's distinct-2 against seconds per fill "
                            "(batch 1, idle CPU)", xaxis_title="seconds per fill (log)", yaxis_title="judge perplexity",
                      xaxis_type="log", width=900, height=520, template="plotly_white")
    path = out / f"speed_frontier_{task}.png"
    fig.write_image(str(path))
    return path


def main() -> None:
    from edlm.presets import load_bundle

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cells", default="results/speed,results/speed-paper", help="frontier result folders")
    ap.add_argument("--out", default="docs", help="folder for the figures")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--top-p", type=float, default=0.95, help="the frontier cells' nucleus (variants name others)")
    args = ap.parse_args()
    cells = load_cells(args.cells.split(","))
    rows = matched_rows(cells)
    several = len({key[3] for key in rows}) > 1  # cells in two dtypes: each family named with its dtype
    bundles = {}
    table = []
    for (task, steps, fam, dtype), m in sorted(rows.items()):
        bundle = bundles.setdefault(dtype, load_bundle("default", dtype=dtype))  # the dtype the cells ran in
        sec = seconds_per_fill(bundle, task, m["nearest"], steps, args.repeats, args.top_p)
        table.append({"task": task, "steps": steps, "family": f"{fam} ({dtype})" if several else fam,
                      "base": fam, "judge_ppl": m["judge_ppl"], "log_ppl": m["log_ppl"],
                      "temperature": m["temperature"], "rep": m["repeated_trigrams"], "seconds": sec,
                      "passes": m["passes"], "dtype": dtype})
        print(f"measured {task} T={steps} {fam} {dtype}: {sec:.3f} s", file=sys.stderr)
    print("| task | family | steps | temperature at real d2 | judge ppl | repeated trigrams | s / fill | passes "
          "(denoiser / energy) | dtype |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in table:
        print(f"| {r['task']} | {r['base']} | {r['steps']} | {r['temperature']:.2f} | {r['judge_ppl']:.1f} | "
              f"{r['rep']:.3f} | {r['seconds']:.3f} | {r['passes'][0]:.0f} / {r['passes'][1]:.0f} | {r['dtype']} |")
    print()
    print("| task | reference (32 steps): judge ppl / s | family | steps | judge ppl | paired log diff (SE) | s / fill "
          "| speed-up |")
    print("|---|---|---|---|---|---|---|---|")
    for task in sorted({r["task"] for r in table}):
        refs = [r for r in table if r["task"] == task and r["base"] in REFERENCES and r["steps"] == 32]
        for ref in sorted(refs, key=lambda r: (REFERENCES.index(r["base"]), r["dtype"])):
            for fam in sorted({r["family"] for r in table if r["task"] == task}):
                best = fastest_as_good(ref, [r for r in table if r["task"] == task and r["family"] == fam])
                if best is None:
                    print(f"| {task} | {ref['family']}: {ref['judge_ppl']:.1f} / {ref['seconds']:.3f} | {fam} | none "
                          "as good | - | - | - | - |")
                    continue
                r, mean, se = best
                print(f"| {task} | {ref['family']}: {ref['judge_ppl']:.1f} / {ref['seconds']:.3f} | {fam} | "
                      f"{r['steps']} | {r['judge_ppl']:.1f} | {mean:+.3f} ({se:.3f}) | {r['seconds']:.3f} | "
                      f"{ref['seconds'] / r['seconds']:.2f}x |")
    out = Path(args.out)
    for task in sorted({r["task"] for r in table}):
        print(figure(task, [r for r in table if r["task"] == task], out), file=sys.stderr)


if __name__ == "__main__":
    main()
