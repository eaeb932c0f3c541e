"""Build the test fixtures in this directory from mp36k.extxyz (run once by hand; the tests never read it).

Usage: python tests/data/make_fixtures.py [PATH/TO/mp36k.extxyz]
"""
from itertools import islice
import sys
from pathlib import Path
import numpy as np
import ase.io
from ase import Atoms

SRC = sys.argv[1] if len(sys.argv) > 1 else "../shared/data/mp/mp36k.extxyz"
OUT = Path(__file__).resolve().parent
KEEP = ("mp_id", "formation_energy_per_atom", "band_gap")

pool = [a for a in islice(ase.io.iread(SRC, index=":"), 3000) if len(a) <= 24]
# greedy: prefer structures bringing new elements, then spread in size
seen, chosen = set(), []
rng = np.random.default_rng(0)
order = rng.permutation(len(pool))
# always include the one-atom mp-1 (Cs, cell shorter than the cutoff)
first = [i for i in range(len(pool)) if pool[i].info["mp_id"] == "mp-1"]
for i in first + list(order):
    a = pool[i]
    new = set(a.get_chemical_symbols()) - seen
    if i in first or len(new) >= 2 or (len(new) == 1 and len(chosen) < 30):
        chosen.append(a); seen |= set(a.get_chemical_symbols())
    if len(chosen) >= 34:
        break
# a few larger / gapped ones for variety
extra = [a for a in pool if 16 <= len(a) <= 24 and a.info["band_gap"] > 1.0 and a not in chosen][:6]
chosen += extra
out = []
for a in chosen:
    b = Atoms(a.numbers, positions=a.positions, cell=a.cell, pbc=a.pbc)
    b.info = {k: a.info[k] for k in KEEP}
    out.append(b)
ase.io.write(OUT / "mp_small.extxyz", out, format="extxyz")
for a in [out[1], out[5], out[9]]:
    ase.io.write(OUT / "cifs" / f"{a.info['mp_id']}.cif", a, format="cif")
print(len(out), "structures", len({s for a in out for s in a.get_chemical_symbols()}), "elements",
      sum(len(a) for a in out), "atoms")
print([ (a.info["mp_id"], a.get_chemical_formula(), len(a)) for a in out])
