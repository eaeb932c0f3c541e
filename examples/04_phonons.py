"""Phonon band structure and DOS of Si from a NEGNN potential, through phonopy.

Run:  python examples/04_phonons.py     (reduced: ASE_NEGNN_QUICK=1)

Reuses the Si potential written by ``03_calculator_relax_screen.py`` (trains it if missing), relaxes the diamond
cell with it, then lets phonopy displace atoms in a 2×2×2 supercell of the conventional cell; our calculator gives
the forces, phonopy the force constants, band structure (seekpath path), DOS and thermal properties. Outputs land in
``examples/output/04_phonons/``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import OUTPUT, quick_mode  # noqa: E402


def main(out_dir: Path = OUTPUT, quick: bool | None = None) -> Path:
    from ase.build import bulk

    from ase_negnn.calculator import NEGNNCalculator
    from ase_negnn.plugins.phonons import compute_phonons, write_phonon_outputs
    from ase_negnn.relaxation import relax

    quick = quick_mode(quick)
    model = Path(out_dir) / "03_si_potential_run" / "model"
    if not model.exists():
        import importlib.util

        spec = importlib.util.spec_from_file_location("ex03", Path(__file__).parent / "03_calculator_relax_screen.py")
        ex03 = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(ex03)
        model = ex03.train_si_potential(out_dir, quick)
    calc = NEGNNCalculator(potential=model)
    cell = relax(bulk("Si", "diamond", a=5.43, cubic=True), calc, fmax=0.01, cell=True).atoms
    print(f"relaxed Si: a = {cell.cell.lengths()[0]:.3f} Å")
    ph = compute_phonons(cell, calc, supercell=1 if quick else 2)
    ph.run_qpoints([[0, 0, 0]])
    gamma = np.sort(ph.get_qpoints_dict()["frequencies"][0])
    print(f"{len(ph.supercell)}-atom supercell, {len(ph.supercells_with_displacements)} displacement(s); "
          f"Γ frequencies (THz): {np.round(gamma, 2)}   (DFT-PBE optical mode at Γ ≈ 15.1 THz)")
    paths = write_phonon_outputs(ph, Path(out_dir) / "04_phonons", mesh=(8, 8, 8) if quick else (24, 24, 24),
                                 t_max=300 if quick else 1000, title="Si (NEGNN potential)")
    for name, path in paths.items():
        print(f"{name}: {path}")
    return paths["band_png"]


if __name__ == "__main__":
    main()
