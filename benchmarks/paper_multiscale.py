"""Paper claim 3 (multi-scale SSAR): test MAE vs encoder layer and vs cumulative layer concatenation.

Same data, split and regressor as ``paper_krr.py`` (paper property sets joined with mp36k, 80/20 seed 0,
``StandardScaler + KernelRidge`` over the paper's grid chosen by cross-validation on the training split). Descriptors:
SSMR of each single layer ``k`` (0 = element embedding only, 5 = five convolutions, 64 features each) and of the
cumulative concatenations ``0-k`` (64·(k+1) features), for our encoder and — with ``--authors`` — the authors'
predictive checkpoint. The "best single layer" and "best combination" are chosen by CV MAE (never test MAE);
``paper_krr.py`` copies them into its table. ``--n N`` keeps the first N joined structures of each property (80/20
within them): 11 fits per property and encoder cost ~(N/2500)^3 of the full-size ones.

Writes ``benchmarks/results/paper_multiscale.csv|md|png``. SSMR matrices come from the cache shared with
``paper_krr.py`` (all layers computed once, columns sliced per layer).

Commands (from the repository root) of the committed results: our encoder on the full sets (40 fits, 88 min of one
core), then both encoders on the first 1,000 structures of each set (30 min)::

    python benchmarks/paper_multiscale.py --data ../shared/data
    python benchmarks/paper_multiscale.py --data ../shared/data --n 1000 --authors \
        --out benchmarks/results/paper_multiscale_first1000
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import _paper as P
import numpy as np
from _bench import parser, report_header, save_figure, write_markdown


def _graph_text(encoder) -> str:
    width = getattr(encoder, "smooth_width", None)
    return (f"12 nearest neighbours weighted by a smooth step of width {width} Å (continuous)" if width
            else "the 12 nearest neighbours and ties (the paper's hard graph)")


def main(argv=None):
    ap = parser(__doc__, "data", "encoder", "n", "out")
    ap.add_argument("--pooling", default="mean", choices=["mean", "sum"])
    ap.add_argument("--authors", action="store_true", help="also the authors' predictive checkpoint")
    ap.add_argument("--cv", default="loo", help="'loo' or a number of folds")
    ap.add_argument("--kernels", default="rbf,laplacian")
    ap.add_argument("--properties", default=",".join(P.PROPERTIES))
    args = ap.parse_args(argv)
    args.data = Path(args.data)
    cv = args.cv if args.cv == "loo" else int(args.cv)
    kernels = tuple(k for k in args.kernels.split(",") if k)
    props = [p for p in args.properties.split(",") if p]
    t_start = time.perf_counter()

    labels = {p: P.read_label_csv(args.data / "paper" / f"{p}.csv") for p in props}
    print("reading mp36k …", flush=True)
    S = P.read_mp36k(args.data, set().union(*labels.values()))
    joined = {p: P.join(labels[p], S) for p in props}
    if args.n:
        joined = {p: (ids[: args.n], y[: args.n]) for p, (ids, y) in joined.items()}
    all_ids = list(dict.fromkeys(i for p in props for i in joined[p][0]))
    row_of = {i: k for k, i in enumerate(all_ids)}
    encs = P.load_encoders(args.data, args.encoder)
    names = ["ours"] + (["authors-pred"] if args.authors and "authors-pred" in encs else [])

    rows = []
    for name in names:
        enc = encs[name]
        X_all = P.ssmr_all_layers(enc, name, args.pooling, S, all_ids)
        width = enc.width
        n_layers = X_all.shape[1] // width
        settings = [("single", str(k), [k]) for k in range(n_layers)]
        settings += [("cumulative", f"0-{k}", list(range(k + 1))) for k in range(1, n_layers)]
        for p in props:
            ids, y = joined[p]
            idx = np.array([row_of[i] for i in ids])
            train, test = P.split_80_20(len(ids))
            for kind, layers, cols in settings:
                X = X_all[np.ix_(idx, P.layer_columns(width, cols))]
                best = P.krr_evaluate(X, y, train, test, cv=cv, kernels=kernels)
                best.pop("pred")
                best.pop("cached")
                r = {"property": p, "encoder": name, "encoder_digest": P.encoder_digest(enc), "pooling": args.pooling,
                     "kind": kind, "layers": layers, "n_structures": len(ids), **best, "cv": str(cv)}
                rows.append(r)
                print(f"  {p:14s} {name:12s} {kind:10s} {layers:4s} test {r['test_mae']:.4f}  CV {r['cv_mae']:.4f}"
                      f"  ({r['fit_seconds']:.0f} s)", flush=True)

    args.out.mkdir(parents=True, exist_ok=True)
    keys = ["property", "encoder", "encoder_digest", "pooling", "kind", "layers", "n_structures", "n_features", "test_mae", "cv_mae", "kernel", "alpha",
            "gamma", "cv", "fit_seconds"]

    P.write_rows(args.out / "paper_multiscale.csv", rows, keys)
    wall = time.perf_counter() - t_start
    lines = report_header("Multi-scale SSMR: MAE vs layer and vs cumulative concatenation", f"{wall / 60:.1f} min",
                          argv)
    lines += [f"- {args.pooling} pooling; regressor and split as `paper_krr.py`; CV: {cv}; kernels {', '.join(kernels)}",
              "- structures per property: " + ", ".join(f"{p} {len(joined[p][0])}" for p in props)
              + (f" (first {args.n} joined of each, 80/20 within them)" if args.n else ""),
              "- layer 0 = element embedding only (no neighbours); layer k = k graph convolutions (k-hop "
              "neighbourhood of the encoder's crystal graph: " + "; ".join(
                  f"`{n}` {_graph_text(encs[n])}" for n in names) + ")", ""]
    for name in names:
        lines += [f"## encoder `{name}`", "",
                  "| layers | " + " | ".join(f"{P.PROPERTIES[p][0]} test (CV)" for p in props) + " |",
                  "|---|" + "---:|" * len(props)]
        for kind in ("single", "cumulative"):
            for layers in dict.fromkeys(r["layers"] for r in rows if r["encoder"] == name and r["kind"] == kind):
                cells = []
                for p in props:
                    r = next(x for x in rows if x["encoder"] == name and x["kind"] == kind and x["layers"] == layers
                             and x["property"] == p)
                    cells.append(f"{r['test_mae']:.4f} ({r['cv_mae']:.4f})")
                lines.append(f"| {kind} {layers} | " + " | ".join(cells) + " |")
        lines.append("")
        for p in props:
            for kind in ("single", "cumulative"):
                rs = [r for r in rows if r["encoder"] == name and r["property"] == p and r["kind"] == kind]
                b = min(rs, key=lambda r: r["cv_mae"])
                lines.append(f"- {p}, best {kind} by CV: layers {b['layers']} (test {b['test_mae']:.4f})")
        lines.append("")
    write_markdown(args.out / "paper_multiscale.md", lines)
    plot(rows, props, names, args.out / "paper_multiscale.png")
    print("\n".join(lines))
    return 0


def plot(rows, props, names, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(props), figsize=(3.8 * len(props), 3.4), squeeze=False)
    for ax, p in zip(axes[0], props):
        for name, style in zip(names, ("-", "--")):
            for kind, marker in (("single", "o"), ("cumulative", "s")):
                rs = [r for r in rows if r["encoder"] == name and r["property"] == p and r["kind"] == kind]
                xs = [int(r["layers"].split("-")[-1]) for r in rs]
                ax.plot(xs, [r["test_mae"] for r in rs], style, marker=marker, label=f"{name}: {kind}")
        ax.set_xlabel("layer k (single) / 0..k (cumulative)")
        ax.set_ylabel(f"test MAE ({P.PROPERTIES[p][1]})")
        ax.set_title(P.PROPERTIES[p][0], fontsize=9)
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, path, dpi=130)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
