"""Train a NEGNN on a few hundred structures, against the identical network trained from scratch.

Run:  python examples/02_property_model.py     (reduced: ASE_NEGNN_QUICK=1)

Band gap (PBE, eV) of the 300 MP crystals in ``examples/data/mp_300.extxyz``, 80/10/10 split (seed 0). The NEGNN
feeds the bundled encoder's SSAR (layers 0–5; the encoder fine-tuned, ``train``'s default) to 3 trainable CGConv
layers; ``from_scratch=True`` builds the same network with a random, trainable encoder — the paper's baseline. Prints
both test MAEs and writes a parity plot.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import DATA, OUTPUT, quick_mode, savefig  # noqa: E402


def main(out_dir: Path = OUTPUT, quick: bool | None = None) -> Path:
    import ase.io
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from ase_negnn import train

    quick = quick_mode(quick)
    structures = ase.io.read(DATA / "mp_300.extxyz", ":")[: 60 if quick else None]
    epochs = 2 if quick else 60
    cards = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, scratch in (("NEGNN (pretrained encoder, fine-tuned)", False), ("same GNN from scratch", True)):
            run = Path(tmp) / ("scratch" if scratch else "negnn")
            cards[name] = train(structures, "band_gap", units="eV", out=run, from_scratch=scratch, max_epochs=epochs,
                                early_stopping=15, batch_size=16, progress=False, seed=0)
            print(f"{name}: test MAE {cards[name]['test_metrics']['mae']:.3f} eV "
                  f"(n_train {cards[name]['n_train']}, {cards[name]['epochs_run']} epochs)")
            pred = np.genfromtxt(run / "test_predictions.csv", delimiter=",", names=True, dtype=None, encoding=None)
            cards[name]["pairs"] = (pred["true"], pred["predicted"])
        if not quick:
            shutil.copytree(Path(tmp) / "negnn" / "model", Path(out_dir) / "02_band_gap_model", dirs_exist_ok=True)
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    for name, card in cards.items():
        t, p = card["pairs"]
        ax.scatter(t, p, s=12, alpha=0.7, label=f"{name}: MAE {card['test_metrics']['mae']:.2f} eV")
    lim = [0, max(1.0, max(float(np.max(c["pairs"][0])) for c in cards.values()))]
    ax.plot(lim, lim, "k--", lw=0.8)
    ax.set_xlabel("PBE band gap (eV)")
    ax.set_ylabel("predicted (eV)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return savefig(fig, out_dir, "02_property_model.png")


if __name__ == "__main__":
    main()
