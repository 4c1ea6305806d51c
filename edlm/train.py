"""One training loop for the three networks (denoiser, AR LM, NCE energy), built on `accelerate`.

The same command runs on a CPU, one GPU, or many GPUs/nodes under `accelerate launch`. Checkpoints are written
every `save_every` steps (and when the time budget runs out) and a rerun of the same command resumes from the last.
"""
from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from .data import consecutive_windows, random_windows, read_split, token_stream
from .noise import add_noise, get_schedule, sample_times
from .processes import MASKED, process_for
from .tokenizer import load_tokenizer

KINDS = ("denoiser", "ar", "nce")
log = logging.getLogger(__name__)


@dataclass
class TrainConfig:
    kind: str
    out_dir: str
    corpus: str
    tokenizer: str | None  # None: a denoiser with init_ar uses that causal LM's tokenizer
    denoiser: str | None = None  # NCE: the trained denoiser that draws the negatives (and the start, unless init_from)
    seq_len: int = 128
    batch_size: int = 32
    lr: float = 1e-3
    min_lr_ratio: float = 0.1
    warmup_steps: int = 100
    max_steps: int = 2000
    max_minutes: float | None = None
    stop_at: int | None = None       # end the run at this step; the lr schedule still spans max_steps
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    eval_every: int = 250
    eval_batches: int = 8
    save_every: int = 250
    seed: int = 0
    mixed_precision: str = "auto"  # "auto" (bf16 where the hardware computes it, else none) | "no" | "bf16" | "fp16"
    hidden_size: int = 256
    n_layers: int = 4
    n_heads: int = 4
    dropout: float = 0.0
    time_conditioning: bool = False
    process: str = "absorbing"       # denoiser: the noise process, absorbing (masked) or uniform
    self_conditioning: bool = False  # denoiser: feed the previous x0 prediction back as an input
    self_cond_prob: float = 0.5      # share of training batches that get a self-conditioning input
    spindle_lambda: float = 0.25     # denoiser, process spindle: the schedule's strength (edlm.spindle)
    unroll: int = 1                  # denoiser: > 1 adds SUNDAE-style unrolled steps (see Objective.unrolled)
    init_from: str | None = None     # warm start: a saved model folder of the same kind (new layers start at zero)
    arch: str = "dit"                # denoiser network: "dit" (adaLN DiT) or "llama" (bidirectional Llama, shifted)
    init_ar: str | None = None       # denoiser, arch llama: start from this causal LM's weights (AR init): a trained
    #                                  AR folder of this project, or any `edlm.hub.load_causal_lm` name (`smollm2`)
    lora: int = 0                    # denoiser, arch llama: train LoRA adapters of this rank, the rest frozen (0: all)
    anneal_steps: int = 0            # denoiser, arch llama: attention from causal to bidirectional over these steps
    ema_decays: tuple[float, ...] = ()  # EMA copies of the weights, each scored on validation; the best is kept
    extra: dict = field(default_factory=dict)


def build_model(cfg: TrainConfig, tokenizer):
    """A fresh network of the configured kind (the NCE energy starts from a DiT denoiser or a trained energy)."""
    model = _build_model(cfg, tokenizer)
    if cfg.kind == "denoiser" and cfg.process == "spindle":
        from .spindle import attach_spindle

        counts = torch.bincount(token_stream(tokenizer, read_split(cfg.corpus, "train")),
                                minlength=len(tokenizer))
        attach_spindle(model.config, counts, cfg.spindle_lambda, tuple(tokenizer.all_special_ids))
    return model


def _build_model(cfg: TrainConfig, tokenizer):
    from .models import DenoiserModel, DiTConfig
    from .models.ar import new_ar_model

    if cfg.kind == "denoiser" and cfg.arch == "llama":
        return build_llama_denoiser(cfg, tokenizer)
    if cfg.lora or cfg.anneal_steps:
        raise ValueError("--lora and --anneal-steps are for a denoiser with --arch llama")
    if cfg.init_ar:
        raise ValueError("--init-ar starts a denoiser with --arch llama from an AR model")
    if cfg.kind == "denoiser":
        if cfg.arch != "dit":
            raise ValueError(f"unknown denoiser architecture {cfg.arch!r}; choose dit or llama")
        from .processes import PROCESSES

        if cfg.process not in PROCESSES:
            raise ValueError(f"unknown noise process {cfg.process!r}: choose one of {', '.join(PROCESSES)}")
        if cfg.process in ("uniform", "continuous") and cfg.self_conditioning:
            raise ValueError("self-conditioning is for the absorbing process only (its input marks visible tokens)")
        continuous = cfg.process == "continuous"
        model = DenoiserModel(DiTConfig(
            vocab_size=len(tokenizer), hidden_size=cfg.hidden_size, n_blocks=cfg.n_layers, n_heads=cfg.n_heads,
            dropout=cfg.dropout, length=cfg.seq_len, mask_token_id=tokenizer.mask_token_id,
            # the noise level is not visible in the input of these processes
            time_conditioning=cfg.time_conditioning or cfg.process in ("uniform", "continuous"),
            self_conditioning=cfg.self_conditioning, process=cfg.process,
            schedule="logsnr" if continuous else "loglinear"))
        if cfg.init_from:
            warm_start(model, cfg.init_from)
        if continuous:  # the space is the (warm-started) token table; points enter through a fitted projection
            model.backbone.fit_in_proj()
        return model
    if cfg.kind == "ar":
        model = new_ar_model(vocab_size=len(tokenizer), bos_token_id=tokenizer.bos_token_id,
                             eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
                             hidden_size=cfg.hidden_size, n_layers=cfg.n_layers, n_heads=cfg.n_heads,
                             max_length=cfg.seq_len + 1)
        if cfg.init_from:
            warm_start(model, cfg.init_from)
        return model
    if cfg.kind == "nce":
        if not cfg.denoiser:
            raise ValueError("training the NCE energy needs --denoiser (a trained denoiser folder)")
        return start_energy(cfg.init_from or cfg.denoiser)
    raise ValueError(f"unknown kind {cfg.kind!r}; choose one of {KINDS}")


def start_energy(folder: str):
    """The NCE energy's starting point: a saved energy (to fine-tune it on another denoiser's samples) or a DiT
    denoiser (its trunk). The energy is a DiT, so a denoiser of another architecture cannot be its start."""
    from .bundle import read_json
    from .models import DenoiserModel, DiTConfig, EnergyConfig, EnergyModel

    kind = read_json(Path(folder) / "config.json").get("model_type")
    if kind == EnergyConfig.model_type:
        return EnergyModel.from_pretrained(folder, use_safetensors=True, dtype=torch.float32)  # float16 exports too
    if kind == DiTConfig.model_type:
        return EnergyModel.from_denoiser(DenoiserModel.from_pretrained(folder, use_safetensors=True,
                                                                       dtype=torch.float32))
    raise ValueError(f"the NCE energy starts from a DiT denoiser or a trained energy, and {folder} holds a "
                     f"{kind!r} model: give --init a DiT denoiser or energy folder (--denoiser may be any masked "
                     "denoiser: it draws the negatives)")


def build_llama_denoiser(cfg: TrainConfig, tokenizer):
    """A masked-diffusion denoiser with a causal LM's architecture, made bidirectional (DiffuLLaMA / Dream): either
    from a trained AR model of this project (`init_ar`) or freshly initialised at the same size (the control)."""
    from .models.ar import new_ar_model
    from .models.llada import from_causal_lm

    if cfg.self_conditioning or cfg.time_conditioning or cfg.process not in MASKED:
        raise ValueError("the llama denoiser is masked diffusion only, without self- or time-conditioning")
    if cfg.init_ar:
        from .hub import load_causal_lm

        ar, _ = load_causal_lm(cfg.init_ar, dtype=torch.float32)
        # the tokenizer may add "[MASK]" after the model's own vocabulary (from_causal_lm adds its row)
        if ar.config.vocab_size not in (len(tokenizer), tokenizer.mask_token_id) or \
                ar.config.bos_token_id != tokenizer.bos_token_id:
            raise ValueError(f"the AR model in {cfg.init_ar} was trained with another tokenizer (vocabulary "
                             f"{ar.config.vocab_size}, this one {len(tokenizer)})")
    else:  # the control: a freshly initialised AR network of the same size, so both arms are one architecture
        ar = new_ar_model(vocab_size=len(tokenizer), bos_token_id=tokenizer.bos_token_id,
                          eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
                          hidden_size=cfg.hidden_size, n_layers=cfg.n_layers, n_heads=cfg.n_heads,
                          max_length=cfg.seq_len + 1)
    model = from_causal_lm(ar, tokenizer.mask_token_id, cfg.seq_len)
    if cfg.init_from and not cfg.lora:
        warm_start(model, cfg.init_from)
    if cfg.lora:
        from .adapters import load_adapter, with_lora

        model = with_lora(model, cfg.lora)
        if cfg.init_from:  # an adapter folder (e.g. the shipped assets/general-diffusion): train on from it
            saved = json.loads((Path(cfg.init_from) / "adapter_config.json").read_text())
            if (saved.get("r"), saved.get("lora_alpha")) != (cfg.lora, 2 * cfg.lora):
                raise ValueError(f"the adapter in {cfg.init_from} has rank {saved.get('r')} (alpha "
                                 f"{saved.get('lora_alpha')}), not --lora {cfg.lora} (alpha {2 * cfg.lora})")
            load_adapter(model, cfg.init_from)
    return model


def training_tokenizer(cfg: TrainConfig):
    """The tokenizer folder `cfg.tokenizer`; without one, a denoiser started from an outside causal LM (`init_ar`)
    uses that model's own tokenizer with "[MASK]" added."""
    if cfg.tokenizer:
        return load_tokenizer(cfg.tokenizer)
    if cfg.kind == "denoiser" and cfg.init_ar:
        from .hub import load_causal_lm, with_mask_token

        return with_mask_token(load_causal_lm(cfg.init_ar, dtype=torch.float32)[1])
    raise ValueError("--tokenizer is required to train a network (a denoiser with --init-ar may use its model's)")


def set_future_share(model: torch.nn.Module, share: float) -> None:
    """Attention-mask annealing: how much of the future each query of a Llama denoiser sees (1 = bidirectional)."""
    for m in model.modules():
        if hasattr(type(m), "future_share"):
            m.future_share = share


def warm_start(model: torch.nn.Module, folder: str) -> None:
    """Copy the weights of a saved model (safetensors) into `model` by name and shape; parameters the saved model
    lacks (e.g. a new self-conditioning projection) keep their initialisation; a saved self-conditioning input the
    model does not take is left out. Any other unknown name or mismatched shape is an error."""
    from safetensors.torch import load_file

    path = Path(folder) / "model.safetensors"
    if not path.is_file():
        raise FileNotFoundError(f"no model.safetensors in the warm-start folder {folder}")
    saved, own = load_file(str(path)), model.state_dict()
    bad = [k for k, v in saved.items() if k in own and own[k].shape != v.shape]
    if bad:
        raise ValueError(f"warm start from {folder}: shapes differ for {bad[:3]}")
    optional = [k for k in saved if k not in own and ".self_cond_proj." in f".{k}"]
    if optional:  # an input this model does not take (a uniform denoiser has no self-conditioning): left out
        log.info("warm start from %s: leaving out %s (this model has no such input)", folder, optional)
        saved = {k: v for k, v in saved.items() if k not in optional}
    unknown = [k for k in saved if k not in own]
    if unknown:
        raise ValueError(f"warm start from {folder}: this model has no {unknown[:3]}")
    model.load_state_dict({k: v.to(own[k].dtype) for k, v in saved.items()}, strict=False)


class EMA:
    """Exponential moving averages of the weights, one float32 copy per decay (MDLM samples with its EMA)."""

    def __init__(self, model: torch.nn.Module, decays: tuple[float, ...], warmup: bool = True):
        self.decays, self.warmup = tuple(decays), warmup
        self.params = [p for p in model.parameters()]
        self.shadows = [[p.detach().float().clone() for p in self.params] for _ in self.decays]

    @torch.no_grad()
    def update(self, step: int) -> None:
        for decay, shadow in zip(self.decays, self.shadows):
            # Warm-up for a fresh network: early averages do not cling to its random start. A warm start begins
            # from trained weights, which are a fair average already.
            d = min(decay, (1 + step) / (10 + step)) if self.warmup else decay
            torch._foreach_lerp_(shadow, [p.detach().float() for p in self.params], 1.0 - d)

    @torch.no_grad()
    def swap(self, i: int) -> None:
        """Exchange the live weights with EMA copy i (call again to swap back)."""
        for p, s in zip(self.params, self.shadows[i]):
            live = p.detach().float().clone()
            p.copy_(s.to(p.dtype))
            s.copy_(live)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {f"{i}.{j}": s for i, shadow in enumerate(self.shadows) for j, s in enumerate(shadow)}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        for i, shadow in enumerate(self.shadows):
            for j, s in enumerate(shadow):
                s.copy_(state[f"{i}.{j}"])


class Objective:
    """The loss of each kind on a batch of clean windows x0 [B, L]; `metrics` for validation."""

    def __init__(self, cfg: TrainConfig, tokenizer, device, schedule: str = "loglinear"):
        self.kind = cfg.kind
        self.mask_id = tokenizer.mask_token_id
        self.bos_id = tokenizer.bos_token_id
        self.schedule = get_schedule(schedule)  # the model's own schedule (its config says which)
        self.self_cond_prob = cfg.self_cond_prob if cfg.self_conditioning else 0.0
        self.unroll = cfg.unroll
        if cfg.unroll < 1:
            raise ValueError(f"--unroll counts denoising passes per window and must be >= 1, not {cfg.unroll}")
        self.sampler_denoiser = None
        if cfg.kind == "nce":
            from transformers import AutoModelForMaskedLM

            from . import models  # noqa: F401  (registers the denoisers with the Auto classes)

            self.sampler_denoiser = AutoModelForMaskedLM.from_pretrained(
                cfg.denoiser, use_safetensors=True, trust_remote_code=False, dtype=torch.float32).to(device).eval()
            self.schedule = get_schedule(self.sampler_denoiser.config.schedule)

    def loss(self, model, x0: torch.Tensor, gen: torch.Generator) -> tuple[torch.Tensor, dict]:
        if self.kind == "denoiser":
            network = getattr(model, "module", model)  # under accelerate's distributed wrapper
            process = process_for(network.config, model=network)
            t = sample_times(x0.shape[0], gen, device=x0.device)
            x_t = process.add_noise(x0, t, gen)
            self_cond = None
            if self.self_cond_prob > 0 and (not model.training or
                                            float(torch.rand((), generator=gen)) < self.self_cond_prob):
                # Self-conditioning: the network's own first prediction, without gradient (always on at eval).
                with torch.no_grad():
                    self_cond = model(x_t, t, self_cond=None).logits.exp()
            log_probs = model(x_t, t, self_cond=self_cond).logits
            loss = process.loss(log_probs, x0, x_t, t).mean()
            if self.unroll == 1:
                return loss, {"nelbo": loss.item()}
            unrolled = self.unrolled(model, process, log_probs, x0, x_t, t, gen)
            return (loss + unrolled * (self.unroll - 1)) / self.unroll, {"nelbo": loss.item(),
                                                                         "unrolled": unrolled.item()}
        if self.kind == "ar":
            inp = torch.cat([torch.full_like(x0[:, :1], self.bos_id), x0], 1)
            logits = model(input_ids=inp[:, :-1]).logits
            loss = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), x0.reshape(-1))
            return loss, {"nll": loss.item()}
        return self.nce_loss(model, x0, gen)

    def unrolled(self, model, process, log_probs, x0, x_t, t, gen) -> torch.Tensor:
        """SUNDAE's unrolled denoising (Savinov et al. 2022) in this process's terms: from x_t, take the sampler's
        reverse steps t -> ... -> t / unroll with the model's own drawn x0 (no gradient through the draws), and
        score the model's prediction of the real x0 from each state it reached by cross-entropy over every
        position, as SUNDAE does. The model so learns to correct the plausible mistakes its own steps leave,
        which fresh noise never shows it. (Not the ELBO: its weights assume states drawn from q(x_s | x_0) and
        blow up on the model's own, many more of whose tokens are wrong; tried first, it was 10-15x the ELBO and
        set the ELBO back.) Returns the mean over the unrolled states."""
        if not hasattr(process, "unroll_step"):
            raise ValueError(f"--unroll needs a process with a batched reverse step; {process.name!r} has none "
                             "(built for the uniform process, whose every position stays open to correction)")
        losses, x, now = [], x_t, t
        for k in range(1, self.unroll):
            then = t * (1.0 - k / self.unroll)
            with torch.no_grad():
                probs = log_probs.detach().float().exp().view(-1, log_probs.shape[-1])
                drawn = torch.multinomial(probs, 1, generator=gen).view_as(x0)
                x = process.unroll_step(x, drawn, now, then, gen)
            log_probs = model(x, then).logits
            losses.append(F.cross_entropy(log_probs.float().flatten(0, 1), x0.flatten()))
            now = then
        return torch.stack(losses).mean()

    def nce_loss(self, model, x0, gen):
        """Real x0 vs x0 drawn from the denoiser for the same x_t: -[log s(-E_pos) + log s(E_neg)]."""
        t = sample_times(x0.shape[0], gen, device=x0.device)
        x_t = add_noise(x0, t, self.mask_id, self.schedule, gen)
        with torch.no_grad():
            probs = self.sampler_denoiser(x_t, t).logits.float().exp()
            neg = torch.multinomial(probs.view(-1, probs.shape[-1]), 1, generator=gen).view_as(x0)
        energies = model(torch.cat([x0, neg]), torch.cat([x_t, x_t]), torch.cat([t, t])).logits
        e_pos, e_neg = energies.chunk(2)
        loss = -(F.logsigmoid(-e_pos) + F.logsigmoid(e_neg)).mean()
        acc = ((e_pos < 0).float().mean() + (e_neg > 0).float().mean()).item() / 2
        return loss, {"nce": loss.item(), "acc": acc}


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Linear warm-up, then cosine decay to min_lr_ratio * lr."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    progress = min(1.0, (step - cfg.warmup_steps) / max(1, cfg.max_steps - cfg.warmup_steps))
    return cfg.lr * (cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))


def resolve_precision(name: str) -> str:
    """`auto`: bf16 autocast on a GPU and on a CPU with native bfloat16 arithmetic, none elsewhere (a CPU without it
    emulates bf16: one SmolLM2 LoRA step took 378 s there against about 10 s in float32). Otherwise the name."""
    if name != "auto":
        return name
    from .bundle import cpu_computes_bfloat16
    return "bf16" if torch.cuda.is_available() or cpu_computes_bfloat16() else "no"


def train(cfg: TrainConfig) -> Path:
    """Train (or resume) and return the folder of the best model by validation loss."""
    from accelerate import Accelerator
    from tqdm.auto import tqdm

    acc = Accelerator(mixed_precision=resolve_precision(cfg.mixed_precision))
    out = Path(cfg.out_dir)
    ckpt_dir, best_dir = out / "checkpoint", out / "best"
    tokenizer = training_tokenizer(cfg)
    torch.manual_seed(cfg.seed)
    model = build_model(cfg, tokenizer)
    schedule = getattr(model.config, "schedule", "loglinear")
    train_stream = token_stream(tokenizer, read_split(cfg.corpus, "train"))
    val_windows = consecutive_windows(token_stream(tokenizer, read_split(cfg.corpus, "validation")), cfg.seq_len,
                                      limit=cfg.eval_batches * cfg.batch_size)
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]  # (LoRA: the adapters only)
    decayed = [p.ndim >= 2 and "embed" not in n and ".wte." not in n for n, p in named]
    decay = [p for (_, p), d in zip(named, decayed) if d]
    no_decay = [p for (_, p), d in zip(named, decayed) if not d]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr, betas=(0.9, 0.98))
    model, opt = acc.prepare(model, opt)
    objective = Objective(cfg, tokenizer, acc.device, schedule=schedule)
    ema = EMA(acc.unwrap_model(model), cfg.ema_decays, warmup=cfg.init_from is None) if cfg.ema_decays else None

    state = {"step": 0, "best_val": float("inf"), "tokens": 0, "seconds": 0.0}
    if (ckpt_dir / "state.json").exists():
        acc.load_state(str(ckpt_dir))
        state = json.loads((ckpt_dir / "state.json").read_text())
        if ema is not None:
            from safetensors.torch import load_file

            ema.load_state_dict(load_file(str(ckpt_dir / "ema.safetensors")))
        acc.print(f"resumed from step {state['step']}")
    # One stream of randomness per step: resuming continues the same data order.
    gen = torch.Generator().manual_seed(cfg.seed * 1_000_003 + state["step"] + acc.process_index)

    def evaluate() -> dict:
        model.eval()
        set_future_share(model, 1.0)  # validation scores the denoiser the samplers run
        eval_gen = torch.Generator().manual_seed(1234)
        sums: dict[str, float] = {}
        with torch.no_grad(), acc.autocast():
            batches = val_windows.split(cfg.batch_size)
            for x0 in batches:
                _, m = objective.loss(model, x0.to(acc.device), eval_gen)
                for k, v in m.items():
                    sums[k] = sums.get(k, 0.0) + v / len(batches)
        model.train()
        return sums

    def evaluate_all() -> tuple[dict, str]:
        """Validation of the live weights and of each EMA copy; returns (metrics by name, best name)."""
        results = {"live": evaluate()}
        for i, decay in enumerate(ema.decays if ema else ()):
            ema.swap(i)
            results[f"ema{decay:g}"] = evaluate()
            ema.swap(i)
        key = next(iter(results["live"]))
        return results, min(results, key=lambda name: results[name][key])

    def save(dst: Path, with_state: bool, weights: str = "live"):
        acc.wait_for_everyone()
        if with_state:
            acc.save_state(str(dst))
            (dst / "state.json").write_text(json.dumps(state))
            if ema is not None:
                from safetensors.torch import save_file

                save_file(ema.state_dict(), str(dst / "ema.safetensors"))
        swap = weights != "live"
        if swap:
            ema.swap([f"ema{d:g}" for d in ema.decays].index(weights))
        if acc.is_main_process:
            unwrapped = acc.unwrap_model(model)
            unwrapped.save_pretrained(dst / "model", safe_serialization=True)
            tokenizer.save_pretrained(dst / "model")
            if cfg.lora:  # an adapter folder: say which causal LM it adapts
                from .adapters import write_base

                write_base(dst / "model", cfg.init_ar, tokenizer.mask_token_id, cfg.seq_len)
            (dst / "train_config.json").write_text(json.dumps(asdict(cfg) | {"weights": weights}, indent=2))
        if swap:
            ema.swap([f"ema{d:g}" for d in ema.decays].index(weights))

    out.mkdir(parents=True, exist_ok=True)
    log = open(out / "log.jsonl", "a") if acc.is_main_process else None
    if state["step"] == 0 and cfg.init_ar:  # the learning curve starts where the causal LM stands
        vals, best_name = evaluate_all()
        record = {"step": 0, "tokens": 0, "seconds": 0.0, "val": vals[best_name], "weights": best_name}
        if log:
            log.write(json.dumps(record) + "\n")
            log.flush()
        acc.print(json.dumps(record))
    model.train()
    start = time.time() - state["seconds"]
    bar = tqdm(total=cfg.max_steps, initial=state["step"], disable=not acc.is_main_process, desc=f"train {cfg.kind}")
    spent = (cfg.max_minutes is not None and state["seconds"] > 60 * cfg.max_minutes) or \
        (cfg.stop_at is not None and state["step"] >= cfg.stop_at)  # a finished run: nothing to do
    while state["step"] < cfg.max_steps and not spent:
        step = state["step"]
        for g in opt.param_groups:
            g["lr"] = lr_at(step, cfg)
        x0 = random_windows(train_stream, cfg.batch_size, cfg.seq_len, gen).to(acc.device)
        if cfg.anneal_steps:
            set_future_share(model, min(1.0, step / cfg.anneal_steps))
        with acc.autocast():
            loss, metrics = objective.loss(model, x0, gen)
        acc.backward(loss)
        acc.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        opt.zero_grad(set_to_none=True)
        if ema is not None:
            ema.update(step)
        state["step"] += 1
        state["tokens"] += x0.numel() * acc.num_processes
        state["seconds"] = time.time() - start
        bar.update(1)
        bar.set_postfix({k: f"{v:.3f}" for k, v in metrics.items()})
        out_of_time = cfg.max_minutes is not None and state["seconds"] > 60 * cfg.max_minutes
        out_of_time = out_of_time or (cfg.stop_at is not None and state["step"] >= cfg.stop_at)
        done = state["step"] >= cfg.max_steps or out_of_time
        if state["step"] % cfg.eval_every == 0 or done:
            vals, best_name = evaluate_all()
            val = vals[best_name]
            key = next(iter(val))
            record = {"step": state["step"], "tokens": state["tokens"], "seconds": round(state["seconds"], 1),
                      "lr": lr_at(step, cfg), "train": metrics, "val": val, "weights": best_name}
            if ema is not None:
                record["val_by_weights"] = vals
            if log:
                log.write(json.dumps(record) + "\n")
                log.flush()
            acc.print(json.dumps(record))
            if val[key] < state["best_val"]:
                state["best_val"] = val[key]
                save(best_dir, with_state=False, weights=best_name)
        if state["step"] % cfg.save_every == 0 or done:
            save(ckpt_dir, with_state=True)
        if out_of_time:
            acc.print(f"stopped at step {state['step']} (time budget {cfg.max_minutes} min, stop_at {cfg.stop_at})")
            break
    bar.close()
    if not (best_dir / "model").exists():
        save(best_dir, with_state=False)
    return best_dir / "model"


def train_tokenizer_cmd(corpus: str, out_dir: str, vocab_size: int) -> Path:
    from .tokenizer import train_tokenizer

    train_tokenizer(read_split(corpus, "train"), out_dir, vocab_size=vocab_size)
    return Path(out_dir)


