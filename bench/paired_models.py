"""Paired comparisons across models: two or more `edlm bench` output folders, one per model, run with the same
samples, seed, top-p, steps and variants (so the same TEST windows and seeds), compared cell by cell against the
first folder's model: judge perplexity (ratio, mean log difference and its standard error) beside distinct-2,
repeated trigrams and entropy, so fluency is never read without variety. Prints one Markdown table.

    python bench/paired_models.py results/twin results/spindle [--names twin,spindle] [--task infill]
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def read_run(folder: str) -> tuple[tuple, dict]:
    """(samples, seed, top-p) of a run and its cells by (task, sampler, steps)."""
    from edlm.bench import Cell

    path = Path(folder) / "cells.jsonl"
    if not path.is_file():
        raise SystemExit(f"no cells.jsonl in {folder}")
    ident, cells = None, {}
    for line in path.read_text().splitlines():
        rec = json.loads(line)
        ident = ident or (rec["samples_asked"], rec["seed"], rec["request"].get("top_p"))
        cell = Cell(**rec["cell"])
        cells.setdefault((cell.task, cell.sampler, cell.steps), cell)
    return ident, cells


def rows(folders: list[str], names: list[str], task: str | None = None) -> list[dict]:
    """Every cell of each later run against the same cell of the first run (cells only one side has are
    skipped); runs with another sample count, seed or top-p are refused, since their samples do not pair."""
    from edlm.bench import _against

    runs = [read_run(f) for f in folders]
    base_ident, base = runs[0]
    out = []
    for name, folder, (ident, cells) in zip(names[1:], folders[1:], runs[1:]):
        if ident != base_ident:
            raise SystemExit(f"{folder}: samples, seed or top-p {ident} differ from {folders[0]}'s {base_ident}")
        for key, cell in cells.items():
            ref = base.get(key)
            if ref is None or (task and key[0] != task) or "log_ppl" not in cell.extra or "log_ppl" not in ref.extra:
                continue
            r = _against(cell, ref)
            out.append(r | {"model": name, "base_model": names[0], "judge_ppl": cell.judge_ppl,
                            "base_judge_ppl": ref.judge_ppl, "distinct2": cell.extra.get("distinct2"),
                            "base_distinct2": ref.extra.get("distinct2"),
                            "rep3": cell.extra.get("repeated_trigrams"), "entropy": cell.entropy,
                            "base_entropy": ref.entropy})
    return sorted(out, key=lambda r: (r["task"], r["sampler"], r["steps"], r["model"]))


def markdown(found: list[dict]) -> str:
    f = lambda v, spec: "-" if v is None else format(v, spec)  # noqa: E731
    lines = ["| task | sampler | steps | model | judge ppl (base) | ratio | mean log diff (SE) | distinct-2 (base) "
             "| repeated trigrams | entropy (base) | better by 2 SE |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in found:
        verdict = "yes" if r["beats"] else ("worse" if r["mean_diff"] > 2 * r["se"] else "no")
        lines.append(f"| {r['task']} | {r['sampler']} | {r['steps']} | {r['model']} vs {r['base_model']} | "
                     f"{r['judge_ppl']:.1f} ({r['base_judge_ppl']:.1f}) | {r['ratio']:.3f} | "
                     f"{r['mean_diff']:+.3f} ({r['se']:.3f}) | {f(r['distinct2'], '.3f')} "
                     f"({f(r['base_distinct2'], '.3f')}) | {f(r['rep3'], '.3f')} | {r['entropy']:.2f} "
                     f"({r['base_entropy']:.2f}) | {verdict} |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("folders", nargs="+", help="edlm bench output folders, the baseline model's first")
    p.add_argument("--names", default=None, help="comma-separated model names, one per folder")
    p.add_argument("--task", choices=["generate", "infill"], default=None, help="only this task")
    args = p.parse_args()
    if len(args.folders) < 2:
        raise SystemExit("give the baseline model's run and at least one more")
    names = args.names.split(",") if args.names else [Path(f).name for f in args.folders]
    if len(names) != len(args.folders):
        raise SystemExit(f"--names has {len(names)} names for {len(args.folders)} folders")
    print(markdown(rows(args.folders, names, args.task)))


if __name__ == "__main__":
    main()
