"""Supervised training: labels, splits, run directory, resume, bad input caught before training, CLI train/predict."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from ase.io import write
from click.testing import CliRunner
from conftest import DATA_DIR, MP_SMALL

from ase_negnn.cli import cli
from ase_negnn.labels import extract_labels
from ase_negnn.models import load_model
from ase_negnn.training import fit_element_refs, parse_split, split_three, train

SI_SMALL = DATA_DIR / "si_mlearn_small.extxyz"
FAST = {"max_epochs": 2, "progress": False, "plot": True, "n_conv": 1, "width": 16, "batch_size": 16}


@pytest.fixture(scope="module")
def graph_run(tmp_path_factory, encoder_dir):
    out = tmp_path_factory.mktemp("runs") / "gap"
    card = train(MP_SMALL, "band_gap", out=out, encoder=str(encoder_dir), units="eV", **FAST)
    return out, card


def test_graph_run_writes_model_metrics_and_plot(graph_run, mp_structures):
    out, card = graph_run
    for name in ("card.json", "metrics.csv", "test_metrics.json", "test_metrics.csv", "test_predictions.csv",
                 "parity.png", "model/model.json", "checkpoints/best.ckpt", "checkpoints/last.ckpt"):
        assert (out / name).exists(), name
    assert (card["n_train"], card["n_validation"], card["n_test"]) == (32, 4, 4)
    assert set(card["test_metrics"]) == {"mae", "rmse", "r2", "n"}
    assert json.loads((out / "test_metrics.json").read_text()) == card["test_metrics"]
    with open(out / "metrics.csv") as fh:
        assert [int(r["epoch"]) for r in csv.DictReader(fh)] == [0, 1]
    # the saved model reproduces the test predictions written by the run
    with open(out / "test_predictions.csv") as fh:
        rows = list(csv.DictReader(fh))
    by_id = {a.info["mp_id"]: a for a in mp_structures}
    model = load_model(out / "model")
    pred = model.predict([by_id[r["id"]] for r in rows])
    np.testing.assert_allclose([p["band_gap"] for p in pred], [float(r["predicted"]) for r in rows], atol=1e-4)
    mae = np.mean([abs(float(r["true"]) - float(r["predicted"])) for r in rows])
    assert mae == pytest.approx(card["test_metrics"]["mae"], abs=1e-4)
    assert model.units == "eV" and card["test_metrics"]["n"] == 4


def test_resume_continues_and_refuses_to_overwrite(graph_run, encoder_dir):
    out, _ = graph_run
    with pytest.raises(FileExistsError, match="already holds a run"):
        train(MP_SMALL, "band_gap", out=out, encoder=str(encoder_dir), **FAST)
    card = train(MP_SMALL, "band_gap", out=out, encoder=str(encoder_dir), resume=True, **{**FAST, "max_epochs": 3})
    assert card["epochs_run"] == 3
    with open(out / "metrics.csv") as fh:
        assert [int(r["epoch"]) for r in csv.DictReader(fh)] == [0, 1, 2]


def test_potential_run_on_mlearn_si_fixture(tmp_path, encoder_dir):
    card = train(SI_SMALL, "energy", task="potential", out=tmp_path / "si", encoder=str(encoder_dir),
                 cutoff=4.0, **{**FAST, "batch_size": 4})
    m = card["test_metrics"]
    assert {"energy_per_atom_mae", "force_mae", "force_rmse"} <= set(m)
    assert m["force_n"] > 0 and np.isfinite(m["force_mae"])
    model = load_model(tmp_path / "si" / "model")
    assert model.task == "potential" and model.cutoff == 4.0
    # element reference energy fitted by least squares: ~ the DFT energy per Si atom
    assert -6.0 < float(model.element_refs[14]) < -4.0


def test_site_task_learns_per_atom_labels(tmp_path, mp_structures, encoder_dir):
    images = [a.copy() for a in mp_structures]
    for a in images:  # a per-atom label with structure: the atomic number / 10
        a.arrays["zlabel"] = a.numbers / 10.0
    card = train(images, "zlabel", task="site", out=tmp_path / "site", encoder=str(encoder_dir), **FAST)
    with open(tmp_path / "site" / "test_predictions.csv") as fh:
        rows = list(csv.DictReader(fh))
    test_ids = sorted({r["id"] for r in rows})
    n_atoms = {a.info["mp_id"]: len(a) for a in images}
    assert len(test_ids) == card["n_test"] == 4
    assert card["test_metrics"]["n"] == len(rows) == sum(n_atoms[i] for i in test_ids)  # one row per atom


def test_site_task_with_unlabelled_atoms(tmp_path, mp_structures, encoder_dir):
    """NaN = unlabelled atom (allow_missing_sites=True): out of the normalisation, the loss and the metrics."""
    images = [a.copy() for a in mp_structures]
    for a in images:  # label only the oxygen atoms (like MAGNDATA labelling only the magnetic sites)
        a.arrays["olabel"] = np.where(a.numbers == 8, 1.0 + 0.1 * np.arange(len(a)), np.nan)
    with pytest.raises(ValueError, match=r"NaN/inf at atoms .*allow_missing_sites=True"):
        extract_labels(images, "olabel", "site")
    labels = extract_labels(images, "olabel", "site", allow_missing_sites=True)
    n_known = sum(int(np.isfinite(v).sum()) for v in labels.y)
    assert 0 < n_known < sum(len(a) for a in images)
    card = train(images, "olabel", task="site", out=tmp_path / "site", encoder=str(encoder_dir),
                 allow_missing_sites=True, **FAST)
    assert "unlabelled (NaN)" in card["label_notes"][0]
    assert np.isfinite(card["validation_metrics"]["mae"]) and np.isfinite(card["test_metrics"]["mae"])
    with open(tmp_path / "site" / "test_predictions.csv") as fh:
        rows = list(csv.DictReader(fh))
    by_id = {a.info["mp_id"]: a for a in images}
    test_ids = sorted({r["id"] for r in rows})
    assert card["test_metrics"]["n"] == len(rows) == sum(int((by_id[i].numbers == 8).sum()) for i in test_ids)
    assert all(np.isfinite(float(r["true"])) for r in rows)
    # normalisation from the labelled training atoms only: their mean lies inside the labelled range
    model = load_model(tmp_path / "site" / "model")
    assert 1.0 <= float(model.target_mean) <= 1.0 + 0.1 * max(len(a) for a in images)
    # a split without any labelled atom is refused before training (no loss, no early stopping, no metrics)
    test_only_unlabelled = [a.copy() for a in images[:4]]
    for a in test_only_unlabelled:
        a.arrays["olabel"][:] = np.nan
    with pytest.raises(ValueError, match="no labelled atom in the test split"):
        train(images, "olabel", task="site", out=tmp_path / "site2", encoder=str(encoder_dir), split="0.8,0.2",
              test_data=test_only_unlabelled, allow_missing_sites=True, **FAST)
    assert not (tmp_path / "site2" / "model").exists()
    # inf stays an error, and so does a data set without any label
    images[0].arrays["olabel"][0] = np.inf
    with pytest.raises(ValueError, match="has inf at atoms"):
        extract_labels(images, "olabel", "site", allow_missing_sites=True)
    for a in images:
        a.arrays["olabel"][:] = np.nan
    with pytest.raises(ValueError, match="every atom is NaN"):
        extract_labels(images, "olabel", "site", allow_missing_sites=True)


def test_element_refs_least_squares():
    from ase import Atoms

    from ase_negnn.data import GraphDataset
    from ase_negnn.graph import CrystalGraphConverter

    conv = CrystalGraphConverter(4.0, None)
    images = [Atoms("NaCl", positions=[[0, 0, 0], [3, 0, 0]]), Atoms("Na2Cl", positions=[[0, 0, 0], [3, 0, 0], [0, 3, 0]]),
              Atoms("Cl2", positions=[[0, 0, 0], [2, 0, 0]])]
    ds = GraphDataset.from_graphs([conv(a) for a in images])
    e = np.array([-1.0 - 2.0, -2.0 - 2.0, -4.0])  # e_Na = -1, e_Cl = -2
    refs = fit_element_refs(ds, e, np.arange(3))
    assert refs[11] == pytest.approx(-1.0) and refs[17] == pytest.approx(-2.0) and refs[1] == 0.0


def test_split_parsing_and_empty_split():
    assert parse_split("0.8,0.1,0.1") == (0.8, 0.1, 0.1)
    with pytest.raises(ValueError, match="sum"):
        parse_split("0.8,0.3,0.1")
    with pytest.raises(ValueError, match="empty set"):
        split_three(5, "0.8,0.1,0.1")
    a, b, c = split_three(100, (0.5, 0.25, 0.25), seed=3)
    assert sorted(np.concatenate([a, b, c]).tolist()) == list(range(100))


# -- bad input: clear errors before any training ---------------------------------------------------------------
def _no_run(out):
    assert not (out / "checkpoints").exists()


def test_unknown_target_lists_available_keys(tmp_path):
    with pytest.raises(ValueError, match=r"unknown target 'gap'.*band_gap"):
        train(MP_SMALL, "gap", out=tmp_path / "r", **FAST)
    _no_run(tmp_path / "r")


def test_nan_label_names_the_structure(tmp_path, mp_structures):
    images = [a.copy() for a in mp_structures]
    images[3].info["band_gap"] = float("nan")
    with pytest.raises(ValueError, match=rf"NaN/inf for 1 structure\(s\): {images[3].info['mp_id']}"):
        train(images, "band_gap", out=tmp_path / "r", **FAST)
    _no_run(tmp_path / "r")


def test_csv_labels_join_and_mismatch(tmp_path, mp_structures):
    good = tmp_path / "good.csv"
    with open(good, "w") as fh:
        fh.write("mp_id,tc\n" + "".join(f"{a.info['mp_id']},{i}\n" for i, a in enumerate(mp_structures)) + "mp-none,5\n")
    labels = extract_labels(mp_structures, "tc", "graph", good)
    assert labels.y == [float(i) for i in range(len(mp_structures))]
    assert "match no structure" in labels.notes[0]
    bad = tmp_path / "bad.csv"
    bad.write_text("id,tc\nfoo,1\nbar,2\n")
    with pytest.raises(ValueError, match="no id of bad.csv matches a structure id"):
        train(MP_SMALL, "tc", labels_csv=bad, out=tmp_path / "r", **FAST)
    with pytest.raises(ValueError, match="label column 'Tc' not in"):
        extract_labels(mp_structures, "Tc", "graph", good)
    _no_run(tmp_path / "r")


def test_empty_split_and_bad_site_labels(tmp_path, mp_structures):
    with pytest.raises(ValueError, match="empty set"):
        train(mp_structures[:5], "band_gap", out=tmp_path / "r", **FAST)
    images = [a.copy() for a in mp_structures[:4]]
    images[1].arrays["m"] = np.zeros(len(images[1]))
    with pytest.raises(ValueError, match="unknown per-atom target 'm'"):
        extract_labels(images, "m", "site")
    with pytest.raises(ValueError, match="mp-1 has no energy"):
        extract_labels(images, "energy", "potential")
    images[0].info["energy"] = -1.0
    with pytest.raises(ValueError, match="mp-1 has no forces"):
        extract_labels(images, "energy", "potential")
    _no_run(tmp_path / "r")


# -- CLI -------------------------------------------------------------------------------------------------------
def test_cli_train_and_predict(tmp_path, encoder_dir):
    runner = CliRunner()
    out = tmp_path / "run"
    res = runner.invoke(cli, ["train", "--data", str(MP_SMALL), "--target", "formation_energy_per_atom",
                              "--units", "eV/atom", "--out", str(out), "--max-epochs", "1", "--n-conv", "1",
                              "--encoder", str(encoder_dir), "--no-progress"])
    assert res.exit_code == 0, res.output
    assert "test: MAE" in res.output and " eV/atom, RMSE " in res.output and "R² " in res.output  # units printed
    trained = load_model(out / "model")
    assert not trained.freeze_encoder  # fine-tuning is the default
    assert json.loads((out / "card.json").read_text())["graph"]["smooth_width"] == trained.encoder.smooth_width
    for suffix in ("csv", "db"):
        res = runner.invoke(cli, ["predict", str(out / "model"), str(MP_SMALL), "--out", str(tmp_path / f"p.{suffix}"),
                                  "--no-progress"])
        assert res.exit_code == 0, res.output
    with open(tmp_path / "p.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 40 and rows[0]["id"] == "mp-1" and np.isfinite(float(rows[0]["formation_energy_per_atom"]))
    from ase.db import connect

    with connect(tmp_path / "p.db") as db:
        values = [r.formation_energy_per_atom for r in db.select()]
    np.testing.assert_allclose(values, [float(r["formation_energy_per_atom"]) for r in rows], atol=1e-5)


def test_cli_train_bad_target_is_a_clean_error(tmp_path):
    res = CliRunner().invoke(cli, ["train", "--data", str(MP_SMALL), "--target", "nope", "--out", str(tmp_path / "r")])
    assert res.exit_code != 0 and "unknown target 'nope'" in res.output and "Traceback" not in res.output


def test_cli_predict_potential_writes_energy_and_stress(tmp_path, encoder_dir):
    from ase_negnn.models import NEGNN

    model = NEGNN(str(encoder_dir), task="potential", n_conv=1, width=8, hidden=8, cutoff=4.0)
    model.save(tmp_path / "pot")
    write(tmp_path / "si.extxyz", __import__("ase.io").io.read(SI_SMALL, ":3"))
    res = CliRunner().invoke(cli, ["predict", str(tmp_path / "pot"), str(tmp_path / "si.extxyz"),
                                   "--out", str(tmp_path / "e.csv"), "--no-progress"])
    assert res.exit_code == 0, res.output
    with open(tmp_path / "e.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 3 and all(np.isfinite(float(r["stress_xy"])) for r in rows)


def test_separate_test_set(tmp_path, encoder_dir, mp_structures):
    card = train(mp_structures[:30], "band_gap", out=tmp_path / "r", split="0.8,0.2", test_data=mp_structures[30:],
                 encoder=str(encoder_dir), **FAST)
    assert (card["n_train"], card["n_validation"], card["n_test"]) == (24, 6, 10)
    with open(tmp_path / "r" / "test_predictions.csv") as fh:
        assert [r["id"] for r in csv.DictReader(fh)] == [a.info["mp_id"] for a in mp_structures[30:]]
    with pytest.raises(ValueError, match=r"2 positive fractions.*--test-data"):
        train(mp_structures[:30], "band_gap", out=tmp_path / "r2", test_data=mp_structures[30:], **FAST)


def test_public_functions_are_not_shadowed_by_their_modules():
    import ase_negnn
    import ase_negnn.pretraining  # noqa: F401
    import ase_negnn.training  # noqa: F401

    assert callable(ase_negnn.train) and callable(ase_negnn.pretrain)
    from ase_negnn import pretrain, train

    assert train.__module__ == "ase_negnn.training" and pretrain.__module__ == "ase_negnn.pretraining"


def test_cli_freeze_encoder_keeps_the_pretrained_weights(tmp_path, encoder_dir):
    """--freeze-encoder: the paper's NEGNN, whose saved encoder equals the pretrained one bit for bit."""
    import torch

    from ase_negnn.pretrained import load_encoder

    out = tmp_path / "frozen"
    res = CliRunner().invoke(cli, ["train", "--data", str(MP_SMALL), "--target", "band_gap", "--out", str(out),
                                   "--max-epochs", "1", "--n-conv", "1", "--encoder", str(encoder_dir),
                                   "--freeze-encoder", "--no-progress"])
    assert res.exit_code == 0, res.output
    model = load_model(out / "model")
    assert model.freeze_encoder
    pretrained = load_encoder(encoder_dir).state_dict()
    for key, value in model.encoder.state_dict().items():
        assert torch.equal(value, pretrained[key]), key
    res = CliRunner().invoke(cli, ["train", "--data", str(MP_SMALL), "--target", "band_gap", "--out",
                                   str(tmp_path / "x"), "--freeze-encoder", "--fine-tune"])
    assert res.exit_code != 0 and "contradict" in res.output


def test_metric_summary_carries_units():
    from ase_negnn.cli import format_metrics

    assert format_metrics({"mae": 0.5, "rmse": 1.25, "r2": 0.5, "n": 40}, "eV") == \
        "MAE 0.5 eV, RMSE 1.25 eV, R² 0.5 (n = 40)"
    text = format_metrics({"energy_per_atom_mae": 0.01, "energy_per_atom_n": 3, "force_mae": 0.2, "force_n": 24}, "")
    assert text == "energy per atom MAE 0.01 eV/atom, force MAE 0.2 eV/Å (n = 3)"


def test_settings_are_keyword_only():
    """``train(data, target, "site")`` would silently be a graph/site mix-up if positions counted: refused."""
    import inspect

    from ase_negnn.pretraining import pretrain

    with pytest.raises(TypeError):
        train(MP_SMALL, "band_gap", "graph")
    assert [p.name for p in inspect.signature(train).parameters.values() if p.kind != p.KEYWORD_ONLY] == ["data",
                                                                                                     "target"]
    assert [p.name for p in inspect.signature(pretrain).parameters.values() if p.kind != p.KEYWORD_ONLY] == ["data",
                                                                                                        "out"]


def test_python_training_prints_no_lightning_banner_and_restores_its_loggers(tmp_path):
    """``pretrain`` and ``train`` called from Python (notebooks, the examples) print no Lightning banner, tip or
    LeafSpec deprecation (was: four lines per run), leave Lightning's logger levels as they found them, and still show
    a real warning raised while training. Fails if the quieting is only in the CLI or leaks past the call."""
    import subprocess
    import sys

    script = f"""
import logging, warnings
from ase_negnn import pretrain, train
names = ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero")
before = [logging.getLogger(n).level for n in names]
enc = pretrain({str(MP_SMALL)!r}, out={str(tmp_path / "pt")!r}, epochs=1, n_layers=1, width=8, progress=False,
               accelerator="cpu")
train({str(MP_SMALL)!r}, "band_gap", out={str(tmp_path / "tr")!r}, encoder=str(enc), max_epochs=1, n_conv=1,
      width=8, units="eV", progress=False, plot=False, accelerator="cpu")
assert [logging.getLogger(n).level for n in names] == before, "logger levels not restored"
print("DONE")
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    text = out.stdout + out.stderr
    assert "DONE" in out.stdout
    for noise in ("Tip:", "litlogger", "LeafSpec", "GPU available", "in eval mode"):
        assert noise not in text, noise


def test_quiet_lightning_keeps_real_warnings():
    import warnings

    from ase_negnn.io import quiet_lightning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with quiet_lightning():
            warnings.warn("`isinstance(treespec, LeafSpec)` is deprecated", DeprecationWarning)
            warnings.warn("labels look wrong", UserWarning)
    assert [str(w.message) for w in caught] == ["labels look wrong"]


def test_encoder_lr_scale_gives_the_pretrained_encoder_its_own_rate(encoder_dir):
    """encoder_lr_scale = 0.1: the fine-tuned encoder's parameters form a group at 0.1 × lr, the new layers keep lr,
    both follow the cosine to 1 %; at 1, or for a frozen or from-scratch encoder, one group at lr (as before).
    Fails if the scale is ignored, applied to the new layers, or applied to a from-scratch baseline."""
    from ase_negnn.models import NEGNN
    from ase_negnn.training import NEGNNModule

    model = NEGNN(encoder=str(encoder_dir), freeze_encoder=False, n_conv=1, width=8)
    opt = NEGNNModule(model, lr=1e-3, max_epochs=4, encoder_lr_scale=0.1).configure_optimizers()
    groups = opt["optimizer"].param_groups
    encoder_ids = {id(p) for p in model.encoder.parameters()}
    assert [g["lr"] for g in groups] == pytest.approx([1e-4, 1e-3])
    assert {id(p) for p in groups[0]["params"]} == encoder_ids
    assert not encoder_ids & {id(p) for p in groups[1]["params"]} and groups[1]["params"]
    sched = opt["lr_scheduler"]
    for _ in range(4):
        opt["optimizer"].step()
        sched.step()
    assert [g["lr"] for g in groups] == pytest.approx([1e-6, 1e-5])  # cosine to 1 % of each group's rate
    for kwargs in ({"encoder_lr_scale": 1.0}, {"encoder_lr_scale": 0.1, "frozen": True},
                   {"encoder_lr_scale": 0.1, "scratch": True}):
        m = NEGNN(encoder=str(encoder_dir), freeze_encoder=kwargs.get("frozen", False),
                  from_scratch=kwargs.get("scratch", False), n_conv=1, width=8)
        g = NEGNNModule(m, lr=1e-3, max_epochs=4, encoder_lr_scale=kwargs["encoder_lr_scale"]
                        ).configure_optimizers()["optimizer"].param_groups
        assert len(g) == 1 and g[0]["lr"] == pytest.approx(1e-3), kwargs


def test_encoder_lr_scale_must_be_positive(tmp_path):
    with pytest.raises(ValueError, match="encoder_lr_scale must be > 0"):
        train(MP_SMALL, "band_gap", out=tmp_path / "r", encoder_lr_scale=0.0, **FAST)


def test_init_from_starts_from_the_trained_weights_on_a_new_target(graph_run, tmp_path, mp_structures, encoder_dir):
    """A run started from a trained model begins at its weights (same architecture, same predictions before the first
    step once the target standardisation is the same), takes this run's target and records where it started."""
    import torch

    from ase_negnn.training import NEGNNModule, _init_source, _model_from

    out, _ = graph_run
    src = load_model(out / "model")
    args = dict(task="graph", target="band_gap_copy", units="eV", freeze_encoder=False)
    model = _model_from(_init_source(out / "model"), args)
    assert (model.target, len(model.convs)) == ("band_gap_copy", len(src.convs))
    for (k, a), (k2, b) in zip(src.state_dict().items(), model.state_dict().items()):
        assert k == k2 and torch.equal(a, b), k
    with torch.no_grad():
        np.testing.assert_allclose([p["band_gap_copy"] for p in model.eval().predict(mp_structures[:3])],
                                   [p["band_gap"] for p in src.predict(mp_structures[:3])], atol=1e-6)
    # one more run of the same target from the trained model: recorded in the card, with the L1 loss
    card = train(MP_SMALL, "band_gap", out=tmp_path / "more", init_from=str(out / "model"), loss="l1",
                 **{**{k: v for k, v in FAST.items() if k not in ("n_conv", "width")}, "max_epochs": 1})
    assert (card["init_from"], card["loss"], card["model"]["n_conv"], card["model"]["width"]) == (
        str(out / "model"), "l1", 1, 16)
    first = json.loads((out / "card.json").read_text())  # the history of the model it started from
    assert card["init_from_run"]["epochs_run"] == first["epochs_run"] and card["init_from_run"]["loss"] == "mse"
    assert card["init_from_run"]["validation_metrics"] == first["validation_metrics"]
    assert card["encoder"] == first["encoder"] == str(encoder_dir)  # the source's encoder, not this call's default
    # the L1 loss is the mean absolute standardised error
    module = NEGNNModule(model, loss="l1")
    module.log = lambda *a, **k: None
    from torch_geometric.data import Batch

    from ase_negnn.data import build_graphs

    g = build_graphs(mp_structures[:4], model.graph_converter(), False)
    batch = Batch.from_data_list([g[i] for i in range(4)])
    batch.y = torch.tensor([a.info["band_gap"] for a in mp_structures[:4]], dtype=torch.float32)
    with torch.no_grad():
        pred = model(batch)["y"]
        expect = torch.mean(torch.abs(pred - batch.y) / model.target_std)
        assert float(module._step(batch, "train")) == pytest.approx(float(expect), rel=1e-5)


def test_init_from_refuses_contradicting_settings(graph_run, tmp_path, encoder_dir):
    out, _ = graph_run
    with pytest.raises(ValueError, match="width=32 conflicts with the model's 16"):
        train(MP_SMALL, "band_gap", out=tmp_path / "a", init_from=str(out / "model"), width=32, n_conv=1)
    with pytest.raises(ValueError, match="brings its own encoder"):
        train(MP_SMALL, "band_gap", out=tmp_path / "b", init_from=str(out / "model"), from_scratch=True, n_conv=1,
              width=16)
    with pytest.raises(ValueError, match="graph-task model; this run has task='site'"):
        train(MP_SMALL, "magmom", task="site", out=tmp_path / "c", init_from=str(out / "model"), n_conv=1, width=16)
    with pytest.raises(ValueError, match="loss='l1' applies to graph and site tasks"):
        train(SI_SMALL, "energy", task="potential", out=tmp_path / "d", loss="l1", encoder=str(encoder_dir))
    result = CliRunner().invoke(cli, ["train", "--data", str(MP_SMALL), "--target", "band_gap", "--method", "krr",
                                      "--init-from", str(out / "model"), "--out", str(tmp_path / "e")])
    assert result.exit_code != 0 and "--init-from" in result.output


def test_cli_init_from_and_loss_reach_the_run(graph_run, tmp_path):
    out, _ = graph_run
    result = CliRunner().invoke(cli, ["train", "--data", str(MP_SMALL), "--target", "band_gap", "--init-from",
                                      str(out / "model"), "--loss", "l1", "--max-epochs", "1", "--batch-size", "16",
                                      "--no-progress", "--out", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    card = json.loads((tmp_path / "run" / "card.json").read_text())
    assert (card["init_from"], card["loss"], card["model"]["width"]) == (str(out / "model"), "l1", 16)
