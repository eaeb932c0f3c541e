"""Killed runs (SIGKILL, no clean-up) resume without losing completed work or duplicating results."""

from __future__ import annotations

import csv
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

import numpy as np
import pytest
from ase.db import connect

from conftest import MP_SMALL

CLI = [sys.executable, "-c", "from ase_negnn.cli import cli; cli()"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def _wait_for(predicate, proc, timeout=240.0):
    t0 = time.time()
    while time.time() - t0 < timeout:
        if predicate():
            return True
        if proc.poll() is not None:
            return False
        time.sleep(0.1)
    raise TimeoutError("condition not reached")


def _rows(db):
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1) as con:
            return con.execute("select count(*) from systems").fetchone()[0]
    except sqlite3.Error:
        return 0


def test_screen_killed_and_resumed_yields_each_id_once(property_model_dirs, tmp_path):
    from ase.io import read, write

    # 400 structures (the 40 fixtures ten times, ids made unique): the run cannot finish before the kill
    images = []
    for k in range(10):
        for atoms in read(MP_SMALL, ":"):
            atoms.info["mp_id"] = f"{atoms.info['mp_id']}-copy{k}"
            images.append(atoms)
    src = tmp_path / "many.extxyz"
    write(src, images)
    db = tmp_path / "s.db"
    cmd = [*CLI, "screen", str(src), "--models", str(property_model_dirs["band_gap"]), "--out", str(db),
           "--chunk-size", "4", "--no-progress"]
    proc = subprocess.Popen(cmd, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    reached = _wait_for(lambda: _rows(db) >= 8, proc)
    killed = proc.poll() is None
    if killed:
        proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert reached and killed, "the screen finished before it could be killed: nothing was resumed"
    done_before = _rows(db)
    assert 8 <= done_before < len(images)
    res = subprocess.run(cmd, env=ENV, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    with connect(db) as con:
        ids = [r.structure_id for r in con.select()]
    assert len(ids) == len(set(ids)) == len(images)
    assert f"{done_before} already done" in res.stdout


def test_pretrain_killed_mid_run_resumes_without_losing_epochs(tmp_path):
    out = tmp_path / "run"
    base = [*CLI, "pretrain", "--data", str(MP_SMALL), "--out", str(out), "--epochs", "4", "--batch-size", "8",
            "--n-layers", "2", "--width", "16", "--no-progress", "--seed", "0"]
    proc = subprocess.Popen(base, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    first = out / "checkpoints" / "epoch001.ckpt"
    reached = _wait_for(first.exists, proc)
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert reached
    res = subprocess.run([*base, "--resume"], env=ENV, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    with open(out / "metrics.csv", newline="") as fh:
        epochs = [int(r["epoch"]) for r in csv.DictReader(fh)]
    assert epochs == [0, 1, 2, 3]  # every epoch once: none lost, none duplicated
    assert (out / "encoder" / "model.pt").exists() and (out / "card.json").exists()
    # same seed, uninterrupted: the same held-out metrics (batch order and masks depend only on seed/epoch/batch)
    ref = tmp_path / "ref"
    done = subprocess.run([*base[: base.index("--out") + 1], str(ref), *base[base.index("--out") + 2 :]], env=ENV,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    with open(ref / "metrics.csv", newline="") as fa, open(out / "metrics.csv", newline="") as fb:
        last_a, last_b = list(csv.DictReader(fa))[-1], list(csv.DictReader(fb))[-1]
    for key in ("val_loss", "val_acc_group", "val_acc_period", "val_acc_edge", "train_loss"):
        assert float(last_b[key]) == pytest.approx(float(last_a[key]), rel=1e-5), key


def test_train_killed_and_resumed_matches_an_uninterrupted_run(tmp_path, encoder_dir):
    """Same seed, same data: a run SIGKILLed after an epoch and resumed ends with the uninterrupted run's model.

    Exact to float tolerance (1e-5 relative on the test MAE and every prediction): the batch order depends only on
    (seed, epoch) and the model/optimiser/scheduler state comes from the checkpoint.
    """
    def cmd(out):
        return [*CLI, "train", "--data", str(MP_SMALL), "--target", "band_gap", "--out", str(out), "--max-epochs", "5",
                "--n-conv", "1", "--width", "16", "--batch-size", "8", "--encoder", str(encoder_dir), "--no-progress"]

    ref = subprocess.run(cmd(tmp_path / "ref"), env=ENV, capture_output=True, text=True)
    assert ref.returncode == 0, ref.stderr
    out = tmp_path / "killed"
    proc = subprocess.Popen(cmd(out), env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    metrics = out / "metrics.csv"
    reached = _wait_for(lambda: metrics.exists() and len(metrics.read_text().splitlines()) >= 3, proc)
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert reached and not (out / "card.json").exists()  # killed before the end
    res = subprocess.run([*cmd(out), "--resume"], env=ENV, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    with open(out / "metrics.csv", newline="") as fh:
        assert [int(r["epoch"]) for r in csv.DictReader(fh)] == [0, 1, 2, 3, 4]
    a = json.loads((tmp_path / "ref" / "test_metrics.json").read_text())
    b = json.loads((out / "test_metrics.json").read_text())
    assert b["mae"] == pytest.approx(a["mae"], rel=1e-5)
    assert (tmp_path / "ref" / "test_predictions.csv").read_text().splitlines()[0] == \
        (out / "test_predictions.csv").read_text().splitlines()[0]
    pa = np.genfromtxt(tmp_path / "ref" / "test_predictions.csv", delimiter=",", skip_header=1, usecols=2)
    pb = np.genfromtxt(out / "test_predictions.csv", delimiter=",", skip_header=1, usecols=2)
    np.testing.assert_allclose(pb, pa, rtol=1e-5, atol=1e-6)


def test_screen_resumes_past_a_stale_ase_lock_file(property_model_dirs, tmp_path):
    """A run killed inside an ASE db write leaves ``s.db.lock``; the resume must not wait on it."""
    db = tmp_path / "s.db"
    (tmp_path / "s.db.lock").touch()
    cmd = [*CLI, "screen", str(MP_SMALL), "--models", str(property_model_dirs["band_gap"]), "--out", str(db),
           "--limit", "4", "--no-progress"]
    res = subprocess.run(cmd, env=ENV, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    with connect(db) as con:
        assert con.count() == 4
