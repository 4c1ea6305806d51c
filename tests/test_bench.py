import json

from edlm.bench import PRESETS, BenchConfig, Cell, run_bench, speedups


def test_tiny_bench_runs_and_writes_results(bundle, corpus, tmp_path):
    cfg = BenchConfig(corpus=str(corpus), out=str(tmp_path), **PRESETS["tiny"])
    res = run_bench(bundle, cfg)
    cells = res["cells"]
    samplers = {c["sampler"] for c in cells}
    assert {"reference", "mdlm", "edlm-ar", "edlm-nce", "ar"} <= samplers
    for c in cells:
        if c["sampler"] != "reference":
            assert c["judge_ppl"] > 1 and c["sec_per_sample"] > 0 and 0 < c["forward_share"] <= 1
            assert c["samples"] == cfg.samples
    edlm = [c for c in cells if c["sampler"] == "edlm-ar"]
    assert all(c["energy_calls"] > 0 for c in edlm)
    assert {r["sampler"] for r in res["latency"]} >= {"mdlm", "edlm-ar", "edlm-nce"}
    assert any(r["sampler"].endswith("(default)") for r in res["latency"])
    assert len(res["growth"]) == len(cfg.lengths) * len(cfg.batches)
    assert json.loads((tmp_path / "results.json").read_text())["model"] == bundle.name
    assert "| task | sampler |" in (tmp_path / "table.md").read_text()
    assert any(f.endswith(".html") for f in res["figures"])
    # a second run of the same command reuses the finished cells (a stopped run resumes where it was)
    import dataclasses

    lines = (tmp_path / "cells.jsonl").read_text().splitlines()
    again = run_bench(bundle, dataclasses.replace(cfg, parts=("generate", "infill")))
    assert (tmp_path / "cells.jsonl").read_text().splitlines() == lines
    assert again["cells"] == cells


def test_speedup_interpolates_mdlm_time_at_equal_quality():
    cells = [Cell("generate", "mdlm", 8, judge_ppl=100.0, sec_per_sample=1.0),
             Cell("generate", "mdlm", 32, judge_ppl=50.0, sec_per_sample=4.0),
             Cell("generate", "edlm-ar", 8, k=4, is_window=0.5, judge_ppl=75.0, sec_per_sample=1.0)]
    (s,) = speedups(cells)
    assert abs(s["mdlm_sec_same_quality"] - 2.0) < 1e-9 and abs(s["speedup"] - 2.0) < 1e-9


def test_sweep_design_varies_one_factor_at_a_time():
    from edlm.bench import _requests
    from edlm.limits import DEFAULTS

    cfg = BenchConfig(corpus="unused", steps=(8, 32), ks=(2, 4, 8), windows=(0.25, 0.5, 1.0), sweep_at=32,
                      top_p=0.9)
    reqs = _requests(cfg, "infill")
    nce = {(r.steps, r.k, r.is_window) for r in reqs if r.sampler == "edlm-nce"}
    d = (DEFAULTS.k, DEFAULTS.is_window)
    assert nce == {(8, *d), (32, 2, d[1]), (32, 4, d[1]), (32, 8, d[1]), (32, d[0], 0.25), (32, d[0], 0.5),
                   (32, d[0], 1.0)}
    assert [r.steps for r in reqs if r.ar_weighting == "product"] == [8, 32]
    assert all(r.top_p == 0.9 for r in reqs) and not any(r.sampler == "ar" for r in reqs)  # ar: generate only
    full = BenchConfig(corpus="unused", steps=(8,), ks=(2, 4), windows=(0.5, 1.0))
    assert len([r for r in _requests(full, "generate") if r.sampler == "edlm-nce"]) == 4  # factorial


def test_variants_are_compared_sample_by_sample(bundle, corpus, tmp_path):
    from edlm.bench import paired, parse_variant

    r = parse_variant("edlm-ar/product+confidence+remdm", 8, 4, 0.5, 0.9, 0)
    assert (r.sampler, r.ar_weighting, r.unmask, r.remask, r.k) == ("edlm-ar", "product", "confidence", "remdm", 4)
    assert parse_variant("mdlm", 8, 4, 0.5, 1.0, 0).k == 1
    from edlm.bench import variant_name

    greedy = parse_variant("mdlm+confidence+greedy", 8, 4, 0.5, 1.0, 0)
    assert greedy.final == "greedy" and variant_name(greedy) == "mdlm+confidence+greedy"
    import pytest

    with pytest.raises(ValueError, match="modifier"):
        parse_variant("mdlm+sideways", 8, 4, 0.5, 1.0, 0)
    cfg = BenchConfig(corpus=str(corpus), out=str(tmp_path), samples=4, batch=4, steps=(4,), ks=(2,),
                      windows=(0.5,), variants=("mdlm", "mdlm+confidence", "edlm-ar/product"),
                      parts=("generate", "infill"))
    res = run_bench(bundle, cfg)
    names = {(c["task"], c["sampler"]) for c in res["cells"]}
    assert ("infill", "mdlm+confidence") in names and ("generate", "edlm-ar/product") in names
    assert {(p["task"], p["sampler"]) for p in res["paired"]} == {
        (t, s) for t in ("generate", "infill") for s in ("mdlm+confidence", "edlm-ar/product")}
    cells = [Cell("infill", "mdlm", 8, extra={"log_ppl": [1.0, 2.0, 3.0]}),
             Cell("infill", "x", 8, extra={"log_ppl": [0.5, 1.4, 2.6]})]
    (p,) = paired(cells)
    assert abs(p["mean_diff"] + 0.5) < 1e-9 and p["beats"]
    # baseline=None: each energy against the same order without it (never an energy-free variant, never mdlm)
    cells = [Cell("generate", "mdlm", 8, extra={"log_ppl": [3.0, 3.0, 3.0]}),
             Cell("generate", "mdlm+confidence", 8, extra={"log_ppl": [1.0, 2.0, 3.0]}),
             Cell("generate", "edlm-ar/product+confidence", 8, extra={"log_ppl": [1.1, 2.2, 3.0]}),
             Cell("generate", "edlm-nce", 8, extra={"log_ppl": [2.0, 2.5, 3.0]}),
             Cell("generate", "edlm-nce+remdm", 8, extra={"log_ppl": [2.0, 2.5, 3.0]})]  # no mdlm+remdm here
    rows = {(r["sampler"], r["baseline"]): r for r in paired(cells, baseline=None)}
    assert set(rows) == {("edlm-ar/product+confidence", "mdlm+confidence"), ("edlm-nce", "mdlm")}
    assert abs(rows["edlm-ar/product+confidence", "mdlm+confidence"]["mean_diff"] - 0.1) < 1e-9
    assert not rows["edlm-ar/product+confidence", "mdlm+confidence"]["beats"]


def test_a_temperature_sweep_is_read_at_real_texts_diversity(bundle, corpus, tmp_path):
    from edlm.bench import PRESETS, parse_variant, variant_name

    r = parse_variant("mdlm+confidence-noisy+temp=0.8+top-p=0.9", 8, 4, 0.5, 0.95, 0)
    assert (r.temperature, r.top_p, r.unmask) == (0.8, 0.9, "confidence-noisy")
    assert variant_name(r, top_p=0.95) == "mdlm+confidence-noisy+temp=0.8+top-p=0.9"
    import pytest

    with pytest.raises(ValueError, match="needs a number"):
        parse_variant("mdlm+temp=hot", 8, 4, 0.5, 1.0, 0)
    paper = parse_variant("edlm-ar+k=2+window=0.4+top-p=1", 8, 4, 0.5, 0.95, 0)  # the paper's IS setting
    assert (paper.k, paper.is_window, paper.top_p) == (2, 0.4, 1.0)
    assert variant_name(paper, 0.95, 4, 0.5) == "edlm-ar+k=2+window=0.4+top-p=1"
    assert variant_name(parse_variant("edlm-ar", 8, 4, 0.5, 0.95, 0), 0.95, 4, 0.5) == "edlm-ar"
    with pytest.raises(ValueError, match="has no energy"):
        parse_variant("mdlm+k=2", 8, 4, 0.5, 1.0, 0)
    cached = parse_variant("mdlm+confidence-noisy+cache=4+temp=1.3", 8, 4, 0.5, 0.95, 0)  # the context cache
    assert cached.cache_refresh == 4 and variant_name(cached, 0.95) == "mdlm+confidence-noisy+cache=4+temp=1.3"
    near = parse_variant("edlm-ar/product+horizon=16", 8, 4, 0.5, 0.95, 0)  # the energy's horizon
    assert near.energy_horizon == 16 and variant_name(near, 0.95, 4, 0.5) == "edlm-ar/product+horizon=16"
    look = parse_variant("edlm-smc+window=1+lookahead+temp=0.85", 8, 4, 0.5, 0.95, 0)  # the particles' score
    assert look.potential == "lookahead" and variant_name(look, 0.95, 4, 0.5) == "edlm-smc+lookahead+window=1+temp=0.85"
    assert all("temp=" in v for v in PRESETS["frontier"]["variants"])
    cfg = BenchConfig(corpus=str(corpus), out=str(tmp_path), samples=4, batch=4, steps=(4,), ks=(2,),
                      windows=(0.5,), variants=("mdlm+temp=0.3", "mdlm+temp=1.0", "mdlm+temp=3.0"),
                      parts=("infill",))
    res = run_bench(bundle, cfg)
    ref = res["frontier"]["reference"]["infill"]
    assert 0 < ref["distinct2"] <= 1 and 0 <= ref["repeated_trigrams"] < 1
    (row,) = res["frontier"]["rows"]
    assert row["family"] == "mdlm" and row["target_distinct2"] == ref["distinct2"]
    lo, hi = row["swept_distinct2"]
    assert lo < hi  # the temperature moves diversity
    if lo <= ref["distinct2"] <= hi:
        assert 0.3 <= row["temperature"] <= 3.0 and row["judge_ppl"] > 0
    assert (tmp_path / "frontier_infill.html").exists()


def test_a_report_uses_the_cells_already_run_and_samples_nothing(bundle, corpus, tmp_path):
    cfg = BenchConfig(corpus=str(corpus), out=str(tmp_path), samples=4, batch=4, steps=(4,), ks=(2,),
                      windows=(0.5,), variants=("mdlm",), parts=("infill",))
    run_bench(bundle, cfg)
    import dataclasses

    more = dataclasses.replace(cfg, variants=("mdlm", "mdlm+confidence"), report_only=True)
    names = {c["sampler"] for c in run_bench(bundle, more)["cells"]}
    assert names == {"reference", "mdlm"}  # the new variant was not sampled


def test_models_are_paired_cell_by_cell_across_runs(tmp_path):
    """bench/paired_models.py: a later model's cell against the first model's same cell, sample by sample; a run with
    another seed is refused."""
    import importlib.util
    import json
    import math
    from dataclasses import asdict
    from pathlib import Path

    import pytest

    path = Path(__file__).resolve().parent.parent / "bench" / "paired_models.py"
    spec = importlib.util.spec_from_file_location("paired_models", path)
    cross = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cross)

    def write(folder, logs, seed=0, d2=0.9):
        folder.mkdir()
        cell = Cell("infill", "mdlm", 8, samples=len(logs), judge_ppl=math.exp(sum(logs) / len(logs)), entropy=7.0,
                    extra={"log_ppl": logs, "distinct2": d2, "repeated_trigrams": 0.01})
        rec = {"task": "infill", "request": {"top_p": 1.0}, "model": folder.name, "samples_asked": len(logs),
               "seed": seed, "cell": asdict(cell)}
        (folder / "cells.jsonl").write_text(json.dumps(rec) + "\n")
        return str(folder)

    a = write(tmp_path / "a", [4.0, 4.2, 3.9, 4.1])
    b = write(tmp_path / "b", [3.5, 3.8, 3.3, 3.7], d2=0.95)
    [r] = cross.rows([a, b], ["a", "b"])
    assert r["model"] == "b" and abs(r["mean_diff"] - (-0.475)) < 1e-9 and r["beats"]
    assert r["distinct2"] == 0.95 and r["base_distinct2"] == 0.9
    assert "| infill | mdlm | 8 | b vs a |" in cross.markdown([r])
    assert cross.rows([a, b], ["a", "b"], task="generate") == []
    with pytest.raises(SystemExit, match="seed"):
        cross.rows([a, write(tmp_path / "c", [3.0] * 4, seed=1)], ["a", "c"])


def test_general_bench_reads_temperature_sweeps_at_real_diversity(tmp_path):
    """bench/general.py --matched: each family's sweep interpolated per passage at the real spans' distinct-2, the
    energy family against its energy-free twin there, a family swept once left out, one that never gets there
    marked."""
    import importlib.util
    import math
    from pathlib import Path

    import pytest

    path = Path(__file__).resolve().parent.parent / "bench" / "general.py"
    spec = importlib.util.spec_from_file_location("bench_general", path)
    general = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(general)

    def rows(fills, nll, ess=None):
        return [{"fill": f, "nll": x, "sec": 1.0, "passes": 8, "energy": 0, "ess": ess, "k": 4 if ess else None}
                for f, x in zip(fills, nll)]

    same, varied = ["x y", "x y", "z w", "z w"], ["a b", "c d", "e f", "g h"]  # distinct-2 0.5 and 1.0
    data = {"real span": rows(["p q", "r s", "t u", "p q"], [2.0] * 4),  # distinct-2 0.75
            "random words": rows(varied, [6.0] * 4),
            "gd-mdlm-16+temperature=1.0": rows(same, [1.0, 1.0, 1.0, 1.0]),
            "gd-mdlm-16+temperature=1.5": rows(varied, [3.0, 3.0, 3.0, 3.0]),
            "gd-edlm-16+temperature=1.0": rows(same, [0.4, 0.6, 0.5, 0.5]),
            "gd-edlm-16+temperature=1.5": rows(varied, [2.4, 2.6, 2.5, 2.5]),
            "gd-smc-16+is_window=1+temperature=1.0": rows(same, [1.5] * 4, ess=1.0),  # worse than its twin
            "gd-smc-16+is_window=1+temperature=1.5": rows(varied, [3.5, 3.5, 3.6, 3.4], ess=3.0),
            "gd-mdlm-8-t0.8": rows(same, [1.0] * 4), "gd-mdlm-8": rows(same, [1.2, 1.0, 1.4, 1.2]),  # never 0.75
            "gd-mdlm-32": rows(varied, [2.0] * 4)}                                   # one temperature only
    assert general.family_of("gd-mdlm-8-t0.8") == general.family_of("gd-mdlm-8") == "gd-mdlm-8"
    assert general.temperature_of("gd-mdlm-8") == 1.15 and general.temperature_of("gd-mdlm-8-t0.8") == 0.8
    report = general.matched_report(data, 0.0, tmp_path)
    assert "At distinct-2 0.750" in report
    ppl = f"{math.exp(2.0):.1f}"
    row = f"| gd-mdlm-16 | 1, 1.5 | 0.500-1.000 | 1.25 | {ppl} | +0.000 ± 0.000 | 0.000 | - | 1.00 | 8.0 / 0.0 |"
    assert row in report
    assert "| 0.000 | 2.00 of 4 | 1.00 |" in report  # the particles' mean ESS, interpolated too
    assert general.twin_of("gd-smc-16+is_window=1+unmask=confidence") == "gd-mdlm-16+unmask=confidence"
    assert "| gd-smc-16+is_window=1 | gd-mdlm-16 | +0.500 ± 0.020 | +24.5 |" in report
    assert "| gd-mdlm-8 | 0.8, 1.15 | 0.500-0.500 | not reached |" in report
    assert general.ess_cell(data["gd-smc-16+is_window=1+temperature=1.5"]) == "3.00 of 4"
    assert general.ess_cell(data["gd-mdlm-32"]) == "-"
    assert "gd-mdlm-32" not in report
    assert "| gd-edlm-16 | gd-mdlm-16 | -0.500 ± 0.041 | -12.2 |" in report
    assert (tmp_path / "matched.html").is_file()
    mine = general.matched_report(data, 0.0, tmp_path, against="gd-mdlm-8")  # read at its distinct-2, 0.5
    assert "At distinct-2 0.500" in mine and "| gd-mdlm-16 | gd-mdlm-8 | -0.200 ± 0.082 | -2.4 |" in mine
    assert "| gd-edlm-16 | gd-mdlm-8 | -0.700 ± 0.108 |" in mine
    with pytest.raises(SystemExit, match="no rows for 'gd-edlm-8'"):
        general.matched_report(data, 0.0, tmp_path, against="gd-edlm-8")


def test_speed_frontier_keeps_two_dtypes_of_one_variant_as_two_families(tmp_path):
    """bench/speed_frontier.py: the same variants sampled in float32 and in bfloat16 (two folders) are read at real
    text's distinct-2 as two families, each with its own dtype, so precision is compared like a step count."""
    import importlib.util
    import json
    import math
    from dataclasses import asdict
    from pathlib import Path

    import pytest

    path = Path(__file__).resolve().parent.parent / "bench" / "speed_frontier.py"
    spec = importlib.util.spec_from_file_location("speed_frontier", path)
    speed = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(speed)

    def write(folder, dtype, shift):
        folder.mkdir()
        ref = Cell("infill", "reference", 0, samples=4, judge_ppl=30.0, entropy=4.2,
                   extra={"distinct2": 0.9, "repeated_trigrams": 0.004})
        (folder / "results.json").write_text(json.dumps({"cells": [asdict(ref)]}))
        lines = []
        for name, d2, base in (("mdlm+temp=0.8", 0.8, 3.0), ("mdlm", 1.0, 5.0)):
            logs = [base + shift + 0.1 * i for i in range(4)]
            cell = Cell("infill", name, 32, samples=4, judge_ppl=math.exp(sum(logs) / 4), entropy=4.0,
                        denoiser_calls=32, extra={"log_ppl": logs, "distinct2": d2, "repeated_trigrams": 0.0})
            lines.append(json.dumps({"task": "infill", "dtype": f"torch.{dtype}", "cell": asdict(cell)}))
        (folder / "cells.jsonl").write_text("\n".join(lines) + "\n")
        return str(folder)

    cells = speed.load_cells([write(tmp_path / "a", "float32", 0.0), write(tmp_path / "b", "bfloat16", 0.5)])
    assert sorted(d for _, d in cells if d) == ["bfloat16"] * 2 + ["float32"] * 2
    rows = speed.matched_rows(cells)
    assert set(rows) == {("infill", 32, "mdlm", "float32"), ("infill", 32, "mdlm", "bfloat16")}
    # halfway between the two temperatures' distinct-2: the mean of the two cells, sample by sample
    assert rows[("infill", 32, "mdlm", "float32")]["log_ppl"] == pytest.approx([4.0, 4.1, 4.2, 4.3])
    assert rows[("infill", 32, "mdlm", "bfloat16")]["log_ppl"] == pytest.approx([4.5, 4.6, 4.7, 4.8])
    assert rows[("infill", 32, "mdlm", "float32")]["nearest"] in ("mdlm+temp=0.8", "mdlm")
