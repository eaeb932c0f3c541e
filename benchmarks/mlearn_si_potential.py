"""NEGNN potential head on the mlearn Si data set, next to the mlearn paper's ML-IAPs on the same test set.

What it does
------------
Trains ``ase_negnn.training.train(task="potential")`` on ``mlearn/Si_training.extxyz`` (214 DFT structures: bulk
strained, AIMD snapshots, vacancies, surfaces; PBE energies and forces), 90 % for fitting and 10 % (seeded) for
validation / best-epoch selection, and evaluates on ``mlearn/Si_test.extxyz`` (25 structures), the test set of
Zuo et al. (J. Phys. Chem. A 124, 731 (2020)). Stress is not used: the upstream virial's order and sign are not
documented in the file (see ``shared/data/README.md``), so the loss is energy + forces only.

Model: ``NEGNN(task="potential")`` with the bundled pretrained encoder's layer 0 (the learned element embedding; for
a one-element system it is a constant, so pretraining plays no role here), 3 trainable CGConv layers of width 64,
all neighbours within the cutoff (5 Å) with a cosine envelope, per-atom energies + least-squares element reference.

Output: ``benchmarks/results/mlearn_si_potential.{csv,md,png}``: our test energy MAE (meV/atom) and force MAE
(eV/Å) beside the published test MAEs of GAP, MTP, NNP, SNAP and qSNAP (values copied from the paper, cited in
``REFERENCE_TABLE`` below, not measured here), with ratios; the parity plots of energies and force components.

Command (from the repository root; wall time is printed and written to the report)::

    OMP_NUM_THREADS=1 python benchmarks/mlearn_si_potential.py --data ../shared/data --max-epochs 150
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
from _bench import parser, report_header, save_figure, write_csv, write_markdown

#: Published test-set MAEs (energy meV/atom, forces eV/Å) of Zuo et al., J. Phys. Chem. A 124, 731 (2020), for the
#: element, as tabulated by the ACE authors next to their own results on the same split (ACEsuit/ACEpotentials.jl,
#: examples/zuobench/error_table.jl, commit 12b44225, rows Ni Cu Li Mo Si Ge × columns GAP MTP; forces given to two
#: decimals). SNAP, qSNAP and NNP values could not be verified from a readable source and are left out.
REFERENCE_TABLE: dict[str, dict[str, tuple[float, float]]] = {
    "Si": {"GAP": (2.91, 0.07), "MTP": (2.21, 0.06)},
    "Ge": {"GAP": (2.06, 0.05), "MTP": (1.79, 0.05)},
    "Mo": {"GAP": (2.24, 0.09), "MTP": (2.83, 0.09)},
    "Li": {"GAP": (0.49, 0.01), "MTP": (0.49, 0.01)},
}
REFERENCE_SOURCE = ("Zuo et al., J. Phys. Chem. A 124, 731 (2020) (arXiv:1906.08888), test-set MAEs as tabulated in "
                    "ACEsuit/ACEpotentials.jl examples/zuobench/error_table.jl")


def main(argv=None):
    p = parser(__doc__, "data", "max_epochs", "early_stopping", "seed", "runs", "out", max_epochs=150,
               early_stopping=40, runs="runs/mlearn-si")
    p.add_argument("--element", default="Si", help="mlearn element (Si, Ge, Li, Mo)")
    p.add_argument("--cutoff", type=float, default=5.0, help="graph cutoff (Å)")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--lr", type=float, default=2e-3)
    args = p.parse_args(argv)

    from ase_negnn.training import train

    root = Path(args.data) / "mlearn"
    train_file, test_file = root / f"{args.element}_training.extxyz", root / f"{args.element}_test.extxyz"
    for f in (train_file, test_file):
        if not f.exists():
            sys.exit(f"missing {f}; pass --data pointing at the shared data folder")
    run_dir = Path(args.runs)
    resume = (run_dir / "checkpoints" / "last.ckpt").exists() and not (run_dir / "card.json").exists()
    t0 = time.perf_counter()
    if (run_dir / "card.json").exists():
        import json

        card = json.loads((run_dir / "card.json").read_text())
        print(f"reusing finished run {run_dir} (delete it to retrain)")
    else:
        card = train(train_file, "energy", task="potential", out=run_dir, split="0.9,0.1", test_data=test_file,
                     seed=args.seed, max_epochs=args.max_epochs, early_stopping=args.early_stopping, cutoff=args.cutoff,
                     layers=[0], n_conv=3, width=64, batch_size=args.batch_size, lr=args.lr, units="eV",
                     energy_weight=1.0, force_weight=1.0, stress_weight=0.0, resume=resume, progress=False)
    wall = time.perf_counter() - t0
    m = card["test_metrics"]
    ours_e, ours_f = 1000 * m["energy_per_atom_mae"], m["force_mae"]

    rows = [{"model": "NEGNN (this package)", "energy_mae_meV_atom": ours_e, "force_mae_eV_A": ours_f,
             "energy_ratio_ours_over_ref": 1.0, "force_ratio_ours_over_ref": 1.0, "source": f"measured, {run_dir}"}]
    reference = REFERENCE_TABLE.get(args.element, {})
    for name, (e, f) in reference.items():
        rows.append({"model": name, "energy_mae_meV_atom": e, "force_mae_eV_A": f,
                     "energy_ratio_ours_over_ref": ours_e / e, "force_ratio_ours_over_ref": ours_f / f,
                     "source": REFERENCE_SOURCE})
    out = Path(args.out)
    stem = f"mlearn_{args.element.lower()}_potential"
    write_csv(out / f"{stem}.csv", rows)
    _plot(run_dir, out / f"{stem}.png", card)
    lines = [
        *report_header(f"mlearn {args.element}: NEGNN potential vs published ML-IAPs (test set)",
                       f"{wall / 60:.1f} min (training {card['train_seconds_this_session'] / 60:.1f} min)", argv),
        f"- data: {train_file.name} ({card['n_train']} fit + {card['n_validation']} validation), "
        f"test {test_file.name} ({card['n_test']} structures, {m['force_n'] // 3} atoms)",
        f"- model: NEGNN potential, encoder layer 0 (bundled encoder), 3 CGConv × 64, cutoff {args.cutoff} Å, "
        f"cosine envelope; loss energy/atom + forces (weights 1, 1), no stress; AdamW lr {args.lr}, cosine decay, "
        f"batch {args.batch_size}, {card['epochs_run']} epochs (best: validation energy MAE)",
        f"- reference values: {REFERENCE_SOURCE} (copied, not re-measured)" if reference else
        "- reference values: none filled in",
        "",
        "| model | energy MAE (meV/atom) | force MAE (eV/Å) | ours / ref (energy) | ours / ref (force) |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(f"| {r['model']} | {r['energy_mae_meV_atom']:.2f} | {r['force_mae_eV_A']:.3f} | "
                     f"{r['energy_ratio_ours_over_ref']:.2f} | {r['force_ratio_ours_over_ref']:.2f} |")
    lines += ["", f"Force RMSE {m['force_rmse']:.3f} eV/Å, energy RMSE {1000 * m['energy_per_atom_rmse']:.2f} meV/atom; "
              f"R² forces {m['force_r2']:.3f}.", f"![parity]({stem}.png)"]
    write_markdown(out / f"{stem}.md", lines)
    print("\n".join(lines))


def _plot(run_dir: Path, path: Path, card: dict) -> None:
    """Energy parity (per structure) and force-component parity of the test set."""
    import ase.io
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ase_negnn.models import load_model

    test = ase.io.read(card["test_data"], ":")
    model = load_model(run_dir / "model")
    pred = model.predict(test, batch_size=4, compute_stress=False)
    e_true = np.array([a.get_potential_energy() / len(a) for a in test])
    e_pred = np.array([r["energy"] / len(a) for r, a in zip(pred, test)])
    f_true = np.concatenate([a.get_forces().ravel() for a in test])
    f_pred = np.concatenate([r["forces"].ravel() for r in pred])
    fig, axes = plt.subplots(1, 2, figsize=(8, 4), dpi=120)
    for ax, t, q, label in ((axes[0], e_true, e_pred, "energy (eV/atom)"), (axes[1], f_true, f_pred, "force (eV/Å)")):
        ax.scatter(t, q, s=5, alpha=0.5, lw=0)
        lo, hi = min(t.min(), q.min()), max(t.max(), q.max())
        ax.plot([lo, hi], [lo, hi], "k--", lw=0.8)
        ax.set_xlabel(f"DFT {label}")
        ax.set_ylabel(f"NEGNN {label}")
        ax.set_title(f"MAE {np.abs(t - q).mean():.4g}", fontsize=9)
    fig.suptitle("mlearn Si test set", fontsize=10)
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)


if __name__ == "__main__":
    main()
