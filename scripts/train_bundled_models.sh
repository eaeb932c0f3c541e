#!/usr/bin/env bash
# Train the bundled NEGNN property models on mp36k (80/10/10 split, seed 0: the test 10 % is never seen in training or
# model selection) on the bundled default encoder (v2, continuous graph), fine-tuning it (train's default), and install
# them into the package as mp-eform and mp-gap (mp-gap with the non-negative softplus output). The two runs go side by
# side, one CPU thread each; each resumes after an interruption. Epochs as the bundled files were trained: mp-eform 24
# (its validation MAE still fell at 8), mp-gap 8; the cosine learning-rate schedule spans the given epochs, so other
# values train different models.
# Usage: scripts/train_bundled_models.sh [DATA_DIR] [RUNS] [EFORM_EPOCHS] [GAP_EPOCHS]   (defaults ../shared/data, runs,
#        24, 8)
set -euo pipefail
DATA=${1:-../shared/data}
RUNS=${2:-runs}
EFORM_EPOCHS=${3:-24}
GAP_EPOCHS=${4:-8}
MP="$DATA/mp/mp36k.extxyz"
COMMON=(--data "$MP" --split 0.8,0.1,0.1 --seed 0 --early-stopping 5 --batch-size 128
        --cache-dir "$RUNS/cache" --layers all --n-conv 3 --width 64 --encoder default --no-progress)
run() {  # name target units [extra options]
  local name=$1 target=$2 units=$3; shift 3
  local out=$RUNS/bundled-$name resume=()
  if [ -e "$out/checkpoints/last.ckpt" ] && [ ! -e "$out/card.json" ]; then resume=(--resume); fi
  [ -e "$out/card.json" ] || OMP_NUM_THREADS=1 ase-negnn train "${COMMON[@]}" --target "$target" --units "$units" \
    --out "$out" "$@" "${resume[@]}"
  ase-negnn install "$out/model" "$name" --package
}
run mp-eform formation_energy_per_atom eV/atom --max-epochs "$EFORM_EPOCHS" &
# the second run waits for the first to write the shared graph cache
until ls "$RUNS"/cache/*.graphs.pt >/dev/null 2>&1; do sleep 10; done
run mp-gap band_gap eV --nonnegative --max-epochs "$GAP_EPOCHS" &
wait
