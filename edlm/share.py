"""Bundles on the Hugging Face Hub: a bundle folder (denoiser/, ar/, judge/, nce/, tokenizer/, manifest.json) is
already a repository the Hub can hold; this adds its model card (YAML front matter the Hub reads, and the TEST
figures), `push` (huggingface_hub's own upload), and loading by repository id (`load_bundle("user/repo")`),
which downloads the bundle's files only and checks every one against the manifest before anything is built."""
from __future__ import annotations

import os
import re
from pathlib import Path

from .bundle import PARTS, ModelFilesError, read_json, verify_manifest

BUNDLE_FILES = ("manifest.json", "README.md", *(f"{part}/*" for part in PARTS))  # what a download takes
REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,95}/[A-Za-z0-9][A-Za-z0-9_.-]{0,95}$")


def is_repo_id(name: str) -> bool:
    """"owner/name" as the Hub spells repositories (and not an existing local path)."""
    return bool(REPO_ID.match(name)) and not Path(name).exists() and ".." not in name


def model_card(folder: str | os.PathLike, name: str, figures: dict | None = None, notes: str = "") -> str:
    """The README.md of a bundle: front matter (license, library, pipeline, tags, and the TEST figures as a
    model-index the Hub shows), which parts it holds, how to load it, and the figures as a table."""
    folder = Path(folder)
    parts = [p for p in PARTS if (folder / p).is_dir()]
    process = read_json(folder / "denoiser" / "config.json").get("process", "absorbing") \
        if (folder / "denoiser" / "config.json").is_file() else "absorbing"
    figures = figures or {}
    metrics = {"denoiser_elbo_ppl": "TEST ELBO perplexity (upper bound)", "ar_ppl": "TEST AR perplexity",
               "judge_ppl": "TEST judge perplexity of real text"}
    shown = [(label, figures[key]) for key, label in metrics.items() if isinstance(figures.get(key), (int, float))]
    lines = ["---", "license: mit", "library_name: edlm-studio", "pipeline_tag: fill-mask",
             f"tags: [masked-diffusion, edlm, text-infilling, {process}]"]
    if shown:
        lines += ["model-index:", f"- name: {name}", "  results:", "  - task: {type: fill-mask}", "    metrics:"]
        lines += [f"    - {{name: {label}, type: perplexity, value: {value:.2f}}}" for label, value in shown]
    lines += ["---", "", f"# {name}", "",
              f"An EDLM Studio model bundle: {', '.join(parts)} "
              f"(noise process: {process}). Every file is listed with its sha256 in `manifest.json` and checked "
              "when the bundle loads.", "",
              "```python", "from edlm.presets import load_bundle", "", f'bundle = load_bundle("{name}")  # or a local '
              "folder", "```", ""]
    if shown:
        scope = f" ({figures['windows']} windows of {figures.get('window_tokens', 128)} tokens)" \
            if figures.get("windows") else ""
        lines += [f"| TEST figure{scope} | value |", "|---|---|"]
        lines += [f"| {label} | {value:.2f} |" for label, value in shown] + [""]
    if notes:
        lines += [notes.strip(), ""]
    return "\n".join(lines)


def push_bundle(folder: str | os.PathLike, repo_id: str, private: bool = False, api=None) -> str:
    """Upload a bundle folder to the Hub (creating the repository if needed) after checking it: a manifest that
    every file matches, and a model card. Returns the repository URL. `api` is a huggingface_hub.HfApi."""
    folder = Path(folder)
    if not is_repo_id(repo_id):
        raise ValueError(f"{repo_id!r} is not a Hub repository id (owner/name)")
    verify_manifest(folder, required=True)
    if not (folder / "README.md").is_file():
        raise ValueError(f"{folder} has no README.md: write its model card first (python -m edlm bundle ...)")
    if api is None:
        from huggingface_hub import HfApi

        api = HfApi()
    url = api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
    api.upload_folder(folder_path=str(folder), repo_id=repo_id, repo_type="model",
                      allow_patterns=list(BUNDLE_FILES), commit_message="EDLM Studio bundle")
    return str(url)


def pull_bundle(repo_id: str) -> Path:
    """A local folder holding the bundle of a Hub repository (from the cache when it is there): its parts,
    manifest and card only. The caller loads it with the manifest required."""
    from .hub import fetch

    path = fetch(repo_id, patterns=BUNDLE_FILES)
    if not (path / "manifest.json").is_file():
        raise ModelFilesError(f"{repo_id} holds no EDLM Studio bundle (no manifest.json)")
    return path
