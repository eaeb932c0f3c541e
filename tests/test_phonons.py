"""phonopy glue: force constants from a NEGNN potential, outputs, guards; the `phonons` CLI."""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk
from click.testing import CliRunner

from ase_negnn.calculator import NEGNNCalculator
from ase_negnn.cli import cli
from ase_negnn.plugins.phonons import compute_phonons, write_phonon_outputs


@pytest.fixture(scope="module")
def si_phonons(si_potential_dir):
    calc = NEGNNCalculator(potential=si_potential_dir)
    return compute_phonons(bulk("Si", "diamond", a=5.43), calc, supercell=2)


def test_force_constants_and_acoustic_modes(si_phonons):
    ph = si_phonons
    assert len(ph.supercell) == 16 and ph.force_constants.shape == (16, 16, 3, 3)
    ph.run_qpoints([[0, 0, 0]])
    gamma = np.sort(ph.get_qpoints_dict()["frequencies"][0])
    assert np.all(np.isfinite(gamma)) and len(gamma) == 6
    assert np.abs(gamma[:3]).max() < 0.5  # acoustic sum rule (THz), from a translation-invariant potential
    # forces on each displaced supercell sum to ~0 (drift removed) and are not all zero
    assert np.abs(ph.forces.sum(axis=1)).max() < 1e-8 and np.abs(ph.forces).max() > 1e-4


def test_outputs_written(si_phonons, tmp_path):
    paths = write_phonon_outputs(si_phonons, tmp_path, mesh=(6, 6, 6), t_max=300, t_step=100, title="Si")
    for p in paths.values():
        assert p.exists() and p.stat().st_size > 0
    rows = (tmp_path / "thermal_properties.csv").read_text().splitlines()
    assert rows[0].startswith("temperature_K") and len(rows) == 1 + 4  # 0, 100, 200, 300 K


def test_supercell_too_large_is_refused_before_any_force(si_potential_dir):
    calc = NEGNNCalculator(potential=si_potential_dir)
    with pytest.raises(ValueError, match=r"has 2000000 atoms > max_atoms"):
        compute_phonons(bulk("Si", "diamond", a=5.43), calc, supercell=100)
    with pytest.raises(ValueError, match="periodic"):
        compute_phonons(Atoms("Si2", positions=[[0, 0, 0], [2.3, 0, 0]]), calc)


def test_cli_phonons(si_potential_dir, tmp_path):
    from ase.io import write

    write(tmp_path / "POSCAR", bulk("Si", "diamond", a=5.43), format="vasp")
    res = CliRunner().invoke(cli, ["phonons", str(tmp_path / "POSCAR"), "--potential", str(si_potential_dir),
                                   "--mesh", "4", "4", "4", "--t-max", "100", "--out", str(tmp_path / "ph")])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "ph" / "band_structure.png").exists() and (tmp_path / "ph" / "FORCE_CONSTANTS").exists()


def test_frequency_axes_say_thz_and_thermal_options_reach_phonopy(si_phonons, tmp_path, monkeypatch):
    import matplotlib.pyplot as plt

    labels = []
    real_savefig = plt.Figure.savefig

    def spy(fig, *args, **kwargs):  # record the axis labels of every figure written
        labels.extend([ax.get_ylabel() for ax in fig.axes] + [ax.get_xlabel() for ax in fig.axes])
        return real_savefig(fig, *args, **kwargs)

    monkeypatch.setattr(plt.Figure, "savefig", spy)
    seen = {}
    real_run = type(si_phonons).run_thermal_properties

    def run_thermal(self, *args, **kwargs):
        seen.update(kwargs)
        return real_run(self, *args, **kwargs)

    monkeypatch.setattr(type(si_phonons), "run_thermal_properties", run_thermal)
    write_phonon_outputs(si_phonons, tmp_path, mesh=(4, 4, 4), t_max=100, t_step=50, cutoff_frequency=0.1,
                         exclude_gamma_acoustic=True)
    freq = [lab for lab in labels if lab.lower().startswith("frequency")]
    assert freq and all("THz" in lab for lab in freq), labels
    assert seen["cutoff_frequency"] == 0.1 and seen["exclude_gamma_acoustic"] is True


def test_cli_phonons_options(si_potential_dir, tmp_path):
    from ase.io import write

    write(tmp_path / "POSCAR", bulk("Si", "diamond", a=5.43), format="vasp")
    res = CliRunner().invoke(cli, ["phonons", str(tmp_path / "POSCAR"), "--potential", str(si_potential_dir),
                                   "--mesh", "4", "4", "4", "--t-max", "100", "--exclude-gamma-acoustic",
                                   "--cutoff-frequency", "0.05", "--out", str(tmp_path / "ph")])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "ph" / "thermal_properties.csv").exists()


def test_auto_primitive_cell_without_phonopy_3_migration_notice(si_potential_dir):
    """A conventional cell gets phonopy's 'auto' primitive cell (2 of its 8 Si atoms) without phonopy 4's notice for
    scripts written against phonopy 3 (our default has always been 'auto'); other warnings are not hidden."""
    import warnings

    calc = NEGNNCalculator(potential=si_potential_dir)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ph = compute_phonons(bulk("Si", "diamond", a=5.43, cubic=True), calc, supercell=1)
    assert len(ph.primitive) == 2 and len(ph.unitcell) == 8
    assert not [w for w in caught if "defaulted to 'auto'" in str(w.message)], [str(w.message) for w in caught]
