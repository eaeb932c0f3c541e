"""Command-line interface: help, a tiny pretraining run (and its resume), and ``embed`` outputs."""

from __future__ import annotations

import csv
import json
import shutil

import numpy as np
import pytest
from click.testing import CliRunner

from ase_negnn.cli import cli

from conftest import MP_SMALL

TINY = ["--batch-size", "8", "--n-layers", "2", "--width", "16", "--no-progress", "--seed", "0"]


def read_csv(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """One 2-epoch predictive pretraining on the 40 fixture structures (shared by the tests below)."""
    out = tmp_path_factory.mktemp("cli") / "run"
    result = invoke("pretrain", "--data", MP_SMALL, "--out", out, "--epochs", "2", *TINY)
    assert result.exit_code == 0, result.output
    return out, result


@pytest.mark.parametrize("args", [["--help"], ["pretrain", "--help"], ["embed", "--help"], ["--version"]])
def test_help(args):
    result = invoke(*args)
    assert result.exit_code == 0
    assert ("Usage:" in result.output) or ("0.1.0" in result.output)


def test_help_mentions_options():
    assert "--resume" in invoke("pretrain", "--help").output
    assert "--pooling" in invoke("embed", "--help").output


def test_pretrain_writes_run(tiny_run):
    out, result = tiny_run
    assert "encoder written to" in result.output
    rows = read_csv(out / "metrics.csv")
    assert [int(r["epoch"]) for r in rows] == [0, 1]
    for row in rows:
        for key in ("val_acc_group", "val_acc_period", "val_acc_edge", "train_loss", "val_loss"):
            value = float(row[key])
            assert np.isfinite(value), key
            if "acc" in key:
                assert 0.0 <= value <= 1.0, key
    assert (out / "checkpoints" / "last.ckpt").is_file()
    assert sorted(p.name for p in (out / "encoder").iterdir()) == ["model.json", "model.pt", "state.pt"]
    card = json.loads((out / "card.json").read_text())
    assert card["objective"] == "predictive" and card["epochs"] == 2
    assert card["n_structures"] == 40 and card["n_train"] + card["n_validation"] == 40
    assert card["encoder"]["n_layers"] == 2 and card["encoder"]["width"] == 16
    assert {"val_acc_group", "val_acc_period", "val_acc_edge"} <= set(card["heldout_metrics"])


def test_pretrained_encoder_loads(tiny_run):
    from ase_negnn.pretrained import encoder_card, load_encoder

    out, _ = tiny_run
    enc = load_encoder(out / "encoder")
    assert (enc.n_layers, enc.width) == (2, 16)
    assert encoder_card(out / "encoder")["epochs"] == 2


# the run is resumed from a copy of the shared one, so Lightning notes that the checkpoint directory moved
@pytest.mark.filterwarnings("ignore:The dirpath has changed", "ignore:Checkpoint directory .* exists and is not empty")
def test_resume_continues_without_duplicates(tiny_run, tmp_path):
    src, _ = tiny_run
    out = tmp_path / "run"
    shutil.copytree(src, out)
    before = read_csv(out / "metrics.csv")
    result = invoke("pretrain", "--data", MP_SMALL, "--out", out, "--epochs", "3", "--resume", *TINY)
    assert result.exit_code == 0, result.output
    rows = read_csv(out / "metrics.csv")
    assert [int(r["epoch"]) for r in rows] == [0, 1, 2]
    assert rows[:2] == before  # completed epochs are kept as they were, not retrained
    assert sorted(p.name for p in (out / "checkpoints").glob("epoch*.ckpt")) == [
        "epoch000.ckpt", "epoch001.ckpt", "epoch002.ckpt"]
    assert json.loads((out / "card.json").read_text())["epochs"] == 3


def test_rerun_without_resume_refused(tiny_run):
    out, _ = tiny_run
    before = (out / "metrics.csv").read_text()
    result = CliRunner().invoke(cli, ["pretrain", "--data", str(MP_SMALL), "--out", str(out), "--epochs", "2", *TINY])
    assert result.exit_code != 0
    assert "--resume" in result.output and "already holds a run" in result.output
    assert (out / "metrics.csv").read_text() == before  # nothing touched


def test_resume_without_checkpoint_refused(tmp_path):
    result = CliRunner().invoke(cli, ["pretrain", "--data", str(MP_SMALL), "--out", str(tmp_path / "new"),
                                      "--epochs", "1", "--resume", *TINY])
    assert result.exit_code != 0 and "last.ckpt" in result.output


def test_pretrain_old_layers_name_warns_and_still_sets_the_depth(tmp_path):
    """``pretrain --layers N`` / ``pretrain(layers=N)`` (a count, while --layers selects layers elsewhere) still build
    N layers, with a deprecation message naming --n-layers / n_layers."""
    import json

    from ase_negnn.pretraining import pretrain

    args = ["--batch-size", "8", "--width", "8", "--no-progress", "--epochs", "1", "--max-structures", "12"]
    result = CliRunner().invoke(cli, ["pretrain", "--data", str(MP_SMALL), "--out", str(tmp_path / "a"),
                                      "--layers", "1", *args])
    assert result.exit_code == 0, result.output
    assert "use --n-layers" in result.output
    assert json.loads((tmp_path / "a" / "card.json").read_text())["encoder"]["n_layers"] == 1
    both = CliRunner().invoke(cli, ["pretrain", "--data", str(MP_SMALL), "--out", str(tmp_path / "b"),
                                    "--layers", "1", "--n-layers", "2", *args])
    assert both.exit_code == 2 and "--n-layers only" in both.output
    with pytest.warns(DeprecationWarning, match="use n_layers="):
        pretrain(MP_SMALL, tmp_path / "c", epochs=1, batch_size=8, width=8, layers=1, max_structures=12,
                 progress=False, accelerator="cpu")


def test_embed_mean_npy_and_csv(tiny_run, tmp_path, mp_structures):
    out, _ = tiny_run
    model = out / "encoder"
    npy, csv_path = tmp_path / "ssmr.npy", tmp_path / "ssmr.csv"
    for target in (npy, csv_path):
        result = invoke("embed", MP_SMALL, "--encoder", model, "--out", target, "--pooling", "mean", "--no-progress")
        assert result.exit_code == 0, result.output
        assert "40 x 48" in result.output  # 3 layers (0, 1, 2) × width 16
    values = np.load(npy)
    assert values.shape == (40, 48) and np.isfinite(values).all()
    rows = read_csv(csv_path)
    assert [r["id"] for r in rows] == [a.info["mp_id"] for a in mp_structures]
    assert list(rows[0])[:3] == ["id", "L0_0", "L0_1"] and len(rows[0]) == 1 + 48
    table = np.array([[float(r[k]) for k in list(r)[1:]] for r in rows])
    np.testing.assert_allclose(table, values, rtol=1e-7, atol=1e-7)  # CSV keeps 8 significant digits

    from ase_negnn.descriptor import SSMR

    np.testing.assert_allclose(values, SSMR(encoder=model).create(mp_structures), rtol=1e-6, atol=1e-6)


def test_embed_per_atom_csv(tiny_run, tmp_path, mp_structures):
    out, _ = tiny_run
    target = tmp_path / "ssar.csv"
    result = invoke("embed", MP_SMALL, "--encoder", out / "encoder", "--out", target, "--pooling", "none",
                    "--layers", "2", "--no-progress")
    assert result.exit_code == 0, result.output
    rows = read_csv(target)
    n_atoms = sum(len(a) for a in mp_structures)
    assert len(rows) == n_atoms
    assert list(rows[0])[:4] == ["id", "atom_index", "symbol", "L2_0"] and len(rows[0]) == 3 + 16
    expected = [(a.info["mp_id"], str(j), s) for a in mp_structures for j, s in enumerate(a.get_chemical_symbols())]
    assert [(r["id"], r["atom_index"], r["symbol"]) for r in rows] == expected


def test_embed_cif_directory_ids(tiny_run, tmp_path):
    from conftest import CIF_DIR

    out, _ = tiny_run
    target = tmp_path / "cifs.csv"
    result = invoke("embed", CIF_DIR, "--encoder", out / "encoder", "--out", target, "--no-progress")
    assert result.exit_code == 0, result.output
    assert [r["id"] for r in read_csv(target)] == sorted(p.stem for p in CIF_DIR.glob("*.cif"))


def test_embed_old_model_option_warns_and_still_works(tiny_run, tmp_path):
    from conftest import CIF_DIR

    out, _ = tiny_run
    result = invoke("embed", CIF_DIR, "--model", out / "encoder", "--out", tmp_path / "old.npy", "--no-progress")
    assert result.exit_code == 0, result.output
    assert "--model is deprecated" in result.output
    invoke("embed", CIF_DIR, "--encoder", out / "encoder", "--out", tmp_path / "new.npy", "--no-progress")
    np.testing.assert_array_equal(np.load(tmp_path / "old.npy"), np.load(tmp_path / "new.npy"))
    both = invoke("embed", CIF_DIR, "--model", out / "encoder", "--encoder", out / "encoder", "--out",
                  tmp_path / "x.npy", "--no-progress")
    assert both.exit_code == 2 and "--encoder only" in both.output


def test_quiet_turns_off_every_progress_bar(tiny_run, tmp_path):
    from conftest import CIF_DIR

    from ase_negnn.cli import cli as group

    out, _ = tiny_run
    args = ["embed", str(CIF_DIR), "--encoder", str(out / "encoder")]
    loud = CliRunner().invoke(group, [*args, "--out", str(tmp_path / "a.npy")])
    quiet = CliRunner().invoke(group, ["--quiet", *args, "--out", str(tmp_path / "b.npy")])
    assert loud.exit_code == quiet.exit_code == 0, loud.output + quiet.output
    assert "struct/s" in loud.output and "struct/s" not in quiet.output
    assert "wrote" in quiet.output.lower() or (tmp_path / "b.npy").exists()
    commands = [name for name, c in group.commands.items() if any(p.name == "no_progress" for p in c.params)]
    assert {"pretrain", "train", "embed", "predict", "relax", "screen", "phonons"} <= set(commands)


def test_embed_bad_out_suffix(tiny_run, tmp_path):
    out, _ = tiny_run
    result = CliRunner().invoke(cli, ["embed", str(MP_SMALL), "--encoder", str(out / "encoder"),
                                      "--out", str(tmp_path / "x.parquet")])
    assert result.exit_code == 2
    assert ".npy or .csv" in result.output
    assert not (tmp_path / "x.parquet").exists()


def test_embed_missing_input(tmp_path):
    result = CliRunner().invoke(cli, ["embed", str(tmp_path / "missing.extxyz"), "--out", str(tmp_path / "x.npy")])
    assert result.exit_code == 2
    assert "does not exist" in result.output


def test_embed_bad_layers_and_model(tiny_run, tmp_path):
    out, _ = tiny_run
    result = CliRunner().invoke(cli, ["embed", str(MP_SMALL), "--encoder", str(out / "encoder"), "--layers", "7",
                                      "--out", str(tmp_path / "x.npy")])
    assert result.exit_code == 1 and "outside 0…2" in result.output
    result = CliRunner().invoke(cli, ["embed", str(MP_SMALL), "--encoder", str(tmp_path / "nope"),
                                      "--out", str(tmp_path / "x.npy")])
    assert result.exit_code == 1 and "not found" in result.output
    assert not (tmp_path / "x.npy").exists()


COMMANDS = ["pretrain", "embed", "train", "predict", "relax", "phonons", "screen"]


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_summary_and_example(command):
    top = invoke("--help").output
    assert command in top
    text = invoke(command, "--help").output
    assert "Example" in text and f"ase-negnn {command} " in text.split("Example", 1)[1]


@pytest.mark.parametrize(
    "command, option, unit",
    [("train", "--cutoff", "Å"), ("train", "--force-weight", "eV/Å"), ("relax", "--fmax", "eV/Å"),
     ("phonons", "--displacement", "Å"), ("phonons", "--t-max", "(K)"), ("screen", "--fmax", "eV/Å"),
     ("pretrain", "--mask-rate", "Fraction")],
)
def test_numeric_options_state_their_units(command, option, unit):
    text = " ".join(invoke(command, "--help").output.split("Options:", 1)[1].split())
    assert option in text and unit in text.split(option, 1)[1][:200]


def test_training_commands_print_no_known_noise(tmp_path):
    """No Lightning tip/banner, no LeafSpec deprecation, no 'modules in eval mode' warning; the result line stays."""
    import subprocess
    import sys

    from conftest import MP_SMALL

    cmd = [sys.executable, "-m", "ase_negnn", "pretrain", "--data", str(MP_SMALL), "--out", str(tmp_path / "pt"),
           "--epochs", "1", "--n-layers", "1", "--width", "8", "--no-progress", "--accelerator", "cpu"]
    out = subprocess.run(cmd, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    train = [sys.executable, "-m", "ase_negnn", "train", "--data", str(MP_SMALL), "--target", "band_gap", "--units",
             "eV", "--encoder", str(tmp_path / "pt" / "encoder"), "--out", str(tmp_path / "tr"), "--max-epochs", "1",
             "--n-conv", "1", "--width", "8", "--no-progress"]
    out2 = subprocess.run(train, capture_output=True, text=True)
    assert out2.returncode == 0, out2.stderr
    text = out.stdout + out.stderr + out2.stdout + out2.stderr
    for noise in ("Tip:", "litlogger", "LeafSpec", "in eval mode", "GPU available"):
        assert noise not in text, noise
    assert "encoder written to" in out.stdout and "test: MAE" in out2.stdout and " eV" in out2.stdout


def test_pretrain_graph_choice_and_warm_start(tiny_run, tmp_path):
    """--graph hard makes a hard-graph encoder; --init-encoder starts from the given weights (one epoch at a tiny
    learning rate stays next to them, a random start does not); a different width is refused."""
    import torch

    from ase_negnn.pretrained import load_encoder

    start = load_encoder(tiny_run[0] / "encoder")
    res = invoke("pretrain", "--data", MP_SMALL, "--out", tmp_path / "warm", "--epochs", "1", "--lr", "1e-9",
                 "--graph", "hard", "--init-encoder", tiny_run[0] / "encoder", *TINY)
    assert res.exit_code == 0, res.output
    warm = load_encoder(tmp_path / "warm" / "encoder")
    assert warm.smooth_width is None and start.smooth
    w0, w1 = start.node_embedding.weight, warm.node_embedding.weight
    assert torch.allclose(w0, w1, atol=1e-6)
    res = invoke("pretrain", "--data", MP_SMALL, "--out", tmp_path / "cold", "--epochs", "1", "--lr", "1e-9", *TINY)
    assert not torch.allclose(w0, load_encoder(tmp_path / "cold" / "encoder").node_embedding.weight, atol=1e-3)
    res = invoke("pretrain", "--data", MP_SMALL, "--out", tmp_path / "bad", "--epochs", "1", "--init-encoder",
                 tiny_run[0] / "encoder", *[a if a != "16" else "32" for a in TINY])
    assert res.exit_code != 0 and "width" in res.output


def test_pretrain_stop_after_keeps_the_schedule_and_resume_finishes_it(tmp_path):
    """--stop-after 1 of a 3-epoch schedule: one epoch at the schedule's rates, then --resume runs epochs 1 and 2."""
    out = tmp_path / "run"
    res = invoke("pretrain", "--data", MP_SMALL, "--out", out, "--epochs", "3", "--stop-after", "1", *TINY)
    assert res.exit_code == 0, res.output
    card = __import__("json").loads((out / "card.json").read_text())
    assert (card["epochs"], card["epochs_scheduled"]) == (1, 3)
    res = invoke("pretrain", "--data", MP_SMALL, "--out", out, "--epochs", "3", "--resume", *TINY)
    assert res.exit_code == 0, res.output
    rows = read_csv(out / "metrics.csv")
    assert [int(r["epoch"]) for r in rows] == [0, 1, 2]
    # the cosine of the 3-epoch schedule: lr after epoch e is lr0 (1 + cos(π (e + 1) / 3)) / 2
    lrs = [float(r["lr"]) for r in rows]
    assert lrs[0] == pytest.approx(1e-3 * 0.75, rel=1e-6) and lrs[1] == pytest.approx(1e-3 * 0.25, rel=1e-6)
    res = invoke("pretrain", "--data", MP_SMALL, "--out", tmp_path / "x", "--epochs", "2", "--stop-after", "3", *TINY)
    assert res.exit_code != 0 and "stop_after" in res.output
