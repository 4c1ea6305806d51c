#!/usr/bin/env bash
# AR initialisation, time-boxed: the same bidirectional Llama denoiser (shifted outputs, DiffuLLaMA / Dream) trained
# once from the embedded AR model's weights and once from scratch: same data order, steps, learning rate and EMA.
# Each run's log.jsonl has the VALIDATION ELBO (nats per token) every 100 steps; compare them step by step and
# against the DiT denoiser's own log. PARALLEL=1 runs the two arms side by side, one torch thread each (2 cores).
# The same command runs on a GPU when there is one. Usage:
#   bash scripts/experiment_ar_init.sh [CORPUS_DIR] [RUN_DIR] [STEPS]
set -euo pipefail
CORPUS=${1:-corpus/sotu}
RUNS=${2:-runs}
STEPS=${3:-500}
PY=${PYTHON:-python}
mkdir -p "$RUNS"
common=(--corpus "$CORPUS" --tokenizer assets/tokenizer --arch llama --batch-size 64 --steps "$STEPS" --lr 5e-4
        --warmup 50 --hidden 256 --layers 4 --heads 4 --ema 0.995 --seed 50 --eval-every 100 --save-every 100)
if [ "${PARALLEL:-0}" = 1 ]; then
  OMP_NUM_THREADS=1 $PY -m edlm train denoiser "${common[@]}" --out "$RUNS/ar-init" --init-ar assets/ar \
    > "$RUNS/ar-init.log" 2>&1 &
  OMP_NUM_THREADS=1 $PY -m edlm train denoiser "${common[@]}" --out "$RUNS/ar-init-control" \
    > "$RUNS/ar-init-control.log" 2>&1 &
  wait
else
  $PY -m edlm train denoiser "${common[@]}" --out "$RUNS/ar-init" --init-ar assets/ar
  $PY -m edlm train denoiser "${common[@]}" --out "$RUNS/ar-init-control"
fi
for run in ar-init ar-init-control; do
  echo "$run: $(tail -n 1 "$RUNS/$run/log.jsonl")"
done
