"""Build ``si_mlearn_small.extxyz`` from the mlearn Si training set (run once by hand; the tests never read mlearn).

Usage: python tests/data/make_si_fixture.py [PATH/TO/mlearn/Si_training.extxyz]
"""
import sys
from pathlib import Path

import ase.io
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator

SRC = sys.argv[1] if len(sys.argv) > 1 else "../shared/data/mlearn/Si_training.extxyz"
OUT = Path(__file__).resolve().parent / "si_mlearn_small.extxyz"

images = ase.io.read(SRC, ":")
picked = {"Elastic": 6, "AIMD-NVT": 6, "Vacancy": 4, "Surface": 4}
out = []
for group, count in picked.items():
    members = [a for a in images if a.info["group"] == group]
    members.sort(key=len)
    for a in members[:count]:
        b = Atoms(a.numbers, positions=a.positions, cell=a.cell, pbc=a.pbc)
        b.info = {"group": group, "id": f"si-{group.lower()}-{len(out)}"}
        b.calc = SinglePointCalculator(b, energy=a.get_potential_energy(), forces=a.get_forces())
        out.append(b)
ase.io.write(OUT, out, format="extxyz")
print(len(out), "structures,", sum(len(a) for a in out), "atoms ->", OUT)
