#!/usr/bin/env bash
# Reproduces every file of the embedded default models (assets/) from the corpus: TRAIN split for training,
# VALIDATION split for choosing the best checkpoint, TEST split never read. Each stage checkpoints every 250 steps;
# rerunning this script resumes every unfinished stage where it stopped. Then export with
#   python scripts/export_assets.py RUN_DIR assets
# Usage: bash scripts/train_default_models.sh [CORPUS_DIR] [RUN_DIR]
set -euo pipefail
CORPUS=${1:-../shared/corpus/sotu}
RUNS=${2:-runs}
PY=${PYTHON:-python}
mkdir -p "$RUNS"
[ -f "$RUNS/tokenizer/tokenizer.json" ] || $PY -m edlm train tokenizer --corpus "$CORPUS" --out "$RUNS/tokenizer" --vocab-size 4096
# The diffusion denoiser (MDLM, SUBS, log-linear schedule, no time conditioning).
$PY -m edlm train denoiser --corpus "$CORPUS" --tokenizer "$RUNS/tokenizer" --out "$RUNS/denoiser" \
  --steps 2200 --minutes 70 --lr 1e-3 --warmup 100 --hidden 256 --layers 4 --heads 4 --dropout 0.1 --seed 0
# The AR model: EDLM-AR energy and the `ar` baseline.
$PY -m edlm train ar --corpus "$CORPUS" --tokenizer "$RUNS/tokenizer" --out "$RUNS/ar" \
  --steps 1800 --minutes 40 --lr 1e-3 --warmup 100 --hidden 256 --layers 4 --heads 4 --seed 1
# The NCE energy, fine-tuned from the denoiser on real x0 vs denoiser samples.
$PY -m edlm train nce --corpus "$CORPUS" --tokenizer "$RUNS/tokenizer" --denoiser "$RUNS/denoiser/best/model" \
  --out "$RUNS/nce" --steps 500 --minutes 20 --lr 2e-4 --warmup 50 --eval-every 100 --save-every 100 --seed 2
# The judge: a separately trained AR model with ~4/3 the training steps, used only to score samples in the benchmarks.
$PY -m edlm train ar --corpus "$CORPUS" --tokenizer "$RUNS/tokenizer" --out "$RUNS/judge" \
  --steps 2400 --minutes 30 --lr 1e-3 --warmup 100 --hidden 256 --layers 4 --heads 4 --dropout 0.0 --seed 3
echo "all stages done"
