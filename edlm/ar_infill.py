"""Infilling with a causal LM's own posterior, by importance sampling (the `ar-is` sampler).

For each span, left to right (each span sees the fills before it):
  1. draw k fills of the span's length from p_AR(fill | text before), in one batch with the key/value cache;
  2. weight each by log p_AR(text after | before, fill), the fixed tokens that follow the span (up to the next
     span, at most LOOKAHEAD tokens);
  3. keep one by resampling.
The target is p_AR(fill | both sides), the same as EDLM-AR's, with the AR model itself as the proposal instead of
a diffusion denoiser. `[MASK]` spans get the length (of the pipeline's AUTO_LENGTHS) whose IS estimate of
p(after | before, length) is highest; one draft of the longest length serves every shorter one (a prefix of a sample is a sample). With temperature or
top-p the proposal (and so the target) is the shaped AR model. Needs no denoiser: it is what the `general` preset
(SmolLM2) runs.
"""
from __future__ import annotations

import copy
from collections.abc import Generator, Iterator

import torch

from .energy import normalise, temper
from .models.ar import forward_with_cache
from .tokenizer import line_break_ids
from .sampling import TOP_TOKENS, RowRandom, StepEvent, sample_categorical, shape_log_probs

LOOKAHEAD = 32        # fixed tokens after a span that weigh its candidates
CONTEXT = 768         # tokens of text before a span the AR model reads (a CPU-sized cap; SmolLM2 reads 8,192)


def span_runs(editable: list[bool]) -> list[tuple[int, int]]:
    """[start, end) of each run of editable positions: the spans."""
    out, p = [], 0
    while p < len(editable):
        if editable[p]:
            q = p
            while q < len(editable) and editable[q]:
                q += 1
            out.append((p, q))
            p = q
        else:
            p += 1
    return out


def _limits(model, n: int, after: int) -> tuple[int, int]:
    """(context tokens, lookahead tokens) that fit the model's positions with a fill of n tokens."""
    positions = int(getattr(model.config, "max_position_embeddings", 1 << 20))
    room = positions - 1 - n  # one position for BOS
    if room < 0:
        raise ValueError(f"a span of {n} tokens does not fit the AR model's {positions} positions")
    m = min(after, LOOKAHEAD, room // 2)
    return min(CONTEXT, room - m), m


def banned_for(tokenizer, model) -> tuple[int, ...]:
    """Tokens a fill may not contain: the pipeline's (`edlm.runner.banned_ids`) and every other special token
    (chat markers, the mask), those the AR model can emit."""
    from .runner import banned_ids

    vocab = int(model.config.vocab_size)
    ids = set(banned_ids(tokenizer)) | set(getattr(tokenizer, "all_special_ids", []) or [])
    return tuple(sorted(i for i in ids if 0 <= i < vocab))


def bos_of(tokenizer) -> int:
    return tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id


@torch.inference_mode()
def draft(model, before: torch.Tensor, n: int, k: int, after: torch.Tensor, cfg, gen: RowRandom, bos: int,
          banned: tuple[int, ...], lengths: tuple[int, ...] | None = None) -> Iterator[dict]:
    """Draw k fills of n tokens per row of `before` [B, P] and score each by log p(after | before, fill).

    Yields {"drafted": i} after each drawn token, then {"fills": [B, k, n], "log_w": [B, k] (or, with
    `lengths`, {n_j: [B, k]} for the fill's first n_j tokens), "ar_calls": passes}."""
    B, P = before.shape
    dev = before.device
    ctx = torch.cat([torch.full((B, 1), bos, device=dev), before], 1)
    out, past = forward_with_cache(model, ctx, None, logits_to_keep=1)
    past.batch_repeat_interleave(k)
    prefix_past = copy.deepcopy(past) if lengths else None  # a [MASK] span scores each length from here
    logits = out.logits[:, -1].float().repeat_interleave(k, 0)  # [B*k, V]
    calls, fills, tops = 1, [], []
    for i in range(n):
        log_p = logits.log_softmax(-1)
        tops.append(log_p.topk(min(TOP_TOKENS, log_p.shape[-1]), dim=-1))  # what the AR model hesitated between
        log_q = shape_log_probs(log_p, cfg.temperature, cfg.top_p, banned)
        u = gen.rand(k, 1, dtype=torch.float64)  # row b's k draws from its own stream: batch-independent
        tok = sample_categorical(log_q.double().exp().cumsum(-1), 1, u)  # [B*k, 1]
        fills.append(tok)
        if i + 1 < n:
            out, past = forward_with_cache(model, tok, past)
            logits = out.logits[:, -1].float()
            calls += 1
        yield {"drafted": i + 1}
    fill = torch.cat(fills, 1)  # [B*k, n]
    ends = lengths or (n,)
    scores = {}
    m = after.shape[1]
    if m == 0:  # nothing after the span: every fill is equally consistent (plain AR sampling)
        scores = {e: torch.zeros(B, k) for e in ends}
    elif lengths is None:
        inp = torch.cat([fill[:, -1:], after.repeat_interleave(k, 0)[:, :-1]], 1)
        lp = forward_with_cache(model, inp, past)[0].logits.float().log_softmax(-1)
        calls += 1
        tok_lp = lp.gather(-1, after.repeat_interleave(k, 0).unsqueeze(-1)).squeeze(-1)
        scores = {n: tok_lp.sum(-1).view(B, k).cpu()}
    else:  # a [MASK] span: the text after each prefix of the one long draft, from the prefix's cache
        rep = after.repeat_interleave(k, 0)
        for e in ends:
            inp = torch.cat([fill[:, :e], rep[:, :-1]], 1)
            lp = forward_with_cache(model, inp, copy.deepcopy(prefix_past))[0].logits[:, -m:].float()
            calls += 1
            tok_lp = lp.log_softmax(-1).gather(-1, rep.unsqueeze(-1)).squeeze(-1)
            scores[e] = tok_lp.sum(-1).view(B, k).cpu()
    top_ids = torch.stack([t.indices for t in tops], 1).view(B, k, n, -1).cpu()
    top_probs = torch.stack([t.values.exp() for t in tops], 1).view(B, k, n, -1).cpu()
    yield {"fills": fill.view(B, k, n).cpu(), "log_w": scores if lengths else scores[n], "ar_calls": calls,
           "top_ids": top_ids, "top_probs": top_probs}


def run(bundle, ids: torch.Tensor, req, editable: torch.Tensor, row_seeds: list[int] | None = None):
    """The sampler's loop over a laid-out text, in place on ids [B, N]: one event per drafted token and one
    importance-sampling event per span, as (StepEvent, Progress) like every sampler of the pipeline."""
    import time

    from .runner import Progress

    if bundle.ar is None or bundle.energy_tokenizer is not None:
        raise ValueError(f"the {req.sampler} sampler needs an AR model with the text's tokenizer; model "
                         f"{bundle.name!r} has none")
    model, tok = bundle.ar, bundle.tokenizer
    mask_id, bos, banned = tok.mask_token_id, bos_of(tok), banned_for(tok, bundle.ar)
    B, N = ids.shape
    spans = span_runs(editable.tolist())
    total = sum(b - a + 1 for a, b in spans)
    gen = RowRandom(req.seed, B, "cpu", row_seeds)
    dev = bundle.device
    fixed = ~editable.expand(B, -1)
    step, calls, start = 0, 0, time.perf_counter()
    for si, (a, b) in enumerate(spans):
        nxt = spans[si + 1][0] if si + 1 < len(spans) else N
        context, m = _limits(model, b - a, nxt - b)
        before = ids[:, max(0, a - context):a].to(dev)
        after = ids[:, b:b + m].to(dev)
        prev = ids.clone()
        ban = banned + line_break_ids(tok, int(model.config.vocab_size)) if b < N else banned
        k = req.k if m else 1  # nothing after the span: the weights would all be equal, so one draft suffices
        for item in draft(model, before, b - a, k, after, req, gen, bos, ban):
            if "drafted" in item:
                step += 1
                calls += 1
                ev = StepEvent(step=step, total_steps=total, t=1.0 - step / total, s=1.0 - step / total,
                               tokens=ids.clone(), fixed=fixed, revealed=torch.zeros(B, N, dtype=torch.bool),
                               denoiser_calls=0, energy_calls=0, elapsed=time.perf_counter() - start,
                               extra={"ar_calls": calls})
                yield ev, Progress(0, 1, (0, N), 0, 0, calls, total, False)
                continue
            fills, log_w = item["fills"], item["log_w"]
            w, ess = normalise(temper(log_w, req.is_temperature, req.target_ess)[0])
            chosen = sample_categorical(w.double().cumsum(-1), 1, gen.rand(1, 1, dtype=torch.float64)).squeeze(-1)
            cands = ids.unsqueeze(1).repeat(1, k, 1)
            cands[:, :, a:b] = fills
            ids[:, a:b] = fills[torch.arange(B), chosen]
            top = {"top_ids": torch.full((B, N, item["top_ids"].shape[-1]), -1, dtype=torch.long),
                   "top_probs": torch.zeros(B, N, item["top_ids"].shape[-1])}
            for name in top:  # the kept fill's: the AR model's likeliest tokens as it drew each of its tokens
                top[name][:, a:b] = item[name][torch.arange(B), chosen]
            step += 1
            last = si + 1 == len(spans)
            ev = StepEvent(step=step, total_steps=total, t=1.0 - step / total, s=1.0 - step / total,
                           tokens=ids.clone(), fixed=fixed, revealed=ids != prev, denoiser_calls=0,
                           energy_calls=si + 1, elapsed=time.perf_counter() - start, is_step=True,
                           candidates=cands, log_weights=log_w, weights=w, ess=ess, chosen=chosen,
                           extra={"ar_calls": calls + item["ar_calls"] - (b - a), **top})
            calls = ev.extra["ar_calls"]
            yield ev, Progress(0, 1, (0, N), 0, si + 1, calls, total, last)


def choose_lengths(bundle, template, req) -> Generator:
    """Lengths of the spans for `ar-is`: a `[MASK]` span takes the length in AUTO_LENGTHS whose IS estimate of
    log p(after | before, length) = log mean_i p(after | before, fill_i[:length]) is highest, spans left to right,
    each after the best-weighted draft of the spans before it. Yields a `Tick` per drafted token."""
    from .runner import AUTO_LENGTHS, Tick
    from .spans import Span, absorbs_space
    from .tokenizer import encode

    model, tok = bundle.ar, bundle.tokenizer
    bos, banned = bos_of(tok), banned_for(tok, model)
    parts = template.parts
    spans = template.spans
    if all(s.length is not None for s in spans):
        return [s.length for s in spans], {}
    gen = RowRandom(req.seed, 1, "cpu")
    lengths, scores, text_ids = [], {}, []
    auto_total = sum(max(AUTO_LENGTHS) for s in spans if s.length is None)
    done = 0
    for j, part in enumerate(parts):
        if not isinstance(part, Span):
            absorb = j + 1 < len(parts) and isinstance(parts[j + 1], Span) and absorbs_space(part)
            text_ids += encode(tok, part[:-1] if absorb else part)
            continue
        n = part.length or max(AUTO_LENGTHS)
        following = parts[j + 1] if j + 1 < len(parts) else ""
        after_ids = encode(tok, following)
        context, m = _limits(model, n, len(after_ids))
        before = torch.tensor([text_ids[-context:] if context else []], dtype=torch.long)
        after = torch.tensor([after_ids[:m]], dtype=torch.long)
        fits = tuple(e for e in AUTO_LENGTHS if e <= n)
        result = None
        ban = banned + line_break_ids(tok, int(model.config.vocab_size)) if following else banned
        for item in draft(model, before.to(bundle.device), n, req.k, after.to(bundle.device), req, gen, bos, ban,
                          lengths=fits if part.length is None else None):
            if "drafted" in item:
                if part.length is None:
                    done += 1
                    yield Tick(done, auto_total)
                continue
            result = item
        if part.length is None:
            est = {e: float(torch.logsumexp(lw[0], 0) - torch.log(torch.tensor(float(req.k))))
                   for e, lw in result["log_w"].items()}
            # nothing after the span says how long it should be: the middle length
            best = max(est, key=est.get) if after.shape[1] else (8 if 8 in est else max(est))
            scores.update({e: -v for e, v in est.items()})  # the pipeline reports lower = better
            lengths.append(best)
            lw = result["log_w"][best][0]
        else:
            best, lw = n, result["log_w"][0]
            lengths.append(n)
        text_ids += result["fills"][0, int(lw.argmax()), :best].tolist()  # the best draft as later context
    return lengths, scores


def steps(req, editable: torch.Tensor) -> int:
    """Steps of a run: one per drafted token and one importance-sampling step per span."""
    return sum(b - a + 1 for a, b in span_runs(editable.tolist()))


def work(bundle, req, editable: torch.Tensor, batch: int = 1) -> int:
    """Token-passes of a run (the measure of `LIMITS.max_work`), scaled by the AR model's size against the
    embedded 4 M-parameter models the budget was set for: prefix, k x (fill + lookahead) per span."""
    params = sum(p.numel() for p in bundle.ar.parameters()) if bundle.ar is not None else 0
    scale = max(1.0, params / 4.2e6)
    tokens = 0
    spans = span_runs(editable.tolist())
    for a, b in spans:
        k = req.k if b < len(editable) else 1
        tokens += min(a, CONTEXT) + k * (b - a + LOOKAHEAD)
    return int(tokens * batch * scale)
