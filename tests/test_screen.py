"""Screening: streaming, per-structure errors, resume without loss or duplicates, CSV export, CLI."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from ase.db import connect
from click.testing import CliRunner

from ase_negnn.calculator import NEGNNCalculator
from ase_negnn.cli import cli
from ase_negnn.screening import iter_structures, screen

from conftest import MP_SMALL


@pytest.fixture(scope="module")
def calc(property_model_dirs):
    return NEGNNCalculator(models=[property_model_dirs["band_gap"], property_model_dirs["magmoms"]])


def _ids(db_path):
    with connect(db_path) as db:
        return [r.structure_id for r in db.select()]


def test_bad_structures_are_recorded_and_the_run_continues(calc, mp_structures, tmp_path):
    images = [a.copy() for a in mp_structures]
    images[3].positions[0] = np.nan
    images[5].numbers[0] = 0
    stats = screen(images, tmp_path / "s.db", calc, chunk_size=8, progress=False)
    assert (stats["n_new"], stats["n_errors"]) == (40, 2)
    with connect(tmp_path / "s.db") as db:
        rows = {r.structure_id: r for r in db.select()}
    assert rows[images[3].info["mp_id"]].status == "error" and "NaN" in rows[images[3].info["mp_id"]].error
    assert "atomic number" in rows[images[5].info["mp_id"]].error or "X" in rows[images[5].info["mp_id"]].error
    ok = rows[images[0].info["mp_id"]]
    assert ok.status == "ok" and np.isfinite(ok.band_gap) and ok.data["magmoms"].shape == (len(images[0]),)
    with open(tmp_path / "s.csv") as fh:
        table = list(csv.DictReader(fh))
    assert len(table) == 40 and "band_gap" in table[0] and table[3]["status"] == "error"


def test_interrupted_run_resumes_without_loss_or_duplicates(calc, tmp_path):
    first = screen(MP_SMALL, tmp_path / "r.db", calc, chunk_size=7, limit=17, progress=False)
    assert first["n_new"] == 17
    second = screen(MP_SMALL, tmp_path / "r.db", calc, chunk_size=7, progress=False)
    assert (second["n_new"], second["n_skipped"]) == (23, 17)
    ids = _ids(tmp_path / "r.db")
    expected = [sid for sid, _ in iter_structures(MP_SMALL)]
    assert sorted(ids) == sorted(expected) and len(ids) == len(set(ids)) == 40
    third = screen(MP_SMALL, tmp_path / "r.db", calc, progress=False)
    assert third["n_new"] == 0 and len(_ids(tmp_path / "r.db")) == 40


def test_values_match_the_calculator(calc, mp_structures, tmp_path):
    screen(mp_structures[:5], tmp_path / "v.db", calc, progress=False)
    with connect(tmp_path / "v.db") as db:
        got = {r.structure_id: r.band_gap for r in db.select()}
    for a in mp_structures[:5]:
        assert got[a.info["mp_id"]] == pytest.approx(calc.get_property("band_gap", a.copy()), abs=1e-5)


def test_screen_rejects_non_db_output(calc, tmp_path):
    with pytest.raises(ValueError, match=r"ending in \.db"):
        screen(MP_SMALL, tmp_path / "out.csv", calc)


def test_cli_screen(property_model_dirs, tmp_path):
    args = ["screen", str(MP_SMALL), "--models", str(property_model_dirs["band_gap"]), "--out", str(tmp_path / "c.db"),
            "--no-progress"]
    res = CliRunner().invoke(cli, [*args, "--limit", "10"])
    assert res.exit_code == 0, res.output
    assert "screened 10 new" in res.output
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 0 and "30 new structure(s) (10 already done" in res.output


@pytest.mark.parametrize("content", ["this is not a structure file\n", ""])
def test_unreadable_input_leaves_no_database(property_model_dirs, tmp_path, content):
    """A screen that fails before screening anything must not leave an empty .db (nor its CSV) behind."""
    src = tmp_path / "bad.extxyz"
    src.write_text(content)
    out = tmp_path / "res.db"
    res = CliRunner().invoke(cli, ["screen", str(src), "--models", str(property_model_dirs["band_gap"]),
                                   "--out", str(out), "--no-progress"])
    assert res.exit_code == 1 and "bad.extxyz" in res.output
    assert not out.exists() and not out.with_suffix(".csv").exists()


def test_progress_bar_has_a_total_when_the_input_size_is_known(calc, mp_structures, tmp_path, capsys):
    """A list (or --limit) gives the bar its total, so it shows n/N and an ETA instead of a bare count."""
    screen(mp_structures[:6], tmp_path / "a.db", calc, progress=True, chunk_size=2)
    err = capsys.readouterr().err
    assert "6/6" in err
    screen(mp_structures, tmp_path / "b.db", calc, progress=True, chunk_size=2, limit=4)
    assert "4/4" in capsys.readouterr().err
