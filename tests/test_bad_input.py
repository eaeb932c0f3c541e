"""Bad input at every public entry point: a specific exception naming the problem, or a documented result.

Entry points: ``SSAR``/``SSMR.create``, ``NEGNNCalculator`` (energy and forces, ``band_gap``, ``predict_many``),
``train`` / ``ase-negnn train``, ``ase-negnn predict``, ``screen``, ``relax`` and ``compute_phonons``; then saved
models, encoders and graph caches that are truncated, corrupt, foreign or malicious; atomic writers; two screening
processes at once; and property-based invariances on random crystals. The table of ``docs/robustness.md`` maps
every case to the tests here.
"""

from __future__ import annotations

import csv
import os
import pickle
import re
import shutil
import subprocess
import sys
import types

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.build import bulk
from ase.calculators.calculator import PropertyNotImplementedError
from ase.calculators.singlepoint import SinglePointCalculator
from ase.db import connect
from ase.io import write
from click.testing import CliRunner
from conftest import MP_SMALL, rel_close
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from torch_geometric.data import Batch

from ase_negnn import SSAR, SSMR
from ase_negnn.calculator import NEGNNCalculator
from ase_negnn.cli import cli
from ase_negnn.data import GraphDataset, build_graphs, load_graph_dataset
from ase_negnn.readers import read_structures
from ase_negnn.graph import CrystalGraphConverter
from ase_negnn.models import NEGNN, load_model
from ase_negnn.plugins.phonons import compute_phonons
from ase_negnn.pretrained import load_encoder
from ase_negnn.relaxation import relax
from ase_negnn.screening import export_csv, screen
from ase_negnn.training import train

TINY_TRAIN = {"max_epochs": 1, "n_conv": 1, "width": 8, "batch_size": 16, "progress": False, "plot": False}


# -- structures -----------------------------------------------------------------------------------------------------
def _si() -> Atoms:
    return bulk("Si", "diamond", a=5.43)


def _si_with(**change) -> Atoms:
    atoms = _si()
    if "number" in change:
        atoms.numbers[0] = change["number"]
    if "position" in change:
        atoms.positions[change["position"][0], change["position"][1]] = change["position"][2]
    if "cell" in change:
        cell = atoms.cell.array.copy()
        cell[0, 0] = change["cell"]
        atoms.set_cell(cell)
    if change.get("overlap"):
        atoms.positions[1] = atoms.positions[0]
    return atoms


#: case id → (factory, regex the ValueError message must match). Every entry point refuses these.
BAD_STRUCTURES = {
    "empty": (lambda: Atoms(), "empty structure: it has no atoms"),
    "Z=0 (X)": (lambda: _si_with(number=0), r"unsupported atomic number\(s\) \[0\].*Z = 1…100"),
    "Z=110": (lambda: _si_with(number=110), r"unsupported atomic number\(s\) \[110\]"),
    "NaN position": (lambda: _si_with(position=(0, 0, np.nan)),
                     r"non-finite \(NaN/inf\) positions for atom\(s\) \[0\]"),
    "inf position": (lambda: _si_with(position=(1, 2, np.inf)),
                     r"non-finite \(NaN/inf\) positions for atom\(s\) \[1\]"),
    "NaN cell": (lambda: _si_with(cell=np.nan), "the cell contains NaN/inf"),
    "zero cell, pbc": (lambda: Atoms("Si2", positions=[[0, 0, 0], [1.3, 1.3, 1.3]], pbc=True),
                       "periodic direction 0 has a zero-length cell vector"),
    "singular cell, pbc": (lambda: Atoms("Si2", positions=[[0, 0, 0], [1.3, 1.3, 1.3]],
                                         cell=[[3, 0, 0], [0, 3, 0], [3, 3, 0]], pbc=True),
                           r"linearly dependent \(cell volume 0\)"),
    "overlapping atoms": (lambda: _si_with(overlap=True), r"atoms 0 and 1 overlap \(distance 0 Å"),
}


def _isolated() -> Atoms:
    """One atom, no cell, no periodicity (a molecule of one atom)."""
    return Atoms("Si")


def _vacuum() -> Atoms:
    """One atom in a 20 Å periodic box: no neighbour inside any cutoff."""
    return Atoms("Si", positions=[[5.0, 5.0, 5.0]], cell=[20.0, 20.0, 20.0], pbc=True)


# -- shared models --------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def ctx(small_encoder, si_potential_dir, property_model_dirs):
    """Descriptors on the tiny encoder, the tiny Si potential, the untrained band-gap/magmom models."""
    props = [property_model_dirs["band_gap"], property_model_dirs["magmoms"]]
    return types.SimpleNamespace(
        ssar=SSAR(encoder=small_encoder), ssmr=SSMR(encoder=small_encoder),
        pot=NEGNNCalculator(potential=si_potential_dir),
        props=NEGNNCalculator(models=props),
        both=NEGNNCalculator(potential=si_potential_dir, models=props),
    )


def _energy_and_forces(calc, atoms):
    atoms.calc = calc
    return atoms.get_potential_energy(), atoms.get_forces()


ENTRY_POINTS = {
    "SSAR.create": lambda c, a: c.ssar.create(a),
    "SSMR.create": lambda c, a: c.ssmr.create(a),
    "calculator energy+forces": lambda c, a: _energy_and_forces(c.pot, a),
    "calculator band_gap": lambda c, a: c.props.get_property("band_gap", a),
    "calculator predict_many": lambda c, a: c.both.predict_many([_si(), a]),
    "relax": lambda c, a: relax(a, c.pot, steps=2),
    "compute_phonons": lambda c, a: compute_phonons(a, c.pot, supercell=1),
}


# == 1. bad structures ==============================================================================================
@pytest.mark.parametrize("entry", list(ENTRY_POINTS))
@pytest.mark.parametrize("case", list(BAD_STRUCTURES))
def test_bad_structure_is_a_clear_value_error(ctx, entry, case):
    factory, message = BAD_STRUCTURES[case]
    with pytest.raises(ValueError, match=message):
        ENTRY_POINTS[entry](ctx, factory())


def test_predict_many_names_the_bad_structure(ctx):
    with pytest.raises(ValueError, match=r"structure 1: atoms 0 and 1 overlap"):
        ctx.props.predict_many([_si(), _si_with(overlap=True)])


@pytest.mark.parametrize("relax_first", [False, True], ids=["predict", "relax+predict"])
def test_screen_records_an_error_row_per_bad_structure_and_continues(ctx, tmp_path, relax_first):
    images = [_si(), _isolated(), _vacuum()] + [factory() for factory, _ in BAD_STRUCTURES.values()] + [_si()]
    names = ["good-0", "isolated", "vacuum", *BAD_STRUCTURES, "good-1"]
    for atoms, name in zip(images, names):
        atoms.info["id"] = name
    stats = screen(images, tmp_path / "s.db", ctx.both, relax=relax_first, steps=3, chunk_size=4, progress=False)
    assert (stats["n_new"], stats["n_errors"]) == (len(images), len(BAD_STRUCTURES))
    with connect(tmp_path / "s.db") as db:
        rows = {r.structure_id: r for r in db.select()}
    assert sorted(rows) == sorted(names)
    for case, (_, message) in BAD_STRUCTURES.items():
        assert rows[case].status == "error" and rows[case].error.startswith("ValueError: ")
        assert re.search(message, rows[case].error), (case, rows[case].error)
    for name in ("good-0", "good-1", "isolated", "vacuum"):
        assert rows[name].status == "ok" and np.isfinite(rows[name].band_gap), name
    with open(tmp_path / "s.csv") as fh:
        assert len(list(csv.DictReader(fh))) == len(images)


def test_screen_and_predict_db_accept_structures_without_ids(ctx, property_model_dirs, tmp_path):
    """Without info ids the ids are the positions "0", "1", … (which ASE db refuses as strings): stored as numbers."""
    images = [_si(), bulk("NaCl", "rocksalt", a=5.64)]
    first = screen(images, tmp_path / "s.db", ctx.props, progress=False)
    again = screen(images, tmp_path / "s.db", ctx.props, progress=False)
    assert (first["n_new"], first["n_errors"], again["n_new"], again["n_skipped"]) == (2, 0, 0, 2)
    with connect(tmp_path / "s.db") as db:
        assert sorted(str(r.structure_id) for r in db.select()) == ["0", "1"]
    write(tmp_path / "in.extxyz", images)
    res = CliRunner().invoke(cli, ["predict", str(property_model_dirs["band_gap"]), str(tmp_path / "in.extxyz"),
                                   "--out", str(tmp_path / "p.db"), "--no-progress"])
    assert res.exit_code == 0, res.output
    with connect(tmp_path / "p.db") as db:
        assert [str(r.structure_id) for r in db.select()] == ["0", "1"]


# -- documented results: isolated atoms and elements a model never saw ----------------------------------------------
@pytest.mark.parametrize("factory", [_isolated, _vacuum], ids=["isolated atom, no cell", "atom in 20 Å vacuum cell"])
def test_atom_without_neighbours_gets_no_edges_and_finite_predictions(ctx, factory):
    atoms = factory()
    assert CrystalGraphConverter()(atoms).edge_index.shape == (2, 0)
    ssar = ctx.ssar.create(atoms)
    assert ssar.shape == (1, ctx.ssar.get_number_of_features()) and np.isfinite(ssar).all()
    rel_close(ctx.ssmr.create(atoms), ssar[0])  # mean over one atom
    rel_close(ssar, ctx.ssar.create(_isolated()))  # without edges, pbc and cell do not matter
    energy, forces = _energy_and_forces(ctx.pot, atoms)
    assert np.isfinite(energy) and np.array_equal(forces, np.zeros((1, 3)))
    if atoms.pbc.all():
        np.testing.assert_allclose(atoms.get_stress(), 0.0, atol=1e-12)
    else:
        with pytest.raises(PropertyNotImplementedError, match="periodic cell"):
            atoms.get_stress()
    assert np.isfinite(ctx.props.get_property("band_gap", atoms))
    assert ctx.props.get_property("magmoms", atoms).shape == (1,)
    row = ctx.both.predict_many([atoms])[0]
    assert np.isfinite(row["energy"]) and np.isfinite(row["band_gap"])
    res = relax(atoms, ctx.pot, steps=5)
    assert res.converged and res.steps == 0 and res.fmax == 0.0
    if atoms.pbc.all():
        ph = compute_phonons(atoms, ctx.pot, supercell=1)
        np.testing.assert_allclose(ph.force_constants, 0.0, atol=1e-8)
    else:
        with pytest.raises(ValueError, match="periodic unit cell"):
            compute_phonons(atoms, ctx.pot)


def test_element_the_potential_never_saw(ctx, si_potential_dir, tmp_path):
    """Cu for a Si potential: the potential refuses it (name the element); the encoder and models that record no
    training elements (the untrained band-gap model) accept any Z = 1…100."""
    assert load_model(si_potential_dir).element_types == ("Si",)
    cu = bulk("Cu", "fcc", a=3.61)
    message = r"element\(s\) Cu are not in this model's training data"
    for entry in ("calculator energy+forces", "calculator predict_many", "relax", "compute_phonons"):
        with pytest.raises(ValueError, match=message):
            ENTRY_POINTS[entry](ctx, cu.copy())
    assert np.isfinite(ctx.ssmr.create(cu)).all() and np.isfinite(ctx.props.get_property("band_gap", cu.copy()))
    write(tmp_path / "cu.extxyz", cu)
    res = CliRunner().invoke(cli, ["predict", str(si_potential_dir), str(tmp_path / "cu.extxyz"),
                                   "--out", str(tmp_path / "e.csv"), "--no-progress"])
    assert res.exit_code == 1 and "structure 0: element(s) Cu are not in this model's training data" in res.output
    assert not (tmp_path / "e.csv").exists()


def test_cli_predict_property_model_warns_about_unseen_elements(property_model_dirs, nacl, tmp_path):
    """A property model that recorded its training elements (Si only) predicts NaCl, with a warning naming them."""
    model = load_model(property_model_dirs["band_gap"])
    model.set_trained_elements([14])
    model.save(tmp_path / "si-gap")
    write(tmp_path / "nacl.extxyz", nacl)
    res = CliRunner().invoke(cli, ["predict", str(tmp_path / "si-gap"), str(tmp_path / "nacl.extxyz"),
                                   "--out", str(tmp_path / "g.csv"), "--no-progress"])
    assert res.exit_code == 0, res.output
    assert ("warning: 1 structure(s) have elements outside this model's training data (e.g. structure 0: "
            "element(s) Na, Cl are not in this model's training data)") in res.stderr
    with open(tmp_path / "g.csv") as fh:
        assert np.isfinite(float(next(csv.DictReader(fh))["band_gap"]))


# -- a 10,000-atom cell ---------------------------------------------------------------------------------------------
def test_ten_thousand_atoms_descriptor(ctx):
    """Cu fcc 10×10×25 conventional cells: SSAR (10000, F) finite; mean SSMR equals the primitive cell's."""
    big = bulk("Cu", "fcc", a=3.61, cubic=True).repeat((10, 10, 25))
    assert len(big) == 10_000
    ssar = ctx.ssar.create(big)
    assert ssar.shape == (10_000, ctx.ssar.get_number_of_features()) and np.isfinite(ssar).all()
    rel_close(ssar.mean(axis=0), ctx.ssmr.create(bulk("Cu", "fcc", a=3.61)), rtol=1e-4)


def test_ten_thousand_atoms_energy_and_forces(ctx):
    """Si diamond 10×20×25 primitive cells: energy = 5000 × the primitive cell's (the atomic energies are summed in
    float64: a float32 sum was off by 3.9 eV here), forces ≈ 0, finite stress."""
    big = _si().repeat((10, 20, 25))
    assert len(big) == 10_000
    energy, forces = _energy_and_forces(ctx.pot, big)
    assert forces.shape == (10_000, 3) and np.abs(forces).max() < 1e-3
    assert np.isfinite(big.get_stress()).all()
    assert energy == pytest.approx(5000 * _energy_and_forces(ctx.pot, _si())[0], rel=1e-6)


# -- CLI predict on bad structures ----------------------------------------------------------------------------------
def test_cli_predict_bad_structure_names_it_and_writes_nothing(property_model_dirs, tmp_path):
    images = [_si(), _si_with(overlap=True), _vacuum()]
    for i, atoms in enumerate(images):
        atoms.info["id"] = f"s{i}"
    write(tmp_path / "in.extxyz", images)
    res = CliRunner().invoke(cli, ["predict", str(property_model_dirs["band_gap"]), str(tmp_path / "in.extxyz"),
                                   "--out", str(tmp_path / "p.csv"), "--no-progress"])
    assert res.exit_code == 1 and "Traceback" not in res.output
    assert "structure 1 (s1): atoms 0 and 1 overlap" in res.output
    assert not (tmp_path / "p.csv").exists()


def test_cli_predict_isolated_atoms_give_finite_rows(property_model_dirs, tmp_path):
    write(tmp_path / "in.extxyz", [_isolated(), _vacuum()])
    res = CliRunner().invoke(cli, ["predict", str(property_model_dirs["band_gap"]), str(tmp_path / "in.extxyz"),
                                   "--out", str(tmp_path / "p.csv"), "--no-progress"])
    assert res.exit_code == 0, res.output
    with open(tmp_path / "p.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 2 and all(np.isfinite(float(r["band_gap"])) for r in rows)


# -- malformed and missing files ------------------------------------------------------------------------------------
BAD_FILES = {  # name → (content, gist of the message after "could not read structures from NAME: ")
    "bad.cif": (("data_broken\n_cell_length_a 5.0\n_cell_length_b\nloop_\n_atom_site_label\n_atom_site_fract_x\n"
                 "Si1 0.0 0.5\n"), "Unexpected CIF file entry"),
    "no-atoms.cif": ("data_broken\n_cell_length_a 5.0\nloop_\n_atom_site_label\n_atom_site_fract_x\nSi1 0.0 0.5\n",
                     None),
    "garbage.cif": ("this is not a CIF at all\n", "AssertionError: not a valid cif file"),
    "truncated.extxyz": ('2\nLattice="5.43 0 0 0 5.43 0 0 0 5.43" Properties=species:S:1:pos:R:3\nSi 0 0 0\n',
                         "Frame has 1 atoms, expected 2"),
    "bad-number.extxyz": (('2\nLattice="5.43 0 0 0 5.43 0 0 0 5.43" Properties=species:S:1:pos:R:3\n'
                           "Si 0 0 zero\nSi 1 1 1\n"), "could not convert string to float: 'zero'"),
    "empty.extxyz": ("", "Empty file"),
}


def _file_entry_points(tmp_path, encoder_dir, potential, gap):
    out = str(tmp_path / "out")
    return {
        "read_structures": lambda p: read_structures(p),
        "train": lambda p: train(p, "band_gap", out=out, encoder=str(encoder_dir), **TINY_TRAIN),
        "screen": lambda p: screen(p, out + ".db", NEGNNCalculator(models=[gap]), progress=False),
        "cli train": ["train", "--data", "{}", "--target", "band_gap", "--out", out, "--encoder", str(encoder_dir)],
        "cli predict": ["predict", str(gap), "{}", "--out", out + ".csv"],
        "cli screen": ["screen", "{}", "--models", str(gap), "--out", out + ".db", "--no-progress"],
        "cli relax": ["relax", "{}", "--potential", str(potential), "--out", out + ".extxyz", "--no-progress"],
        "cli phonons": ["phonons", "{}", "--potential", str(potential), "--out", out],
        "cli embed": ["embed", "{}", "--encoder", str(encoder_dir), "--out", out + ".npy", "--no-progress"],
    }


FILE_ENTRY_POINTS = ["read_structures", "train", "screen", "cli train", "cli predict", "cli screen", "cli relax",
                     "cli phonons", "cli embed"]


@pytest.mark.parametrize("entry", FILE_ENTRY_POINTS)
@pytest.mark.parametrize("name", [*BAD_FILES, "missing.extxyz"])
def test_malformed_or_missing_file(tmp_path, encoder_dir, si_potential_dir, property_model_dirs, name, entry):
    path = tmp_path / name
    if name in BAD_FILES and BAD_FILES[name][1] is None:
        path.write_text(BAD_FILES[name][0])
        message = rf"\S*{name} holds no structures"
    elif name in BAD_FILES:
        path.write_text(BAD_FILES[name][0])
        message = rf"could not read structures from \S*{name}: .*{BAD_FILES[name][1]}"
    else:
        message = rf"no such file or directory: \S*{name}"
    run = _file_entry_points(tmp_path, encoder_dir, si_potential_dir, property_model_dirs["band_gap"])[entry]
    if callable(run):
        with pytest.raises(FileNotFoundError if name == "missing.extxyz" else ValueError, match=message):
            run(path)
        return
    res = CliRunner().invoke(cli, [str(path) if a == "{}" else a for a in run])
    assert isinstance(res.exception, SystemExit) and "Traceback" not in res.output
    if name == "missing.extxyz":  # click checks the path before anything runs
        assert res.exit_code == 2 and f"{name}' does not exist" in res.output
    else:
        assert res.exit_code == 1
        assert re.search(message, " ".join(res.output.split())), res.output


# -- training labels ------------------------------------------------------------------------------------------------
CSV_CASES = {
    "missing value": ("mp_id,tc\n{0},1.0\n{1},\n", r"target 'tc' is NaN/inf for 1 structure\(s\): {1}"),
    "NaN value": ("mp_id,tc\n{0},1.0\n{1},nan\n", r"target 'tc' is NaN/inf for 1 structure\(s\): {1}"),
    "missing row": ("mp_id,tc\n{0},1.0\n", r"1 structure\(s\) have no row in labels.csv: \['{1}'\]"),
    "not a number": ("mp_id,tc\n{0},1.0\n{1},high\n", r"labels.csv line 3: tc='high' is not a number"),
    "duplicate id": ("mp_id,tc\n{0},1.0\n{0},2.0\n{1},3\n", r"id '{0}' appears twice"),
    "no id column": ("name_x,tc\n{0},1.0\n", "no id column in labels.csv"),
    "no such column": ("mp_id,Tc\n{0},1.0\n", r"label column 'tc' not in labels.csv"),
    "header only": ("mp_id,tc\n", "labels.csv has no rows"),
}


@pytest.mark.parametrize("case", list(CSV_CASES))
def test_label_csv_problems_are_caught_before_training(mp_structures, tmp_path, case):
    images = [a.copy() for a in mp_structures[:2]]
    text, message = CSV_CASES[case]
    ids = [a.info["mp_id"] for a in images]
    (tmp_path / "labels.csv").write_text(text.format(*ids))
    with pytest.raises(ValueError, match=message.format(*ids)):
        train(images, "tc", labels_csv=tmp_path / "labels.csv", out=tmp_path / "run", **TINY_TRAIN)
    assert not (tmp_path / "run").exists()


def test_label_csv_missing_file_and_cli(mp_structures, tmp_path):
    with pytest.raises(FileNotFoundError, match="label file not found"):
        train(mp_structures[:2], "tc", labels_csv=tmp_path / "nope.csv", out=tmp_path / "run", **TINY_TRAIN)
    (tmp_path / "labels.csv").write_text("mp_id,tc\nmp-1,\n")
    res = CliRunner().invoke(cli, ["train", "--data", str(MP_SMALL), "--labels", str(tmp_path / "labels.csv"),
                                   "--target", "tc", "--out", str(tmp_path / "run")])
    assert res.exit_code == 1 and "have no row in labels.csv" in res.output and "Traceback" not in res.output
    assert not (tmp_path / "run").exists()


def _labelled(kind: str) -> tuple[list, str, str, str]:
    """Two Si structures ``s0`` (correct labels) and ``s1`` (the bad ones): images, task, target, message."""
    images = [_si(), _si()]
    for i, atoms in enumerate(images):
        atoms.info["id"] = f"s{i}"
    good, bad = images
    if kind == "site (N, 2) array":
        good.arrays["m"] = np.zeros(2)
        bad.arrays["m"] = np.zeros((2, 2))
        return images, "site", "m", r"per-atom target 'm' of s1 has shape \(2, 2\), expected \(2,\)"
    if kind == "site result of wrong length":
        for a in images:
            a.calc = SinglePointCalculator(a, magmoms=np.zeros(3 if a is bad else 2))
        return images, "site", "magmoms", r"per-atom target 'magmoms' of s1 has shape \(3,\), expected \(2,\)"
    if kind == "site NaN":
        for a in images:
            a.arrays["m"] = np.array([0.5, np.nan if a is bad else 0.5])
        return images, "site", "m", r"per-atom target 'm' of s1 has NaN/inf at atoms \[1\]"
    if kind == "potential forces (3, 3) for 2 atoms":
        for a in images:
            a.calc = SinglePointCalculator(a, energy=-10.0, forces=np.zeros((3 if a is bad else 2, 3)))
        return images, "potential", "energy", r"forces of s1 have shape \(3, 3\), expected \(2, 3\)"
    if kind == "potential stress (4,)":
        for a in images:
            a.calc = SinglePointCalculator(a, energy=-10.0, forces=np.zeros((2, 3)))
            a.info["stress"] = np.zeros(4 if a is bad else 6)
        return images, "potential", "energy", r"stress must be Voigt \(6,\) or \(3, 3\), got shape \(4,\)"
    assert kind == "graph label is an array"
    good.info["m"], bad.info["m"] = 1.0, np.array([1.0, 2.0])
    return images, "graph", "m", "target 'm' is not one number per structure"


@pytest.mark.parametrize("kind", ["site (N, 2) array", "site result of wrong length", "site NaN",
                                  "potential forces (3, 3) for 2 atoms", "potential stress (4,)",
                                  "graph label is an array"])
def test_wrong_shaped_per_atom_labels(tmp_path, kind):
    images, task, target, message = _labelled(kind)
    with pytest.raises(ValueError, match=message):
        train(images, target, task=task, out=tmp_path / "run", **TINY_TRAIN)
    assert not (tmp_path / "run").exists()


def test_train_skips_unconvertible_structures_with_a_warning(mp_structures, encoder_dir, tmp_path):
    """Documented: structures that cannot become graphs are skipped with one warning naming them, and counted."""
    bad = [BAD_STRUCTURES[c][0]() for c in ("empty", "Z=0 (X)", "NaN position", "zero cell, pbc", "overlapping atoms")]
    for i, atoms in enumerate(bad):
        atoms.info.update(mp_id=f"bad-{i}", band_gap=1.0)
    images = [a.copy() for a in mp_structures[:12]] + bad
    with pytest.warns(UserWarning, match=r"skipped 5 structure\(s\) of input: \['12: empty structure"):
        card = train(images, "band_gap", out=tmp_path / "run", encoder=str(encoder_dir), **TINY_TRAIN)
    assert (card["n_structures"], card["skipped_structures"]) == (12, 5)
    with pytest.warns(UserWarning, match="skipped 5"), pytest.raises(ValueError, match="no usable structures in input"):
        train(bad, "band_gap", out=tmp_path / "run2", split="0.4,0.3,0.3", encoder=str(encoder_dir), **TINY_TRAIN)


# == 2. checkpoints, model directories, graph caches ===================================================================
class _Payload:
    """Unpickling this creates ``path``: proof that pickled code ran."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def _corrupt(path, kind: str, marker=None) -> None:
    data = path.read_bytes()
    if kind == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif kind == "random bytes":
        path.write_bytes(np.random.default_rng(0).integers(0, 256, len(data), dtype=np.uint8).tobytes())
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "foreign dict":
        torch.save({"a": 1}, path)
    elif kind == "list":
        torch.save([1, 2], path)
    elif kind == "pickle payload":
        path.write_bytes(pickle.dumps(_Payload(marker)))
    elif kind == "torch.save payload":
        torch.save({"x": _Payload(marker)}, path)
    else:
        raise AssertionError(kind)


def _saved(request, which: str, tmp_path):
    src = request.getfixturevalue("encoder_dir") if which == "encoder" else \
        request.getfixturevalue("property_model_dirs")["band_gap"]
    dst = tmp_path / which
    shutil.copytree(src, dst)
    return dst


LOADERS = {"load_model": ("model", load_model), "load_encoder": ("encoder", load_encoder)}


@pytest.mark.parametrize("kind", ["truncated", "random bytes", "empty", "foreign dict", "list"])
@pytest.mark.parametrize("file", ["model.pt", "state.pt"])
@pytest.mark.parametrize("loader", list(LOADERS))
def test_corrupt_checkpoint_file_is_a_clear_error(request, tmp_path, loader, file, kind):
    which, load = LOADERS[loader]
    path = _saved(request, which, tmp_path)
    _corrupt(path / file, kind)
    with pytest.raises(ValueError) as err:
        load(path)
    assert str(path / file) in str(err.value)
    cls = "NEGNN" if which == "model" else "CGCNNEncoder"
    expected = {"truncated": "is corrupt or not a torch file", "random bytes": "is corrupt or not a torch file",
                "empty": "is corrupt or not a torch file", "list": "holds a list",
                "foreign dict": "does not take" if file == "model.pt" else f"is not a {cls} state dict"}[kind]
    assert expected in str(err.value)


@pytest.mark.parametrize("loader", list(LOADERS))
@pytest.mark.parametrize("kind", ["truncated", "random bytes", "empty"])
def test_corrupt_model_json_is_a_clear_error(request, tmp_path, loader, kind):
    which, load = LOADERS[loader]
    path = _saved(request, which, tmp_path)
    _corrupt(path / "model.json", kind)
    with pytest.raises(ValueError, match="model.json|not a NEGNN"):
        load(path)


def test_foreign_model_directories(encoder_dir, property_model_dirs, si_potential_dir, tmp_path):
    with pytest.raises(ValueError, match="holds a CGCNNEncoder, not a NEGNN, KernelModel"):
        load_model(encoder_dir)
    with pytest.raises(ValueError, match="holds a 'NEGNN', not a CGCNNEncoder"):
        load_encoder(property_model_dirs["band_gap"])
    with pytest.raises(ValueError, match="not a CGCNNEncoder"):
        SSMR(encoder=property_model_dirs["band_gap"])
    with pytest.raises(ValueError, match="not a CGCNNEncoder"):
        NEGNN(encoder=str(property_model_dirs["band_gap"]))
    with pytest.raises(ValueError, match="not a NEGNN, KernelModel"):
        NEGNNCalculator(potential=encoder_dir)
    with pytest.raises(ValueError, match="is a graph model, not a potential"):
        NEGNNCalculator(potential=property_model_dirs["band_gap"])
    with pytest.raises(ValueError, match="is a potential: pass it as potential="):
        NEGNNCalculator(models=[si_potential_dir])
    (tmp_path / "half").mkdir()
    shutil.copy(encoder_dir / "model.json", tmp_path / "half")
    with pytest.raises(FileNotFoundError, match=r"missing .*model.pt"):
        load_encoder(tmp_path / "half")
    with pytest.raises(FileNotFoundError, match="model directory not found"):
        load_model(tmp_path / "nowhere")


@pytest.mark.parametrize("kind", ["pickle payload", "torch.save payload"])
@pytest.mark.parametrize("file", ["model.pt", "state.pt"])
@pytest.mark.parametrize("loader", list(LOADERS))
def test_loading_never_runs_pickled_code(request, tmp_path, loader, file, kind):
    marker = tmp_path / "PWNED"
    pickle.loads(pickle.dumps(_Payload(tmp_path / "live")))  # the payload is live: plain unpickling runs it
    assert (tmp_path / "live").exists()
    which, load = LOADERS[loader]
    path = _saved(request, which, tmp_path)
    _corrupt(path / file, kind, marker)
    with pytest.raises(ValueError, match=rf"{file} is corrupt or not a torch file.*Weights only load failed"):
        load(path)
    assert not marker.exists()


def test_graph_cache_never_runs_pickled_code(tmp_path):
    marker = tmp_path / "PWNED"
    for i, kind in enumerate(["pickle payload", "torch.save payload"]):
        path = tmp_path / f"c{i}.graphs.pt"
        path.write_bytes(b"x")
        _corrupt(path, kind, marker)
        with pytest.raises(ValueError, match="unreadable or corrupt.*Weights only load failed"):
            GraphDataset.load(path)
    assert not marker.exists()


@pytest.mark.parametrize("loader", list(LOADERS))
def test_class_reference_in_model_pt_is_not_constructed(request, tmp_path, loader):
    """matgl builds ``{"@module": m, "@class": c, "init_args": …}`` arguments by calling ``m.c(**init_args)``: a
    weights-only-safe model.pt could name any callable. Only the encoder class is accepted."""
    marker = tmp_path / "PWNED"
    which, load = LOADERS[loader]
    path = _saved(request, which, tmp_path)
    args = torch.load(path / "model.pt", weights_only=True)
    key = "encoder" if which == "model" else "width"
    args[key] = {"@module": "builtins", "@class": "open", "@model_version": 0,
                 "init_args": {"file": str(marker), "mode": "w"}}
    torch.save(args, path / "model.pt")
    with pytest.raises(ValueError, match=rf"argument '{key}' would construct builtins.open; refusing to load"):
        load(path)
    assert not marker.exists()


@pytest.mark.parametrize("kind", ["truncated", "random bytes", "empty", "foreign dict", "list", "no arrays"])
def test_corrupt_graph_cache_is_a_clear_error(tmp_path, si, kind):
    path = tmp_path / "c.graphs.pt"
    build_graphs([si], CrystalGraphConverter()).save(path)
    if kind == "no arrays":
        torch.save({"version": 2, "meta": {}, "arrays": {"z": torch.zeros(1)}}, path)
        message = r"graph cache \S+: graph arrays lack \['pos'"
    else:
        _corrupt(path, kind)
        message = r"graph cache \S+ (is unreadable or corrupt|has an unknown layout)"
    with pytest.raises(ValueError, match=message):
        GraphDataset.load(path)


def test_cache_built_with_other_settings_is_detected_and_rebuilt(tmp_path, caplog):
    """A cache file holding graphs of another cutoff, found under this cutoff's name, is not reused."""
    cache = tmp_path / "cache"
    six = load_graph_dataset(MP_SMALL, CrystalGraphConverter(cutoff=6.0), cache, progress=False)
    five = load_graph_dataset(MP_SMALL, CrystalGraphConverter(cutoff=5.0), cache, progress=False)
    files = sorted(cache.iterdir(), key=lambda p: p.stat().st_mtime_ns)
    assert len(files) == 2
    six_file, five_file = files
    shutil.copy(six_file, five_file)  # the cutoff-5 name now holds cutoff-6 graphs
    with caplog.at_level("WARNING", logger="ase_negnn.data"):
        again = load_graph_dataset(MP_SMALL, CrystalGraphConverter(cutoff=5.0), cache, progress=False)
    assert "built with other settings; rebuilding" in caplog.text
    assert again.meta["graph"]["cutoff"] == 5.0
    assert torch.equal(again.arrays["edge_ptr"], five.arrays["edge_ptr"])
    assert not torch.equal(again.arrays["edge_ptr"], six.arrays["edge_ptr"])
    assert GraphDataset.load(five_file).meta["graph"]["cutoff"] == 5.0  # and the file is rewritten


# -- atomic writes ----------------------------------------------------------------------------------------------------
def _fail_fsync(monkeypatch):
    def fsync(fd):
        raise OSError(28, "No space left on device (simulated)")

    monkeypatch.setattr("ase_negnn.io.os.fsync", fsync)


def _writers(tmp_path, mp_structures):
    from ase_negnn.io import write_json_atomic, write_table
    from ase_negnn.predict import write_predictions

    graph = types.SimpleNamespace(task="graph", target="band_gap")
    images = mp_structures[:3]
    db = tmp_path / "screen.db"
    with connect(db) as con:
        for a in images:
            con.write(a, structure_id=a.info["mp_id"], status="ok", band_gap=1.0)
    return {
        "write_json_atomic": ("card.json", lambda p, ok: write_json_atomic({"ok": ok}, p)),
        "write_table (embed)": ("x.csv", lambda p, ok: write_table(p, np.ones((1, 2)), ["a", "b"], [("i",)], ("id",))),
        "screen export_csv": ("screen.csv", lambda p, ok: export_csv(db, p, ["band_gap"])),
        "write_predictions .csv": ("p.csv", lambda p, ok: write_predictions(p, graph, images, [{"band_gap": 1.0}] * 3
                                                                            if ok else [{"band_gap": 1.0}, {}, {}])),
        "write_predictions .db": ("p.db", lambda p, ok: write_predictions(p, graph, images, [{"band_gap": 1.0}] * 3
                                                                          if ok else [{"band_gap": 1.0}, {}, {}])),
    }


@pytest.mark.parametrize("writer", ["write_json_atomic", "write_table (embed)", "screen export_csv",
                                    "write_predictions .csv", "write_predictions .db"])
def test_failed_write_leaves_the_old_file_intact(tmp_path, mp_structures, monkeypatch, writer):
    name, write_it = _writers(tmp_path, mp_structures)[writer]
    out = tmp_path / "out" / name
    write_it(out, True)
    before = out.read_bytes()
    files = set(os.listdir(out.parent))
    if writer.startswith("write_predictions"):  # a row without its value fails half-way through the rows
        with pytest.raises(KeyError):
            write_it(out, False)
    else:  # the disk fills up after the content is written
        _fail_fsync(monkeypatch)
        with pytest.raises(OSError, match="simulated"):
            write_it(out, False)
    assert out.read_bytes() == before
    assert set(os.listdir(out.parent)) == files  # no temporary file left behind


def test_failed_model_save_leaves_the_old_model_intact(tmp_path, property_model_dirs, monkeypatch):
    from matgl.utils.io import IOMixIn

    model = load_model(property_model_dirs["band_gap"])
    out = tmp_path / "models" / "gap"
    model.save(out)
    before = {f: (out / f).read_bytes() for f in ("model.pt", "state.pt", "model.json")}

    def half_save(self, path, metadata=None, makedirs=True):
        torch.save(self._init_args, os.path.join(path, "model.pt"))
        raise OSError(28, "No space left on device (simulated)")

    monkeypatch.setattr(IOMixIn, "save", half_save)
    with pytest.raises(OSError, match="simulated"):
        model.save(out)
    monkeypatch.undo()
    assert {f: (out / f).read_bytes() for f in before} == before
    assert os.listdir(out.parent) == ["gap"]  # no temporary directory left behind
    assert load_model(out).target == "band_gap"


# == 4. concurrency ====================================================================================================
def test_two_screen_processes_at_once_each_write_every_id_once(property_model_dirs, tmp_path):
    cli_cmd = [sys.executable, "-c", "from ase_negnn.cli import cli; cli()"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    procs = []
    for name in ("a", "b"):
        cmd = [*cli_cmd, "screen", str(MP_SMALL), "--models", str(property_model_dirs["band_gap"]),
               "--out", str(tmp_path / f"{name}.db"), "--chunk-size", "8", "--no-progress"]
        procs.append(subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    results = [p.communicate(timeout=300) for p in procs]
    expected = sorted(a.info["mp_id"] for a in read_structures(MP_SMALL))
    for proc, (out, err), name in zip(procs, results, ("a", "b")):
        assert proc.returncode == 0, err
        assert "screened 40 new structure(s) (0 already done, 0 errors)" in out
        with connect(tmp_path / f"{name}.db") as db:
            assert sorted(r.structure_id for r in db.select()) == expected
        with open(tmp_path / f"{name}.csv") as fh:
            assert sorted(r["structure_id"] for r in csv.DictReader(fh)) == expected


# == property-based: random valid crystals ============================================================================
ELEMENTS = ["H", "Li", "C", "N", "O", "Na", "Mg", "Al", "Si", "Cl", "Fe", "Cu"]
PROPERTY = settings(max_examples=20, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.filter_too_much, HealthCheck.too_slow])


@st.composite
def crystals(draw) -> Atoms:
    """A periodic cell (lengths 3–7 Å, angles 60–120°, ≥ 8 Å³ per atom) with 1–6 atoms of ELEMENTS, ≥ 1.2 Å apart
    (periodic images included)."""
    n = draw(st.integers(1, 6))
    lengths = [draw(st.floats(3.0, 7.0)) for _ in range(3)]
    angles = [draw(st.floats(60.0, 120.0)) for _ in range(3)]
    symbols = draw(st.lists(st.sampled_from(ELEMENTS), min_size=n, max_size=n))
    coords = draw(st.lists(st.floats(0.0, 1.0, exclude_max=True), min_size=3 * n, max_size=3 * n))
    frac = np.array(coords).reshape(n, 3)
    with np.errstate(invalid="ignore"):  # impossible angle triples give NaN cells
        atoms = Atoms(symbols, scaled_positions=frac, cell=[*lengths, *angles], pbc=True)
    assume(np.isfinite(atoms.cell.array).all() and atoms.get_volume() >= 8.0 * n)
    try:
        close = CrystalGraphConverter(cutoff=1.2, max_neighbors=None).neighbors(atoms)[0]
    except ValueError:  # overlapping atoms
        assume(False)
    assume(len(close) == 0)
    return atoms


@st.composite
def rotations(draw) -> np.ndarray:
    """A rotation matrix from a random unit quaternion."""
    q = np.array([draw(st.floats(-1.0, 1.0)) for _ in range(4)])
    assume(np.linalg.norm(q) > 0.1)
    w, x, y, z = q / np.linalg.norm(q)
    return np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                     [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                     [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])


def _rotated(atoms: Atoms, rot: np.ndarray) -> Atoms:
    out = atoms.copy()
    out.set_cell(atoms.cell.array @ rot.T)  # rotate_cell=True
    out.positions = atoms.positions @ rot.T
    return out


@PROPERTY
@given(atoms=crystals(), data=st.data())
def test_property_ssmr_finite_and_invariant(small_encoder, atoms, data):
    """SSMR is finite and unchanged by translation, rotation (cell rotated too) and atom permutation."""
    shift = np.array([data.draw(st.floats(-10.0, 10.0)) for _ in range(3)])
    rot = data.draw(rotations())
    perm = np.array(data.draw(st.permutations(range(len(atoms)))))
    moved = atoms.copy()
    moved.translate(shift)
    ssmr = SSMR(encoder=small_encoder)
    ref, translated, rotated, permuted = ssmr.create([atoms, moved, _rotated(atoms, rot), atoms[perm]])
    assert np.isfinite(ref).all()
    for other in (translated, rotated, permuted):
        rel_close(other, ref, rtol=2e-4)


def _energy_forces64(model: NEGNN, atoms: Atoms) -> tuple[float, np.ndarray]:
    g = Batch.from_data_list([model.graph_converter()(atoms)])
    g.pos = torch.tensor(atoms.positions, dtype=torch.float64)
    g.cell = torch.tensor(atoms.cell.array, dtype=torch.float64).unsqueeze(0)
    out = model(g, compute_forces=True)
    return float(out["energy"].detach()), out["forces"].detach().numpy()


@PROPERTY
@given(atoms=crystals(), data=st.data())
def test_property_potential_invariant_and_equivariant(potential64, atoms, data):
    """Energy unchanged and forces rotated with the structure; forces sum to zero; permutation permutes forces."""
    rot = data.draw(rotations())
    energy, forces = _energy_forces64(potential64, atoms)
    assert np.isfinite(energy) and np.isfinite(forces).all()
    np.testing.assert_allclose(forces.sum(axis=0), 0.0, atol=1e-9)
    e_rot, f_rot = _energy_forces64(potential64, _rotated(atoms, rot))
    assert e_rot == pytest.approx(energy, rel=1e-10, abs=1e-10)
    np.testing.assert_allclose(f_rot, forces @ rot.T, atol=1e-9)
    perm = np.array(data.draw(st.permutations(range(len(atoms)))))
    e_perm, f_perm = _energy_forces64(potential64, atoms[perm])
    assert e_perm == pytest.approx(energy, rel=1e-10, abs=1e-10)
    np.testing.assert_allclose(f_perm, forces[perm], atol=1e-9)
