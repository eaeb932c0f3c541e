#!/usr/bin/env bash
# Retrain the bundled default encoder exactly as shipped: predictive SSL on Materials Project (mp36k),
# 5 % held out, then copy the exported encoder + card into the package.
#   bash scripts/train_default_encoder.sh [--data ../shared/data] [--out runs/default-encoder] [--epochs 12] [--resume]
set -euo pipefail
DATA=../shared/data; OUT=runs/default-encoder; EPOCHS=12; RESUME=()
while [ $# -gt 0 ]; do
  case "$1" in
    --data) DATA=$2; shift 2;; --out) OUT=$2; shift 2;; --epochs) EPOCHS=$2; shift 2;;
    --resume) RESUME=(--resume); shift;; *) echo "unknown option $1" >&2; exit 2;;
  esac
done
ase-negnn pretrain --data "$DATA/mp/mp36k.extxyz" --out "$OUT" --objective predictive \
  --epochs "$EPOCHS" --batch-size 128 --layers 5 --width 64 --lr 1e-3 --mask-rate 0.15 \
  --val-fraction 0.05 --seed 0 "${RESUME[@]}"
python -m ase_negnn.pretrained install "$OUT/encoder" default
