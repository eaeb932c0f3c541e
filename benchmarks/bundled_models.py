"""Test-set accuracy of the bundled NEGNN property models, with published Matbench numbers for context.

What it does
------------
For each bundled model (``mp-eform``, ``mp-gap``; trained by ``scripts/train_bundled_models.sh`` on mp36k with an
80/10/10 split, seed 0), it re-reads mp36k, rebuilds the same seeded split (``ase_negnn.training.split_three``), predicts
the 10 % test structures with the installed model, and recomputes MAE/RMSE/R² (they must equal the model card's,
which the training run measured before installing). It also reports the mean-predictor MAE (training-set mean) on
the same test set and a parity plot per model.

Context, not a like-for-like comparison: Matbench v0.1 (Dunn et al., npj Comput. Mater. 6, 138 (2020)) leaderboard
test MAEs of CGCNN and ALIGNN on ``matbench_mp_e_form`` (132,752 structures) and ``matbench_mp_gap`` (106,113),
5-fold nested CV — larger data sets and different splits than our 36,738-structure mp36k. Values copied from
materialsproject/matbench ``docs_src/Leaderboards Per-Task/matbench_v0.1_matbench_mp_{e_form,gap}.md`` (commit
936176db); they are never measured here.

Band-gap models also get a metal / insulator table: MAE on the metals (DFT gap 0) and on the structures with a gap
above 0.5 eV, the share of those insulators predicted below 0.1 eV (false metals), of metals predicted above 0.5 eV,
and the metal / non-metal accuracy with 0.1 eV as the threshold.

Earlier versions of a model can be scored beside the bundled ones on the same split: ``--models`` takes
``LABEL=DIR`` entries too (e.g. the files of an older commit, ``git worktree add /tmp/old COMMIT``).

Output: ``benchmarks/results/bundled_models.{csv,md,png}``.

Command (from the repository root)::

    OMP_NUM_THREADS=1 python benchmarks/bundled_models.py --data ../shared/data
    # with mp-gap before its L1 second cycle (the bundled file of commit b6d63ef):
    git worktree add /tmp/gap8 b6d63ef
    OMP_NUM_THREADS=1 python benchmarks/bundled_models.py --data ../shared/data \
        --models "mp-eform,mp-gap,mp-gap after 8 MSE epochs=/tmp/gap8/ase_negnn/pretrained/mp-gap"
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
from _bench import (
    mp36k_path,
    parser,
    report_header,
    save_figure,
    write_csv,
    write_markdown,
)

#: Matbench v0.1 leaderboard test MAE (mean over 5 outer folds): task → {algorithm: MAE}.
MATBENCH = {
    "formation_energy_per_atom": ("matbench_mp_e_form", 132752, {"CGCNN v2019": 0.0337, "ALIGNN": 0.0215}),
    "band_gap": ("matbench_mp_gap", 106113, {"CGCNN v2019": 0.2972, "ALIGNN": 0.1861}),
}


def main(argv=None):
    p = parser(__doc__, "data", "out")
    p.add_argument("--models", default="mp-eform,mp-gap",
                   help="comma list of bundled model names or LABEL=DIR (a saved model directory shown as LABEL)")
    args = p.parse_args(argv)

    import ase.io
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ase_negnn.models import load_model, model_card
    from ase_negnn.training import regression_metrics, split_three

    t0 = time.perf_counter()
    images = ase.io.read(mp36k_path(args.data), ":")
    entries = [m.split("=", 1) if "=" in m else (m, m) for m in args.models.split(",") if m]
    names = [label for label, _ in entries]
    rows, lines, gap_lines = [], [], []
    fig, axes = plt.subplots(1, len(names), figsize=(4.2 * len(names), 4.2), dpi=120, squeeze=False)
    for ax, (name, source) in zip(axes[0], entries):
        card = model_card(source)
        model = load_model(source)
        target, units = card["target"], card["units"]
        split = card["split"]
        train_idx, _, test_idx = split_three(len(images), split, card["seed"])
        if card["n_structures"] != len(images):
            sys.exit(f"{name}: the card says {card['n_structures']} structures, mp36k has {len(images)} "
                     "(some were skipped in training); cannot rebuild the split")
        test = [images[i] for i in test_idx]
        y_true = np.array([a.info[target] for a in test])
        y_pred = np.array([r[target] for r in model.predict(test, batch_size=64)])
        m = regression_metrics(y_pred, y_true)
        mean_pred = float(np.mean([images[i].info[target] for i in train_idx]))
        mean_mae = float(np.abs(y_true - mean_pred).mean())
        bench, n_bench, refs = MATBENCH[target]
        row = {"model": name, "target": target, "units": units, "n_train": card["n_train"], "n_test": len(test),
               "epochs": card["epochs_run"], "train_minutes": round(card["train_seconds_this_session"] / 60, 1),
               "test_mae": m["mae"], "test_rmse": m["rmse"], "test_r2": m["r2"],
               "card_test_mae": card["test_metrics"]["mae"], "mean_predictor_mae": mean_mae,
               "n_negative_predictions": int((y_pred < 0).sum()), "min_prediction": float(y_pred.min()),
               "freeze_encoder": bool(model.freeze_encoder), "graph": "continuous" if model.encoder.smooth else "hard",
               "nonnegative_output": bool(getattr(model, "nonnegative", False))}
        for algo, value in refs.items():
            row[f"matbench_{algo.split()[0].lower()}_mae"] = value
            row[f"ratio_ours_over_{algo.split()[0].lower()}"] = m["mae"] / value
        if target == "band_gap":
            met, ins = y_true == 0, y_true > 0.5
            row.update(metal_mae=float(np.abs(y_pred - y_true)[met].mean()), insulator_mae=float(np.abs(y_pred - y_true)[ins].mean()),
                       n_metals=int(met.sum()), n_insulators=int(ins.sum()),
                       insulators_predicted_metal=float(np.mean(y_pred[ins] < 0.1)),
                       metals_predicted_insulator=float(np.mean(y_pred[met] > 0.5)),
                       metal_accuracy=float(np.mean((y_pred >= 0.1) == (y_true > 0))))
            gap_lines.append(f"| {name} | {m['mae']:.4f} | {row['metal_mae']:.3f} | {row['insulator_mae']:.3f} | "
                             f"{row['insulators_predicted_metal']:.3f} | {row['metals_predicted_insulator']:.3f} | "
                             f"{row['metal_accuracy']:.3f} |")
        stages = []  # a model trained from another (train --init-from): epochs and loss of each stage, first first
        src = card.get("init_from_run")
        while src:
            stages.insert(0, f"{src.get('epochs_run', '?')} {src.get('loss', 'mse').upper()}")
            src = src.get("init_from_run")
        row["training_stages"] = " + ".join([*stages, f"{card['epochs_run']} {card.get('loss', 'mse').upper()}"])
        epochs = f"{row['training_stages']} epochs" if stages else f"{row['epochs']} epochs"
        rows.append(row)
        lines.append(
            f"| {name} | {target} ({units}) | {card['n_train']:,} / {len(test):,} | {m['mae']:.4f} | {m['rmse']:.4f} | "
            f"{m['r2']:.3f} | {mean_mae:.4f} | "
            + (f"{row['n_negative_predictions']} (min {row['min_prediction']:.3g})" if "gap" in target else "— (signed)")
            + " | "
            f"{'frozen' if row['freeze_encoder'] else 'fine-tuned'}, {row['graph']} graph"
            f"{', softplus output' if row['nonnegative_output'] else ''}, {epochs} | "
            + " | ".join(f"{v:.4f} ({m['mae'] / v:.2f}×)" for v in refs.values()) + f" | {bench} ({n_bench:,}) |")
        ax.scatter(y_true, y_pred, s=3, alpha=0.3, lw=0)
        lo, hi = float(min(y_true.min(), y_pred.min())), float(max(y_true.max(), y_pred.max()))
        ax.plot([lo, hi], [lo, hi], "k--", lw=0.8)
        ax.set_xlabel(f"DFT {target} ({units})")
        ax.set_ylabel(f"NEGNN ({units})")
        ax.set_title(f"{name}: test MAE {m['mae']:.3f} {units} (n={len(test)})", fontsize=9)
        print(f"{name}: test MAE {m['mae']:.4f} {units} (card {card['test_metrics']['mae']:.4f}), mean predictor {mean_mae:.4f}")
    fig.tight_layout()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    save_figure(fig, out / "bundled_models.png")
    write_csv(out / "bundled_models.csv", rows)
    wall = time.perf_counter() - t0
    md = [
        *report_header("Bundled NEGNN models: mp36k test set, with Matbench for context", f"{wall / 60:.1f} min", argv),
        "- split: mp36k (36,738 MP structures), 80/10/10 seeded (seed 0); the 10 % test set was never used in training "
        "or model selection (best epoch chosen on the 10 % validation set)",
        "- model: NEGNN, bundled encoder (SSAR layers 0–5 concatenated; frozen or fine-tuned, see the table) → 3 "
        "trainable CGConv × 64 → MLP; settings and wall time in each model's card.json",
        "- Matbench columns: published leaderboard MAEs on the larger Matbench sets (different data and splits; "
        "context only), with our MAE / theirs in parentheses",
        "",
        "| model | target | train / test | MAE | RMSE | R² | mean predictor MAE | negative predictions | encoder, graph, "
        "output, epochs | Matbench CGCNN | Matbench ALIGNN | Matbench task (size) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
        *lines,
        "",
        *([f"Band gaps, metals (DFT gap 0) and insulators (gap > 0.5 eV) of the test set"
           f" ({rows[-1]['n_metals']:,} / {rows[-1]['n_insulators']:,}); false metal: an insulator predicted below 0.1 eV; "
           "accuracy: metal vs non-metal with 0.1 eV as the threshold", "",
           "| model | MAE (eV) | metals: MAE | insulators: MAE | insulators predicted < 0.1 eV | metals predicted > 0.5 eV | "
           "metal / non-metal accuracy |", "|---|---:|---:|---:|---:|---:|---:|", *gap_lines, ""] if gap_lines else []),
        "![parity](bundled_models.png)",
    ]
    write_markdown(out / "bundled_models.md", md)
    print("\n".join(md))


if __name__ == "__main__":
    main()
