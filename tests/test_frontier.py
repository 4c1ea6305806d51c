"""The quality-diversity frontier read at real text's distinct-2, on hand-made cells with known answers."""
import math

import pytest

from edlm.bench import Cell
from edlm.frontier import family_of, frontier, frontier_markdown, matched


def cell(task, name, d2, logs, rep=0.0, ess=None):
    return Cell(task=task, sampler=name, steps=32, samples=len(logs), judge_ppl=math.exp(sum(logs) / len(logs)),
                entropy=4.0, sec_per_sample=1.0,
                extra={"distinct2": d2, "log_ppl": logs, "repeated_trigrams": rep, "mean_ess": ess})


def test_family_and_temperature_from_a_variant_name():
    assert family_of("edlm-ar/product+confidence-noisy+temp=1.15") == ("edlm-ar/product+confidence-noisy", 1.15)
    assert family_of("mdlm") == ("mdlm", 1.0)


def test_matched_interpolates_per_sample_between_the_bracketing_points():
    cs = [cell("infill", "mdlm+temp=0.5", 0.80, [1.0, 3.0], rep=0.10),
          cell("infill", "mdlm", 0.90, [2.0, 4.0], rep=0.02),
          cell("infill", "mdlm+temp=1.5", 1.00, [5.0, 5.0], rep=0.0)]
    m = matched(cs, 0.85)
    assert m["log_ppl"] == pytest.approx([1.5, 3.5]) and m["temperature"] == pytest.approx(0.75)
    assert m["repeated_trigrams"] == pytest.approx(0.06) and m["judge_ppl"] == pytest.approx(math.exp(2.5))
    assert matched(cs, 0.70) is None  # the sweep never gets that repetitive


def test_the_energy_is_compared_with_its_twin_at_real_diversity():
    ref = Cell(task="infill", sampler="reference", steps=0, judge_ppl=30.0, entropy=4.2,
               extra={"distinct2": 0.9, "repeated_trigrams": 0.005})
    rows = [ref]
    for d, base in ((0.0, "mdlm+confidence-noisy"), (-0.5, "edlm-ar/product+confidence-noisy")):
        rows += [cell("infill", f"{base}+temp=0.8", 0.8, [3.0 + d + 0.01 * i for i in range(8)]),
                 cell("infill", f"{base}+temp=1.2", 1.0, [4.0 + d + 0.02 * i for i in range(8)])]
    rows.append(cell("infill", "mdlm+random-only", 0.95, [9.0] * 8))  # one temperature: no sweep, no row
    out = frontier(rows)
    fams = {r["family"]: r for r in out["rows"]}
    assert set(fams) == {"mdlm+confidence-noisy", "edlm-ar/product+confidence-noisy"}
    assert fams["mdlm+confidence-noisy"]["temperature"] == pytest.approx(1.0)
    (p,) = out["paired"]
    assert p["against"] == "mdlm+confidence-noisy" and p["mean_diff"] == pytest.approx(-0.5) and p["beats"]
    text = "\n".join(frontier_markdown(out))
    assert "At real text's diversity" in text and "| yes |" in text


@pytest.mark.parametrize("energy_settings", ["+k=2+ess=0.5", "+lookahead+window=1", "+horizon=16"])
def test_an_energy_family_with_its_own_k_or_target_ess_still_meets_its_twin(energy_settings):
    ref = Cell(task="infill", sampler="reference", steps=0, judge_ppl=30.0, entropy=4.2,
               extra={"distinct2": 0.9, "repeated_trigrams": 0.005})
    rows = [ref]
    for d, base in ((0.0, "mdlm+confidence-noisy"), (-0.3, "edlm-ar/product+confidence-noisy" + energy_settings)):
        rows += [cell("infill", f"{base}+temp=0.8", 0.8, [3.0 + d + 0.01 * i for i in range(8)]),
                 cell("infill", f"{base}+temp=1.2", 1.0, [4.0 + d + 0.02 * i for i in range(8)])]
    (p,) = frontier(rows)["paired"]
    assert p["against"] == "mdlm+confidence-noisy" and p["mean_diff"] == pytest.approx(-0.3)
