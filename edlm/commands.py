"""The command-line commands (parsing lives in cli.py)."""
from __future__ import annotations

import json
import sys
from pathlib import Path

from .data import default_corpus  # noqa: E402  (light: the corpus folder shipped with the project)

DEFAULT_CORPUS = default_corpus()


def _settings(args) -> dict:
    from .limits import SETTINGS

    return {st.name: getattr(args, st.name) for st in SETTINGS if getattr(args, st.name) is not None}


def resolved(bundle, settings: dict) -> dict:
    """Every setting as the run will use it: the flags given, then the model's own defaults, then the library's."""
    from dataclasses import asdict

    from .limits import validate
    from .runner import with_bundle_defaults

    return asdict(validate(**with_bundle_defaults(bundle, settings)))


def read_bounded(stream, limit: int, name: str) -> str:
    """UTF-8 text from a binary stream, byte-exact (no newline translation: CRLF stays CRLF), reading at most
    `limit` + 1 characters so an endless or huge input fails fast instead of filling memory."""
    import codecs

    decoder = codecs.getincrementaldecoder("utf-8")()
    chunks, n = [], 0
    while True:
        block = stream.read(1 << 16)
        try:
            text = decoder.decode(block, final=not block)
        except UnicodeDecodeError as e:
            raise ValueError(f"{name} is not UTF-8 text (bad byte at offset {e.start} of a block)") from None
        chunks.append(text)
        n += len(text)
        if n > limit:
            raise ValueError(f"{name} has more than {limit:,} characters; the limit is {limit:,}")
        if not block:
            return "".join(chunks)


def _read_text(args) -> str:
    from .limits import LIMITS

    if args.text is not None:
        return args.text
    if args.text_file == "-":
        return read_bounded(sys.stdin.buffer, LIMITS.max_text_chars, "standard input")
    path = Path(args.text_file)
    if not path.is_file():
        raise FileNotFoundError(f"no such text file: {path}")
    with open(path, "rb") as f:
        return read_bounded(f, LIMITS.max_text_chars, f"text file {path}")


def _step_record(ev) -> dict:
    rec = {"step": ev.step, "total_steps": ev.total_steps, "t": round(ev.t, 6), "text": ev.text,
           "masked": ev.masked, "window": ev.window, "denoiser_calls": ev.denoiser_calls,
           "energy_calls": ev.energy_calls, "ar_calls": ev.ar_calls, "remasked": ev.remasked,
           "seconds": round(ev.elapsed, 4)}
    if ev.is_step:
        rec.update(weights=ev.weights, log_weights=ev.log_weights, ess=ev.ess, chosen=ev.chosen,
                   candidates=ev.candidates)
    return rec


def _final_record(ev, settings: dict) -> dict:
    return {"final": True, "text": ev.text, "spans": ev.spans, "steps": ev.step, "seconds": round(ev.elapsed, 4),
            "sampler": settings["sampler"], "seed": settings["seed"], "k": settings["k"],
            "lengths": ev.lengths, "length_scores": {str(k): v for k, v in ev.length_scores.items()},
            "denoiser_calls": ev.denoiser_calls, "energy_calls": ev.energy_calls, "ar_calls": ev.ar_calls,
            "ended_early": ev.ended_early}


def infill(args) -> int:
    from .limits import validate
    from .spans import parse

    text, settings = _read_text(args), _settings(args)
    validate(**settings)
    parse(text)  # fail fast on bad input, before importing or loading any model
    from tqdm.auto import tqdm

    from .pipeline import infill_stream
    from .presets import load_bundle
    bundle = load_bundle(args.model, device=args.device, dtype=args.dtype, energy=getattr(args, "energy", None),
                         sampler=settings.get("sampler"))
    settings = resolved(bundle, settings)
    bar = None if args.stream else tqdm(total=settings["steps"], desc=settings["sampler"], file=sys.stderr,
                                        leave=False, disable=args.json or not sys.stderr.isatty())
    last = None
    for ev in infill_stream(bundle, text, **settings):
        last = ev
        if args.stream:
            print(json.dumps(_step_record(ev)) if args.json else
                  f"[{ev.step}/{ev.total_steps}] masked={ev.masked} {ev.text}", flush=True)
        elif bar is not None:
            bar.total = ev.total_steps
            bar.update(1)
    if bar is not None:
        bar.close()
    if args.json:
        print(json.dumps(_final_record(last, settings)))
    else:
        print(last.text)
    return 0


def generate(args) -> int:
    from .limits import validate

    settings = _settings(args)
    validate(**settings)
    if args.source is not None:
        return from_keywords(args, settings)
    if args.orders is not None:
        raise ValueError("--orders goes with --source (the keywords whose orders are tried)")
    if args.length is None:
        raise ValueError("give --length (tokens to generate), or --source (keywords to write a sentence from)")
    from .pipeline import generate as run
    from .presets import load_bundle
    bundle = load_bundle(args.model, device=args.device, dtype=args.dtype, energy=getattr(args, "energy", None),
                         sampler=settings.get("sampler"))
    from .pipeline import generation_settings

    settings = resolved(bundle, generation_settings(bundle, settings))
    events = run(bundle, args.length, prefix=args.prefix, num_samples=args.num_samples, **settings)
    for i, ev in enumerate(events):
        if args.json:
            print(json.dumps({"sample": i, "text": ev.text, "generated": ev.spans[0], "steps": ev.step,
                              "seconds": round(ev.elapsed, 4), "sampler": settings["sampler"]}))
        else:
            print(ev.text + ("\n" if i + 1 < len(events) else ""))
    return 0


def from_keywords(args, settings: dict) -> int:
    """`generate --source`: a sentence that uses the given keywords (edlm.keywords)."""
    from .keywords import ORDERS, coverage, from_keywords as write, orders_of, parse_keywords

    keywords = parse_keywords(args.source)  # fail fast on bad input, before loading any model
    orders = ORDERS if args.orders is None else args.orders
    orders_of(keywords, orders, 0)
    if args.length is not None or args.num_samples != 1:
        raise ValueError("with --source the sentence's length follows the keywords: leave out --length and "
                         "--num-samples")
    from .presets import load_bundle

    bundle = load_bundle(args.model, device=args.device, dtype=args.dtype, energy=getattr(args, "energy", None),
                         sampler=settings.get("sampler"))
    settings = resolved(bundle, settings)
    out = write(bundle, args.source, orders=orders, **settings)
    if args.json:
        print(json.dumps({"text": out.text, "keywords": out.keywords, "order": out.order,
                          "coverage": coverage(out.keywords, out.text), "tried": out.tried,
                          "seconds": round(out.seconds, 4), "sampler": settings["sampler"], "seed": settings["seed"]}))
    else:
        print(out.text)
    return 0


def _work_file(output: str) -> Path:
    """Where augment writes while it runs: the output itself, or for X.parquet the resumable X.parquet.jsonl that
    is converted when the run (and the merge of its shards) is done."""
    target = Path(output)
    return target.with_name(target.name + ".jsonl") if target.suffix.lower() == ".parquet" else target


def augment(args) -> int:
    from .augment import AugmentConfig, parse_keep, run_file
    from .limits import validate
    from .presets import load_bundle

    settings = _settings(args)
    validate(**settings)
    cfg = AugmentConfig(n=args.n, rewrite=args.rewrite, span_mean=args.span_mean, unit=args.unit,
                        keep=parse_keep(args.keep), keep_regex=args.keep_regex, min_score=args.min_score,
                        batch_size=args.batch_size, seed=settings.pop("seed", 0), settings=settings)
    cfg.check()
    if args.merge:
        from .tables import merge_shards

        target, work = Path(args.output), _work_file(args.output)
        count = merge_shards(work, args.merge)
        if work != target:
            from .tables import jsonl_to_parquet

            jsonl_to_parquet(work, target)
        print(json.dumps({"merged": count, "output": args.output}) if args.json else
              f"merged {count} records from {args.merge} shards into {args.output}")
        return 0
    if not args.input:
        raise ValueError("augment needs --input (or --merge N to join shards)")
    from .tables import is_dataset_spec, parse_shard, shard_path

    if not Path(args.input).exists() and not is_dataset_spec(args.input):
        raise FileNotFoundError(f"no such input file: {args.input}")

    shard = parse_shard(args.shard)
    target, work = Path(args.output), _work_file(args.output)
    as_parquet = work != target
    if as_parquet and target.exists():
        raise ValueError(f"{target} exists: choose another output file")
    out = shard_path(work, *shard) if shard else work
    bundle = load_bundle(args.model, device=args.device, dtype=args.dtype, energy=getattr(args, "energy", None))
    try:
        report = run_file(bundle, args.input, out, cfg, fmt=args.format, field_name=args.field,
                          column=args.column, resume=args.resume, progress=not args.json and sys.stderr.isatty(),
                          shard=shard)
    except KeyboardInterrupt:
        raise ValueError(f"interrupted: {out} holds every finished record; rerun with --resume") from None
    main = True
    if shard and args.shard == "auto":  # under accelerate launch: the main process joins the shards
        from .tables import process_state

        state = process_state()
        state.wait_for_everyone()
        main = state.is_main_process
        if main:
            from .tables import merge_shards

            report["merged"] = merge_shards(work, shard[1])
    if as_parquet and main and (not shard or args.shard == "auto"):
        from .tables import jsonl_to_parquet

        report["parquet_rows"] = jsonl_to_parquet(work, target)
    print(json.dumps(report) if args.json else "\n".join(f"{k:28s} {v}" for k, v in report.items()))
    return 0


def figures(bundle, corpus: str, split: str, windows: int, mc_draws: int, seed: int,
            nce_levels: list[float] = (0.2, 0.5, 0.8)) -> dict:
    """A bundle's perplexities on a corpus split: the denoiser's ELBO bound, the AR model's and the judge's on
    the same windows, and the NCE energy's accuracy per noise level (the parts it has)."""
    import torch

    from .data import consecutive_windows, read_split, token_stream
    from .evaluate import ar_perplexity, elbo_perplexity, nce_accuracy

    stream = token_stream(bundle.tokenizer, read_split(corpus, split))
    windows = consecutive_windows(stream, bundle.window, limit=windows)
    torch.manual_seed(seed)
    # The continuous process's loss is the x0 cross-entropy at its training noising (the rounding loss), not a bound
    bound = bundle.process != "continuous"
    key = "denoiser_elbo_ppl" if bound else "denoiser_rounding_ppl"
    res = {"split": split, "windows": len(windows), "window_tokens": bundle.window,
           "mc_draws": mc_draws, key: elbo_perplexity(bundle.denoiser, windows, mc_draws, seed)}
    bos = bundle.tokenizer.bos_token_id
    if bundle.ar is not None:
        res["ar_ppl"] = ar_perplexity(bundle.ar, windows, bos)
        if bound:
            res["ratio_denoiser_to_ar"] = res["denoiser_elbo_ppl"] / res["ar_ppl"]
    if bundle.judge is not None:
        res["judge_ppl"] = ar_perplexity(bundle.judge, windows, bos)
    if bundle.nce is not None:
        res["nce_accuracy"] = {str(k): v for k, v in
                               nce_accuracy(bundle.nce, bundle.denoiser, windows, list(nce_levels), seed).items()}
    return res


def bundle(args) -> int:
    """Assemble a bundle folder the Hub understands: the parts as float16 safetensors, the manifest, and a model
    card with the TEST figures (unless --eval-windows 0)."""
    import torch

    from .bundle import export_bundle, load_folder
    from .share import model_card

    parts = {part: getattr(args, part) for part in ("tokenizer", "denoiser", "ar", "judge", "nce")
             if getattr(args, part)}
    for part, folder in parts.items():
        if not Path(folder).is_dir():
            raise FileNotFoundError(f"--{part}: no such folder {folder}")
    out = Path(args.out)
    if out.exists() and any(out.iterdir()):
        raise ValueError(f"{out} exists and is not empty: choose a new folder")
    export_bundle(parts, out, dtype=torch.float16)
    res = {}
    if args.eval_windows:
        res = figures(load_folder(out, name=args.name), args.corpus or DEFAULT_CORPUS, "test", args.eval_windows, 4, 0)
    (out / "README.md").write_text(model_card(out, args.name or out.name, res), encoding="utf-8")
    print(json.dumps({"bundle": str(out), **res}) if args.json else f"bundle written to {out}")
    return 0


def push(args) -> int:
    from .share import push_bundle

    url = push_bundle(args.folder, args.repo, private=args.private)
    print(json.dumps({"pushed": args.folder, "url": url}) if args.json else f"pushed {args.folder} to {url}")
    return 0


def eval(args) -> int:  # noqa: A001 (the command is called eval)
    from .presets import load_bundle

    bundle = load_bundle(args.model, device=args.device)
    if args.no_self_conditioning:
        bundle.denoiser.config.self_conditioning = False
    res = figures(bundle, args.corpus or DEFAULT_CORPUS, args.split, args.windows, args.mc_draws, args.seed,
                  [float(x) for x in args.nce_levels.split(",")])
    if args.json:
        print(json.dumps(res))
    else:
        for key, value in res.items():
            print(f"{key:24s} {value:.4f}" if isinstance(value, float) else f"{key:24s} {value}")
    return 0




def bench(args) -> int:
    from .bench import PRESETS, BenchConfig, run_bench
    from .presets import load_bundle

    preset = dict(PRESETS[args.preset])
    if args.samples is not None:
        preset.update(samples=args.samples, batch=min(preset["batch"], args.samples))
    if args.steps:
        preset.update(steps=tuple(int(s) for s in args.steps.split(",")))
    if args.top_p is not None:
        if not 0.0 < args.top_p <= 1.0:
            raise ValueError(f"--top-p must be in (0, 1], got {args.top_p}")
        preset["top_p"] = args.top_p
    if args.variants:
        preset["variants"] = tuple(v.strip() for v in args.variants.split(",") if v.strip())
    cfg = BenchConfig(corpus=str(args.corpus or DEFAULT_CORPUS), out=args.out, seed=args.seed, report_only=args.report,
                      parts=tuple(p.strip() for p in args.parts.split(",") if p.strip()), **preset)
    from .bundle import pick_device, resolve_dtype

    dtype = resolve_dtype(args.dtype, pick_device(args.device))  # one precision for every cell: the device's pick
    bundle = load_bundle(args.model, device=args.device, dtype=dtype, energy=getattr(args, "energy", None))
    if args.no_self_conditioning:
        bundle.denoiser.config.self_conditioning = False
    run_bench(bundle, cfg)
    return 0
