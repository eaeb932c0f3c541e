#!/usr/bin/env bash
# Train the bundled NEGNN property models on mp36k (80/10/10 split, seed 0: the test 10 % is never seen in
# training or model selection) and install them into the package as mp-eform and mp-gap.
# Usage: scripts/train_bundled_models.sh [DATA_DIR] [MAX_EPOCHS]   (DATA_DIR defaults to ../shared/data)
set -euo pipefail
DATA=${1:-../shared/data}
EPOCHS=${2:-15}
MP="$DATA/mp/mp36k.extxyz"
COMMON=(--data "$MP" --split 0.8,0.1,0.1 --seed 0 --max-epochs "$EPOCHS" --early-stopping 5 --batch-size 128
        --cache-dir runs/cache --layers all --n-conv 3 --width 64 --no-progress)
run() {  # name target units
  local out=runs/bundled-$1
  if [ -e "$out/checkpoints/last.ckpt" ] && [ ! -e "$out/card.json" ]; then resume=--resume; else resume=; fi
  [ -e "$out/card.json" ] || ase-negnn train "${COMMON[@]}" --target "$2" --units "$3" --out "$out" $resume
  python -m ase_negnn.pretrained install "$out/model" "$1"
}
run mp-eform formation_energy_per_atom eV/atom &
# the second run waits for the first to write the shared graph cache
until ls runs/cache/*.graphs.pt >/dev/null 2>&1; do sleep 10; done
run mp-gap band_gap eV &
wait
