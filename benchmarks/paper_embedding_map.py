"""Paper claim (physical insight): 2-D maps of SSAR layer embeddings coloured by group, period and magnetic moment.

Atoms of ``--n`` mp36k structures (random sample, seed 0) are embedded with our encoder's SSAR; for layers 0
(element only), 2 and 5 the embeddings are projected to 2-D by PCA (scikit-learn, fitted per layer) and coloured by
the element's group and period (from the encoder's element table, ``ase_negnn.elements``). A third row colours the
magnetic sites of the MAGNDATA structures (``--data``'s ``magndata/mcifs.tar.xz``, extracted once to
``benchmarks/cache/mcifs``) by |m|; ``--n-magnetic 0`` leaves that row out.

The picture is backed by numbers: for every layer, a logistic-regression probe predicts group and period from the
embedding (atoms of 80 % of the structures → the other 20 %, seed 0), and a ridge probe (α by internal CV) predicts |m|
of magnetic sites (split by structure). Accuracies and MAEs go to ``benchmarks/results/paper_embedding_map.csv|md``, the figure
to ``paper_embedding_map.png``.

Command (from the repository root)::

    python benchmarks/paper_embedding_map.py --data ../shared/data
"""

from __future__ import annotations

import sys
import time
import warnings
from pathlib import Path

import _paper as P
import numpy as np
from _bench import parser, report_header, save_figure, write_markdown


def main(argv=None):
    ap = parser(__doc__, "data", "encoder", "n", "out", n=600)
    ap.add_argument("--n-magnetic", type=int, default=400, help="MAGNDATA structures for the moment panels")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    from sklearn.decomposition import PCA
    from sklearn.linear_model import LogisticRegression, RidgeCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from ase_negnn.descriptor import SSAR
    from ase_negnn.elements import group_labels, period_labels
    from ase_negnn.pretrained import load_encoder

    enc = load_encoder(args.encoder)
    S = list(P.read_mp36k(args.data).values())
    rng = np.random.default_rng(0)
    pick = rng.choice(len(S), size=min(args.n, len(S)), replace=False)
    structs = [S[i] for i in pick]
    ssar = SSAR(layers="all", encoder=enc).create(structs)
    owner = np.concatenate([np.full(len(a), k) for k, a in enumerate(structs)])
    Z = np.concatenate([a.numbers for a in structs])
    group, period = group_labels()[Z], period_labels()[Z] + 1  # period 1…7
    H = np.concatenate(ssar)
    w = enc.width
    n_layers = H.shape[1] // w
    train_s, _ = P.split_80_20(len(structs))
    tr = np.isin(owner, train_s)

    mag_H = mag_y = mag_owner = None
    files = sorted(P.extract_mcifs(Path(args.data)).rglob("*.mcif"))[: args.n_magnetic] if args.n_magnetic else []
    if files:
        from ase_negnn.readers import read_magnetic_cif

        converter = enc.graph_converter()
        mags = []
        for f in files:
            try:  # files read_magnetic_cif refuses, or whose expansion overlaps atoms, are skipped
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    atoms = read_magnetic_cif(f)
                converter(atoms)
                mags.append(atoms)
            except ValueError:
                pass
        emb = SSAR(layers="all", encoder=enc).create(mags)
        keep = [np.asarray(a.arrays["magmoms"]) > 0 for a in mags]
        mag_H = np.concatenate([e[k] for e, k in zip(emb, keep)])
        mag_y = np.concatenate([np.asarray(a.arrays["magmoms"])[k] for a, k in zip(mags, keep)])
        mag_owner = np.concatenate([np.full(int(k.sum()), i) for i, k in enumerate(keep)])
        mtrain, _ = P.split_80_20(len(mags))
        mtr = np.isin(mag_owner, mtrain)

    rows = []
    for layer in range(n_layers):
        X = H[:, layer * w : (layer + 1) * w]
        row = {"layer": layer}
        for name, lab in (("group", group), ("period", period)):
            clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                clf.fit(X[tr], lab[tr])
            row[f"{name}_accuracy"] = float(np.mean(clf.predict(X[~tr]) == lab[~tr]))
        if mag_H is not None:
            Xm = mag_H[:, layer * w : (layer + 1) * w]
            reg = make_pipeline(StandardScaler(), RidgeCV(alphas=np.logspace(-3, 3, 7))).fit(Xm[mtr], mag_y[mtr])
            row["magmom_ridge_mae"] = float(np.mean(np.abs(reg.predict(Xm[~mtr]) - mag_y[~mtr])))
            row["magmom_mean_mae"] = float(np.mean(np.abs(mag_y[~mtr] - mag_y[mtr].mean())))
        rows.append(row)
        print(row, flush=True)

    show = [0, min(2, n_layers - 1), n_layers - 1]
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n_rows = 3 if mag_H is not None else 2
    fig, axes = plt.subplots(n_rows, len(show), figsize=(4 * len(show), 3.6 * n_rows), squeeze=False)
    for c, layer in enumerate(show):
        X2 = PCA(2, random_state=0).fit_transform(H[:, layer * w : (layer + 1) * w])
        for r, (name, lab, cmap) in enumerate((("group", group, "tab20"), ("period", period, "viridis"))):
            sc = axes[r][c].scatter(X2[:, 0], X2[:, 1], c=lab, s=3, cmap=cmap, alpha=0.7)
            acc = rows[layer][f"{name}_accuracy"]
            axes[r][c].set_title(f"layer {layer}: colour = {name} (probe acc. {acc:.2f})", fontsize=8)
            fig.colorbar(sc, ax=axes[r][c], fraction=0.046)
        if mag_H is not None:
            M2 = PCA(2, random_state=0).fit_transform(mag_H[:, layer * w : (layer + 1) * w])
            sc = axes[2][c].scatter(M2[:, 0], M2[:, 1], c=mag_y, s=4, cmap="plasma", alpha=0.8)
            axes[2][c].set_title(f"layer {layer}: magnetic sites, colour = |m| (μB)\nridge MAE "
                                 f"{rows[layer]['magmom_ridge_mae']:.2f} μB", fontsize=8)
            fig.colorbar(sc, ax=axes[2][c], fraction=0.046)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle("SSAR embeddings (PCA) of our pretrained encoder", fontsize=10)
    fig.tight_layout()
    args.out.mkdir(parents=True, exist_ok=True)
    save_figure(fig, args.out / "paper_embedding_map.png", dpi=120)
    plt.close(fig)

    keys = list(rows[0])
    P.write_rows(args.out / "paper_embedding_map.csv", rows, keys)
    lines = report_header("SSAR embedding map and linear probes", f"{(time.perf_counter() - t0) / 60:.1f} min", argv)
    lines += [f"- {len(structs)} mp36k structures ({len(H)} atoms), seed 0; probes trained on atoms of 80 % of the "
              "structures, scored on the rest; chance level for group = the most frequent group's share "
              f"{np.bincount(group[~tr]).max() / (~tr).sum():.2f}"]
    if mag_H is not None:
        lines.append(f"- magnetic sites: {len(mag_y)} sites of {len(set(mag_owner.tolist()))} MAGNDATA structures "
                     "(first files in id order); ridge probe split by structure")
    lines += ["", "| layer | " + " | ".join(keys[1:]) + " |", "|---|" + "---:|" * (len(keys) - 1)]
    lines += [f"| {r['layer']} | " + " | ".join(f"{r[k]:.3f}" for k in keys[1:]) + " |" for r in rows]
    write_markdown(args.out / "paper_embedding_map.md", lines)
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
