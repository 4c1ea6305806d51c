"""The app as a tool for other programs: typed, documented functions served as Gradio API endpoints (`/fill`,
`/variants`, `/augment_texts`) and, with EDLM_MCP=1, as the tools of Gradio's MCP server. Each streams an empty
result after every reverse step, so a cancel (or a closed connection) ends the work there, and returns plain
JSON-ready values: no charts, no HTML (over MCP a result is one text item, the value as a Python literal:
Gradio's MCP server writes it with str()). Limits, errors and the server log are those of the page's buttons."""
from __future__ import annotations

from collections.abc import Iterator

import gradio as gr

from edlm.limits import DEFAULTS, LIMITS
from edlm.pipeline import Tick

from . import models
from .errors import logged_run
from .guard import RunClock, guarded
from .handlers import api_variants, augment_config, gpu

MCP_TOOLS = ("fill", "variants", "augment_texts")  # the tools an agent needs (the page's own endpoints are more)


def fill(text: str, sampler: str | None = None, steps: int | None = None, seed: int = DEFAULTS.seed,
         model: str | None = None) -> Iterator[dict]:
    """Fill the masked spans of a text once, keeping every other character as it is.

    Args:
        text: The text with spans to fill: [MASK:n] is a span of n tokens, [MASK] a span whose length the model
            chooses, \\[MASK] a literal "[MASK]". Up to 20,000 characters.
        sampler: The sampler (mdlm, edlm-ar, edlm-nce, ar-is, ...); the model's own when not given.
        steps: Reverse diffusion steps, 1 to 1024; the model's own when not given.
        seed: The random seed: the same text, settings and seed give the same fill.
        model: The model preset (default, general, uniform, ...); the app's model when not given.

    Returns:
        {"text": the filled text, "spans": the filled spans in order, "score": the AR model's mean
        log-likelihood per token (higher is more fluent), "seed": the seed used}.
    """
    for out in api_variants(text, 1, sampler, steps, seed, model):
        yield out[0] if out else {}


def variants(text: str, n: int = 4, sampler: str | None = None, steps: int | None = None,
             seed: int = DEFAULTS.seed, model: str | None = None) -> Iterator[list[dict]]:
    """Fill the masked spans of a text n times in one batch and rank the results, most fluent first.

    Args:
        text: The text with spans to fill ([MASK:n], [MASK]; see fill). Up to 20,000 characters.
        n: How many variants, 1 to 8.
        sampler: The sampler; the model's own when not given.
        steps: Reverse diffusion steps, 1 to 1024; the model's own when not given.
        seed: The random seed of the first variant (the others follow from it).
        model: The model preset; the app's model when not given.

    Returns:
        A list of {"text", "spans", "score", "seed"}, best first.
    """
    yield from api_variants(text, n, sampler, steps, seed, model)


def augment_texts(texts: list[str], n: int = 4, rewrite: float = 0.25, unit: str = "tokens", keep: str = "",
                  seed: int = DEFAULTS.seed, model: str | None = None) -> Iterator[list[dict]]:
    """Rewrite a share of each text n ways (data augmentation), never touching the words asked to keep.

    Args:
        texts: The texts to rewrite, up to 200 (for whole files use `python -m edlm augment`).
        n: Variants per text, 1 to 32.
        rewrite: The share of tokens (or words) rewritten in each variant, 0.05 to 0.9.
        unit: "tokens" rewrites token spans, "words" whole words only.
        keep: Comma-separated words that never change.
        seed: The random seed.
        model: The model preset; the app's model when not given.

    Returns:
        One record per text, in order: {"index", "text", "status" ("ok", or why it was passed through
        unchanged), "variants": [{"text", "spans", "score", ...}], "dropped": reasons -> counts}.
    """
    yield from _augment(texts, n, rewrite, unit, keep, seed, model)


@gpu
@logged_run("augment", lambda a: f"tool, {len(a['texts']) if isinstance(a['texts'], list) else 0} texts")
def _augment(texts, n, rewrite, unit, keep, seed, model=None, progress=None, *, clock: RunClock):
    from edlm.augment import augment_steps
    from edlm.runner import with_bundle_defaults

    if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
        raise ValueError("texts must be a list of strings")
    if not texts:
        raise ValueError("give at least one text to rewrite")
    augment_config(len(texts), n, rewrite, unit, keep, seed, {})  # settings checked before the model loads
    bundle = models.get_bundle(model or models.MODEL, progress)
    cfg = augment_config(len(texts), n, rewrite, unit, keep, seed, with_bundle_defaults(bundle, {}))
    done = []
    for item in guarded(augment_steps(bundle, [{"text": t} for t in texts], cfg, max_work=LIMITS.max_work), clock):
        if isinstance(item, Tick):
            clock.steps += 1
            yield []
            continue
        rec = item.to_json()
        done.append({"index": rec["index"], "text": item.text, "status": rec["status"],
                     "variants": rec["variants"], "dropped": rec["dropped"]})
    yield done


def register() -> None:
    """Inside `gr.Blocks`: the tools as API endpoints (and MCP tools when the server runs with MCP)."""
    for fn in (fill, variants, augment_texts):
        gr.api(fn, api_name=fn.__name__, concurrency_id="model")
