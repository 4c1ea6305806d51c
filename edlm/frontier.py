"""The quality-diversity frontier: each sampler family swept over the sampling temperature, read at real text's
diversity. A lower temperature buys judge perplexity with repetition, so judge perplexity alone ranks samplers by
how much they repeat; the comparison that counts is the perplexity each family reaches at the distinct-2 of real
text, interpolated along its sweep (per sample, so two families stay paired: same windows, same seeds).
"""
from __future__ import annotations

import math
import re
import statistics

from .samplers import has_energy

TEMP = re.compile(r"\+temp=([0-9.]+)")
ENERGY_ONLY = {"k", "window", "tau", "ess", "resample", "lookahead", "horizon"}  # modifiers an energy-free twin lacks


def family_of(name: str) -> tuple[str, float]:
    """("edlm-ar/product+confidence-noisy", 1.15) from "edlm-ar/product+confidence-noisy+temp=1.15"."""
    m = TEMP.search(name)
    return TEMP.sub("", name), float(m.group(1)) if m else 1.0


def _lerp(a: float, b: float, f: float) -> float:
    return a + f * (b - a)


def at_diversity(points: list[dict], target: float) -> dict | None:
    """One sweep's points (dicts with "distinct2" and numbers, None or per-sample lists) read at distinct-2 =
    target: the two points that bracket it, every field interpolated linearly in distinct-2 (lists per sample, so
    two sweeps read this way stay paired). None when the sweep never reaches the target."""
    pts = sorted(points, key=lambda p: p["distinct2"])
    for a, b in zip(pts, pts[1:]):
        da, db = a["distinct2"], b["distinct2"]
        if da <= target <= db and db > da:
            f = (target - da) / (db - da)
            return {k: [_lerp(x, y, f) for x, y in zip(a[k], b[k])] if isinstance(a[k], list)
                    else None if a[k] is None or b[k] is None else _lerp(a[k], b[k], f) for k in a}
    return None


def matched(cells: list, target: float) -> dict | None:
    """One family's sweep (cells of one task and step count) read at distinct-2 = target (`at_diversity`: per-sample
    log judge perplexity, repetition, entropy, temperature, seconds). None when the sweep never reaches it."""
    m = at_diversity([{"distinct2": c.extra["distinct2"], "log_ppl": c.extra["log_ppl"],
                       "temperature": family_of(c.sampler)[1], "repeated_trigrams": c.extra["repeated_trigrams"],
                       "entropy": c.entropy, "mean_ess": c.extra.get("mean_ess"), "sec_per_sample": c.sec_per_sample}
                      for c in cells if c.extra.get("distinct2") is not None and "log_ppl" in c.extra], target)
    if m is None:
        return None
    del m["distinct2"]
    return {"judge_ppl": math.exp(statistics.mean(m["log_ppl"])), **m}


def frontier(cells: list) -> dict:
    """Per task and step count: every family swept over at least two temperatures, read at real text's
    distinct-2 (`rows`), and each energy family against its energy-free twin there (`paired`: mean difference
    of per-sample log judge perplexity and its standard error; the interpolation's own uncertainty is not in it)."""
    refs = {c.task: c for c in cells if c.sampler == "reference" and c.extra.get("distinct2") is not None}
    groups: dict[tuple, list] = {}
    for c in cells:
        if c.sampler not in ("reference", "ar") and c.task in refs:
            groups.setdefault((c.task, c.steps, family_of(c.sampler)[0]), []).append(c)
    rows, at = [], {}
    for (task, steps, fam), cs in sorted(groups.items()):
        if len({family_of(c.sampler)[1] for c in cs}) < 2:
            continue
        target = refs[task].extra["distinct2"]
        m = matched(cs, target)
        reach = (min(c.extra["distinct2"] for c in cs), max(c.extra["distinct2"] for c in cs))
        rows.append({"task": task, "steps": steps, "family": fam, "target_distinct2": target,
                     "swept_distinct2": reach, **({k: v for k, v in m.items() if k != "log_ppl"} if m else {})})
        if m:
            at[(task, steps, fam)] = m["log_ppl"]
    paired = []
    for (task, steps, fam), logs in at.items():
        base, _, mods = fam.partition("+")
        if not has_energy(base):
            continue
        mods = "+".join(m for m in mods.split("+") if m and m.partition("=")[0] not in ENERGY_ONLY)
        twin = "mdlm" + ("+" + mods if mods else "")
        if (task, steps, twin) not in at:
            continue
        d = [x - y for x, y in zip(logs, at[(task, steps, twin)])]
        mean, se = statistics.mean(d), statistics.stdev(d) / math.sqrt(len(d))
        paired.append({"task": task, "steps": steps, "family": fam, "against": twin, "mean_diff": mean, "se": se,
                       "ratio": math.exp(mean), "beats": mean < -2 * se})
    return {"rows": rows, "paired": paired,
            "reference": {t: {"judge_ppl": r.judge_ppl, **r.extra} for t, r in refs.items()}}


def frontier_markdown(result: dict) -> list[str]:
    """The frontier's tables: each family at real text's distinct-2, and the energy against its twin there."""
    if not result["rows"]:
        return []
    ref = result["reference"]
    md = ["\n**At real text's diversity** (each family's temperature sweep read at the distinct-2 of real TEST "
          "text, interpolated per sample; real text: " +
          ", ".join(f"{t} judge {r['judge_ppl']:.1f}, distinct-2 {r['distinct2']:.3f}, repeated trigrams "
                    f"{r['repeated_trigrams']:.3f}" for t, r in ref.items()) + "):\n",
          "| task | steps | sampler | temperature there | judge ppl | repeated trigrams | entropy | mean ESS | "
          "s/sample | distinct-2 swept |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in result["rows"]:
        swept = f"{r['swept_distinct2'][0]:.3f}-{r['swept_distinct2'][1]:.3f}"
        if "judge_ppl" not in r:
            md.append(f"| {r['task']} | {r['steps']} | {r['family']} | not reached | - | - | - | - | - | {swept} |")
            continue
        ess = "-" if r["mean_ess"] is None else f"{r['mean_ess']:.2f}"
        md.append(f"| {r['task']} | {r['steps']} | {r['family']} | {r['temperature']:.2f} | {r['judge_ppl']:.1f} | "
                  f"{r['repeated_trigrams']:.3f} | {r['entropy']:.2f} | {ess} | {r['sec_per_sample']:.3f} | "
                  f"{swept} |")
    if result["paired"]:
        md += ["\n**The energy at real text's diversity** (each EDLM family against the same order without the "
               "energy, both read at real text's distinct-2; beats = below -2 SE):\n",
               "| task | steps | sampler | against | judge ppl ratio | mean log diff (SE) | beats it |",
               "|---|---|---|---|---|---|---|"]
        md += [f"| {p['task']} | {p['steps']} | {p['family']} | {p['against']} | {p['ratio']:.3f} | "
               f"{p['mean_diff']:+.3f} ({p['se']:.3f}) | {'yes' if p['beats'] else 'no'} |" for p in result["paired"]]
    return md


def frontier_figures(cells: list, result: dict) -> dict:
    """Judge perplexity against distinct-2 per task ({"frontier_<task>": figure}), one line per family (points
    labelled by temperature), real text as a star: lower-right is fluent and varied at once."""
    import plotly.graph_objects as go

    figs = {}
    for task, ref in result["reference"].items():
        fams: dict[tuple, list] = {}
        for c in cells:
            if c.task == task and c.sampler not in ("reference", "ar") and c.extra.get("distinct2") is not None:
                fams.setdefault((family_of(c.sampler)[0], c.steps), []).append(c)
        fams = {k: v for k, v in fams.items() if len(v) >= 2}
        if not fams:
            continue
        fig = go.Figure()
        for (fam, steps), cs in sorted(fams.items()):
            cs.sort(key=lambda c: c.extra["distinct2"])
            fig.add_trace(go.Scatter(x=[c.extra["distinct2"] for c in cs], y=[c.judge_ppl for c in cs],
                                     mode="lines+markers+text", name=f"{fam} (T={steps})",
                                     text=[f"{family_of(c.sampler)[1]:g}" for c in cs], textposition="top center"))
        fig.add_trace(go.Scatter(x=[ref["distinct2"]], y=[ref["judge_ppl"]], mode="markers", name="real TEST text",
                                 marker=dict(symbol="star", size=16, color="black")))
        fig.add_vline(x=ref["distinct2"], line_dash="dot")
        fig.update_layout(title=f"{task}: judge perplexity against distinct-2, swept over the temperature (labels)",
                          xaxis=dict(title="distinct-2 (higher = more varied)"),
                          yaxis=dict(title="judge perplexity (lower = more fluent)", type="log"),
                          template="plotly_white", width=900, height=560)
        figs[f"frontier_{task}"] = fig
    return figs
