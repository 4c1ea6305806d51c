"""Paired comparisons across benchmark runs: merges the cells of several `edlm bench` output folders (same model,
sample count and seed, so the same TEST windows and seeds) and prints each variant against `mdlm` and each EDLM
variant against the same order without its energy. Prints two Markdown tables.

    python bench/pairs.py results/orders results/orders-nce [--task generate]
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def load_cells(folders: list[str]) -> list:
    """The cells of every folder's cells.jsonl; runs with another model, sample count or seed are refused, and a
    cell measured twice keeps its first copy."""
    from edlm.bench import Cell

    cells, ident, seen = [], None, set()
    for folder in folders:
        path = Path(folder) / "cells.jsonl"
        if not path.is_file():
            raise SystemExit(f"no cells.jsonl in {folder}")
        for line in path.read_text().splitlines():
            rec = json.loads(line)
            this = (rec["model"], rec["samples_asked"], rec["seed"], rec["request"].get("top_p"))
            if ident is None:
                ident = this
            elif this != ident:
                raise SystemExit(f"{folder}: another model, sample count, seed or top-p ({this} vs {ident}): "
                                 "its samples cannot be paired")
            cell = Cell(**rec["cell"])
            key = (cell.task, cell.sampler, cell.steps)
            if key not in seen:
                seen.add(key)
                cells.append(cell)
    return cells


def main() -> None:
    from edlm.bench import energy_table, paired

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("folders", nargs="+", help="edlm bench output folders (each with cells.jsonl)")
    p.add_argument("--task", choices=["generate", "infill"], default=None, help="only this task")
    args = p.parse_args()
    cells = [c for c in load_cells(args.folders) if args.task in (None, c.task)]
    print("| task | sampler | steps | judge ppl ratio | mean log diff (SE) | beats mdlm |\n|---|---|---|---|---|---|")
    for r in paired(cells):
        print(f"| {r['task']} | {r['sampler']} | {r['steps']} | {r['ratio']:.3f} | {r['mean_diff']:+.3f} "
              f"({r['se']:.3f}) | {'yes' if r['beats'] else 'no'} |")
    print("\n".join(energy_table(paired(cells, baseline=None))))


if __name__ == "__main__":
    main()
