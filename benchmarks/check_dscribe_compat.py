"""Check the dscribe shim: SOAP / sine-matrix outputs under ASE ≥ 3.27 + ``patch_dscribe`` vs a reference file.

Two steps, because the reference needs an ASE that dscribe supports unpatched (3.26.0), in its own environment:

    python -m venv /tmp/ase326 && /tmp/ase326/bin/pip install ase==3.26.0 dscribe==2.1.2
    /tmp/ase326/bin/python benchmarks/check_dscribe_compat.py --write /tmp/dscribe_ref.npz   # unpatched, ASE 3.26
    python benchmarks/check_dscribe_compat.py --compare /tmp/dscribe_ref.npz                # patched, this ASE

Structures: the 40 of ``tests/data/mp_small.extxyz``. Prints the largest absolute and relative difference.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def features():
    import ase
    import ase.io
    from _dscribe_compat import patch_dscribe
    from dscribe.descriptors import SOAP, SineMatrix

    patched = patch_dscribe()
    images = ase.io.read(ROOT / "tests" / "data" / "mp_small.extxyz", ":")
    species = sorted({s for a in images for s in a.get_chemical_symbols()})
    soap = SOAP(species=species, r_cut=5.0, n_max=3, l_max=3, periodic=True, average="inner",
                compression={"mode": "crossover"})
    sine = SineMatrix(n_atoms_max=max(len(a) for a in images), permutation="eigenspectrum")
    out = {"soap": np.array([soap.create(a) for a in images]), "sine": np.array([sine.create(a) for a in images])}
    print(f"ASE {ase.__version__}, patched: {patched}, SOAP {out['soap'].shape}, sine {out['sine'].shape}")
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    g = ap.add_mutually_exclusive_group(required=True)
    g.add_argument("--write", type=Path)
    g.add_argument("--compare", type=Path)
    args = ap.parse_args(argv)
    out = features()
    if args.write:
        np.savez(args.write, **out)
        print(f"wrote {args.write}")
        return 0
    ref = np.load(args.compare)
    worst = 0.0
    for k, v in out.items():
        d = np.abs(v - ref[k])
        rel = float(d.max() / max(np.abs(ref[k]).max(), 1e-300))
        worst = max(worst, rel)
        print(f"{k}: max |Δ| {d.max():.3e}, relative to max |ref| {rel:.3e}")
    return 0 if worst < 1e-10 else 1


if __name__ == "__main__":
    sys.exit(main())
