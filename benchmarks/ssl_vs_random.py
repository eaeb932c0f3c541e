"""Acceptance check that self-supervised pretraining is real: SSMR of the pretrained encoder vs random weights.

What it measures
----------------
Formation energy (eV/atom) regression on the authors' ``paper/formation_4k.csv`` labels (no header: mp_id, value),
joined with the structures of ``mp/mp36k.extxyz`` by ``atoms.info['mp_id']`` (3,119 of 4,000 ids join). The joined
structures, in CSV order, are split 80/20 with ``sklearn.model_selection.train_test_split(test_size=0.2,
random_state=0)``. Each structure is described by ``ase_negnn.descriptor.SSMR`` computed with

* the pretrained encoder given by ``--encoder`` (``default`` = the bundled one, or a saved encoder directory such as
  ``runs/default-encoder/encoder``), and
* the same architecture with random weights, ``ase_negnn.pretrained.random_encoder(seed)`` for seeds 0, 1, 2
  (reported as mean ± std over the seeds),

for three descriptor settings: layers ``0-5`` (the element embedding and the five convolution layers
**concatenated**, 6 × 64 = 384 features; not summed over layers) pooled over atoms by ``sum`` and by ``mean``, and the
last layer ``5`` alone (64 features) pooled by ``mean``.

The regressor is ``Pipeline([StandardScaler(), KernelRidge()])``, its hyper-parameters chosen by grid search with
K-fold cross-validation on the training split (``KFold(shuffle=True, random_state=0)``, scoring negative MAE):

* default grid: 5 folds, kernel ∈ {rbf, laplacian}, alpha ∈ logspace(-5, 0, 6), gamma = g / n_features with
  g ∈ logspace(-4, 2, 7);
* ``--full-grid`` (the paper's protocol): 10 folds, kernel ∈ {rbf, laplacian}, alpha ∈ logspace(-10, 0, 11),
  gamma ∈ logspace(-10, 0, 11) (not scaled by n_features). Slow: ~10× more fits per setting.

The refitted best pipeline is scored on the 20 % test split (MAE, eV/atom); the mean predictor (mean of the training
labels) is reported on the same split. The output lists the test MAE per descriptor, the ratio random / pretrained,
and the encoder card's held-out masked-task accuracies (``<dir>/card.json``, ``<dir>/../card.json``, or the
``metadata`` in ``model.json`` of a per-epoch export; the bundled encoder's via ``encoder_card``).

Grid-search engine: ``--engine fast`` (default) evaluates exactly the same folds, scaler, kernels, solver
(``scipy.linalg.solve(assume_a="pos")`` as ``KernelRidge``) and selection rule (first best mean fold score in
``ParameterGrid`` order) as ``GridSearchCV(n_jobs=1)``, but computes each fold's distance matrices once instead of
once per grid point, which makes the Laplacian kernel affordable (several times faster); ``--engine sklearn`` runs
``sklearn.model_selection.GridSearchCV`` itself. Both refit the best ``Pipeline`` with scikit-learn for the test
score. Descriptor matrices are cached under ``benchmarks/cache/`` (keyed by the encoder's weights, layers, pooling and
the structure ids; ``--no-cache`` disables it).

Writes ``benchmarks/results/ssl_vs_random.csv``, ``ssl_vs_random.md`` and ``ssl_vs_random.png``.

Command (from the repository root; ~18 min for all 3,119 structures on an idle 2-core CPU with one thread:
~20 s of descriptors and ~70 s of grid search per setting, 12 settings)::

    OMP_NUM_THREADS=1 python benchmarks/ssl_vs_random.py --data ../shared/data --encoder default

Quick run while the default encoder is still training (per-epoch export, 600 structures; ~2.5 min on an idle CPU,
but ~35 min when the pretraining job holds the CPU at higher priority)::

    OMP_NUM_THREADS=1 python benchmarks/ssl_vs_random.py --encoder runs/default-encoder/encoder --n 600
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import sys
import time
import warnings
from pathlib import Path

import numpy as np
from _bench import parser, report_header, save_figure, write_csv, write_markdown
from _paper import encoder_digest, read_label_csv, read_mp36k

CONFIGS = [  # (layers, pooling)
    ("0-5", "sum"),
    ("0-5", "mean"),
    ("5", "mean"),
]
RANDOM_SEEDS = (0, 1, 2)


def describe_config(layers: str, pooling: str, n_features: int) -> str:
    what = "layers 0-5 concatenated" if layers == "0-5" else f"layer {layers}"
    return f"{what}, {pooling} pooling ({n_features} features)"


# --------------------------------------------------------------------------------------------------- data


def load_joined(data: Path, limit: int | None):
    """Labels of paper/formation_4k.csv joined with mp36k structures by mp_id, in CSV order."""
    labels = read_label_csv(data / "paper" / "formation_4k.csv")
    found = read_mp36k(data, set(labels))
    ids = [i for i in labels if i in found]
    n_joined = len(ids)
    if limit is not None:
        ids = ids[:limit]
    structures = [found[i] for i in ids]
    y = np.array([labels[i] for i in ids])
    mp_fe = np.array([float(found[i].info.get("formation_energy_per_atom", np.nan)) for i in ids])
    return ids, structures, y, {"n_labels": len(labels), "n_joined": n_joined, "n_used": len(ids),
                                "median_abs_diff_to_mp36k_label": float(np.nanmedian(np.abs(y - mp_fe)))}


# --------------------------------------------------------------------------------------------------- encoders


def read_card(encoder_arg: str) -> tuple[dict, str]:
    """The encoder's card and where it came from."""
    from ase_negnn.pretrained import available_encoders, encoder_card

    if encoder_arg in available_encoders():
        return encoder_card(encoder_arg), f"bundled encoder {encoder_arg!r} (encoder_card)"
    path = Path(encoder_arg)
    for card in (path / "card.json", path.parent / "card.json"):
        if card.exists():
            return json.loads(card.read_text()), str(card)
    meta = json.loads((path / "model.json").read_text()).get("metadata", {}) if (path / "model.json").exists() else {}
    return meta, f"{path / 'model.json'} metadata (no card.json: a per-epoch export of a run in progress?)"


def heldout_metrics(card: dict) -> dict:
    """Held-out (validation) metrics of a card: ``heldout_metrics`` of a final card, ``metrics`` of an export."""
    if card.get("heldout_metrics"):
        return dict(card["heldout_metrics"])
    return {k: v for k, v in (card.get("metrics") or {}).items() if k.startswith("val_")}


def state_digest(encoder) -> str:
    return encoder_digest(encoder)


# --------------------------------------------------------------------------------------------------- descriptors


def ssmr_matrix(encoder, layers, pooling, structures, ids_digest, cache_dir, label):
    from ase_negnn.descriptor import SSMR

    key = hashlib.sha1(f"{state_digest(encoder)}|{layers}|{pooling}|{ids_digest}".encode()).hexdigest()[:20]
    cache = None if cache_dir is None else Path(cache_dir) / f"ssmr-{key}.npy"
    if cache is not None and cache.exists():
        X = np.load(cache)
        if X.shape[0] == len(structures):
            print(f"    {label}: layers {layers}, {pooling} pooling: cached {cache.name}", flush=True)
            return X, 0.0, True
    t0 = time.perf_counter()
    X = SSMR(layers=layers, encoder=encoder, pooling=pooling).create(structures)
    dt = time.perf_counter() - t0
    print(f"    {label}: layers {layers}, {pooling} pooling: {X.shape} in {dt:.1f} s", flush=True)
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(f".tmp{os.getpid()}.npy")
        np.save(tmp, X)
        os.replace(tmp, cache)
    return X, dt, False


# --------------------------------------------------------------------------------------------------- regression


def make_grid(full: bool, n_features: int) -> tuple[dict, int, str]:
    if full:
        grid = {"krr__alpha": np.logspace(-10, 0, 11), "krr__gamma": np.logspace(-10, 0, 11),
                "krr__kernel": ["rbf", "laplacian"]}
        return grid, 10, ("10-fold CV; kernel ∈ {rbf, laplacian}; alpha ∈ logspace(-10, 0, 11); "
                          "gamma ∈ logspace(-10, 0, 11) (unscaled) — the paper's protocol")
    grid = {"krr__alpha": np.logspace(-5, 0, 6), "krr__gamma": np.logspace(-4, 2, 7) / n_features,
            "krr__kernel": ["rbf", "laplacian"]}
    return grid, 5, ("5-fold CV; kernel ∈ {rbf, laplacian}; alpha ∈ logspace(-5, 0, 6); "
                     "gamma = g / n_features, g ∈ logspace(-4, 2, 7)")


def make_pipeline():
    from sklearn.kernel_ridge import KernelRidge
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    return Pipeline([("scale", StandardScaler()), ("krr", KernelRidge())])


def _solve_like_kernel_ridge(K, y, alpha):
    """``sklearn.linear_model._ridge._solve_cholesky_kernel`` for one target and one alpha."""
    from scipy import linalg

    K = K.copy()
    K.flat[:: K.shape[0] + 1] += alpha
    try:
        return linalg.solve(K, y, assume_a="pos", overwrite_a=True)
    except np.linalg.LinAlgError:
        warnings.warn("singular matrix in the kernel ridge solve: least-squares solution used", stacklevel=2)
        return linalg.lstsq(K, y)[0]


def search_fast(X, y, grid, cv):
    """Mean CV negative MAE for every ParameterGrid point, each fold's distances computed once."""
    from sklearn.metrics.pairwise import euclidean_distances, manhattan_distances
    from sklearn.model_selection import ParameterGrid
    from sklearn.preprocessing import StandardScaler

    params = list(ParameterGrid(grid))
    scores = np.full((len(params), cv.get_n_splits()), np.nan)
    for f, (tr, va) in enumerate(cv.split(X)):
        scaler = StandardScaler().fit(X[tr])
        A, B = scaler.transform(X[tr]), scaler.transform(X[va])
        dist = {}
        for kernel in set(grid["krr__kernel"]):
            if kernel == "rbf":
                dist[kernel] = (euclidean_distances(A, None, squared=True), euclidean_distances(B, A, squared=True))
            elif kernel == "laplacian":
                dist[kernel] = (manhattan_distances(A, A), manhattan_distances(B, A))
            else:
                raise ValueError(f"fast engine supports rbf and laplacian kernels, not {kernel!r}")
        # Group grid points by (kernel, gamma): one kernel matrix, several alphas.
        groups: dict = {}
        for p_idx, p in enumerate(params):
            groups.setdefault((p["krr__kernel"], float(p["krr__gamma"])), []).append(p_idx)
        for (kernel, gamma), members in groups.items():
            Dtr, Dva = dist[kernel]
            Ktr, Kva = Dtr * -gamma, Dva * -gamma
            np.exp(Ktr, Ktr)
            np.exp(Kva, Kva)
            for p_idx in members:
                coef = _solve_like_kernel_ridge(Ktr, y[tr], float(params[p_idx]["krr__alpha"]))
                scores[p_idx, f] = -np.mean(np.abs(y[va] - Kva @ coef))
    mean = scores.mean(axis=1)
    best = int(np.nanargmax(mean))  # first maximum, as GridSearchCV's rank-1 tie rule
    return params[best], -mean[best]


def search_sklearn(X, y, grid, cv):
    from sklearn.model_selection import GridSearchCV

    gs = GridSearchCV(make_pipeline(), grid, cv=cv, scoring="neg_mean_absolute_error", n_jobs=1, refit=False)
    gs.fit(X, y)
    return gs.best_params_, -gs.best_score_


def fit_and_score(X, y, train, test, full_grid, engine):
    from sklearn.model_selection import KFold

    grid, folds, _ = make_grid(full_grid, X.shape[1])
    cv = KFold(n_splits=folds, shuffle=True, random_state=0)
    t0 = time.perf_counter()
    search = search_fast if engine == "fast" else search_sklearn
    best, cv_mae = search(X[train], y[train], grid, cv)
    model = make_pipeline().set_params(**best).fit(X[train], y[train])
    test_mae = float(np.mean(np.abs(y[test] - model.predict(X[test]))))
    edge = [f"{name} {'max' if np.isclose(best[key], max(grid[key])) else 'min'}"
            for name, key in (("alpha", "krr__alpha"), ("gamma", "krr__gamma"))
            if np.isclose(best[key], max(grid[key])) or np.isclose(best[key], min(grid[key]))]
    return {"test_mae": test_mae, "cv_mae": float(cv_mae), "kernel": best["krr__kernel"],
            "alpha": float(best["krr__alpha"]), "gamma": float(best["krr__gamma"]),
            "gamma_times_n_features": float(best["krr__gamma"]) * X.shape[1],
            "grid_edge": "; ".join(edge), "fit_seconds": time.perf_counter() - t0}


# --------------------------------------------------------------------------------------------------- output


def plot(summary, mean_mae, path, title):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    x = np.arange(len(summary))
    w = 0.36
    pre = [s["pretrained"] for s in summary]
    rmean = [s["random_mean"] for s in summary]
    rstd = [s["random_std"] for s in summary]
    ax.bar(x - w / 2, pre, w, label="pretrained encoder", color="tab:blue")
    ax.bar(x + w / 2, rmean, w, yerr=rstd, capsize=4, label=f"random weights (seeds {', '.join(map(str, RANDOM_SEEDS))}; "
           "mean ± std)", color="tab:gray")
    for k, s in enumerate(summary):
        ax.plot([x[k] + w / 2] * len(s["random_each"]), s["random_each"], "k.", ms=4)
        ax.text(x[k] - w / 2, pre[k], f"{pre[k]:.3f}", ha="center", va="bottom", fontsize=8)
        ax.text(x[k] + w / 2, rmean[k] + rstd[k], f"{rmean[k]:.3f}", ha="center", va="bottom", fontsize=8)
    ax.axhline(mean_mae, ls="--", color="tab:red", lw=1, label=f"mean predictor ({mean_mae:.3f})")
    ticks = [("layers 0-5 concatenated" if s["layers"] == "0-5" else f"layer {s['layers']}")
             + f"\n{s['pooling']} pooling\n({s['pretrained_row']['n_features']} features)" for s in summary]
    ax.set_xticks(x, ticks, fontsize=8)
    ax.set_ylim(0, 1.3 * max(mean_mae, max(np.add(rmean, rstd)), max(pre)))
    ax.set_ylabel("test MAE, formation energy (eV/atom)")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8, loc="upper left", ncols=2)
    fig.tight_layout()
    save_figure(fig, path, dpi=130)
    plt.close(fig)


def main(argv=None):
    p = parser(__doc__, "data", "encoder", "n", "out")
    p.add_argument("--full-grid", action="store_true", help="the paper's protocol: 10-fold CV, alpha and gamma in "
                   "logspace(-10, 0, 11) (slow)")
    p.add_argument("--engine", choices=("fast", "sklearn"), default="fast", help="grid-search engine (see docstring)")
    p.add_argument("--cache-dir", default="benchmarks/cache", help="descriptor cache folder")
    p.add_argument("--no-cache", action="store_true", help="do not read or write the descriptor cache")
    args = p.parse_args(argv)
    t_start = time.perf_counter()

    import torch
    from sklearn.model_selection import train_test_split

    from ase_negnn.pretrained import load_encoder, random_encoder

    # Encoder first: fail fast when it does not exist.
    try:
        load_encoder(args.encoder)
    except (ValueError, FileNotFoundError) as ex:
        sys.exit(f"cannot load encoder {args.encoder!r}: {ex}\n(while the bundled one is not installed, use "
                 "--encoder runs/default-encoder/encoder)")
    card, card_source = read_card(args.encoder)
    for _ in range(3):  # a per-epoch export may be replaced while loading: make card and weights match
        pretrained = load_encoder(args.encoder)
        card_after, card_source = read_card(args.encoder)
        if card_after == card:
            break
        card = card_after
    heldout = heldout_metrics(card)
    accuracies = {k: v for k, v in heldout.items() if "acc" in k}
    print(f"encoder {args.encoder}: card from {card_source}; epoch(s) {card.get('epochs', card.get('epoch', '?'))}; "
          f"held-out accuracies {accuracies or 'not in the card'}", flush=True)

    data = Path(args.data)
    t0 = time.perf_counter()
    ids, structures, y, join = load_joined(data, args.n)
    print(f"joined {join['n_joined']} of {join['n_labels']} formation_4k ids with mp36k; using {join['n_used']} "
          f"({time.perf_counter() - t0:.1f} s; median |label - mp36k formation energy| "
          f"{join['median_abs_diff_to_mp36k_label']:.4f} eV/atom)", flush=True)

    # Drop structures the graph converter rejects (none expected), so every descriptor sees the same set.
    converter = pretrained.graph_converter()
    ok = []
    for k, atoms in enumerate(structures):
        try:
            converter(atoms)
            ok.append(k)
        except (ValueError, TypeError) as ex:
            print(f"  skipping {ids[k]}: {ex}", flush=True)
    n_skipped = len(structures) - len(ok)
    ids, structures, y = [ids[k] for k in ok], [structures[k] for k in ok], y[ok]

    idx = np.arange(len(ids))
    train, test = train_test_split(idx, test_size=0.2, random_state=0)
    mean_mae = float(np.mean(np.abs(y[test] - y[train].mean())))
    print(f"split: {len(train)} train / {len(test)} test; mean-predictor test MAE {mean_mae:.4f} eV/atom", flush=True)
    ids_digest = hashlib.sha1("\n".join(ids).encode()).hexdigest()[:16]
    cache_dir = None if args.no_cache else args.cache_dir

    encoders = [("pretrained", None, pretrained)]
    encoders += [(f"random seed {s}", s, random_encoder(s, **pretrained._init_args)) for s in RANDOM_SEEDS]
    grid_desc = make_grid(args.full_grid, 1)[2]
    print(f"grid: {grid_desc}; engine {args.engine}", flush=True)

    rows = []
    n_total = len(encoders) * len(CONFIGS)
    for e_label, seed, enc in encoders:
        for layers, pooling in CONFIGS:
            X, t_desc, cached = ssmr_matrix(enc, layers, pooling, structures, ids_digest, cache_dir, e_label)
            res = fit_and_score(X, y, train, test, args.full_grid, args.engine)
            rows.append({"encoder": e_label, "seed": "" if seed is None else seed, "layers": layers,
                         "pooling": pooling, "n_features": X.shape[1], **res,
                         "descriptor_seconds": t_desc, "descriptor_cached": cached})
            print(f"  [{len(rows)}/{n_total}] {e_label:<14s} {describe_config(layers, pooling, X.shape[1]):<52s} "
                  f"test MAE {res['test_mae']:.4f}  CV MAE {res['cv_mae']:.4f}  ({res['kernel']}, "
                  f"alpha {res['alpha']:.0e}, gamma·F {res['gamma_times_n_features']:.0e}; {res['fit_seconds']:.0f} s)"
                  f"  [{time.perf_counter() - t_start:.0f} s elapsed]", flush=True)

    summary = []
    for layers, pooling in CONFIGS:
        pre = next(r for r in rows if r["encoder"] == "pretrained" and (r["layers"], r["pooling"]) == (layers, pooling))
        rnd = [r for r in rows if r["seed"] != "" and (r["layers"], r["pooling"]) == (layers, pooling)]
        each = [r["test_mae"] for r in rnd]
        summary.append({"label": describe_config(layers, pooling, pre["n_features"]), "layers": layers,
                        "pooling": pooling, "pretrained": pre["test_mae"], "pretrained_row": pre,
                        "random_each": each, "random_mean": float(np.mean(each)),
                        "random_std": float(np.std(each, ddof=1)) if len(each) > 1 else 0.0,
                        "ratio": float(np.mean(each)) / pre["test_mae"]})
    wall = time.perf_counter() - t_start

    out = Path(args.out)
    write_csv(out / "ssl_vs_random.csv", [*rows, {"encoder": "mean predictor", "test_mae": mean_mae}])

    epochs = card.get("epochs", card.get("epoch", "?"))
    acc_text = (", ".join(f"{k} {v:.3f}" for k, v in sorted(accuracies.items())) if accuracies
                else "the card lacks held-out accuracies")
    other = {k: v for k, v in heldout.items() if k not in accuracies}
    lines = [
        *report_header("SSL vs random weights: formation energy with SSMR + kernel ridge", f"{wall / 60:.1f} min", argv),
        f"- data: `paper/formation_4k.csv` joined with `mp/mp36k.extxyz` by mp_id: {join['n_joined']} of "
        f"{join['n_labels']} joined; used {len(ids)}" + (f" (`--n {args.n}`)" if args.n else "")
        + (f", {n_skipped} rejected by the graph converter" if n_skipped else "")
        + f"; split 80/20 (`train_test_split(test_size=0.2, random_state=0)`): {len(train)} train, {len(test)} test",
        f"- regressor: `Pipeline([StandardScaler(), KernelRidge()])`, grid search with {grid_desc}; shuffled KFold "
        f"(random_state=0), scoring negative MAE; engine `{args.engine}`; best pipeline refitted on the whole "
        "training split",
        f"- encoder: `{args.encoder}`; card: {card_source}; objective {card.get('objective', '?')}, "
        f"atom target {card.get('atom_target', '?')}, epochs {epochs}, pretrained on {card.get('n_structures', '?')} "
        f"structures ({card.get('data', '?')}), date {card.get('date', '?')}",
        f"- held-out masked-task accuracies (from the card): {acc_text}"
        + (f"; other held-out metrics: {', '.join(f'{k} {v:.3f}' for k, v in sorted(other.items()))}" if other else ""),
        f"- random baseline: `random_encoder(seed, **encoder._init_args)` for seeds {', '.join(map(str, RANDOM_SEEDS))}",
        "- descriptor: `SSMR(layers=..., pooling=...)`; \"layers 0-5\" = the six layer embeddings (element "
        "embedding + 5 convolutions) **concatenated** (6 × 64 features), then pooled over atoms; not a sum over layers",
        f"- mean predictor (mean of the training labels) test MAE: **{mean_mae:.4f} eV/atom**",
        f"- machine: {platform.machine()}, {os.cpu_count()} CPUs, torch threads {torch.get_num_threads()}, "
        f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}",
        "",
        "| descriptor | pretrained test MAE (eV/atom) | random test MAE, mean ± std (eV/atom) | random / pretrained | "
        "pretrained best: kernel, α, γ·F | pretrained CV MAE |",
        "|---|---:|---:|---:|---|---:|",
    ]
    for s in summary:
        r = s["pretrained_row"]
        lines.append(f"| {s['label']} | {s['pretrained']:.4f} | {s['random_mean']:.4f} ± {s['random_std']:.4f} | "
                     f"{s['ratio']:.2f} | {r['kernel']}, {r['alpha']:.0e}, {r['gamma_times_n_features']:.0e} | "
                     f"{r['cv_mae']:.4f} |")
    n_edge = sum(bool(r["grid_edge"]) for r in rows)
    if n_edge:
        lines += ["", f"Note: {n_edge} of {len(rows)} fits chose an alpha or gamma on the edge of the grid (column "
                  "\"grid edge\" below); the optimum may lie outside it" + ("" if args.full_grid else
                  " (`--full-grid` searches wider)") + "."]
    lines += ["", "All fits:", "",
              "| encoder | descriptor | test MAE | CV MAE | kernel | α | γ | grid edge | descriptor s | fit s |",
              "|---|---|---:|---:|---|---:|---:|---|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['encoder']} | {describe_config(r['layers'], r['pooling'], r['n_features'])} | "
                     f"{r['test_mae']:.4f} | {r['cv_mae']:.4f} | {r['kernel']} | {r['alpha']:.0e} | {r['gamma']:.2e} | "
                     f"{r['grid_edge'] or '—'} | "
                     f"{'cached' if r['descriptor_cached'] else format(r['descriptor_seconds'], '.1f')} | "
                     f"{r['fit_seconds']:.0f} |")
    lines += ["", "![test MAE](ssl_vs_random.png)"]
    write_markdown(out / "ssl_vs_random.md", lines)
    title = (f"Formation energy, {len(ids)} structures ({len(test)} test); encoder {args.encoder}, epochs {epochs}")
    plot(summary, mean_mae, out / "ssl_vs_random.png", title)
    print("\n".join(lines[:lines.index("All fits:") - 1]))
    print(f"wrote {out / 'ssl_vs_random.csv'}, {out / 'ssl_vs_random.md'}, {out / 'ssl_vs_random.png'}; "
          f"total wall time {wall / 60:.1f} min")
    return 0


if __name__ == "__main__":
    sys.exit(main())
