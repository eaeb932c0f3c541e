"""Build the small data sets the examples use, from the project's shared data (run once by hand).

Usage: python examples/data/make_data.py [SHARED_DATA_DIR]   (default ../shared/data)

* ``mp_300.extxyz``: 300 Materials Project crystals of mp36k with at most 24 atoms, seeded random choice
  (``numpy.random.default_rng(0)``), keeping ``mp_id``, ``formation_energy_per_atom`` (eV/atom), ``band_gap`` (eV).
* ``si_mlearn_60.extxyz``: 60 structures of mlearn's Si training set (15 per group: strained bulk, AIMD, vacancy,
  surface; the smallest of each), DFT energies and forces as calculator results.
* ``mcifs/``: 24 MAGNDATA magnetic CIFs (at most 40 atoms, readable by ``ase_negnn.readers.read_magnetic_cif``,
  at least one magnetic site), chosen in sorted id order.
"""
import sys
import tarfile
import tempfile
from pathlib import Path

import ase.io
import numpy as np
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator

from ase_negnn.readers import read_magnetic_cif

SHARED = Path(sys.argv[1] if len(sys.argv) > 1 else "../shared/data")
OUT = Path(__file__).resolve().parent

pool = [a for a in ase.io.iread(SHARED / "mp" / "mp36k.extxyz", index=":") if len(a) <= 24]
pick = np.random.default_rng(0).choice(len(pool), 300, replace=False)
mp = []
for i in sorted(pick):
    a = pool[i]
    b = Atoms(a.numbers, positions=a.positions, cell=a.cell, pbc=a.pbc)
    b.info = {k: a.info[k] for k in ("mp_id", "formation_energy_per_atom", "band_gap")}
    mp.append(b)
ase.io.write(OUT / "mp_300.extxyz", mp, format="extxyz")

si = []
images = ase.io.read(SHARED / "mlearn" / "Si_training.extxyz", ":")
for group in ("Elastic", "AIMD-NVT", "Vacancy", "Surface"):
    members = sorted((a for a in images if a.info["group"] == group), key=len)[:15]
    for a in members:
        b = Atoms(a.numbers, positions=a.positions, cell=a.cell, pbc=a.pbc)
        b.info = {"group": group, "id": f"si-{group.lower()}-{len(si)}"}
        b.calc = SinglePointCalculator(b, energy=a.get_potential_energy(), forces=a.get_forces())
        si.append(b)
ase.io.write(OUT / "si_mlearn_60.extxyz", si, format="extxyz")

(OUT / "mcifs").mkdir(exist_ok=True)
with tempfile.TemporaryDirectory() as tmp, tarfile.open(SHARED / "magndata" / "mcifs.tar.xz") as tar:
    tar.extractall(tmp, filter="data")
    kept = 0
    for f in sorted(Path(tmp, "mcifs").glob("*.mcif")):
        try:
            atoms = read_magnetic_cif(f)
        except ValueError:
            continue
        if len(atoms) <= 40 and atoms.arrays["magmoms"].max() > 0.1:
            (OUT / "mcifs" / f.name).write_bytes(f.read_bytes())
            kept += 1
        if kept == 24:
            break
print(len(mp), "MP,", len(si), "Si,", kept, "mcifs")
