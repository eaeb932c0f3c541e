"""The ASE calculator: train a small Si potential, relax with the cell filter, predict properties, screen.

Run:  python examples/03_calculator_relax_screen.py     (reduced: ASE_NEGNN_QUICK=1)

1. Trains a NEGNN potential on 60 mlearn Si DFT structures (``examples/data/si_mlearn_60.extxyz``: energies and
   forces of strained bulk, AIMD snapshots, vacancies, surfaces); saved to ``examples/output/03_si_potential``.
2. Attaches ``NEGNNCalculator(potential=..., models=["mp-eform", "mp-gap"])`` to a rattled, 3 %-expanded Si cell and
   relaxes positions and cell (FIRE + ``FrechetCellFilter``), printing energy, forces, stress and the lattice constant,
   with the bundled property models riding along.
3. Screens the 14 crystals shipped with the package into an ASE database (``03_screen.db``) with the bundled
   formation-energy and band-gap models, and plots the relaxation and the screened values.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import DATA, OUTPUT, quick_mode, savefig  # noqa: E402


def train_si_potential(out_dir: Path, quick: bool) -> Path:
    """A NEGNN Si potential (reused by 04_phonons.py); returns its model directory."""
    import shutil

    from ase_negnn import train

    run = Path(out_dir) / "03_si_potential_run"
    if run.exists():
        shutil.rmtree(run)
    card = train(DATA / "si_mlearn_60.extxyz", "energy", task="potential", out=run, units="eV",
                 max_epochs=3 if quick else 80, early_stopping=25, batch_size=4, lr=2e-3, cutoff=5.0,
                 split="0.8,0.1,0.1", progress=False, plot=False)
    m = card["test_metrics"]
    print(f"Si potential: test energy MAE {1000 * m['energy_per_atom_mae']:.1f} meV/atom, "
          f"force MAE {m['force_mae']:.3f} eV/Å ({card['n_test']} held-out structures, {card['epochs_run']} epochs)")
    return run / "model"


def main(out_dir: Path = OUTPUT, quick: bool | None = None) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from ase.build import bulk

    from ase_negnn import available_models, example_structures
    from ase_negnn.calculator import NEGNNCalculator
    from ase_negnn.relaxation import relax
    from ase_negnn.screening import screen

    quick = quick_mode(quick)
    potential = train_si_potential(out_dir, quick)
    models = [m for m in ("mp-eform", "mp-gap") if m in available_models()]
    calc = NEGNNCalculator(potential=potential, models=models)

    atoms = bulk("Si", "diamond", a=5.43 * 1.03, cubic=True)
    atoms.rattle(0.05, seed=1)
    atoms.calc = calc
    print(f"start: E = {atoms.get_potential_energy():.3f} eV, max |F| = {np.abs(atoms.get_forces()).max():.3f} eV/Å, "
          f"stress (eV/Å³, Voigt) = {np.round(atoms.get_stress(), 4)}")
    energies = []
    traj = Path(out_dir) / "03_relax.traj"
    result = relax(atoms, calc, fmax=0.05, steps=200, cell=True, trajectory=traj,
                   property_calculator=NEGNNCalculator(models=models) if models else None)
    from ase.io import read

    energies = [a.get_potential_energy() for a in read(traj, ":")]
    a0 = result.atoms.cell.lengths().mean()
    print(f"relaxed in {result.steps} steps (converged {result.converged}): E = {result.energy:.3f} eV, "
          f"a = {a0:.3f} Å (DFT-PBE 5.47 Å), max |F| = {result.fmax:.3f} eV/Å; properties {result.properties}")

    structures = example_structures()
    db = Path(out_dir) / "03_screen.db"
    db.unlink(missing_ok=True)
    values = {}
    if models:
        stats = screen(structures, db, NEGNNCalculator(models=models), progress=False)
        print(f"screened {stats['n_new']} structures at {stats['structures_per_second']} structures/s -> {db}")
        from ase.db import connect

        with connect(db) as con:
            values = {r.formula: (r.get("formation_energy_per_atom"), r.get("band_gap")) for r in con.select()}
        for formula, (ef, gap) in values.items():
            print(f"  {formula:12s} E_form {ef:7.3f} eV/atom   gap {gap:6.2f} eV")
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    axes[0].plot(energies, "o-", ms=3)
    axes[0].set_xlabel("optimiser step")
    axes[0].set_ylabel("energy (eV)")
    axes[0].set_title(f"Si cell relaxation: a = {a0:.3f} Å")
    if values:
        names = list(values)
        axes[1].barh(names, [values[n][1] for n in names])
        axes[1].set_xlabel("predicted PBE band gap (eV), bundled mp-gap")
    fig.tight_layout()
    return savefig(fig, out_dir, "03_calculator_relax_screen.png")


if __name__ == "__main__":
    main()
