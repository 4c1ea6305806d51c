#!/usr/bin/env bash
# Reproduces every file of the embedded default models (assets/) from the corpus: TRAIN split for training,
# VALIDATION split for choosing the best checkpoint (and EMA copy), TEST split never read. Each stage checkpoints
# every 250 steps (EMA copies included); rerunning this script resumes every unfinished stage where it stopped.
# The same command runs on a GPU when there is one (accelerate picks the device). Then export with
#   python scripts/export_assets.py RUN_DIR assets
# Usage: bash scripts/train_default_models.sh [CORPUS_DIR] [RUN_DIR]
set -euo pipefail
CORPUS=${1:-corpus/sotu}
RUNS=${2:-runs}
PY=${PYTHON:-python}
mkdir -p "$RUNS"
[ -f "$RUNS/tokenizer/tokenizer.json" ] || $PY -m edlm train tokenizer --corpus "$CORPUS" --out "$RUNS/tokenizer" --vocab-size 4096
# Denoiser, stage 1 (the first release): MDLM, SUBS, log-linear schedule, no time conditioning; 9 M tokens.
$PY -m edlm train denoiser --corpus "$CORPUS" --tokenizer "$RUNS/tokenizer" --out "$RUNS/denoiser-v1" \
  --steps 2200 --minutes 70 --lr 1e-3 --warmup 100 --hidden 256 --layers 4 --heads 4 --dropout 0.1 --seed 0
# Denoiser, stage 2 (this release): warm start from stage 1 plus self-conditioning (a zero-initialised input of the
# previous x0 prediction, trained on half the batches), batch 64, lr 5e-4 with a cosine decay planned over 2,200
# steps, EMA copies 0.99 and 0.998 scored on VALIDATION with the live weights; ended at step 1,250 (10.2 M more
# tokens; the CPU time of one working session). The shipped run used EMA decays 0.999 / 0.9995 (with warm-up) for
# its first 250 steps, then these.
$PY -m edlm train denoiser --corpus "$CORPUS" --tokenizer "$RUNS/tokenizer" --out "$RUNS/denoiser-v2" \
  --init "$RUNS/denoiser-v1/best/model" --self-conditioning --ema 0.99,0.998 --batch-size 64 \
  --steps 2200 --stop-at 1250 --lr 5e-4 --warmup 100 --hidden 256 --layers 4 --heads 4 --dropout 0.1 --seed 10 \
  --eval-every 250 --save-every 250
# DiT denoiser, stage 3 (the previous release's denoiser; now the start of the uniform model): warm start from
# stage 2, lr 4e-4 with a cosine decay over 1,500 steps, EMA
# 0.995 / 0.999; ended at step 1,487 by its 95-minute budget (12.2 M more tokens). The shipped run was planned
# over 2,200 steps for its first 250 and then re-planned to 1,500 (a restart from its step-250 checkpoint).
$PY -m edlm train denoiser --corpus "$CORPUS" --tokenizer "$RUNS/tokenizer" --out "$RUNS/denoiser-dit" \
  --init "$RUNS/denoiser-v2/best/model" --self-conditioning --ema 0.995,0.999 --batch-size 64 \
  --steps 1500 --minutes 95 --lr 4e-4 --warmup 100 --hidden 256 --layers 4 --heads 4 --dropout 0.1 --seed 20 \
  --eval-every 250 --save-every 250
# The uniform-noise denoiser (the `uniform` preset, assets/uniform): warm start from the stage-3 DiT denoiser
# (its self-conditioning input is left out), time-conditioned (the noise level is not visible in x_t), lr 5e-4 with
# a cosine decay planned over 1,700 steps, EMA 0.995 / 0.999, an 85-minute budget.
$PY -m edlm train denoiser --corpus "$CORPUS" --tokenizer "$RUNS/tokenizer" --out "$RUNS/uniform" \
  --process uniform --init "$RUNS/denoiser-dit/best/model" --ema 0.995,0.999 --batch-size 64 \
  --steps 1700 --minutes 85 --lr 5e-4 --warmup 100 --hidden 256 --layers 4 --heads 4 --dropout 0.1 --seed 30 \
  --eval-every 250 --save-every 250
# Then unrolled denoising (SUNDAE; docs/bench_training_methods_cpu.md section 2): 300 steps planned at lr 2e-4, the
# best EMA copy by VALIDATION ELBO kept (the shipped one: step 100). This is the shipped `uniform/`.
$PY -m edlm train denoiser --corpus "$CORPUS" --tokenizer "$RUNS/tokenizer" --out "$RUNS/uniform-unrolled" \
  --process uniform --init "$RUNS/uniform/best/model" --unroll 2 --ema 0.995 --batch-size 64 \
  --steps 300 --lr 2e-4 --warmup 20 --hidden 256 --layers 4 --heads 4 --dropout 0.1 --seed 0 \
  --eval-every 50 --save-every 50
# The continuous-embedding denoiser (the `continuous` preset, assets/continuous): warm start from the shipped uniform
# DiT (its token table becomes the frozen embedding space; the input projection is fitted to it), time-conditioned,
# the log-SNR schedule, lr 5e-4 with a cosine decay planned over 2,800 steps, EMA 0.995, a 70-minute budget.
$PY -m edlm train denoiser --corpus "$CORPUS" --tokenizer "$RUNS/tokenizer" --out "$RUNS/continuous" \
  --process continuous --init "$RUNS/uniform-unrolled/best/model" --ema 0.995 --batch-size 64 \
  --steps 2800 --minutes 70 --lr 5e-4 --warmup 100 --hidden 256 --layers 4 --heads 4 --dropout 0.1 --seed 40 \
  --eval-every 250 --save-every 250
# The AR model: EDLM-AR energy and the `ar` baseline (AR models stop gaining after a few passes over small data).
$PY -m edlm train ar --corpus "$CORPUS" --tokenizer "$RUNS/tokenizer" --out "$RUNS/ar" \
  --steps 1800 --minutes 40 --lr 1e-3 --warmup 100 --hidden 256 --layers 4 --heads 4 --seed 1
# The shipped denoiser (this release): AR initialisation. The AR model's own network, made bidirectional with
# outputs shifted by one (DiffuLLaMA / Dream), trained as a masked-diffusion denoiser in two runs: 500 steps at
# lr 5e-4, then a warm start at lr 3e-4 with a cosine decay planned over 2,400 steps, ended at step 2,250 (the
# learning rate was down to 3.3e-5 by then), EMA 0.995 kept.
$PY -m edlm train denoiser --corpus "$CORPUS" --tokenizer "$RUNS/tokenizer" --out "$RUNS/denoiser-ar1" \
  --arch llama --init-ar "$RUNS/ar/best/model" --batch-size 64 --steps 500 --lr 5e-4 --warmup 50 \
  --hidden 256 --layers 4 --heads 4 --ema 0.995 --seed 50 --eval-every 100 --save-every 100
$PY -m edlm train denoiser --corpus "$CORPUS" --tokenizer "$RUNS/tokenizer" --out "$RUNS/denoiser" \
  --arch llama --init "$RUNS/denoiser-ar1/best/model" --batch-size 64 --steps 2400 --stop-at 2250 --lr 3e-4 \
  --warmup 50 --hidden 256 --layers 4 --heads 4 --ema 0.995 --seed 51 --eval-every 250 --save-every 250
# The NCE energy (a DiT), fine-tuned from the stage-2 DiT denoiser on real x0 vs that denoiser's samples, then
# fine-tuned again on the shipped denoiser's samples.
$PY -m edlm train nce --corpus "$CORPUS" --tokenizer "$RUNS/tokenizer" --denoiser "$RUNS/denoiser-v2/best/model" \
  --out "$RUNS/nce-dit" --steps 300 --minutes 20 --lr 2e-4 --warmup 50 --eval-every 100 --save-every 100 --seed 2
$PY -m edlm train nce --corpus "$CORPUS" --tokenizer "$RUNS/tokenizer" --denoiser "$RUNS/denoiser/best/model" \
  --init "$RUNS/nce-dit/best/model" --out "$RUNS/nce" --steps 300 --minutes 30 --lr 2e-4 --warmup 50 \
  --eval-every 100 --save-every 100 --seed 4
# The judge: a separately trained AR model with ~4/3 the energy's steps, used only to score samples in benchmarks.
$PY -m edlm train ar --corpus "$CORPUS" --tokenizer "$RUNS/tokenizer" --out "$RUNS/judge" \
  --steps 2400 --minutes 30 --lr 1e-3 --warmup 100 --hidden 256 --layers 4 --heads 4 --dropout 0.0 --seed 3
echo "all stages done"
