"""ASE calculator: units and conventions, caching, custom properties, plugin discovery, relaxations."""

from __future__ import annotations

import numpy as np
import pytest
from ase.build import bulk
from ase.calculators.calculator import PropertyNotImplementedError

from ase_negnn.calculator import NEGNNCalculator
from ase_negnn.relaxation import relax


@pytest.fixture(scope="module")
def calc(si_potential_dir, property_model_dirs):
    return NEGNNCalculator(potential=si_potential_dir, models=[property_model_dirs["band_gap"], property_model_dirs["magmoms"]])


@pytest.fixture
def si8():
    atoms = bulk("Si", "diamond", a=5.43, cubic=True)
    atoms.rattle(0.05, seed=2)
    return atoms


def test_standard_properties_in_ase_units(calc, si8):
    si8.calc = calc
    e = si8.get_potential_energy()
    assert isinstance(e, float) and -6.5 < e / len(si8) < -3.5  # the fitted Si reference puts it near DFT
    f = si8.get_forces()
    assert f.shape == (8, 3) and np.abs(f.sum(axis=0)).max() < 1e-4
    s = si8.get_stress()
    assert s.shape == (6,)
    assert si8.get_stress(voigt=False).shape == (3, 3)
    # ASE's force-consistent energy (what optimisers and the trajectory use) must be offered, and equal E (no smearing)
    assert si8.get_potential_energy(force_consistent=True) == pytest.approx(e, abs=1e-12)
    # stress = (1/V) dE/dε: compare with a finite difference of the energy under an xx strain
    h = 1e-4
    energies = []
    for sign in (1, -1):
        strained = si8.copy()
        strained.set_cell(si8.cell.array @ np.diag([1 + sign * h, 1, 1]), scale_atoms=True)
        strained.calc = calc
        energies.append(strained.get_potential_energy())
    assert s[0] == pytest.approx((energies[0] - energies[1]) / (2 * h) / si8.get_volume(), abs=2e-4)


def test_custom_properties_and_caching(calc, si8):
    si8.calc = calc
    gap = calc.get_property("band_gap", si8)
    assert isinstance(gap, float)
    m = si8.get_magnetic_moments()
    assert m.shape == (8,) and si8.get_magnetic_moment() == pytest.approx(m.sum())
    d = calc.get_descriptors(si8)
    assert d.shape[0] == 8 and d.shape[1] > 64
    results_before = dict(calc.results)
    assert calc.get_property("band_gap", si8) == gap and calc.results.keys() == results_before.keys()
    si8.positions[0, 0] += 0.05  # any change of the atoms clears the cache
    assert calc.check_state(si8)
    si8.get_potential_energy()
    assert "band_gap" not in calc.results


def test_custom_keys_do_not_break_ase_outputs(calc, si8, tmp_path):
    import ase.io

    si8.calc = calc
    calc.get_property("band_gap", si8)
    props = si8.get_properties(["energy", "forces"])
    assert props["energy"] == pytest.approx(si8.get_potential_energy())
    ase.io.write(tmp_path / "out.extxyz", si8)
    back = ase.io.read(tmp_path / "out.extxyz")
    assert back.get_potential_energy() == pytest.approx(si8.get_potential_energy())


def test_missing_properties_are_clear(property_model_dirs, si8, h2o):
    props_only = NEGNNCalculator(models=[property_model_dirs["band_gap"]])
    si8.calc = props_only
    with pytest.raises(PropertyNotImplementedError):
        si8.get_potential_energy()
    assert "band_gap" in props_only.implemented_properties and "energy" not in props_only.implemented_properties
    with pytest.raises(ValueError, match="not a potential"):
        NEGNNCalculator(potential=property_model_dirs["band_gap"])


def test_unsupported_element_is_refused(calc):
    nacl = bulk("NaCl", "rocksalt", a=5.64)
    nacl.calc = calc
    with pytest.raises(ValueError, match="potential: element\\(s\\) Na, Cl are not in this model's training data"):
        nacl.get_potential_energy()


def test_stress_needs_a_periodic_cell(calc):
    from ase import Atoms

    dimer = Atoms("Si2", positions=[[0, 0, 0], [2.3, 0, 0]])
    dimer.calc = calc
    assert dimer.get_forces().shape == (2, 3)
    with pytest.raises(PropertyNotImplementedError, match="periodic"):
        dimer.get_stress()


def test_predict_many_matches_single_calls(calc, si8):
    images = [si8.copy() for _ in range(3)]
    for i, a in enumerate(images):
        a.rattle(0.02, seed=10 + i)
    rows = calc.predict_many(images)
    for a, r in zip(images, rows):
        a.calc = calc
        assert r["energy"] == pytest.approx(a.get_potential_energy(), abs=1e-5)
        np.testing.assert_allclose(r["forces"], a.get_forces(), atol=1e-5)
        np.testing.assert_allclose(r["stress"], a.get_stress(), atol=1e-6)
        assert r["band_gap"] == pytest.approx(calc.get_property("band_gap", a), abs=1e-5)


def test_calculator_shared_between_threads(calc, si8):
    from concurrent.futures import ThreadPoolExecutor

    images = [si8.copy() for _ in range(4)]
    for i, a in enumerate(images):
        a.rattle(0.03, seed=20 + i)
    expected = [r["energy"] for r in calc.predict_many(images, properties=["energy"])]

    def energy(a):
        b = a.copy()
        b.calc = calc
        return b.get_potential_energy()

    with ThreadPoolExecutor(4) as pool:
        got = list(pool.map(energy, images * 12))
    np.testing.assert_allclose(got, expected * 12, atol=1e-5)


# -- relaxations ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("optimizer", ["FIRE", "BFGS"])
def test_relax_positions_reaches_fmax(calc, si8, optimizer, tmp_path):
    res = relax(si8, calc, fmax=0.05, steps=300, optimizer=optimizer, trajectory=tmp_path / "r.traj")
    assert res.converged and res.fmax < 0.05
    assert np.abs(res.atoms.get_forces()).max() < 0.05
    from ase.io import read

    assert len(read(tmp_path / "r.traj", ":")) == res.steps + 2  # initial + one per step + final write


def test_relax_reports_every_step_to_its_callback(calc, si8):
    """The callback behind relax's progress bar: one call per optimiser step, with the step and the current fmax."""
    seen = []
    res = relax(si8, calc, fmax=0.05, steps=300, callback=lambda n, f: seen.append((n, f)))
    assert [n for n, _ in seen] == list(range(res.steps + 1))  # ASE calls observers at step 0 too
    assert seen[-1][1] == pytest.approx(res.fmax, rel=1e-6) and seen[0][1] > seen[-1][1]


def test_relax_with_cell_filter_and_properties_riding_along(calc, si8, property_model_dirs):
    strained = si8.copy()
    strained.set_cell(si8.cell.array * 1.03, scale_atoms=True)
    riders = NEGNNCalculator(models=[property_model_dirs["band_gap"]])
    res = relax(strained, calc, fmax=0.05, steps=400, cell=True, property_calculator=riders)
    assert res.converged and res.fmax < 0.05
    # FrechetCellFilter's cell "forces" are virial / n_atoms: converged means small stress too
    assert np.abs(res.atoms.get_stress()).max() * res.atoms.get_volume() / len(si8) < 0.05
    assert abs(res.atoms.get_volume() / strained.get_volume() - 1) > 0.01  # the cell did move
    assert set(res.properties) == {"band_gap"}


def test_relax_with_any_ase_calculator(si8):
    from ase.calculators.emt import EMT

    cu = bulk("Cu", "fcc", a=3.7, cubic=True)
    res = relax(cu, EMT(), fmax=0.01, cell=True, optimizer="BFGS")
    assert res.converged and 3.55 < res.atoms.cell.lengths()[0] < 3.65


def test_relax_bad_arguments(calc, si8, h2o):
    with pytest.raises(ValueError, match="optimizer must be one of"):
        relax(si8, calc, optimizer="SD")
    with pytest.raises(ValueError, match="periodic"):
        relax(h2o, calc, cell=True)


# -- ASE plugin -----------------------------------------------------------------------------------------------------
def test_ase_plugin_discovery_and_name_lookup():
    from ase._4.plugins import plugins

    found = [p for p in plugins.calculators if p.name == "negnn"]
    assert len(found) == 1 and found[0].implementation is NEGNNCalculator
    from ase.calculators.calculator import get_calculator_class

    import ase_negnn.plugins  # noqa: F401  (registers the name with ASE's fixed lookup)

    assert get_calculator_class("negnn") is NEGNNCalculator


def test_plugin_discovered_even_when_our_glue_is_imported_first():
    """Importing ase_negnn.plugins (e.g. the phonopy glue) before ASE builds its plugin list must not hide it."""
    import subprocess
    import sys

    code = ("import ase_negnn.plugins.phonons\n"
            "from ase._4.plugins import plugins\n"
            "print(sorted(p.name for p in plugins.calculators))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "negnn" in out.stdout


def test_ase_info_lists_the_plugin():
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "ase", "info", "--plugins"], capture_output=True, text=True, check=True)
    assert "negnn" in out.stdout and "ase_negnn" in out.stdout


def test_cli_relax_writes_structures_and_trajectories(si_potential_dir, property_model_dirs, si8, tmp_path):
    import ase.io
    from click.testing import CliRunner

    from ase_negnn.cli import cli

    si8.info["id"] = "si8"
    ase.io.write(tmp_path / "in.extxyz", [si8])
    out = tmp_path / "relaxed.extxyz"
    res = CliRunner().invoke(cli, ["relax", str(tmp_path / "in.extxyz"), "--potential", str(si_potential_dir),
                                   "--models", str(property_model_dirs["band_gap"]), "--cell", "--optimizer", "BFGS",
                                   "--out", str(out), "--no-progress"])
    assert res.exit_code == 0, res.output
    final = ase.io.read(out)
    assert final.info["relax_converged"] and np.isfinite(final.info["band_gap"])
    assert np.abs(final.get_forces()).max() < 0.05
    assert (tmp_path / "relaxed_traj" / "si8.traj").exists()


# -- ASE conventions (issue 17) -------------------------------------------------------------------------------------
@pytest.mark.parametrize("module", ["ase_negnn", "ase_negnn.calculator"])
def test_importing_the_package_registers_the_name_without_torch(module):
    import subprocess
    import sys

    code = (f"import sys, {module}\n"
            "from ase.calculators.calculator import get_calculator_class\n"
            "print(get_calculator_class('negnn').__name__, 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["NEGNNCalculator", "False"]


def test_deepcopy_and_pickle_give_the_same_results(calc, si8):
    import copy
    import pickle

    si8.calc = calc
    expected = (si8.get_potential_energy(), si8.get_forces(), calc.get_property("band_gap", si8))
    for clone in (copy.deepcopy(si8), _unpickled_atoms(si8, pickle)):
        assert clone.calc is not calc
        clone.rattle(0.0)  # same positions; a fresh calculation on the copy's own models
        clone.calc.reset()
        assert clone.get_potential_energy() == pytest.approx(expected[0], abs=1e-6)
        np.testing.assert_allclose(clone.get_forces(), expected[1], atol=1e-6)
        assert clone.calc.get_property("band_gap", clone) == pytest.approx(expected[2], abs=1e-6)


def _unpickled_atoms(atoms, pickle):
    clone = atoms.copy()
    clone.calc = pickle.loads(pickle.dumps(atoms.calc))
    return clone


def test_set_models_switches_the_properties(property_model_dirs, si8):
    calc = NEGNNCalculator(models=[property_model_dirs["band_gap"]])
    si8.calc = calc
    gap = calc.get_property("band_gap", si8)
    changed = calc.set(models=[property_model_dirs["magmoms"]])
    assert "models" in changed and calc.todict()["models"] == [str(property_model_dirs["magmoms"])]
    assert "band_gap" not in calc.results  # results are cleared with the models
    with pytest.raises(PropertyNotImplementedError, match="band_gap"):
        calc.get_property("band_gap", si8)
    assert si8.get_magnetic_moments().shape == (8,)
    calc.set(models=[property_model_dirs["band_gap"]])
    assert calc.get_property("band_gap", si8) == pytest.approx(gap, abs=1e-6)
    assert calc.set(models=[property_model_dirs["band_gap"]]) == {}  # unchanged: nothing reloaded


def test_per_atom_energies_sum_to_the_energy(calc, si8):
    si8.calc = calc
    energies = si8.get_potential_energies()
    assert energies.shape == (8,)
    assert energies.sum() == pytest.approx(si8.get_potential_energy(), abs=1e-4)
    rows = calc.predict_many([si8, si8.repeat((2, 1, 1))], properties=["energies", "energy"])
    assert rows[1]["energies"].shape == (16,) and rows[1]["energies"].sum() == pytest.approx(rows[1]["energy"], abs=1e-3)


def test_missing_magnetic_model_says_what_is_needed(property_model_dirs, si8):
    si8.calc = NEGNNCalculator(models=[property_model_dirs["band_gap"]])
    with pytest.raises(PropertyNotImplementedError, match="per-atom NEGNN of magnetic moments"):
        si8.get_magnetic_moments()
    with pytest.raises(PropertyNotImplementedError, match="needs a NEGNN potential"):
        si8.get_potential_energy()


def test_ase_db_stores_the_calculator_name(calc, si8, tmp_path):
    from ase.db import connect

    si8.calc = calc
    si8.get_potential_energy()
    with connect(tmp_path / "x.db") as db:
        db.write(si8)
    with connect(tmp_path / "x.db") as db:
        assert next(db.select()).calculator == "negnn"


def test_top_level_name():
    import ase_negnn

    assert ase_negnn.NEGNNCalculator is NEGNNCalculator


def test_cli_relax_progress_bar_counts_optimiser_steps(si_potential_dir, si8, tmp_path):
    """The bar's total is --steps per structure (not 1 per structure, which stayed at 0/1 until the end)."""
    import ase.io
    from click.testing import CliRunner

    from ase_negnn.cli import cli

    rattled = si8.copy()
    rattled.rattle(0.05, seed=0)
    ase.io.write(tmp_path / "in.extxyz", [rattled, rattled])
    res = CliRunner().invoke(cli, ["relax", str(tmp_path / "in.extxyz"), "--potential", str(si_potential_dir),
                                   "--steps", "150", "--out", str(tmp_path / "out.extxyz")])
    assert res.exit_code == 0, res.output
    assert "/300 [" in res.output and "fmax" in res.output
