"""SSAR and SSMR at several layers, and what the layers see: a PCA map of per-atom embeddings by group.

Run:  python examples/01_descriptors.py        (reduced: ASE_NEGNN_QUICK=1)

Uses the bundled encoder on 300 Materials Project crystals shipped in ``examples/data/mp_300.extxyz``. Prints the
descriptor shapes for single layers and the multi-scale concatenation, then draws the first two principal
components of every atom's SSAR at layer 0 (the element alone), 2 and 5 (wider neighbourhoods), coloured by the
atom's group. Layer 0 clusters strictly by element; deeper layers spread each element by its environment.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import DATA, OUTPUT, quick_mode, savefig  # noqa: E402


def main(out_dir: Path = OUTPUT, quick: bool | None = None) -> Path:
    import ase.io
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.decomposition import PCA

    from ase_negnn import SSAR, SSMR
    from ase_negnn.elements import group_labels

    structures = ase.io.read(DATA / "mp_300.extxyz", ":")[: 40 if quick_mode(quick) else None]
    print(f"{len(structures)} MP crystals, {sum(len(a) for a in structures)} atoms")
    for layers in (0, 2, 5, "0-5"):
        print(f"SSMR layers {layers!s:>4}: {SSMR(layers, pooling='mean').create(structures).shape}")
    ssar = SSAR("0,2,5").create(structures)  # list of (n_atoms, 192) arrays
    atoms_z = np.concatenate([a.numbers for a in structures])
    groups = group_labels()[atoms_z]  # 1..18 (0 = f-block)
    X = np.concatenate(ssar)
    fig, axes = plt.subplots(1, 3, figsize=(14, 4.4), layout="constrained")
    for ax, (k, layer) in zip(axes, enumerate((0, 2, 5))):
        xy = PCA(2).fit_transform(X[:, 64 * k : 64 * (k + 1)])
        sc = ax.scatter(xy[:, 0], xy[:, 1], c=groups, cmap="tab20", s=5, vmin=0, vmax=18)
        ax.set_title(f"SSAR layer {layer}" + (" (element only)" if layer == 0 else ""), fontsize=10)
        ax.set_xlabel("PC 1")
        ax.set_ylabel("PC 2")
    fig.suptitle(f"PCA of {len(X)} atoms' embeddings, coloured by group", fontsize=10)
    fig.colorbar(sc, ax=axes, label="group (0 = f-block)")
    return savefig(fig, out_dir, "01_descriptors.png")


if __name__ == "__main__":
    main()
