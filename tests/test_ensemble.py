"""NEGNN deep ensembles (ase_negnn.ensemble): members, calibrated std, save/load, resume, calculator, refusals."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import MP_SMALL

TINY = {"max_epochs": 2, "n_conv": 1, "width": 8, "batch_size": 8, "progress": False, "plot": False}


@pytest.fixture(scope="module")
def ensemble_run(tmp_path_factory, encoder_dir):
    from ase_negnn.ensemble import train_ensemble

    out = tmp_path_factory.mktemp("ensemble")
    card = train_ensemble(MP_SMALL, "band_gap", out, n_members=2, seed=0, encoder=str(encoder_dir), units="eV",
                          **TINY)
    return out, card


def test_members_share_the_split_but_not_the_initialisation(ensemble_run):
    import json

    out, card = ensemble_run
    members = [json.loads((out / "members" / str(k) / "card.json").read_text()) for k in range(2)]
    assert [m["init_seed"] for m in members] == [0, 1] == card["member_init_seeds"]
    assert {(m["n_train"], m["n_validation"], m["n_test"]) for m in members} == {(32, 4, 4)}
    assert members[0]["test_metrics"]["mae"] != members[1]["test_metrics"]["mae"]  # different initialisations
    assert card["n_members"] == 2 and card["std_scale"] > 0 and card["n_test"] == 4


def test_prediction_is_members_mean_and_scaled_spread(ensemble_run, mp_structures):
    from ase_negnn.models import load_model

    out, card = ensemble_run
    ens = load_model(out / "model")
    assert type(ens).__name__ == "NEGNNEnsemble" and ens.outputs == ("band_gap", "band_gap_std")
    members = [load_model(out / "members" / str(k) / "model") for k in range(2)]
    P = np.array([[r["band_gap"] for r in m.predict(mp_structures[:5])] for m in members])
    rows = ens.predict(mp_structures[:5])
    np.testing.assert_allclose([r["band_gap"] for r in rows], P.mean(0), rtol=1e-6)
    np.testing.assert_allclose([r["band_gap_std"] for r in rows], P.std(0, ddof=1) * card["std_scale"], rtol=1e-6)


def test_saved_ensemble_loads_with_matgl_and_in_the_calculator(ensemble_run, mp_structures):
    import matgl

    from ase_negnn import NEGNNCalculator
    from ase_negnn.models import load_model

    out, _ = ensemble_run
    expected = load_model(out / "model").predict(mp_structures[:2])
    assert matgl.load_model(out / "model").predict(mp_structures[:2]) == expected
    atoms = mp_structures[0].copy()
    atoms.calc = NEGNNCalculator(models=[out / "model"])
    assert atoms.calc.get_property("band_gap_std", atoms) == pytest.approx(expected[0]["band_gap_std"], rel=1e-4)


def test_rerun_reuses_finished_members(ensemble_run, encoder_dir):
    from ase_negnn.ensemble import train_ensemble

    out, card = ensemble_run
    stamp = (out / "members" / "0" / "model" / "state.pt").stat().st_mtime_ns
    again = train_ensemble(MP_SMALL, "band_gap", out, n_members=2, seed=0, encoder=str(encoder_dir), units="eV",
                           **TINY)
    assert (out / "members" / "0" / "model" / "state.pt").stat().st_mtime_ns == stamp
    assert again["test_metrics"] == pytest.approx(card["test_metrics"])


@pytest.mark.parametrize(("kwargs", "message"), [({"n_members": 1}, "at least 2"),
                                                 ({"n_members": 2, "task": "site"}, "graph-task")])
def test_bad_ensembles_are_refused(tmp_path, kwargs, message):
    from ase_negnn.ensemble import train_ensemble

    with pytest.raises(ValueError, match=message):
        train_ensemble(MP_SMALL, "band_gap", tmp_path / "e", **kwargs)
    assert not (tmp_path / "e").exists()


def test_cli_ensemble_and_its_refusals(tmp_path, encoder_dir):
    from click.testing import CliRunner

    from ase_negnn.cli import cli

    runner = CliRunner()
    base = ["train", "--data", str(MP_SMALL), "--target", "band_gap", "--encoder", str(encoder_dir), "--no-progress"]
    res = runner.invoke(cli, [*base, "--ensemble", "2", "--max-epochs", "1", "--n-conv", "1", "--width", "8",
                              "--out", str(tmp_path / "e")])
    assert res.exit_code == 0, res.output
    assert "ensemble of 2: band_gap_std covers" in res.output and (tmp_path / "e" / "members" / "1" / "model").is_dir()
    res = runner.invoke(cli, [*base, "--ensemble", "2", "--method", "krr", "--out", str(tmp_path / "k")])
    assert res.exit_code == 2 and "--ensemble" in res.output
    res = runner.invoke(cli, [*base, "--ensemble", "2", "--task", "site", "--out", str(tmp_path / "s")])
    assert res.exit_code == 2 and "graph-task" in res.output and not (tmp_path / "s").exists()
