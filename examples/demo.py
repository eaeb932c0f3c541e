"""Offline demo: SSMR/SSAR descriptors of real Materials Project crystals with the bundled pretrained encoder.

Run:  python examples/demo.py   (writes examples/output/demo.png)

Prints, for 14 crystals shipped with the package, the SSMR (mean over atoms of the concatenated layer 0–5
embeddings) and its first values, the bundled models' predictions next to the Materials Project labels, the most
similar other crystal by cosine similarity of SSMR, and the encoder's card. Saves a figure: a PCA map of the
layer-0 (element-only) embeddings of Z = 1…100 coloured by group, next to a PCA map of the 14 crystals' SSMR
coloured by their PBE gap.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np


def main(out_dir: Path = Path(__file__).parent / "output") -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from ase import Atoms

    from ase_negnn import SSAR, SSMR, NEGNNCalculator, encoder_card, example_structures
    from ase_negnn.elements import group_labels

    from pymatgen.core import Composition

    def formula(atoms):  # IUPAC order (PbTe, LiFePO4), without pymatgen's explicit 1s
        import re

        iupac = Composition(atoms.get_chemical_formula()).reduced_composition.iupac_formula.replace(" ", "")
        return re.sub(r"([A-Za-z])1(?![0-9])", r"\1", iupac)

    structures = example_structures()
    card = encoder_card("default")
    print(f"bundled encoder: {card.get('objective')} SSL on {card.get('n_structures')} MP structures, "
          f"{card.get('epochs')} epochs; held-out masked accuracies: "
          + ", ".join(f"{k.removeprefix('val_acc_')} {v:.3f}" for k, v in card.get("heldout_metrics", {}).items()
                      if k.startswith("val_acc")))

    ssmr = SSMR(layers="0-5", pooling="mean")
    x = ssmr.create(structures)
    print(f"\nSSMR: {x.shape[0]} structures x {x.shape[1]} features (6 layers x 64, mean over atoms); "
          f"{formula(structures[0])}: [{', '.join(f'{v:.3f}' for v in x[0, :5])}, ...]")
    unit = x / np.linalg.norm(x, axis=1, keepdims=True)
    sim = unit @ unit.T
    np.fill_diagonal(sim, -np.inf)
    # the bundled NEGNN models (offline); these 14 crystals come from mp36k, which the models were trained on
    # (80 % of it): a sanity check, not a test; test-set errors are in benchmarks/results/bundled_models.md
    pred = NEGNNCalculator(models=["mp-eform", "mp-gap"]).predict_many(structures)
    print("\nformation energy (eV/atom) and PBE band gap (eV): Materials Project label | bundled model prediction")
    print(f"{'mp_id':>10} {'formula':>10} {'E_f MP':>8} {'mp-eform':>9} {'gap MP':>7} {'mp-gap':>7}   "
          "most similar crystal (cosine of SSMR)")
    for i, (a, p) in enumerate(zip(structures, pred)):
        j = int(np.argmax(sim[i]))
        print(f"{a.info['mp_id']:>10} {formula(a):>10} {a.info['formation_energy_per_atom']:>8.3f} "
              f"{p['formation_energy_per_atom']:>9.3f} {a.info['band_gap']:>7.2f} {p['band_gap']:>7.2f}   "
              f"{formula(structures[j])} ({sim[i, j]:.3f})")

    # Layer 0 of SSAR is the element alone: embed one isolated atom per element (no neighbours).
    elements = [Atoms(numbers=[z], cell=[20, 20, 20], pbc=False) for z in range(1, 101)]
    e0 = np.concatenate(SSAR(layers=0).create(elements))
    groups = group_labels()[1:101]

    def pca2(a):
        a = a - a.mean(0)
        _, _, vt = np.linalg.svd(a, full_matrices=False)
        return a @ vt[:2].T

    out_dir.mkdir(parents=True, exist_ok=True)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.5))
    p = pca2(e0)
    sc = ax1.scatter(p[:, 0], p[:, 1], c=groups, cmap="tab20", s=28)
    for z in (1, 3, 6, 8, 9, 11, 26, 29, 47, 57, 79, 92):
        ax1.annotate(Atoms(numbers=[z]).get_chemical_symbols()[0], p[z - 1], fontsize=8)
    fig.colorbar(sc, ax=ax1, label="group (0 = f-block)")
    ax1.set(title="Layer-0 SSAR of Z=1…100 (PCA)", xlabel="PC1", ylabel="PC2")
    q = pca2(x)
    sc2 = ax2.scatter(q[:, 0], q[:, 1], c=[a.info["band_gap"] for a in structures], cmap="viridis", s=40)
    for k, (a, pt) in enumerate(zip(structures, q)):  # alternate label offsets so neighbours do not overlap
        ax2.annotate(formula(a), pt, xytext=(4, 4 if k % 2 else -10), textcoords="offset points", fontsize=8)
    fig.colorbar(sc2, ax=ax2, label="PBE band gap (eV, Materials Project)")
    ax2.set(title="SSMR of 14 MP crystals (PCA)", xlabel="PC1", ylabel="PC2")
    fig.tight_layout()
    path = out_dir / "demo.png"
    fig.savefig(path, dpi=120)
    print(f"\nfigure written to {path}")
    return path


if __name__ == "__main__":
    main(Path(os.environ.get("ASE_NEGNN_DEMO_OUT", Path(__file__).parent / "output")))
