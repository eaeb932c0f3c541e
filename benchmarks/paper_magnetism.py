"""Paper claim 4: SSAR predicts per-atom magnetic moments; SSMR predicts magnetic transition temperatures.

Data: MAGNDATA magnetic CIFs (``magndata/mcifs.tar.xz``, extracted once to ``benchmarks/cache/mcifs``) read by
``ase_negnn.readers.read_magnetic_cif`` (files it refuses — disordered, partial occupancy, … — are counted with the
reason), with the paper's labels:

* ``paper/magmom.csv`` (``<MAGNDATA id>_<formula>_<element>_<Z>_<site>,|m| (μB)``; ``site`` counts from 1 in the
  magnetic cell as expanded by pymatgen, i.e. atom ``site - 1`` of ``read_magnetic_cif``). Rows whose element does
  not match that atom are dropped and counted. Split **by structure** (80/20 of the MAGNDATA ids, seed 0) so no test
  site shares a structure with a training site.

  - SSAR + KRR: per-site SSAR of our encoder (layers 0-5 concatenated), of the element embedding alone (layer 0,
    the element-only baseline: every site of one element gets the same vector) and of the authors' predictive
    checkpoint; ``StandardScaler + KernelRidge`` with the paper's grid, chosen by leave-one-out CV on the training
    sites (``benchmarks/_paper.py``);
  - NEGNN site head (``ase_negnn.train(task="site", target="magmoms")``), two ways (10 % of the training structures
    for validation/early stopping; the test structures passed as its fixed test set; scored on the labelled test
    sites): on every atom of the training structures (moment magnitudes from the mcif, 0 on non-magnetic atoms;
    run directory ``--runs``), and on the labelled sites only (``allow_missing_sites=True``: the CSV value on the
    sites of ``paper/magmom.csv``, NaN = left out of the loss elsewhere; ``<runs>-masked``);
  - mean predictor (mean of the training sites' labels).

* ``paper/mag.csv`` (``<MAGNDATA id>_<formula>,T (K)``): SSMR (ours / authors', sum and mean pooling) + KRR, random
  80/20 split of the readable structures (seed 0), mean predictor.

Writes ``benchmarks/results/paper_magnetism.csv|md|png`` (the plot: predicted vs DFT/experimental moments of the test
sites).

Command (from the repository root)::

    python benchmarks/paper_magnetism.py --data ../shared/data
"""

from __future__ import annotations

import argparse
import sys
import textwrap
import time
import warnings
from collections import Counter
from pathlib import Path

import _paper as P
import numpy as np
from _bench import _OldSpelling, parser, report_header, save_figure, write_markdown


def read_structures(mcif_dir: Path, ids) -> tuple[dict, Counter]:
    from ase_negnn.readers import read_magnetic_cif
    from ase_negnn.graph import CrystalGraphConverter

    check = CrystalGraphConverter()  # the encoder's graph; refuses e.g. overlapping atoms with the reason
    out, refused = {}, Counter()
    for i in sorted(ids):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                atoms = read_magnetic_cif(mcif_dir / f"{i}.mcif")
            check(atoms)
            out[i] = atoms
        except (ValueError, FileNotFoundError) as ex:
            reason = str(ex).replace(str(mcif_dir / f"{i}.mcif"), "").lstrip(": ")
            reason = "overlapping atoms" if "overlap" in reason else reason.split("(")[0].strip()[:60]
            refused[reason] += 1
    return out, refused


def site_rows(path: Path):
    """(key, MAGNDATA id, element, site index from 0, |m|) of paper/magmom.csv."""
    rows = []
    for key, value in P.read_label_csv(path).items():
        head, element, _z, site = key.rsplit("_", 3)
        rows.append((key, head.split("_")[0], element, int(site) - 1, value))
    return rows


def main(argv=None):
    ap = parser(__doc__, "data", "encoder", "max_epochs", "runs", "out", max_epochs=60, runs="runs/paper-magmom")
    ap.add_argument("--negnn-epochs", dest="max_epochs", action=_OldSpelling, new_name="--max-epochs", type=int,
                    help=argparse.SUPPRESS)
    ap.add_argument("--skip-negnn", action="store_true")
    args = ap.parse_args(argv)
    args.data, args.runs = Path(args.data), Path(args.runs)
    t_start = time.perf_counter()
    from ase_negnn.descriptor import SSAR

    mcif_dir = P.extract_mcifs(args.data)
    sites = site_rows(args.data / "paper" / "magmom.csv")
    temps = P.read_label_csv(args.data / "paper" / "mag.csv")
    temp_ids = {k: k.split("_")[0] for k in temps}
    structures, refused = read_structures(mcif_dir, {s[1] for s in sites} | set(temp_ids.values()))
    print(f"{len(structures)} structures read; refused: {dict(refused)}", flush=True)
    encs = P.load_encoders(args.data, args.encoder)

    # ------------------------------------------------------------------ per-site moments
    kept, dropped = [], Counter()
    for key, mid, element, idx, value in sites:
        atoms = structures.get(mid)
        if atoms is None:
            dropped["structure not readable"] += 1
        elif idx >= len(atoms) or atoms[idx].symbol != element:
            dropped["site index/element mismatch"] += 1
        else:
            kept.append((key, mid, idx, value, float(atoms.arrays["magmoms"][idx])))
    mids = sorted({k[1] for k in kept})
    train_m, test_m = P.split_80_20(len(mids))
    train_ids, test_ids = {mids[i] for i in train_m}, {mids[i] for i in test_m}
    tr = np.array([k[1] in train_ids for k in kept])
    y = np.array([k[3] for k in kept])
    mcif_vs_csv = np.abs(np.array([k[4] for k in kept]) - y)
    train, test = np.where(tr)[0], np.where(~tr)[0]
    print(f"sites: {len(kept)} kept of {len(sites)} ({dict(dropped)}); {len(mids)} structures "
          f"({len(train_ids)} train / {len(test_ids)} test), {len(train)} / {len(test)} sites", flush=True)

    rows, preds = [], {}
    mean_mae = float(np.mean(np.abs(y[test] - y[train].mean())))
    rows.append({"study": "magmom", "method": "mean predictor", "test_mae": mean_mae})
    needed = sorted({k[1] for k in kept})
    for name, enc, layers in (("ours SSAR 0-5", encs["ours"], "all"), ("element only (ours layer 0)", encs["ours"], [0]),
                              ("authors-pred SSAR 0-5", encs.get("authors-pred"), "all")):
        if enc is None:
            continue
        per = dict(zip(needed, SSAR(layers=layers, encoder=enc).create([structures[m] for m in needed])))
        X = np.stack([per[k[1]][k[2]] for k in kept])
        r = P.krr_evaluate(X, y, train, test, cv="loo")
        preds[name] = r.pop("pred")
        r.pop("cached")
        rows.append({"study": "magmom", "method": f"{name} + KRR", **r})
        print(f"  {name:28s} test MAE {r['test_mae']:.3f} μB  (CV {r['cv_mae']:.3f})", flush=True)

    if not args.skip_negnn:
        from ase_negnn.models import load_model
        from ase_negnn.training import train as train_negnn

        test_struct = sorted(test_ids)
        test_atoms = [structures[m] for m in test_struct]
        labelled = {}  # MAGNDATA id -> {site index: |m| of paper/magmom.csv}
        for k in kept:
            labelled.setdefault(k[1], {})[k[2]] = k[3]

        def masked(atoms, mid):
            """Copy whose ``magmoms`` are the CSV labels on the labelled sites and NaN (unlabelled) elsewhere."""
            a = atoms.copy()
            m = np.full(len(a), np.nan)
            for i, v in labelled.get(mid, {}).items():
                m[i] = v
            a.arrays["magmoms"] = m
            return a

        variants = (  # (row name, run directory, training structures, test structures, extra train() arguments)
            ("NEGNN site head (ours, frozen encoder; all atoms, 0 on non-magnetic)", args.runs,
             [structures[m] for m in sorted(train_ids)], test_atoms, {"freeze_encoder": True}),
            ("NEGNN site head (ours, frozen encoder; labelled sites only, masked loss)",
             args.runs.with_name(args.runs.name + "-masked"),
             [masked(structures[m], m) for m in sorted(train_ids)], [masked(structures[m], m) for m in test_struct],
             {"allow_missing_sites": True, "freeze_encoder": True}),
            ("NEGNN site head (ours, encoder fine-tuned = default train; all atoms, 0 on non-magnetic)",
             args.runs.with_name(args.runs.name + "-finetune"),
             [structures[m] for m in sorted(train_ids)], test_atoms, {"freeze_encoder": False}),
        )
        for name, run_dir, train_atoms, test_data, extra in variants:
            t0 = time.perf_counter()
            card_path = run_dir / "card.json"
            if card_path.exists():  # finished before: reuse (delete the run directory to retrain)
                import json

                card = json.loads(card_path.read_text())
            else:  # new, or resumed after an interruption (per-epoch checkpoints)
                card = train_negnn(train_atoms, "magmoms", task="site", out=run_dir, split="0.9,0.1",
                                   test_data=test_data, seed=0, max_epochs=args.max_epochs, early_stopping=15,
                                   encoder=args.encoder, units="μB", batch_size=16, progress=False, plot=False,
                                   resume=(run_dir / "checkpoints" / "last.ckpt").exists(), **extra)
            model = load_model(run_dir / "model")
            out = dict(zip(test_struct, model.predict(test_atoms)))
            p = np.array([out[kept[i][1]]["magmoms"][kept[i][2]] for i in test])
            preds[name] = p
            rows.append({"study": "magmom", "method": name, "test_mae": float(np.mean(np.abs(y[test] - p))),
                         "fit_seconds": time.perf_counter() - t0, "epochs": card.get("epochs_run")})
            print(f"  {name}: test MAE {rows[-1]['test_mae']:.3f} μB", flush=True)

    # ------------------------------------------------------------------ transition temperatures
    tkeys = [k for k in temps if temp_ids[k] in structures]
    yt = np.array([temps[k] for k in tkeys])
    ttrain, ttest = P.split_80_20(len(tkeys))
    rows.append({"study": "Tc", "method": "mean predictor",
                 "test_mae": float(np.mean(np.abs(yt[ttest] - yt[ttrain].mean())))})
    tstruct = [structures[temp_ids[k]] for k in tkeys]
    from ase_negnn.descriptor import SSMR

    for name in ("ours", "authors-pred"):
        if name not in encs:
            continue
        for pooling in ("sum", "mean"):
            X = SSMR(layers="all", encoder=encs[name], pooling=pooling).create(tstruct)
            r = P.krr_evaluate(X, yt, ttrain, ttest, cv="loo")
            r.pop("pred")
            r.pop("cached")
            rows.append({"study": "Tc", "method": f"{name} SSMR {pooling} + KRR", **r})
            print(f"  Tc {name} {pooling}: test MAE {r['test_mae']:.1f} K (CV {r['cv_mae']:.1f})", flush=True)

    wall = time.perf_counter() - t_start
    write(args, rows, preds, y[test], {
        "n_structures_read": len(structures), "refused": dict(refused), "sites_total": len(sites),
        "sites_kept": len(kept), "dropped": dict(dropped), "n_struct_train": len(train_ids),
        "n_struct_test": len(test_ids), "n_sites_train": len(train), "n_sites_test": len(test),
        "mcif_vs_csv_median": float(np.median(mcif_vs_csv)), "mcif_vs_csv_within_0.1": float(np.mean(mcif_vs_csv < 0.1)),
        "tc_labels": len(temps), "tc_joined": len(tkeys), "tc_train": len(ttrain), "tc_test": len(ttest)}, wall, argv)
    return 0


def write(args, rows, preds, y_test, info, wall, argv):

    args.out.mkdir(parents=True, exist_ok=True)
    keys = ["study", "method", "test_mae", "cv_mae", "kernel", "alpha", "gamma", "n_features", "fit_seconds"]
    P.write_rows(args.out / "paper_magnetism.csv", [{k: r.get(k, "") for k in keys} for r in rows], keys)
    mean = {s: next(r["test_mae"] for r in rows if r["study"] == s and r["method"] == "mean predictor")
            for s in ("magmom", "Tc")}
    lines = report_header("Paper reproduction: magnetic moments (SSAR) and transition temperatures (SSMR)",
                          f"{wall / 60:.1f} min", argv)
    lines += [
        f"- MAGNDATA: {info['n_structures_read']} structures read by `read_magnetic_cif`; refused: {info['refused']}",
        f"- `paper/magmom.csv`: {info['sites_kept']} of {info['sites_total']} sites kept (dropped: {info['dropped']}); "
        f"|m| from the mcif equals the CSV within 0.1 μB for {100 * info['mcif_vs_csv_within_0.1']:.1f} % of them "
        f"(median |Δ| {info['mcif_vs_csv_median']:.3f}); split by structure 80/20 seed 0: "
        f"{info['n_struct_train']} / {info['n_struct_test']} structures, {info['n_sites_train']} / "
        f"{info['n_sites_test']} sites",
        f"- `paper/mag.csv`: {info['tc_joined']} of {info['tc_labels']} readable; 80/20 seed 0: {info['tc_train']} / "
        f"{info['tc_test']}",
        "- KRR: `StandardScaler + KernelRidge`, paper grid, leave-one-out CV on the training rows "
        "(`benchmarks/_paper.py`); NEGNN: `ase_negnn.train(task='site', target='magmoms')` on the training "
        "structures, either on all atoms (0 on non-magnetic) or on the labelled sites only (`allow_missing_sites=True`, "
        f"NaN elsewhere), ≤ {args.max_epochs} epochs, early stopping 15",
        "",
        "| study | method | test MAE | ratio to mean predictor | CV MAE | kernel, α, γ |",
        "|---|---|---:|---:|---:|---|",
    ]
    for r in rows:
        unit = "μB" if r["study"] == "magmom" else "K"
        hp = f"{r['kernel']}, {r['alpha']:.0e}, {r['gamma']:.0e}" if "kernel" in r else ""
        cv = f"{r['cv_mae']:.3f}" if "cv_mae" in r else ""
        lines.append(f"| {r['study']} | {r['method']} | {r['test_mae']:.3f} {unit} | "
                     f"{r['test_mae'] / mean[r['study']]:.2f} | {cv} | {hp} |")
    write_markdown(args.out / "paper_magnetism.md", lines)
    print("\n".join(lines))

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(preds), figsize=(3.4 * len(preds), 3.4), squeeze=False)
    for ax, (name, p) in zip(axes[0], preds.items()):
        ax.scatter(y_test, p, s=6, alpha=0.5)
        top = max(float(np.max(y_test)), float(np.max(p))) * 1.05
        ax.plot([0, top], [0, top], "k--", lw=0.8)
        ax.set_title(f"{textwrap.fill(name, 34)}\nMAE {np.mean(np.abs(p - y_test)):.2f} μB", fontsize=7)
        ax.set_xlabel("MAGNDATA |m| (μB)")
    axes[0][0].set_ylabel("predicted |m| (μB)")
    fig.tight_layout()
    save_figure(fig, args.out / "paper_magnetism.png", dpi=130)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
