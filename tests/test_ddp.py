"""The scale-out path, exercised: pretrain and train one epoch under Lightning DDP on CPU (2 processes, gloo).

Lightning's DDP launcher re-runs the command line for each rank, so the CLI runs in a subprocess. Rank 0 alone
writes: each output exists once, loads, and the per-epoch CSV has one row per epoch (two ranks writing would
duplicate or race).
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

DATA = Path(__file__).parent / "data" / "mp_small.extxyz"
DDP = ["--accelerator", "cpu", "--devices", "2", "--strategy", "ddp", "--no-progress"]


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    cmd = [sys.executable, "-m", "ase_negnn", *args]
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def rows(path: Path) -> list[dict]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_pretrain_and_train_one_epoch_under_ddp(tmp_path):
    import matgl

    from ase_negnn.models import load_model
    from ase_negnn.pretrained import load_encoder

    run_cli("pretrain", "--data", str(DATA), "--out", "pt", "--epochs", "1", "--batch-size", "8", "--n-layers", "2",
            "--width", "8", *DDP, cwd=tmp_path)
    card = json.loads((tmp_path / "pt" / "card.json").read_text())
    assert "devices 2" in card["hardware"] and card["epochs"] == 1
    assert [r["epoch"] for r in rows(tmp_path / "pt" / "metrics.csv")] == ["0"]
    encoder = load_encoder(tmp_path / "pt" / "encoder")
    assert encoder.n_layers == 2 and encoder.smooth

    proc = run_cli("train", "--data", str(DATA), "--target", "band_gap", "--units", "eV", "--encoder", "pt/encoder",
                   "--out", "tr", "--max-epochs", "1", "--batch-size", "8", "--n-conv", "1", "--width", "8", *DDP,
                   cwd=tmp_path)
    assert proc.stdout.count("model written to") == 1  # rank 0 reports, the other rank is silent
    assert [r["epoch"] for r in rows(tmp_path / "tr" / "metrics.csv")] == ["0"]
    model = load_model(tmp_path / "tr" / "model")
    assert model.target == "band_gap" and not model.freeze_encoder  # fine-tuning is the default
    assert isinstance(matgl.load_model(tmp_path / "tr" / "model"), type(model))
    # no half-written or temporary directories left beside the outputs
    leftovers = [p.name for p in (tmp_path / "pt").iterdir()] + [p.name for p in (tmp_path / "tr").iterdir()]
    assert not [n for n in leftovers if n.startswith(".")], leftovers
