"""Per-atom magnetic moments (μB) from SSAR: a NEGNN site model trained on MAGNDATA magnetic structures.

Run:  python examples/05_magnetic_moments.py     (reduced: ASE_NEGNN_QUICK=1)

Reads 24 MAGNDATA magnetic CIFs (``examples/data/mcifs``; the moments come from the mcif, converted from crystal
axes to Cartesian by ``ase_negnn.readers.read_magnetic_cif``), trains a per-atom NEGNN on |m| of every site (non-magnetic
sites count as 0 μB), and compares predicted and reported moments of the held-out structures, element by element.
Small data: the point is the workflow; ``benchmarks/`` holds the full study.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import DATA, OUTPUT, quick_mode, savefig  # noqa: E402


def main(out_dir: Path = OUTPUT, quick: bool | None = None) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ase_negnn import read_structures, train

    quick = quick_mode(quick)
    structures = read_structures(DATA / "mcifs")
    print(f"{len(structures)} magnetic structures, {sum(len(a) for a in structures)} sites, "
          f"{sum(int((a.arrays['magmoms'] > 0.1).sum()) for a in structures)} magnetic")
    with tempfile.TemporaryDirectory() as tmp:
        card = train(structures, "magmoms", task="site", units="μB", out=Path(tmp) / "run", split="0.7,0.15,0.15",
                     max_epochs=2 if quick else 150, early_stopping=30, batch_size=4, progress=False, seed=0)
        rows = np.genfromtxt(Path(tmp) / "run" / "test_predictions.csv", delimiter=",", names=True, dtype=None,
                             encoding=None)
    m = card["test_metrics"]
    print(f"test sites: MAE {m['mae']:.2f} μB, R² {m['r2']:.2f} over {m['n']} sites of {card['n_test']} structures")
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    ax.scatter(rows["true"], rows["predicted"], s=14, alpha=0.7)
    top = max(1.0, float(np.max(rows["true"])))
    ax.plot([0, top], [0, top], "k--", lw=0.8)
    ax.set_xlabel("MAGNDATA |m| (μB)")
    ax.set_ylabel("NEGNN prediction (μB)")
    ax.set_title(f"per-site moments, test MAE {m['mae']:.2f} μB", fontsize=9)
    fig.tight_layout()
    return savefig(fig, out_dir, "05_magnetic_moments.png")


if __name__ == "__main__":
    main()
