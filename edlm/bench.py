"""Benchmarks: sample quality (judge perplexity, unigram entropy) against steps, k and the IS window; infilling
in context; wall-clock, forward passes, memory; quality against time and the speed-up at matched quality;
where the time goes; and how cost grows with length and batch. Results: a Markdown table on stdout, plus
results.json, table.md and Plotly figures (HTML, and PNG when kaleido can render) in the output folder.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import platform
import resource
import statistics
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from .bundle import Bundle
from .data import consecutive_windows, read_split, token_stream
from .evaluate import generative_perplexity, unigram_entropy
from .frontier import frontier, frontier_figures, frontier_markdown
from .limits import DEFAULTS, Request, default_settings
from .runner import energy_for, run
from .samplers import get_sampler, has_energy

FRONTIER_FAMILIES = ("mdlm", "edlm-ar/product", "edlm-smc")  # swept by the frontier preset
PRESETS = {
    "tiny": dict(samples=4, batch=4, steps=(4, 8), ks=(2,), windows=(0.5,), latency_repeats=1,
                 lengths=(64, 128), batches=(1, 4)),
    "quick": dict(samples=16, batch=16, steps=(8, 16, 32), ks=(4,), windows=(0.5,), latency_repeats=3,
                  lengths=(128, 256, 512, 1024), batches=(1, 8, 32)),
    # Steps swept at the shipped k and window; k and the window swept one at a time at 32 steps.
    "full": dict(samples=64, batch=32, steps=(8, 16, 32, 64, 128), ks=(2, 4, 8, 16), windows=(0.25, 0.5, 1.0),
                 sweep_at=32, latency_repeats=5, lengths=(128, 256, 512, 1024), batches=(1, 8, 32)),
    # Paired comparison of sampler variants against plain mdlm on the same windows and seeds (the issue targets).
    "compare": dict(samples=64, batch=32, steps=(8, 16, 32), ks=(4,), windows=(0.5,), latency_repeats=5,
                    lengths=(128,), batches=(1,), top_p=0.95,
                    variants=("mdlm", "edlm-ar", "edlm-ar/product", "edlm-nce", "mdlm+confidence",
                              "edlm-ar/product+confidence", "mdlm+remdm")),
    # Every unmask order and remasking, alone and with each energy, T = 8 to 64 (issue: sampler core).
    "orders": dict(samples=32, batch=32, steps=(8, 16, 32, 64), ks=(4,), windows=(0.5,), latency_repeats=3,
                   lengths=(128,), batches=(1,), top_p=0.95,
                   variants=("mdlm", "mdlm+confidence", "mdlm+confidence-noisy", "mdlm+margin", "mdlm+entropy",
                             "mdlm+remdm", "edlm-ar/product", "edlm-ar/product+confidence",
                             "edlm-ar/product+confidence-noisy", "edlm-ar/product+entropy", "edlm-ar/product+remdm",
                             "edlm-ar/product+confidence+remdm", "edlm-nce", "edlm-nce+confidence",
                             "edlm-nce+confidence-noisy", "edlm-nce+remdm")),
    # Few steps, for any model (run it once per model: --model default, --model uniform): T = 4 to 64, with and
    # without the greedy final step (issue: uniform-noise diffusion).
    "few-steps": dict(samples=32, batch=32, steps=(4, 8, 16, 32, 64), ks=(4,), windows=(0.5,), latency_repeats=3,
                      lengths=(128,), batches=(1,), top_p=0.95,
                      variants=("mdlm", "mdlm+greedy", "edlm-ar/product", "edlm-ar/product+greedy")),
    # The quality-diversity frontier (issue: fluent and varied at once): the sampling temperature swept per
    # sampler family so each family's judge perplexity can be read at real text's distinct-2 (see `frontier`).
    "frontier": dict(samples=64, batch=32, steps=(32,), ks=(4,), windows=(0.5,), latency_repeats=1,
                     lengths=(128,), batches=(1,), top_p=0.95,
                     variants=tuple(f"{family}+temp={t}" for family in FRONTIER_FAMILIES for t in (0.7, 0.85, 1.0)) +
                     tuple(f"{family}+confidence-noisy+temp={t}" for family in FRONTIER_FAMILIES
                           for t in (0.85, 1.0, 1.15, 1.3, 1.5, 1.7))),
}


@dataclass
class BenchConfig:
    corpus: str
    out: str = "results/bench"
    samples: int = 16
    batch: int = 16
    steps: tuple = (8, 16, 32)
    ks: tuple = (4,)
    windows: tuple = (0.5,)
    sweep_at: int | None = None  # None: every k x window at every step count; else only at these steps
    top_p: float = 1.0  # nucleus of the proposal for every sampler (1 = none, as in the paper)
    samplers: tuple = ("mdlm", "edlm-ar", "edlm-nce", "ar")
    latency_repeats: int = 3
    lengths: tuple = (128, 256, 512, 1024)
    batches: tuple = (1, 8, 32)
    seed: int = 0
    parts: tuple = ("generate", "infill", "latency", "growth")
    ar_product: bool = True  # also run EDLM-AR with product weights (target q * p_AR)
    report_only: bool = False  # tables and figures from the cells already in `out` (nothing is sampled)
    variants: tuple = ()     # if set, exactly these samplers at cfg.ks[0], cfg.windows[0]:
    #   "SAMPLER[/WEIGHTING][+ORDER][+REMASK][+greedy][+temp=T][+top-p=P][+tau=TAU][+k=K][+window=W][+cache=N]"
    #   "[+horizon=H][+lookahead]"


# The plain samplers the grids and variant names start from, whatever the shipped defaults are (a variant's name
# says every departure from these; a cell recorded before a setting existed ran with its value here).
PLAIN = dict(unmask="random", remask="none", ar_weighting="ratio", final="sample", carry_over=False,
             is_temperature=1.0, target_ess=0.0, resample_ess=0.5, potential="draw")

# Numeric variant modifiers: NAME=NUMBER sets a Request field (the sampling temperature, nucleus, IS temperature).
NUMERIC_MODIFIERS = {"temp": "temperature", "top-p": "top_p", "tau": "is_temperature", "ess": "target_ess",
                     "resample": "resample_ess", "k": "k", "window": "is_window", "cache": "cache_refresh",
                     "horizon": "energy_horizon"}


def parse_variant(spec: str, steps: int, k: int, window: float, top_p: float, seed: int) -> Request:
    """A Request from a variant name such as "edlm-ar/product+confidence+remdm" (validated like any request)."""
    from .limits import choices, validate

    base, *mods = spec.split("+")
    sampler, _, weighting = base.partition("/")
    weighted = sampler in choices("sampler") and get_sampler(sampler).energy is not None
    settings = dict(sampler=sampler, steps=steps, k=k if weighted else 1,
                    is_window=window if weighted else 0.0, top_p=top_p, seed=seed, temperature=1.0, **PLAIN)
    if weighting:
        settings["ar_weighting"] = weighting
    for m in mods:
        key, eq, value = m.partition("=")
        if eq and key in ("k", "window") and not weighted:
            raise ValueError(f"variant modifier {m!r} in {spec!r}: {sampler} has no energy, so no candidates")
        if eq and key in NUMERIC_MODIFIERS:  # e.g. "edlm-ar+confidence+tau=2", "mdlm+temp=0.8+top-p=0.9"
            try:
                settings[NUMERIC_MODIFIERS[key]] = int(value) if key in ("k", "cache", "horizon") else float(value)
            except ValueError:
                raise ValueError(f"variant modifier {m!r} in {spec!r} needs a number after '='") from None
            continue
        key = "unmask" if m in choices("unmask") else "remask" if m in choices("remask") else \
            "final" if m in choices("final") else "potential" if m in choices("potential") else None
        if key is None:
            raise ValueError(f"unknown variant modifier {m!r} in {spec!r}: use an unmask order, a remask rule, "
                             f"a final step (greedy), a particle score (lookahead) or "
                             f"{', '.join(k + '=NUMBER' for k in NUMERIC_MODIFIERS)}")
        settings[key] = m
    return validate(**settings)


def variant_name(req: Request, top_p: float | None = None, k: int | None = None, window: float | None = None) -> str:
    """The variant spelling of a request (parse_variant's inverse); top-p, k and the IS window are named when they
    differ from the grid's `top_p`, `k` and `window`."""
    weighted = get_sampler(req.sampler).energy == "ar" and not get_sampler(req.sampler).diffusion  # (SMC: product)
    name = req.sampler + ("/product" if weighted and req.ar_weighting == "product" else "")
    if req.unmask != "random":
        name += "+" + req.unmask
    if req.remask != "none":
        name += "+" + req.remask
    if req.final != "sample":
        name += "+" + req.final
    if req.is_temperature != 1.0:
        name += f"+tau={req.is_temperature:g}"
    if req.target_ess:
        name += f"+ess={req.target_ess:g}"
    if req.resample_ess != 0.5:
        name += f"+resample={req.resample_ess:g}"
    if req.cache_refresh:
        name += f"+cache={req.cache_refresh}"
    if req.energy_horizon:
        name += f"+horizon={req.energy_horizon}"
    if req.potential != "draw":
        name += "+" + req.potential
    if get_sampler(req.sampler).energy is not None:
        if k is not None and req.k != k:
            name += f"+k={req.k}"
        if window is not None and req.is_window != window:
            name += f"+window={req.is_window:g}"
    if req.temperature != 1.0:
        name += f"+temp={req.temperature:g}"
    if top_p is not None and req.top_p != top_p:
        name += f"+top-p={req.top_p:g}"
    return name


@dataclass
class Cell:
    task: str
    sampler: str
    steps: int
    k: int = 1
    is_window: float = 0.0
    samples: int = 0
    judge_ppl: float = float("nan")
    judge_ppl_sd: float = float("nan")
    entropy: float = float("nan")
    sec_per_sample: float = float("nan")
    denoiser_calls: float = 0.0
    energy_calls: float = 0.0
    forward_share: float = float("nan")   # share of wall-clock inside model forward passes
    peak_rss_mb: float = float("nan")
    extra: dict = field(default_factory=dict)


class ForwardTimer:
    """Accumulates the time spent inside the forward passes of the given modules (synchronising a GPU)."""

    def __init__(self, modules):
        self.total, self.handles, self._t0 = 0.0, [], {}
        for m in modules:
            if m is not None:
                self.handles.append(m.register_forward_pre_hook(self._pre))
                self.handles.append(m.register_forward_hook(self._post))

    def _sync(self):
        if torch.cuda.is_available():
            torch.cuda.synchronize()

    def _pre(self, module, args):
        self._sync()
        self._t0[id(module)] = time.perf_counter()

    def _post(self, module, args, out):
        self._sync()
        self.total += time.perf_counter() - self._t0.pop(id(module))

    def close(self):
        for h in self.handles:
            h.remove()


def _peak_rss_mb() -> float:
    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _run_batch(bundle: Bundle, ids: torch.Tensor, req: Request,
               ess: list | None = None) -> tuple[torch.Tensor, int, int]:
    """Fill ids in place; returns them with the denoiser and energy pass counts (and each IS step's per-row
    effective sample sizes appended to `ess`)."""
    den = en = 0
    editable = ids[0] == bundle.tokenizer.mask_token_id  # benchmark windows carry no literal mask tokens
    for ev, prog in run(bundle, ids, req, editable):
        den, en = prog.denoiser_calls, prog.energy_calls + prog.ar_calls
        if ess is not None and ev.is_step:
            ess += ev.ess.tolist()
    return ids, den, en


def run_cell(bundle: Bundle, task: str, base: torch.Tensor, req: Request, cfg: BenchConfig) -> Cell:
    """Sample (generate: from all-masks; infill: the masked TEST windows) and score with the judge."""
    timer = ForwardTimer([bundle.denoiser, bundle.ar, bundle.nce])
    outs, den, en, ess = [], 0, 0, []
    start = time.perf_counter()
    for i, chunk in enumerate(base.split(cfg.batch)):
        r = Request(**{**asdict(req), "seed": req.seed + i})
        ids, d, e = _run_batch(bundle, chunk.clone(), r, ess)
        outs.append(ids)
        den, en = den + d, en + e
    wall = time.perf_counter() - start
    timer.close()
    samples = torch.cat(outs)
    ppl, per = generative_perplexity(bundle.judge, samples, bundle.tokenizer.bos_token_id)
    n_batches = math.ceil(len(base) / cfg.batch)
    name, weighted = variant_name(req, cfg.top_p, cfg.ks[0], cfg.windows[0]), get_sampler(req.sampler).energy is not None
    return Cell(task=task, sampler=name, steps=req.steps, k=req.k if weighted else 1,
                is_window=req.is_window if weighted else 0.0, samples=len(samples),
                judge_ppl=ppl, judge_ppl_sd=statistics.pstdev(per), entropy=unigram_entropy(samples),
                sec_per_sample=wall / len(samples), denoiser_calls=den / n_batches, energy_calls=en / n_batches,
                forward_share=timer.total / wall, peak_rss_mb=_peak_rss_mb(),
                extra={"log_ppl": [math.log(p) for p in per], "distinct2": distinct_n(samples, 2),
                       "mean_ess": statistics.mean(ess) if ess else None,
                       "repeated_trigrams": repeated_trigrams(samples, bundle.tokenizer)})


def repeated_trigrams(samples: torch.Tensor, tokenizer) -> float:
    """Mean over samples of the share of word trigrams that repeat one seen earlier in the same sample (real text:
    under 1%; a sampler that loops on a phrase: tens of percent)."""
    from .tokenizer import decode

    texts = [decode(tokenizer, row) for row in samples.tolist()]
    shares = [trigram_repeat_share(t) for t in texts if len(t.split()) > 2]
    return statistics.mean(shares) if shares else 0.0


def trigram_repeat_share(text: str) -> float:
    """The share of a text's word trigrams that repeat one seen earlier in it (0 for fewer than three words)."""
    w = text.split()
    grams = [tuple(w[i:i + 3]) for i in range(len(w) - 2)]
    return 1 - len(set(grams)) / len(grams) if grams else 0.0


def distinct_n(samples: torch.Tensor, n: int = 2) -> float:
    """Mean over samples of distinct n-grams / all n-grams: low means repeated phrases."""
    vals = []
    for row in samples.tolist():
        grams = [tuple(row[i:i + n]) for i in range(len(row) - n + 1)]
        vals.append(len(set(grams)) / max(1, len(grams)))
    return sum(vals) / max(1, len(vals))


def _against(c: Cell, base: Cell) -> dict:
    d = [a - b for a, b in zip(c.extra["log_ppl"], base.extra["log_ppl"])]
    mean = sum(d) / len(d)
    se = statistics.stdev(d) / math.sqrt(len(d)) if len(d) > 1 else float("nan")
    return {"task": c.task, "sampler": c.sampler, "baseline": base.sampler, "steps": c.steps, "mean_diff": mean,
            "se": se, "ratio": math.exp(mean), "beats": mean < -2 * se, "samples": len(d)}


def paired(cells: list[Cell], baseline: str | None = "mdlm") -> list[dict]:
    """Each cell against a baseline at the same task and steps, sample by sample (same windows, same seeds):
    mean difference of log judge perplexity and its standard error; `beats` when the difference is below
    -2 standard errors. `baseline=None` pairs each EDLM cell with the same variant without its energy
    ("edlm-ar/product+confidence" with "mdlm+confidence"): what the energy adds on top of the order."""
    out = []
    for c in cells:
        name = baseline
        if name is None:
            sampler, _, mods = c.sampler.partition("+")
            if not has_energy(sampler):
                continue
            name = "mdlm" + ("+" + mods if mods else "")
        base = next((b for b in cells if b.task == c.task and b.steps == c.steps and b.sampler == name), None)
        if base is None or c is base or "log_ppl" not in c.extra or "log_ppl" not in base.extra:
            continue
        out.append(_against(c, base))
    return out


def _edlm_settings(cfg: BenchConfig, steps: int) -> list[tuple[int, float]]:
    """(k, window) pairs run at this step count: all of them, or (sweep design) one factor at a time around the
    shipped defaults at `sweep_at` steps and the defaults alone elsewhere."""
    if cfg.sweep_at is None:
        return [(k, w) for k in cfg.ks for w in cfg.windows]
    default = (DEFAULTS.k, DEFAULTS.is_window)
    if steps != cfg.sweep_at:
        return [default]
    pairs = [(k, DEFAULTS.is_window) for k in cfg.ks] + [(DEFAULTS.k, w) for w in cfg.windows]
    return sorted(set(pairs) | {default})


def _requests(cfg: BenchConfig, task: str) -> list[Request]:
    """The grid's requests: plain samplers (random order, no remasking, ratio weights) unless a variant says."""
    plain = PLAIN
    if cfg.variants:
        return [parse_variant(v, steps, cfg.ks[0], cfg.windows[0], cfg.top_p, cfg.seed)
                for steps in cfg.steps for v in cfg.variants]
    reqs = []
    for steps in cfg.steps:
        for sampler in cfg.samplers:
            spec = get_sampler(sampler)
            if spec.autoregressive:
                continue
            if spec.energy is None:
                reqs.append(Request(sampler=sampler, steps=steps, k=1, is_window=0.0, temperature=1.0,
                                    top_p=cfg.top_p, seed=cfg.seed, **plain))
            else:
                pairs = _edlm_settings(cfg, steps)
                reqs += [Request(sampler=sampler, steps=steps, k=k, is_window=w, temperature=1.0, top_p=cfg.top_p,
                                 seed=cfg.seed, **plain) for k, w in pairs]
                if spec.energy == "ar" and cfg.ar_product:  # the alternative weighting, one setting per T
                    k, w = (DEFAULTS.k, DEFAULTS.is_window) if (DEFAULTS.k, DEFAULTS.is_window) in pairs else pairs[0]
                    reqs.append(Request(sampler=sampler, steps=steps, k=k, is_window=w, temperature=1.0,
                                        top_p=cfg.top_p, seed=cfg.seed, **{**plain, "ar_weighting": "product"}))
    if task == "generate":  # left-to-right baselines: one cell, steps do not apply
        reqs += [Request(sampler=s, steps=1, k=1, is_window=0.0, temperature=1.0, top_p=cfg.top_p, seed=cfg.seed,
                         **plain) for s in cfg.samplers if get_sampler(s).autoregressive]
    return reqs


def _available(bundle: Bundle, req: Request) -> bool:
    """Whether the bundle has what the request's sampler needs (the latency table skips what it lacks)."""
    try:
        energy_for(bundle, req)
    except ValueError:
        return False
    return True


def speedups(cells: list[Cell]) -> list[dict]:
    """For each EDLM cell: the time MDLM needs to reach the same judge perplexity (interpolated in log time
    along MDLM's steps curve) divided by the EDLM time. Empty where MDLM's curve does not reach that quality."""
    out = []
    for task in {c.task for c in cells}:
        mdlm = sorted((c for c in cells if c.task == task and c.sampler == "mdlm"), key=lambda c: c.sec_per_sample)
        for c in cells:
            if c.task != task or not has_energy(c.sampler.partition("+")[0]):
                continue
            t_match = None
            for a, b in zip(mdlm, mdlm[1:]):
                lo, hi = sorted((a.judge_ppl, b.judge_ppl))
                if lo <= c.judge_ppl <= hi and a.judge_ppl != b.judge_ppl:
                    f = (c.judge_ppl - a.judge_ppl) / (b.judge_ppl - a.judge_ppl)
                    t_match = math.exp(math.log(a.sec_per_sample) + f * (math.log(b.sec_per_sample) -
                                                                          math.log(a.sec_per_sample)))
                    break
            if t_match is None and mdlm and c.judge_ppl >= max(m.judge_ppl for m in mdlm):
                t_match = min(m.sec_per_sample for m in mdlm)  # EDLM worse than MDLM's fastest: no speed-up
            out.append({"task": task, "sampler": c.sampler, "steps": c.steps, "k": c.k, "is_window": c.is_window,
                        "edlm_sec": c.sec_per_sample, "mdlm_sec_same_quality": t_match,
                        "speedup": (t_match / c.sec_per_sample) if t_match else None})
    return out


def latency(bundle: Bundle, window: torch.Tensor, repeats: int) -> list[dict]:
    """Issue targets: 64 masked tokens inside a 128-token window, 32 steps, batch 1 (median of `repeats`)."""
    rows = []
    L = window.shape[-1]
    ids = window[:L].clone().unsqueeze(0)
    a, b = L // 4, L // 4 + min(64, L // 2)
    ids[:, a:b] = bundle.tokenizer.mask_token_id
    shipped = Request(**{**default_settings(), "steps": 32})  # the app's default sampler and settings
    plain = dict(steps=32, temperature=1.0, top_p=1.0, **PLAIN)
    runs = [("mdlm", Request(sampler="mdlm", k=1, is_window=0.0, **plain)),
            (f"{variant_name(shipped)} (default)", shipped),
            ("edlm-ar", Request(sampler="edlm-ar", k=8, is_window=0.5, **plain)),
            ("edlm-nce", Request(sampler="edlm-nce", k=8, is_window=0.5, **plain)),
            ("edlm-smc", Request(sampler="edlm-smc", k=4, is_window=0.5, **plain))]
    for name, req in runs:
        if not _available(bundle, req):
            continue
        times = []
        for r in range(repeats + 1):  # the first run warms up
            t0 = time.perf_counter()
            _run_batch(bundle, ids.clone(), dataclasses.replace(req, seed=r))
            times.append(time.perf_counter() - t0)
        rows.append({"sampler": name, "k": req.k, "masked": b - a, "window": L, "steps": 32,
                     "seconds_median": statistics.median(times[1:])})
    return rows


def growth(bundle: Bundle, lengths, batches) -> list[dict]:
    """One denoiser forward (same width and depth as the bundle's, random weights, length up to 1024): seconds
    and peak memory growth against sequence length and batch size."""
    config = bundle.denoiser.config.to_dict() | {"length": max(lengths)}
    if "dropout" in config:
        config["dropout"] = 0.0
    model = fresh_denoiser(config).to(bundle.device).eval()
    rows = []
    for L in lengths:
        for B in batches:
            x = torch.full((B, L), model.config.mask_token_id, device=bundle.device)
            t = torch.ones(B, device=bundle.device)
            with torch.inference_mode():
                model(x, t)  # warm-up
                if torch.cuda.is_available():
                    before = torch.cuda.memory_allocated()
                    torch.cuda.reset_peak_memory_stats()
                dt = float("inf")
                for _ in range(3):  # best of three: the machine's other work only adds time
                    t0 = time.perf_counter()
                    model(x, t)
                    if torch.cuda.is_available():
                        torch.cuda.synchronize()
                    dt = min(dt, time.perf_counter() - t0)
            mem = (torch.cuda.max_memory_allocated() - before) / 2**20 if torch.cuda.is_available() else \
                _cpu_peak_mb(config, L, B)
            rows.append({"length": L, "batch": B, "forward_seconds": dt, "tokens_per_second": B * L / dt,
                         "memory_mb": mem})
    return rows


def fresh_denoiser(config: dict):
    """A randomly initialised denoiser of the architecture and shape a saved config describes (DiT or LLaDA)."""
    from transformers import AutoConfig, AutoModelForMaskedLM

    from . import models  # noqa: F401  (registers the denoisers)

    config = dict(config)
    return AutoModelForMaskedLM.from_config(AutoConfig.for_model(config.pop("model_type"), **config))


_PEAK_CHILD = """
import json, sys, torch
from edlm.bench import fresh_denoiser
def hwm_mb():  # VmHWM belongs to this process image (ru_maxrss would carry the parent's peak across exec)
    return next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM")) / 1024
cfg, L, B = json.loads(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
model = fresh_denoiser(cfg).eval()
x = torch.full((B, L), model.config.mask_token_id)
with torch.inference_mode():
    model(x[:1, :8], torch.ones(1))
    base = hwm_mb()
    model(x, torch.ones(B))
print(hwm_mb() - base)
"""


def _cpu_peak_mb(config: dict, length: int, batch: int) -> float | None:
    """Peak resident-memory growth of one forward on the CPU, measured in a fresh child process."""
    import subprocess
    import sys

    root = str(Path(__file__).resolve().parent.parent)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")])))
    r = subprocess.run([sys.executable, "-c", _PEAK_CHILD, json.dumps(config), str(length), str(batch)],
                       capture_output=True, text=True, env=env, timeout=600)
    try:
        return float(r.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return None


def machine() -> str:
    dev = torch.cuda.get_device_name() if torch.cuda.is_available() else f"CPU ({os.cpu_count()} cores, " \
        f"{torch.get_num_threads()} torch threads)"
    return f"{dev}, torch {torch.__version__}, {platform.python_implementation()} {platform.python_version()}"


def table(cells: list[Cell]) -> str:
    head = "| task | sampler | steps | k | IS window | judge ppl (sd) | entropy | distinct-2 | repeated trigrams | " \
           "mean ESS | s/sample | denoiser / energy passes | forward share |\n" \
           "|---|---|---|---|---|---|---|---|---|---|---|---|---|\n"
    rows = []
    for c in cells:
        d2, rep, ess = (c.extra.get(k) for k in ("distinct2", "repeated_trigrams", "mean_ess"))
        fmt = (lambda v, f: "-" if v is None else format(v, f))  # noqa: E731
        rows.append(f"| {c.task} | {c.sampler} | {c.steps or '-'} | {c.k} | {c.is_window:g} | {c.judge_ppl:.1f} "
                    f"({c.judge_ppl_sd:.1f}) | {c.entropy:.2f} | {fmt(d2, '.3f')} | {fmt(rep, '.3f')} | "
                    f"{fmt(ess, '.2f')} | {c.sec_per_sample:.3f} | {c.denoiser_calls:.0f} / {c.energy_calls:.0f} | "
                    f"{c.forward_share:.0%} |")
    return head + "\n".join(rows)


def figures(cells: list[Cell], out: Path) -> list[str]:
    import plotly.graph_objects as go

    written = []
    for task in sorted({c.task for c in cells}):
        fig = go.Figure()
        groups: dict[str, list[Cell]] = {}
        for c in cells:
            if c.task == task and c.sampler != "reference":
                name = c.sampler if c.sampler in ("mdlm", "ar") else f"{c.sampler} k={c.k} w={c.is_window:g}"
                groups.setdefault(name, []).append(c)
        for name, cs in groups.items():
            cs.sort(key=lambda c: c.sec_per_sample)
            fig.add_trace(go.Scatter(x=[c.sec_per_sample for c in cs], y=[c.judge_ppl for c in cs], name=name,
                                     mode="lines+markers", text=[f"{c.steps} steps" for c in cs]))
        ref = [c for c in cells if c.task == task and c.sampler == "reference"]
        if ref:
            fig.add_hline(y=ref[0].judge_ppl, line_dash="dot", annotation_text="real TEST text")
        fig.update_layout(title=f"{task}: judge perplexity against wall-clock per sample (lower-left is better)",
                          xaxis=dict(title="seconds per sample", type="log"), yaxis=dict(title="judge perplexity"),
                          template="plotly_white", width=900, height=520)
        written += write_figure(fig, out, f"quality_vs_time_{task}")
    return written


def write_figure(fig, out: Path, stem: str) -> list[str]:
    """A Plotly figure as out/stem.html (works offline) and, where kaleido can render, out/stem.png."""
    html = out / f"{stem}.html"
    fig.write_html(html, include_plotlyjs="directory")
    written = [str(html)]
    try:
        fig.write_image(out / f"{stem}.png")
        written.append(str(out / f"{stem}.png"))
    except Exception as e:  # kaleido missing or no browser: HTML only
        print(f"(PNG not written: {type(e).__name__})")
    return written


def energy_table(rows: list[dict]) -> list[str]:
    """Markdown lines for `paired(cells, baseline=None)`: each energy against the same variant without it."""
    if not rows:
        return []
    md = ["\n**The energy on top of the same order**, sample by sample (each EDLM variant against the same unmask "
          "order, remasking and last step without the energy):\n\n| task | sampler | against | steps | judge ppl ratio "
          "| mean log diff (SE) | beats it |\n|---|---|---|---|---|---|---|"]
    md += [f"| {p['task']} | {p['sampler']} | {p['baseline']} | {p['steps']} | {p['ratio']:.3f} | "
           f"{p['mean_diff']:+.3f} ({p['se']:.3f}) | {'yes' if p['beats'] else 'no'} |" for p in rows]
    return md


def run_bench(bundle: Bundle, cfg: BenchConfig, progress=None) -> dict:
    """Run the configured parts; returns the results dictionary (also written under cfg.out)."""
    from tqdm.auto import tqdm

    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    if bundle.judge is None:
        raise ValueError(f"model {bundle.name!r} has no judge model, which the benchmarks need to score samples")
    if next(bundle.judge.parameters()).dtype != torch.float32:  # score every dtype's samples the same way
        import copy

        bundle = dataclasses.replace(bundle, judge=copy.deepcopy(bundle.judge).float())
    L = bundle.window
    test = consecutive_windows(token_stream(bundle.tokenizer, read_split(cfg.corpus, "test")), L, cfg.samples)
    if len(test) < cfg.samples:
        raise ValueError(f"the TEST split has only {len(test)} windows of {L} tokens")
    mask_id = bundle.tokenizer.mask_token_id
    cells: list[Cell] = []
    results: dict = {"machine": machine(), "config": asdict(cfg), "model": bundle.name}
    ppl, per = generative_perplexity(bundle.judge, test, bundle.tokenizer.bos_token_id)
    real = {"distinct2": distinct_n(test, 2), "repeated_trigrams": repeated_trigrams(test, bundle.tokenizer)}
    cells.append(Cell("generate", "reference", 0, samples=len(test), judge_ppl=ppl,
                      judge_ppl_sd=statistics.pstdev(per), entropy=unigram_entropy(test), extra=dict(real)))
    jobs = []
    if "generate" in cfg.parts:
        jobs += [("generate", r) for r in _requests(cfg, "generate")]
    if "infill" in cfg.parts:
        jobs += [("infill", r) for r in _requests(cfg, "infill")]
        cells.append(Cell("infill", "reference", 0, samples=len(test), judge_ppl=ppl,
                          judge_ppl_sd=statistics.pstdev(per), entropy=unigram_entropy(test), extra=dict(real)))
    # Each finished cell is appended to cells.jsonl at once, so a long run that is stopped loses nothing; run
    # the same command again and the cells already there (same settings and sample count) are reused.
    done_path, ident = out / "cells.jsonl", dict(model=bundle.name, dtype=str(next(bundle.denoiser.parameters()).dtype),
                                                 samples_asked=cfg.samples, seed=cfg.seed)
    done = {}
    if done_path.exists():
        for line in done_path.read_text().splitlines():
            rec = json.loads(line)
            if all(rec.get(k) == v for k, v in ident.items()):
                # (a setting added since ran with its PLAIN value)
                given = {k: v for k, v in rec["request"].items() if k in Request.__dataclass_fields__}
                req = asdict(Request(**{**PLAIN, **given}))
                done[(rec["task"], json.dumps(req, sort_keys=True))] = Cell(**rec["cell"])
    for task, req in tqdm(jobs, desc="bench cells"):
        key = (task, json.dumps(asdict(req), sort_keys=True))
        if key in done:
            cells.append(done[key])
            continue
        if cfg.report_only:
            continue
        if task == "generate":
            base = torch.full((cfg.samples, L), mask_id)
        else:
            base = test.clone()
            base[:, L // 4: L // 4 + L // 2] = mask_id  # the middle half of each TEST window
        if get_sampler(req.sampler).autoregressive:
            base = torch.full((cfg.samples, L), mask_id)
        cells.append(run_cell(bundle, task, base, req, cfg))
        with done_path.open("a") as f:
            f.write(json.dumps({"task": task, "request": asdict(req), **ident, "cell": asdict(cells[-1])}) + "\n")
    results["cells"] = [asdict(c) for c in cells]
    results["speedups"] = speedups(cells)
    results["paired"] = paired(cells)
    if "latency" in cfg.parts:
        results["latency"] = latency(bundle, test[0], cfg.latency_repeats)
    if "growth" in cfg.parts:
        results["growth"] = growth(bundle, cfg.lengths, cfg.batches)
    results["energy_gains"] = paired(cells, baseline=None)
    results["frontier"] = frontier(cells)
    md = [f"Machine: {results['machine']}; model: {bundle.name}; {cfg.samples} samples per cell, "
          f"seed {cfg.seed}, top-p {cfg.top_p:g}.\n", table(cells)]
    if results["paired"]:
        md.append("\n**Against mdlm, sample by sample** (same windows and seeds; ratio of judge perplexities, "
                  "and the mean log difference in standard errors; beats = below -2 SE):\n\n"
                  "| task | sampler | steps | judge ppl ratio | mean log diff (SE) | beats mdlm |\n"
                  "|---|---|---|---|---|---|")
        for p in results["paired"]:
            md.append(f"| {p['task']} | {p['sampler']} | {p['steps']} | {p['ratio']:.3f} | {p['mean_diff']:+.3f} "
                      f"({p['se']:.3f}) | {'yes' if p['beats'] else 'no'} |")
    md += energy_table(results["energy_gains"])
    md += frontier_markdown(results["frontier"])
    if results["speedups"]:
        md.append("\n**Speed-up at matched judge perplexity** (MDLM time to reach the same quality / EDLM time, "
                  "energy cost included; -: plain `mdlm`'s steps curve never reaches that perplexity):\n\n"
                  "| task | sampler | steps | k | window | EDLM s | MDLM s | speed-up |\n|---|---|---|---|---|---|---|---|")
        for s in results["speedups"]:
            same, up = s["mdlm_sec_same_quality"], s["speedup"]
            md.append(f"| {s['task']} | {s['sampler']} | {s['steps']} | {s['k']} | {s['is_window']:g} | "
                      f"{s['edlm_sec']:.3f} | {'-' if same is None else f'{same:.3f}'} | "
                      f"{'-' if up is None else f'{up:.2f}x'} |")
    if results.get("latency"):
        md.append("\n**Latency** (64 masked tokens in a 128-token window, 32 steps, batch 1, median):\n\n"
                  "| sampler | k | seconds |\n|---|---|---|")
        md += [f"| {r['sampler']} | {r['k']} | {r['seconds_median']:.3f} |" for r in results["latency"]]
    if results.get("growth"):
        md.append("\n**Cost growth** (one denoiser forward, same width and depth):\n\n| length | batch | seconds | "
                  "tokens/s | memory MB |\n|---|---|---|---|---|")
        for r in results["growth"]:
            mem = "-" if r["memory_mb"] is None else f"{r['memory_mb']:.0f}"
            md.append(f"| {r['length']} | {r['batch']} | {r['forward_seconds']:.4f} | "
                      f"{r['tokens_per_second']:,.0f} | {mem} |")
    text = "\n".join(md)
    (out / "table.md").write_text(text + "\n")
    results["figures"] = figures(cells, out)
    for stem, fig in frontier_figures(cells, results["frontier"]).items():
        results["figures"] += write_figure(fig, out, stem)
    (out / "results.json").write_text(json.dumps(results, indent=1))
    print(text)
    return results
