"""Continuity of the descriptor and of the bundled predictions when atoms move by a hair (issue 16).

For 64-atom-ish supercells of Si (diamond), NaCl, Cu (fcc), Mg (hcp) and SrTiO3 (cubic perovskite), rattled with
``atoms.rattle(amplitude, seed=1)`` at 1e-4 Å and 1e-3 Å, it reports

* the SSMR (layers 0–5, mean pooling) max relative change ``max|x − x0| / max|x0|``,
* the change of the bundled ``mp-gap`` (eV) and ``mp-eform`` (eV/atom) predictions,
* the graph's edges per atom before and after the rattle,

for the bundled encoder and models (v2: continuous graph) and, side by side, for the pre-v2 hard graph: the bundled
``v1-hard`` encoder, and the v1 property models when their directories are given (``--v1-models``, e.g. a checkout of
an older commit's ``ase_negnn/pretrained``). Writes ``benchmarks/results/graph_continuity.{csv,md}``.

Command (from the repository root, seconds)::

    python benchmarks/graph_continuity.py
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
from _bench import parser, report_header, write_csv, write_markdown
from ase import Atoms
from ase.build import bulk

AMPLITUDES = (1e-4, 1e-3)


def srtio3() -> Atoms:
    a = 3.905
    frac = [[0, 0, 0], [0.5, 0.5, 0.5], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]]
    return Atoms("SrTiO3", scaled_positions=frac, cell=[a, a, a], pbc=True)


CRYSTALS = {
    "Si": lambda: bulk("Si", "diamond", a=5.43, cubic=True) * (2, 2, 2),
    "NaCl": lambda: bulk("NaCl", "rocksalt", a=5.64, cubic=True) * (2, 2, 2),
    "Cu": lambda: bulk("Cu", "fcc", a=3.61, cubic=True) * (2, 2, 4),
    "Mg": lambda: bulk("Mg", "hcp", a=3.21, c=5.21) * (4, 4, 2),
    "SrTiO3": lambda: srtio3() * (2, 2, 2),
}


def rattled(atoms: Atoms, amplitude: float) -> Atoms:
    out = atoms.copy()
    out.rattle(amplitude, seed=1)
    return out


def measure(label: str, encoder, models: dict) -> list[dict]:
    from ase_negnn.descriptor import SSMR

    ssmr = SSMR(layers="0-5", pooling="mean", encoder=encoder)
    conv = encoder.graph_converter()
    rows = []
    for name, build in CRYSTALS.items():
        atoms = build()
        x0 = ssmr.create(atoms)
        base = {k: m.predict([atoms])[0][m.target] for k, m in models.items()}
        for amp in AMPLITUDES:
            moved = rattled(atoms, amp)
            x = ssmr.create(moved)
            row = {"graph": label, "crystal": name, "n_atoms": len(atoms), "rattle_A": amp,
                   "edges_per_atom_ideal": conv(atoms).edge_index.shape[1] / len(atoms),
                   "edges_per_atom_rattled": conv(moved).edge_index.shape[1] / len(atoms),
                   "ssmr_max_rel_change": float(np.abs(x - x0).max() / np.abs(x0).max())}
            for k, m in models.items():
                y = m.predict([moved])[0][m.target]
                row[f"{k}_before"], row[f"{k}_after"], row[f"{k}_change"] = base[k], y, abs(y - base[k])
            rows.append(row)
    return rows


def main(argv=None):
    ap = parser(__doc__, "out")
    ap.add_argument("--v1-models", type=Path, default=None,
                    help="directory holding the pre-v2 mp-gap/ and mp-eform/ (hard graph) for the 'before' rows")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    from ase_negnn.models import load_model
    from ase_negnn.pretrained import load_encoder

    rows = measure("v2 continuous (bundled default, mp-gap, mp-eform)", load_encoder("default"),
                   {"mp-gap": load_model("mp-gap"), "mp-eform": load_model("mp-eform")})
    old_models = {}
    if args.v1_models is not None:
        old_models = {k: load_model(args.v1_models / k) for k in ("mp-gap", "mp-eform")}
        if any(m.encoder.smooth for m in old_models.values()):
            sys.exit("--v1-models must hold hard-graph models (saved before v2)")
    rows += measure("v1 hard (bundled v1-hard" + (", v1 mp-gap, mp-eform)" if old_models else ")"),
                    load_encoder("v1-hard"), old_models)

    write_csv(args.out / "graph_continuity.csv", rows)
    md = [*report_header("Continuity under a 1e-4 / 1e-3 Å rattle: continuous (v2) vs hard (v1) graph",
                         f"{time.perf_counter() - t0:.0f} s", argv),
          "- SSMR: layers 0–5, mean pooling, max relative change max|x − x0| / max|x0|; predictions in eV (gap) and "
          "eV/atom (formation energy); `atoms.rattle(amplitude, seed=1)`",
          "- targets (issue 16): SSMR ≤ 1e-3 / ≤ 1e-2, mp-gap ≤ 0.01 eV, mp-eform ≤ 0.005 eV/atom", "",
          "| graph | crystal | rattle (Å) | edges/atom ideal → rattled | SSMR change | mp-gap (eV) | mp-eform (eV/atom) |",
          "|---|---|---:|---|---:|---|---|"]
    for r in rows:
        gap = (f"{r['mp-gap_before']:.3f} → {r['mp-gap_after']:.3f}" if "mp-gap_before" in r else "—")
        ef = (f"{r['mp-eform_before']:.4f} → {r['mp-eform_after']:.4f}" if "mp-eform_before" in r else "—")
        md.append(f"| {r['graph']} | {r['crystal']} | {r['rattle_A']:.0e} | {r['edges_per_atom_ideal']:.1f} → "
                  f"{r['edges_per_atom_rattled']:.1f} | {r['ssmr_max_rel_change']:.1e} | {gap} | {ef} |")
    new = [r for r in rows if r["graph"].startswith("v2")]
    ok = all(r["ssmr_max_rel_change"] <= (1e-3 if r["rattle_A"] < 5e-4 else 1e-2) and r["mp-gap_change"] <= 0.01
             and r["mp-eform_change"] <= 0.005 for r in new)
    md += ["", f"All v2 rows within the issue's targets: {'yes' if ok else 'no'}."]
    write_markdown(args.out / "graph_continuity.md", md)
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
