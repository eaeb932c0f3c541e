"""phonopy glue: finite-displacement phonons from any ASE calculator (e.g. a NEGNN potential).

All phonon maths is phonopy's: displacements, force constants, band structure (``auto_band_structure``, seekpath
path), mesh DOS, thermal properties and the non-analytical correction from a ``BORN`` file. This module only converts
structures, evaluates the calculator on phonopy's displaced supercells and writes the outputs.
"""

from __future__ import annotations

import warnings

from pathlib import Path

import numpy as np

__all__ = ["MAX_SUPERCELL_ATOMS", "compute_phonons", "to_phonopy_atoms", "write_phonon_outputs"]

#: Refuse supercells larger than this many atoms (a clear error instead of exhausting memory or waiting for hours).
MAX_SUPERCELL_ATOMS = 2000


def to_phonopy_atoms(atoms):
    """ASE ``Atoms`` → ``PhonopyAtoms``."""
    from phonopy.structure.atoms import PhonopyAtoms

    return PhonopyAtoms(symbols=atoms.get_chemical_symbols(), cell=np.asarray(atoms.cell.array),
                        scaled_positions=atoms.get_scaled_positions(wrap=False))


def _to_ase(cell):
    from ase import Atoms

    return Atoms(cell.symbols, cell=cell.cell, scaled_positions=cell.scaled_positions, pbc=True)


def compute_phonons(atoms, calculator, supercell=(2, 2, 2), displacement: float = 0.01, primitive_matrix="auto",
                    born: str | Path | None = None, max_atoms: int = MAX_SUPERCELL_ATOMS, phonopy_obj=None,
                    progress: bool = False):
    """Force constants of ``atoms`` (the unit cell) from ``calculator`` forces on phonopy's displaced supercells.

    Parameters
    ----------
    atoms : ase.Atoms
        Periodic unit cell (relax it first with the same calculator for physical frequencies). An empty structure,
        atomic numbers outside 1…100, NaN/inf positions or cell, a singular cell or overlapping atoms raise
        ``ValueError`` before phonopy sees the structure.
    calculator : ase calculator
        Provides forces in eV/Å.
    supercell : int or sequence of 3 ints or 3×3
        Supercell matrix (``2`` = 2×2×2).
    displacement : float
        Displacement amplitude in Å (phonopy's default 0.01).
    born : path, optional
        phonopy ``BORN`` file (Born charges, dielectric tensor) for the non-analytical term correction of polar solids.
    max_atoms : int
        Largest supercell accepted; larger ones raise ``ValueError`` before any force is computed.
    phonopy_obj : phonopy.Phonopy, optional
        Use this object's displacement dataset instead of generating one (e.g. a reference ``phonopy_disp.yaml``),
        so our forces are computed on exactly the same supercells.

    Returns
    -------
    phonopy.Phonopy
        With ``forces`` and ``force_constants`` set (and ``nac_params`` when ``born`` is given).
    """
    from phonopy import Phonopy
    from tqdm.auto import tqdm

    from ase_negnn.graph import CrystalGraphConverter

    # Refuse what phonopy/spglib would fail on obscurely (or crash on: NaN positions): empty structure, atomic
    # numbers outside the element table, NaN/inf positions or cell, a singular periodic cell, overlapping atoms.
    check = CrystalGraphConverter(cutoff=1.0, max_neighbors=None)
    check.neighbors(check.validate(atoms))
    if not np.all(atoms.pbc):
        raise ValueError("phonons need a periodic unit cell (pbc all True)")
    if not displacement > 0:
        raise ValueError(f"displacement must be > 0 Å, got {displacement!r}")
    matrix = np.asarray(supercell, dtype=int)
    if matrix.ndim == 0:
        matrix = np.eye(3, dtype=int) * int(matrix)
    elif matrix.shape == (3,):
        matrix = np.diag(matrix)
    if matrix.shape != (3, 3) or round(abs(np.linalg.det(matrix))) < 1:
        raise ValueError(f"supercell must be an int, 3 ints or a non-singular 3×3 matrix, got {supercell!r}")
    if phonopy_obj is None:
        n_super = len(atoms) * round(abs(np.linalg.det(matrix)))
        if n_super > max_atoms:
            raise ValueError(f"supercell {matrix.diagonal().tolist() if np.count_nonzero(matrix - np.diag(matrix.diagonal())) == 0 else matrix.tolist()} "
                             f"has {n_super} atoms > max_atoms={max_atoms}; use a smaller supercell or raise max_atoms")
        with warnings.catch_warnings():
            if isinstance(primitive_matrix, str) and primitive_matrix == "auto":
                # phonopy 4 tells scripts written for phonopy 3 (identity default) that its default became "auto";
                # "auto" has always been ours, so the notice would only alarm our users
                warnings.filterwarnings("ignore", message=r"primitive_matrix defaulted to 'auto'")
            ph = Phonopy(to_phonopy_atoms(atoms), supercell_matrix=matrix, primitive_matrix=primitive_matrix)
        ph.generate_displacements(distance=displacement)
    else:
        ph = phonopy_obj
        if len(ph.supercell) > max_atoms:
            raise ValueError(f"supercell has {len(ph.supercell)} atoms > max_atoms={max_atoms}")
    forces = []
    for cell in tqdm(ph.supercells_with_displacements, disable=not progress, desc="displacements", unit="cell"):
        sc = _to_ase(cell)
        sc.calc = calculator
        f = np.asarray(sc.get_forces(), dtype=float)
        forces.append(f - f.mean(axis=0))  # remove the residual drift, as phonopy's FORCE_SETS do
    ph.forces = np.array(forces)
    ph.produce_force_constants()
    if born is not None:
        from phonopy.file_IO import parse_BORN

        ph.nac_params = parse_BORN(ph.primitive, filename=str(born))
    return ph


def write_phonon_outputs(ph, out: str | Path, mesh=(20, 20, 20), t_min: float = 0.0, t_max: float = 1000.0,
                         t_step: float = 10.0, title: str = "", cutoff_frequency: float | None = None,
                         exclude_gamma_acoustic: bool = False) -> dict:
    """Band structure and DOS plots (PNG, frequencies in THz), thermal properties (CSV), band.yaml and
    FORCE_CONSTANTS into ``out``.

    ``cutoff_frequency`` (THz) and ``exclude_gamma_acoustic`` go to phonopy's ``run_thermal_properties`` (the options
    its ``GammaAcousticWarning`` points to). Returns the written paths by name.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from phonopy.file_IO import write_FORCE_CONSTANTS

    from ase_negnn.io import atomic_open

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = {}
    ph.auto_band_structure(npoints=51, write_yaml=False)
    ph.band_structure.write_yaml(filename=str(out / "band.yaml"))
    paths["band_yaml"] = out / "band.yaml"
    fig = ph.plot_band_structure()
    plt.suptitle(title or "phonon band structure")
    _label_frequency_axes(plt.gcf(), "y")
    fig.savefig(out / "band_structure.png", dpi=120)
    plt.close("all")
    paths["band_png"] = out / "band_structure.png"
    ph.run_mesh(list(mesh), is_gamma_center=True)
    ph.run_total_dos()
    fig = ph.plot_total_dos()
    plt.title(title or "phonon DOS")
    _label_frequency_axes(plt.gcf(), "x")
    fig.savefig(out / "dos.png", dpi=120)
    plt.close("all")
    paths["dos_png"] = out / "dos.png"
    ph.run_thermal_properties(t_min=t_min, t_max=t_max, t_step=t_step, cutoff_frequency=cutoff_frequency,
                              exclude_gamma_acoustic=exclude_gamma_acoustic)
    tp = ph.thermal_properties
    with atomic_open(out / "thermal_properties.csv", "w", newline="") as fh:
        fh.write("temperature_K,free_energy_kJ_per_mol,entropy_J_per_K_mol,heat_capacity_J_per_K_mol\n")
        for row in zip(tp.temperatures, tp.free_energy, tp.entropy, tp.heat_capacity):
            fh.write(",".join(f"{v:.6g}" for v in row) + "\n")
    paths["thermal_csv"] = out / "thermal_properties.csv"
    write_FORCE_CONSTANTS(ph.force_constants, filename=str(out / "FORCE_CONSTANTS"))
    paths["force_constants"] = out / "FORCE_CONSTANTS"
    return paths


def _label_frequency_axes(fig, axis: str) -> None:
    """phonopy labels its frequency axes 'Frequency' without a unit; ours say THz."""
    for ax in fig.axes:
        label = ax.get_ylabel() if axis == "y" else ax.get_xlabel()
        if label.strip().lower().startswith("frequency") and "THz" not in label:
            (ax.set_ylabel if axis == "y" else ax.set_xlabel)("Frequency (THz)")
