"""General-English infilling benchmark: fills of 5-15 words in held-out passages, judged by a model that is neither
the proposal nor the energy. Prints a Markdown table (and writes it with the raw rows under --out).

    python bench/general.py [--passages 64] [--task general|sotu] [--systems general,general-k1,sotu,sotu-mdlm]
    python bench/general.py --latency 20          # seconds per fill of a 10-word span in a 60-word passage
    python bench/general.py --systems gd-mdlm-32,gd-mdlm-8+cache_refresh=4 --pairs gd-mdlm-8+cache_refresh=4:gd-mdlm-32
    python bench/general.py --systems gd-mdlm-16,gd-mdlm-16+adapter=runs/general-diffusion-2/best/model
    python bench/general.py --pairs-only --matched --out results/gd-frontier   # sweeps read at real diversity

Passages: data/general/test.jsonl (everyday and mailing-list English of 2002, scripts/build_general_text.py) or
State of the Union TEST text (--task sotu, 60-120-word stretches of the corpus's TEST split). In each passage a
span of 5 to 15 whole words (chosen with the seed, never at the very start or end) is masked with as many tokens
as it holds in each system's tokenizer; the system fills it. Judge (default gemma3-270m, Gemma 3 270M, which no
system uses): perplexity of the fill and the 12 words after it given the text before, per judge token; with the
real span and with random words of the same passage as references. Beside it, repetition inside a fill (share of
repeated word trigrams), distinct-2 over all fills, seconds and passes per fill, the mean ESS of the energy's
weighting steps; paired differences against the real span with their standard error; `--pairs A:B` prints A
against B passage by passage (systems of earlier runs on the same passages are kept in rows.json for it), with each
side's seconds per fill. `--matched` reads every system run at two or more temperatures (`+temperature=T`) at real
text's distinct-2, the comparison that counts: a colder proposal buys judge perplexity with sameness.
"""
from __future__ import annotations

import argparse
import json
import math
import random
import re
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

ROOT = Path(__file__).resolve().parent.parent
AFTER_WORDS = 12
SYSTEMS = {  # name -> (model, settings)
    "general": ("general", {}),                                      # ar-is, k = 16, temperature 0.8
    "general-k1": ("general", {"k": 1}),                             # the same proposal with no weighting
    "general-k4": ("general", {"k": 4}),
    "general-T1": ("general", {"temperature": 1.0}),
    "sotu": ("default", {}),                                         # the embedded models' defaults
    "sotu-mdlm": ("default", {"sampler": "mdlm"}),
    "sotu-ar-is": ("default", {"sampler": "ar-is", "k": 16, "temperature": 0.8, "target_ess": 0.0}),
}
# SmolLM2 adapted into a masked denoiser (general-diffusion), alone (`mdlm`) and with SmolLM2 as the EDLM energy,
# at 8, 16 and 32 steps, in the order and temperature they were first measured with (the library's: confidence-
# noisy, 1.15; `+unmask=...`, `+temperature=...` change them); `-tT` suffixes try another proposal temperature,
# `-cN` the context cache with a full pass every N passes (`-c32`: only the first pass is full at these lengths).
# `gd-smc-N` carries k particles through the steps with the same energy (edlm-smc). `gd-default` is the model's own
# defaults, whatever they are now.
SYSTEMS["gd-default"] = ("general-diffusion", {})
_FIRST = {"unmask": "confidence-noisy", "temperature": 1.15}
for _steps in (8, 16, 32):
    SYSTEMS[f"gd-smc-{_steps}"] = ("general-diffusion", {**_FIRST, "sampler": "edlm-smc", "steps": _steps})
    for _sampler in ("mdlm", "edlm-ar"):
        _name = f"gd-{_sampler.split('-')[0]}-{_steps}"
        SYSTEMS[_name] = ("general-diffusion", {**_FIRST, "sampler": _sampler, "steps": _steps})
        for _temp in (0.8, 1.0):
            SYSTEMS[f"{_name}-t{_temp:g}"] = ("general-diffusion", {**_FIRST, "sampler": _sampler, "steps": _steps,
                                                                    "temperature": _temp})
        for _refresh in (4, 32):
            SYSTEMS[f"{_name}-c{_refresh}"] = ("general-diffusion", {**_FIRST, "sampler": _sampler, "steps": _steps,
                                                                     "cache_refresh": _refresh})


def system(name: str) -> tuple[str, dict]:
    """(model, settings) of a system name: one of SYSTEMS, optionally with "+SETTING=VALUE" overrides
    ("gd-mdlm-32+unmask=threshold", "gd-mdlm-8+cache_refresh=4"); "+adapter=FOLDER" runs a `gd-` system on
    another adapter (a training run's checkpoint against the shipped one)."""
    base, *mods = name.split("+")
    if base not in SYSTEMS:
        raise SystemExit(f"unknown system {base!r}: choose one of {', '.join(SYSTEMS)}")
    model, settings = SYSTEMS[base]
    settings = dict(settings)
    for mod in mods:
        key, eq, value = mod.partition("=")
        if not eq:
            raise SystemExit(f"system modifier {mod!r} in {name!r}: write SETTING=VALUE")
        if key == "adapter":
            if model != "general-diffusion":
                raise SystemExit(f"system modifier {mod!r} in {name!r}: only a gd- system takes an adapter")
            model = f"general-diffusion:{value}"
            continue
        for kind in (int, float, str):
            try:
                settings[key] = kind(value)
                break
            except ValueError:
                continue
    return model, settings


def passages(task: str, n: int, corpus: str | None, split: str = "test") -> list[str]:
    if task == "general":
        with open(ROOT / "data" / "general" / f"{split}.jsonl", encoding="utf-8") as f:
            return [json.loads(line)["text"] for line in f][:n]
    from edlm.commands import DEFAULT_CORPUS
    from edlm.data import read_split

    out, rng = [], random.Random(0)
    for text in read_split(corpus or DEFAULT_CORPUS, "test"):
        words = text.split()
        for a in range(0, len(words) - 120, 400):
            out.append(" ".join(words[a:a + rng.randint(60, 120)]))
    random.Random(1).shuffle(out)
    return out[:n]


def cut(text: str, rng: random.Random) -> tuple[str, str, str]:
    """(before, span, after) with a span of 5-15 whole words inside the passage."""
    words = text.split(" ")
    w = rng.randint(5, min(15, max(5, len(words) - 10)))
    a = rng.randint(3, max(3, len(words) - w - 3))
    return " ".join(words[:a]) + " ", " ".join(words[a:a + w]), " " + " ".join(words[a + w:])


class Judge:
    """Mean negative log-likelihood per token of a continuation given a context, under a causal LM."""

    def __init__(self, name: str):
        from edlm.hub import load_causal_lm

        self.model, self.tok = load_causal_lm(name)
        self.name = name

    def nll(self, before: str, cont: str) -> float:
        import torch

        text = before.rstrip(" ") + cont if before.endswith(" ") and cont.startswith(" ") else before + cont
        start = len(before.rstrip(" ")) if before.endswith(" ") else len(before)
        enc = self.tok(text, return_offsets_mapping=True, add_special_tokens=True)
        ids, offs = enc["input_ids"], enc["offset_mapping"]
        first = next(i for i, (a, b) in enumerate(offs) if b > start and i > 0)
        x = torch.tensor([ids])
        with torch.inference_mode():
            lp = self.model(input_ids=x).logits[0, :-1].float().log_softmax(-1)
        tok_lp = lp.gather(-1, x[0, 1:, None]).squeeze(-1)[first - 1:]
        return float(-tok_lp.mean())


def latency(model: str, runs: int, settings: dict) -> str:
    """Seconds to fill a 10-word span in the middle of a 60-word passage (TEST passages cut to 60 words), as the
    app does it: a markdown line with the mean, median and slowest of `runs` fills after one warm-up."""
    from edlm import infill
    from edlm.presets import load_bundle
    from edlm.tokenizer import encode

    bundle = load_bundle(model)
    texts = [t for t in passages("general", 400, None) if len(t.split()) >= 60][:runs + 1]
    times = []
    for i, t in enumerate(texts):
        words = t.split()[:60]
        before, span, after = " ".join(words[:25]) + " ", " ".join(words[25:35]), " " + " ".join(words[35:])
        n = len(encode(bundle.tokenizer, span))
        t0 = time.perf_counter()
        infill(bundle, before + f"[MASK:{n}]" + after, seed=i, **settings)
        if i:  # the first fill warms up (tokenizer tables, allocator)
            times.append(time.perf_counter() - t0)
    return (f"`{model}` {settings or 'defaults'}: a 10-word span in a 60-word passage, {len(times)} fills: mean "
            f"{statistics.mean(times):.2f} s, median {statistics.median(times):.2f} s, slowest {max(times):.2f} s")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--latency", type=int, default=0, help="only time N fills of a 10-word span in 60 words")
    p.add_argument("--model", default="general", help="with --latency: the model to time")
    p.add_argument("--passages", type=int, default=64)
    p.add_argument("--task", choices=["general", "sotu"], default="general")
    p.add_argument("--split", choices=["test", "validation"], default="test",
                   help="task general: held-out mail passages to fill (choose settings on validation)")
    p.add_argument("--systems", default="general,general-k1,sotu,sotu-mdlm",
                   help="comma-separated names of SYSTEMS, each optionally with +SETTING=VALUE overrides")
    p.add_argument("--judge", default="gemma3-270m")
    p.add_argument("--corpus", default=None, help="State of the Union folder (--task sotu)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="results/general")
    p.add_argument("--pairs", default="",
                   help="comma-separated A:B: print A's judge NLL minus B's, per passage, mean and standard error "
                   "(A and B from this run or from the rows already written under --out)")
    p.add_argument("--pairs-only", action="store_true", help="sample nothing: only the --pairs of earlier runs")
    p.add_argument("--matched", action="store_true",
                   help="read every system swept over +temperature at real text's distinct-2 (or --target) and "
                   "each gd-edlm family against its gd-mdlm twin there, from all rows under --out; with a plot")
    p.add_argument("--target", type=float, default=0.0,
                   help="with --matched: the distinct-2 to read the sweeps at (default: the real spans')")
    p.add_argument("--against", default="",
                   help="with --matched: read the sweeps at this system's distinct-2 and pair each against it")
    args = p.parse_args()
    if args.latency:
        print(latency(args.model, args.latency, {}))
        return
    out_dir = Path(args.out) / (args.task if args.split == "test" else f"{args.task}-{args.split}")
    if args.pairs_only:
        rows = json.loads((out_dir / "rows.json").read_text())["rows"]
        if args.pairs:
            print(pairs_table(args.pairs, rows))
        if args.matched:
            print(matched_report(rows, args.target, out_dir, args.against))
        return
    import torch

    from edlm.augment import distinct2
    from edlm.bench import trigram_repeat_share
    from edlm.pipeline import infill_stream
    from edlm.presets import load_bundle
    from edlm.tokenizer import encode

    torch.manual_seed(args.seed)
    texts = passages(args.task, args.passages, args.corpus, args.split)
    cuts = [cut(t, random.Random(args.seed * 100_003 + i)) for i, t in enumerate(texts)]
    judge = Judge(args.judge)
    rows = {"real span": [], "random words": []}
    for i, (before, span, after) in enumerate(cuts):
        follow = " ".join(after.split(" ")[:AFTER_WORDS + 1])
        rows["real span"].append({"fill": span, "nll": judge.nll(before, " " + span + follow), "sec": 0.0})
        words = " ".join(t for t in texts[i].split()).split()
        rnd = " ".join(random.Random(i).sample(words, min(len(words), len(span.split()))))
        rows["random words"].append({"fill": rnd, "nll": judge.nll(before, " " + rnd + follow), "sec": 0.0})
    for name in args.systems.split(","):
        model, settings = system(name)
        bundle = load_bundle(model)
        out = []
        for i, (before, span, after) in enumerate(cuts):
            n = max(1, len(encode(bundle.tokenizer, span)))
            text = before + f"[MASK:{n}]" + after
            t0, ess, k = time.perf_counter(), [], None
            for ev in infill_stream(bundle, text, seed=args.seed + i, **settings):
                if ev.is_step and ev.ess is not None:  # a weighting step: its ESS of k candidates or particles
                    ess.append(ev.ess)
                    k = len(ev.weights or []) or k
            sec = time.perf_counter() - t0
            fill = ev.spans[0].strip()
            assert ev.text == before + ev.spans[0] + after, "fixed text changed"
            follow = " ".join(after.split(" ")[:AFTER_WORDS + 1])
            out.append({"fill": fill, "nll": judge.nll(before, " " + fill + follow), "sec": sec,
                        "passes": ev.denoiser_calls + ev.ar_calls, "energy": ev.energy_calls,
                        "ess": statistics.mean(ess) if ess else None, "k": k})
            print(f"{name} {i + 1}/{len(cuts)} {sec:.2f}s {fill[:70]!r}", file=sys.stderr)
        rows[name] = out
    real = [r["nll"] for r in rows["real span"]]
    lines = [f"Task `{args.task}`: {len(cuts)} passages, spans of 5-15 words, judge `{judge.name}` (perplexity "
             f"of the fill and the {AFTER_WORDS} words after it, given the text before).", "",
             "| system | judge ppl | vs real span: mean NLL diff ± SE | repeated trigrams in a fill | distinct-2 "
             "(all fills) | s / fill | passes / fill (network / energy) | mean ESS (of k) |",
             "|---|---|---|---|---|---|---|---|"]
    for name, rs in rows.items():
        nll = [r["nll"] for r in rs]
        diff = [a - b for a, b in zip(nll, real)]
        se = statistics.stdev(diff) / math.sqrt(len(diff)) if len(diff) > 1 and any(diff) else 0.0
        rep = statistics.mean(trigram_repeat_share(r["fill"]) for r in rs)
        lines.append(f"| {name} | {math.exp(statistics.mean(nll)):.1f} | {statistics.mean(diff):+.3f} ± {se:.3f} | "
                     f"{rep:.3f} | {distinct2([r['fill'] for r in rs]):.3f} | "
                     f"{statistics.mean(r['sec'] for r in rs):.2f} | {passes(rs)} | {ess_cell(rs)} |")
    table = "\n".join(lines)
    print(table)
    out_dir.mkdir(parents=True, exist_ok=True)
    if (out_dir / "rows.json").is_file():  # systems of earlier runs on the same passages stay for --pairs
        earlier = json.loads((out_dir / "rows.json").read_text())
        if earlier["cuts"] == [list(c) for c in cuts]:
            rows = {**earlier["rows"], **rows}
    (out_dir / "table.md").write_text(table + "\n")
    (out_dir / "rows.json").write_text(json.dumps({"cuts": cuts, "rows": rows}, indent=1))
    if args.pairs:
        print(pairs_table(args.pairs, rows))
    if args.matched:
        print(matched_report(rows, args.target, out_dir, args.against))


def passes(rs: list[dict]) -> str:
    """Mean passes per fill of the network that writes (denoiser or AR model) and of the energy: a measure of cost
    that, unlike seconds, does not move with what else the machine runs."""
    if not rs or "passes" not in rs[0]:
        return "-"
    return f"{statistics.mean(r['passes'] for r in rs):.1f} / {statistics.mean(r['energy'] for r in rs):.1f}"


def ess_cell(rs: list[dict]) -> str:
    """"2.31 of 4": the mean ESS of a system's weighting steps (IS candidates or SMC particles); "-" without."""
    return ess_text(*(mean_ess(rs) or (None, None)))


def ess_text(ess: float | None, k: float | None) -> str:
    return "-" if ess is None else f"{ess:.2f} of {k:g}"


def pairs_table(spec: str, rows: dict) -> str:
    """A Markdown table of paired judge-NLL differences (A minus B per passage: below 0, A reads better) with
    their standard error and each side's mean seconds per fill."""
    lines = ["| A | B | mean NLL diff (A - B) ± SE | SEs | s / fill A | s / fill B | speed-up of A |",
             "|---|---|---|---|---|---|---|"]
    for pair in filter(None, spec.split(",")):
        a, _, b = pair.partition(":")
        for name in (a, b):
            if name not in rows:
                raise SystemExit(f"--pairs: no rows for {name!r} (have: {', '.join(rows)})")
        diff = [x["nll"] - y["nll"] for x, y in zip(rows[a], rows[b])]
        se = statistics.stdev(diff) / math.sqrt(len(diff))
        sa, sb = (statistics.mean(r["sec"] for r in rows[n]) for n in (a, b))
        lines.append(f"| {a} | {b} | {statistics.mean(diff):+.3f} ± {se:.3f} | {statistics.mean(diff) / se:+.1f} | "
                     f"{sa:.2f} | {sb:.2f} | {sb / sa if sa else float('nan'):.2f}x |")
    return "\n".join(lines)


def temperature_of(name: str) -> float:
    """The proposal temperature a system samples at: its own setting, else its model's default, else the library's."""
    from edlm.limits import DEFAULTS
    from edlm.presets import MODEL_DEFAULTS

    model, settings = system(name)
    return float(settings.get("temperature", MODEL_DEFAULTS.get(model.partition(":")[0], {})
                              .get("temperature", DEFAULTS.temperature)))


def family_of(name: str) -> str:
    """A system's name without its temperature (a `+temperature=T` modifier or a `-tT` suffix): the sweep it is in."""
    base, *mods = name.split("+")
    return "+".join([re.sub(r"-t[0-9.]+$", "", base)] + [m for m in mods if not m.startswith("temperature=")])


# The settings a twin lacks (edlm.frontier.ENERGY_ONLY is the same list in the embedded bench's variant spelling).
ENERGY_SETTINGS = ("k", "is_window", "is_temperature", "target_ess", "resample_ess")


def twin_of(family: str) -> str:
    """An energy family's energy-free twin: `gd-edlm-N` or `gd-smc-N` as `gd-mdlm-N`, with the same modifiers but
    those only the energy reads (k, the IS window and temperature, the target and resampling ESS)."""
    base, *mods = family.split("+")
    base = re.sub(r"^gd-(edlm|smc)-", "gd-mdlm-", base)
    return "+".join([base] + [m for m in mods if m.partition("=")[0] not in ENERGY_SETTINGS])


def mean_ess(rs: list[dict]) -> tuple[float, int] | None:
    """Mean ESS over the weighting steps of the fills that had any, and k: (ESS, k), or None without weighting."""
    weighted = [r for r in rs if r.get("ess") is not None]
    return (statistics.mean(r["ess"] for r in weighted), weighted[0]["k"]) if weighted else None


def sweep_points(rows: dict) -> dict[str, list[dict]]:
    """Each family's systems as points of its temperature sweep: distinct-2 over all fills, per-passage judge NLL,
    repeated trigrams, seconds and passes per fill (network and energy), mean ESS of the weighting steps and k."""
    from edlm.augment import distinct2
    from edlm.bench import trigram_repeat_share

    fams: dict[str, list[dict]] = {}
    for name, rs in rows.items():
        if name in ("real span", "random words"):
            continue
        ess, k = mean_ess(rs) or (None, None)
        fams.setdefault(family_of(name), []).append({
            "distinct2": distinct2([r["fill"] for r in rs]), "nll": [r["nll"] for r in rs],
            "temperature": temperature_of(name),
            "repeated_trigrams": statistics.mean(trigram_repeat_share(r["fill"]) for r in rs),
            "sec": statistics.mean(r["sec"] for r in rs),
            "passes": statistics.mean(r["passes"] for r in rs) if "passes" in rs[0] else None,
            "energy": statistics.mean(r["energy"] for r in rs) if "energy" in rs[0] else None,
            "ess": ess, "k": k})
    return fams


def matched_report(rows: dict, target: float, out_dir: Path, against: str = "") -> str:
    """Every family swept over the temperature, read at distinct-2 = target (real text's by default, or the
    `against` system's) by per-passage interpolation between the two sweep points that bracket it, and each
    energy family (`gd-edlm-...`, `gd-smc-...`) against its energy-free twin (`twin_of`) there, or each
    family against `against`; a plot of the sweeps beside the table."""
    from edlm.augment import distinct2
    from edlm.frontier import at_diversity

    if against and against not in rows:
        raise SystemExit(f"--against: no rows for {against!r} (have: {', '.join(rows)})")
    real = [r["nll"] for r in rows["real span"]]
    target = target or distinct2([r["fill"] for r in rows[against or "real span"]])
    points = sweep_points(rows)
    fams = {f: pts for f, pts in points.items() if len({p["temperature"] for p in pts}) >= 2}
    lines = [f"At distinct-2 {target:.3f} (each temperature sweep interpolated per passage between the two points "
             "that bracket it):", "",
             "| family | temperatures swept | distinct-2 swept | temperature there | judge ppl | vs real span ± SE | "
             "repeated trigrams | mean ESS (of k) | s / fill | passes / fill (network / energy) |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    at = {}
    for fam, pts in sorted(fams.items()):
        temps = ", ".join(f"{p['temperature']:g}" for p in sorted(pts, key=lambda p: p["temperature"]))
        swept = f"{min(p['distinct2'] for p in pts):.3f}-{max(p['distinct2'] for p in pts):.3f}"
        m = at_diversity(pts, target)
        if m is None:
            lines.append(f"| {fam} | {temps} | {swept} | not reached | - | - | - | - | - | - |")
            continue
        at[fam] = m["nll"]
        diff = [a - b for a, b in zip(m["nll"], real)]
        se = statistics.stdev(diff) / math.sqrt(len(diff))
        npass = "-" if m["passes"] is None else f"{m['passes']:.1f} / {m['energy']:.1f}"
        ess = ess_text(m["ess"], m["k"])
        lines.append(f"| {fam} | {temps} | {swept} | {m['temperature']:.2f} | {math.exp(statistics.mean(m['nll'])):.1f}"
                     f" | {statistics.mean(diff):+.3f} ± {se:.3f} | {m['repeated_trigrams']:.3f} | {ess} | "
                     f"{m['sec']:.2f} | {npass} |")
    paired = []
    for fam, nll in sorted(at.items()):
        twin = against or twin_of(fam)
        base = [r["nll"] for r in rows[against]] if against else at.get(twin)
        if twin != fam and base is not None:
            d = [a - b for a, b in zip(nll, base)]
            mean, se = statistics.mean(d), statistics.stdev(d) / math.sqrt(len(d))
            paired.append(f"| {fam} | {twin} | {mean:+.3f} ± {se:.3f} | {mean / se if se else float('nan'):+.1f} |")
    if paired:
        lines += ["", f"Against {against} at its own diversity (A minus B per passage; below -2 SE, A reads better):"
                  if against else "The energy at that diversity (A minus B per passage; below -2 SE, the energy pays):",
                  "",
                  "| A | B | mean NLL diff ± SE | SEs |", "|---|---|---|---|", *paired]
    if fams:
        lines += ["", "Plot: " + ", ".join(sweep_plot(points, rows, out_dir))]
    return "\n".join(lines)


def sweep_plot(fams: dict[str, list[dict]], rows: dict, out_dir: Path) -> list[str]:
    """Judge perplexity against distinct-2, one line per family labelled by temperature (a system run at one
    temperature is a lone point), real text as a star: lower-right is fluent and varied at once."""
    import plotly.graph_objects as go

    from edlm.augment import distinct2
    from edlm.bench import write_figure

    fig = go.Figure()
    for fam, pts in sorted(fams.items()):
        pts = sorted(pts, key=lambda p: p["distinct2"])
        fig.add_trace(go.Scatter(x=[p["distinct2"] for p in pts],
                                 y=[math.exp(statistics.mean(p["nll"])) for p in pts], mode="lines+markers+text",
                                 name=fam, text=[f"{p['temperature']:g}" for p in pts], textposition="top center",
                                 line=dict(dash="dash" if twin_of(fam) != fam else "solid"),  # dashed: with an energy
                                 marker=dict(size=12 if len(pts) == 1 else 7)))
    real = rows["real span"]
    fig.add_trace(go.Scatter(x=[distinct2([r["fill"] for r in real])],
                             y=[math.exp(statistics.mean(r["nll"] for r in real))], mode="markers",
                             name="real span", marker=dict(symbol="star", size=16, color="black")))
    fig.update_layout(title="Fills of held-out passages: judge perplexity against distinct-2 (labels: temperature)",
                      xaxis=dict(title="distinct-2 over all fills (higher = more varied)"),
                      yaxis=dict(title="judge perplexity (lower = more fluent)", type="log",
                                 tickvals=[30, 40, 50, 70, 100, 150, 200, 300, 400, 600]),
                      template="plotly_white", width=900, height=560)
    return write_figure(fig, out_dir, "matched")


if __name__ == "__main__":
    main()
