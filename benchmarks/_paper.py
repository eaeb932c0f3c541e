"""Shared pieces of the paper-reproduction benchmarks: data joins, cached descriptor matrices, kernel ridge grid CV.

Data joins
    ``paper/<property>.csv`` (no header: ``mp_id,value``) joined with ``mp/mp36k.extxyz`` by ``atoms.info['mp_id']``,
    kept in CSV order (first occurrence of an id).

Descriptor cache
    ``benchmarks/cache/<descriptor key>.npz`` holds ``ids`` and ``X`` rows computed so far; missing ids are computed
    in chunks and appended (so a killed OFM run resumes), each write atomic.

Kernel ridge grid search (:func:`krr_grid_search`)
    The paper's protocol: ``Pipeline([StandardScaler(), KernelRidge()])``, kernel ∈ {rbf, laplacian}, alpha and
    gamma ∈ logspace(-10, 0, 11), best by CV mean absolute error, refitted on the whole training split. Every
    (kernel, gamma) needs one kernel matrix per fold; all alphas then come from one eigendecomposition
    ``K = V Λ Vᵀ`` (dual coefficients ``V (Λ + α)⁻¹ Vᵀ y``, the same solution as ``KernelRidge``'s Cholesky solve,
    and well defined at alpha = 1e-10 where Cholesky fails and scikit-learn falls back to a slow ``lstsq``).
    ``cv=10`` is 10-fold CV (``KFold(shuffle=True, random_state=0)``, scaler fitted per fold as in a Pipeline);
    ``cv="loo"`` is exact leave-one-out CV from one eigendecomposition of the whole training split (LOO residual
    ``c_i / G_ii`` with ``c = G y``, ``G = (K + αI)⁻¹``; scaler fitted once on the training split), ~10× cheaper.
    ``tests/test_benchmark_krr.py`` checks both against scikit-learn (``GridSearchCV``, ``LeaveOneOut``).
"""

from __future__ import annotations

import csv
import hashlib
import os
import sys
import tarfile
import time
from pathlib import Path

import numpy as np
from _bench import mp36k_path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
CACHE = HERE / "cache"
RESULTS = HERE / "results"
PROPERTIES = {  # file stem -> (label, unit)
    "formation_4k": ("formation energy", "eV/atom"),
    "hse": ("HSE band gap", "eV"),
    "bulk_modulus": ("log10 K (GPa)", "log10 GPa"),
    "shear_modulus": ("log10 G (GPa)", "log10 GPa"),
}
ALPHAS = np.logspace(-10, 0, 11)
GAMMAS = np.logspace(-10, 0, 11)
KERNELS = ("rbf", "laplacian")


# --------------------------------------------------------------------------------------------------- data


def read_label_csv(path: Path) -> dict[str, float]:
    """``id,value`` rows (no header) in file order; the first occurrence of an id wins."""
    if not path.exists():
        sys.exit(f"not found: {path} (give --data, the shared data folder)")
    out: dict[str, float] = {}
    with open(path, newline="") as fh:
        for row in csv.reader(fh):
            if row:
                out.setdefault(row[0].strip(), float(row[1]))
    return out


def read_mp36k(data: Path, wanted: set[str] | None = None) -> dict:
    """mp_id -> Atoms for the mp36k structures (only ``wanted`` ids if given)."""
    import ase.io

    path = mp36k_path(data)
    found = {}
    for atoms in ase.io.iread(path, ":"):
        mp_id = str(atoms.info.get("mp_id", ""))
        if (wanted is None or mp_id in wanted) and mp_id not in found:
            found[mp_id] = atoms
    return found


def join(labels: dict[str, float], structures: dict) -> tuple[list[str], np.ndarray]:
    ids = [i for i in labels if i in structures]
    return ids, np.array([labels[i] for i in ids])


def split_80_20(n: int, seed: int = 0):
    from sklearn.model_selection import train_test_split

    return train_test_split(np.arange(n), test_size=0.2, random_state=seed)


# --------------------------------------------------------------------------------------------------- descriptor cache


def _save_atomic(path: Path, **arrays):
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.stem}.tmp{os.getpid()}.npz")
    np.savez(tmp, **arrays)
    os.replace(tmp, path)


def cached_rows(key: str, ids: list[str], compute, chunk: int = 500, log=print,
                cached_only: bool = False) -> tuple[np.ndarray, float, int]:
    """Rows for ``ids`` of the descriptor ``key``; ``compute(list_of_ids) -> array`` fills the missing ones.

    Returns ``(X, seconds spent computing, number computed)``. The cache is written after every chunk. With
    ``cached_only`` nothing is computed and missing rows are NaN (for descriptors too slow to finish in one run).
    """
    path = CACHE / f"{key}.npz"
    have: dict[str, np.ndarray] = {}
    if path.exists():
        with np.load(path, allow_pickle=False) as z:
            have = dict(zip(z["ids"].tolist(), z["X"]))
    missing = [i for i in dict.fromkeys(ids) if i not in have]
    if cached_only and missing:
        width = len(next(iter(have.values()))) if have else 1
        log(f"    {key}: {len(missing)} of {len(set(ids))} rows not cached (left as NaN)")
        return np.stack([have.get(i, np.full(width, np.nan)) for i in ids]), 0.0, 0
    spent = 0.0
    for start in range(0, len(missing), chunk):
        part = missing[start : start + chunk]
        t0 = time.perf_counter()
        X = np.asarray(compute(part), dtype=np.float64)
        spent += time.perf_counter() - t0
        have.update(zip(part, X))
        keys = list(have)
        _save_atomic(path, ids=np.array(keys), X=np.stack([have[k] for k in keys]))
        log(f"    {key}: {min(start + chunk, len(missing))}/{len(missing)} computed ({spent:.0f} s)")
    return np.stack([have[i] for i in ids]), spent, len(missing)


def write_rows(path: Path, rows: list[dict], keys: list[str]) -> None:
    """CSV of dict rows (missing keys empty), written atomically."""
    from ase_negnn.io import atomic_open

    with atomic_open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=keys, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow({k: r.get(k, "") for k in keys})


def digest(*parts) -> str:
    return hashlib.sha1("|".join(map(str, parts)).encode()).hexdigest()[:12]


def encoder_digest(encoder) -> str:
    import json

    h = hashlib.sha1(json.dumps(encoder._init_args, sort_keys=True, default=str).encode())
    for k, v in encoder.state_dict().items():
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:12]


def load_encoders(data: Path, ours: str = "default") -> dict:
    """Our encoder and the authors' two checkpoints (converted by :mod:`ase_negnn.convert`)."""
    from ase_negnn.convert import load_authors_checkpoint
    from ase_negnn.pretrained import load_encoder

    encs = {"ours": load_encoder(ours)}
    for name, file in (("authors-pred", "cgcnn_60k_pred.pth"), ("authors-contra", "cgcnn_60k_contra.pth")):
        path = data / "paper" / file
        if path.exists():
            encs[name], _ = load_authors_checkpoint(path)
    return encs


def ssmr_all_layers(encoder, name: str, pooling: str, structures: dict, ids: list[str], log=print) -> np.ndarray:
    """SSMR of every layer concatenated (layer blocks of ``encoder.width`` columns), cached per id."""
    from ase_negnn.descriptor import SSMR

    desc = SSMR(layers="all", encoder=encoder, pooling=pooling)
    key = f"ssmr-{name}-{pooling}-{encoder_digest(encoder)}"
    X, _, _ = cached_rows(key, ids, lambda part: desc.create([structures[i] for i in part]), chunk=2000, log=log)
    return X


def layer_columns(width: int, layers) -> np.ndarray:
    return np.concatenate([np.arange(layer * width, (layer + 1) * width) for layer in layers])


# --------------------------------------------------------------------------------------------------- KRR


def _kernel_from_dist(D: np.ndarray, kernel: str, gamma: float) -> np.ndarray:
    K = D * -gamma
    np.exp(K, out=K)
    return K


def _dists(A: np.ndarray, B: np.ndarray | None = None) -> dict[str, np.ndarray]:
    from sklearn.metrics.pairwise import euclidean_distances, manhattan_distances

    return {"rbf": euclidean_distances(A, B, squared=True), "laplacian": manhattan_distances(A, A if B is None else B)}


def _eig(K: np.ndarray):
    lam, V = np.linalg.eigh(K)
    return np.clip(lam, 0.0, None), V


def _fold_mae(lam, V, y_tr, K_va, y_va, alphas) -> np.ndarray:
    Vty = V.T @ y_tr
    KV = K_va @ V
    return np.array([np.mean(np.abs(y_va - KV @ (Vty / (lam + a)))) for a in alphas])


def krr_grid_search(X: np.ndarray, y: np.ndarray, cv="loo", kernels=KERNELS, alphas=ALPHAS, gammas=GAMMAS):
    """CV mean absolute error on the full grid; returns ``(best params dict, scores dict)``.

    ``scores[(kernel, gamma, alpha)]`` = CV MAE. Ties keep the first point in (kernel, gamma, alpha) order.
    """
    from sklearn.model_selection import KFold
    from sklearn.preprocessing import StandardScaler

    scores: dict = {}
    if cv == "loo":  # the library's exact leave-one-out (ase_negnn.kernel), on the uncentred labels as scikit-learn
        from ase_negnn.kernel import loo_grid_search

        scores = loo_grid_search(StandardScaler().fit_transform(X), np.asarray(y, float), kernels, alphas,
                                 gammas)["scores"]
    else:
        folds = list(KFold(n_splits=int(cv), shuffle=True, random_state=0).split(X))
        acc: dict = {}
        for tr, va in folds:
            sc = StandardScaler().fit(X[tr])
            A, B = sc.transform(X[tr]), sc.transform(X[va])
            Dtr, Dva = _dists(A), _dists(B, A)
            for kernel in kernels:
                for gamma in gammas:
                    lam, V = _eig(_kernel_from_dist(Dtr[kernel], kernel, gamma))
                    Kva = _kernel_from_dist(Dva[kernel], kernel, gamma)
                    for a, s in zip(alphas, _fold_mae(lam, V, y[tr], Kva, y[va], alphas)):
                        acc.setdefault((kernel, float(gamma), float(a)), []).append(s)
        scores = {k: float(np.mean(v)) for k, v in acc.items()}
    finite = {k: v for k, v in scores.items() if np.isfinite(v)}
    best = min(finite, key=finite.get)
    return {"kernel": best[0], "gamma": best[1], "alpha": best[2], "cv_mae": finite[best]}, scores


def krr_fit_predict(X_tr, y_tr, X_te, kernel, gamma, alpha) -> np.ndarray:
    """The refitted model: scikit-learn's ``Pipeline([StandardScaler(), KernelRidge(...)])``."""
    import warnings

    from sklearn.kernel_ridge import KernelRidge
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # alpha = 1e-10: "Singular matrix ... least-squares solution" is expected
        model = Pipeline([("scale", StandardScaler()), ("krr", KernelRidge(kernel=kernel, gamma=gamma, alpha=alpha))])
        return model.fit(X_tr, y_tr).predict(X_te)


def krr_evaluate(X, y, train, test, cv="loo", kernels=KERNELS, cached_only: bool = False) -> dict | None:
    """Grid search on ``train``, refit, test MAE; with the best parameters and timings.

    Results are cached in ``benchmarks/cache/krr-<hash>.npz``, keyed by the exact bytes of ``X``, ``y``, the split,
    ``cv`` and the kernels, so an interrupted or extended benchmark run only fits what is new.
    """
    h = hashlib.sha1()
    for a in (np.ascontiguousarray(X, dtype=np.float64), np.asarray(y, dtype=np.float64), np.asarray(train),
              np.asarray(test)):
        h.update(a.tobytes())
    h.update(f"{cv}|{','.join(kernels)}|{ALPHAS.tobytes().hex()}|{GAMMAS.tobytes().hex()}".encode())
    path = CACHE / f"krr-{h.hexdigest()[:20]}.npz"
    if path.exists():
        with np.load(path, allow_pickle=False) as z:
            r = {k: z[k].item() for k in z.files if k != "pred"}
            return {**r, "pred": z["pred"], "cached": True}
    if cached_only:
        return None
    t0 = time.perf_counter()
    best, _ = krr_grid_search(X[train], y[train], cv=cv, kernels=kernels)
    pred = krr_fit_predict(X[train], y[train], X[test], best["kernel"], best["gamma"], best["alpha"])
    r = {**best, "test_mae": float(np.mean(np.abs(y[test] - pred))), "fit_seconds": time.perf_counter() - t0,
         "n_features": int(X.shape[1])}
    _save_atomic(path, pred=pred, **{k: np.array(v) for k, v in r.items()})
    return {**r, "pred": pred, "cached": False}


def krr_evaluate_layer_weighted(X, y, train, test, n_layers: int, width: int, equal: dict | None = None) -> dict:
    """:func:`krr_evaluate` with a weight per SSMR (pooling statistic, layer) block chosen by exact leave-one-out on the
    training split (``ase_negnn.kernel.loo_layer_weights``: the library's ``train --method krr --layer-weights loo``).

    ``X`` holds ``n_layers`` blocks of ``width`` columns per pooling statistic (``[statistic][layer][unit]``); the
    weights come back in that block order. Features are standardised on the training split; the equal-weight grid
    search (``equal``: :func:`krr_evaluate`'s result on the same data, so it is not run twice; computed when absent)
    gives the kernel and ``γ`` at which the weights are searched, then the full grid runs again on the weighted
    features and scikit-learn's ``KernelRidge`` is refitted on them (uncentred labels, as everywhere here). Cached
    like :func:`krr_evaluate`.
    """
    import warnings

    from sklearn.kernel_ridge import KernelRidge
    from sklearn.preprocessing import StandardScaler

    from ase_negnn.kernel import LAYER_SEARCH_ROWS, LAYER_WEIGHTS, loo_grid_search, loo_layer_weights, ssmr_blocks

    if X.shape[1] % (n_layers * width):
        raise ValueError(f"{X.shape[1]} columns are not blocks of {n_layers} layers × {width} units")
    col_block = ssmr_blocks(X.shape[1], n_layers, X.shape[1] // (n_layers * width))
    h = hashlib.sha1(b"layer-weights-loo")
    for a in (np.ascontiguousarray(X, dtype=np.float64), np.asarray(y, dtype=np.float64), np.asarray(train),
              np.asarray(test)):
        h.update(a.tobytes())
    per_stat = "|per-statistic" if X.shape[1] > n_layers * width else ""  # one statistic: the same blocks as before
    h.update(f"{n_layers}|{width}|{LAYER_SEARCH_ROWS}|{LAYER_WEIGHTS}|{ALPHAS.tobytes().hex()}|"
             f"{GAMMAS.tobytes().hex()}{per_stat}".encode())
    path = CACHE / f"krr-{h.hexdigest()[:20]}.npz"
    if path.exists():
        with np.load(path, allow_pickle=False) as z:
            r = {k: z[k].item() for k in z.files if k not in ("pred", "layer_weights")}
            return {**r, "pred": z["pred"], "layer_weights": z["layer_weights"].tolist(), "cached": True}
    t0 = time.perf_counter()
    A = StandardScaler().fit(X[train]).transform(X)
    blocks = [np.flatnonzero(col_block == b) for b in range(int(col_block.max()) + 1)]
    if equal is None:
        equal = loo_grid_search(A[train], y[train], KERNELS, ALPHAS, GAMMAS)
    w, _, trials = loo_layer_weights(A[train], y[train], blocks, equal["kernel"], equal["gamma"], ALPHAS)
    Aw = A * w[col_block]
    best = loo_grid_search(Aw[train], y[train], KERNELS, ALPHAS, GAMMAS)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # alpha = 1e-10: "Singular matrix ... least-squares solution" is expected
        krr = KernelRidge(kernel=best["kernel"], gamma=best["gamma"], alpha=best["alpha"]).fit(Aw[train], y[train])
    pred = krr.predict(Aw[test])
    r = {"kernel": best["kernel"], "gamma": best["gamma"], "alpha": best["alpha"], "cv_mae": best["cv_mae"],
         "cv_mae_equal_weights": equal["cv_mae"], "weight_trials": trials,
         "test_mae": float(np.mean(np.abs(y[test] - pred))), "fit_seconds": time.perf_counter() - t0,
         "n_features": int((w[col_block] > 0).sum())}
    _save_atomic(path, pred=pred, layer_weights=w, **{k: np.array(v) for k, v in r.items()})
    return {**r, "pred": pred, "layer_weights": w.tolist(), "cached": False}


# --------------------------------------------------------------------------------------------------- baselines


def chgnet_features(structures: dict, ids: list[str], kind: str = "crystal", log=print, cached_only: bool = False):
    """CHGNet 0.3.0's pretrained features averaged over atoms, cached per id (energy-only task, no forces).

    ``kind="crystal"``: ``crystal_fea`` of ``predict_structure(..., return_crystal_feas=True)``, the mean over atoms of
    the last atom-conv layer after CHGNet's readout LayerNorm (what its energy MLP reads); ``kind="atom"``: the mean
    over atoms of ``atom_fea`` (``return_atom_feas=True``), the penultimate layer that CHGNet's magnetic-moment head
    reads. Both 64 features.

    CHGNet was trained on Materials Project relaxation energies, forces, stresses and moments (MPtrj): on MP formation
    energies its features have seen the labels' own DFT energies, so that comparison leaks.
    """
    import warnings

    import chgnet
    from chgnet.model import CHGNet
    from pymatgen.io.ase import AseAtomsAdaptor

    if kind not in ("crystal", "atom"):
        raise ValueError(f"kind must be 'crystal' or 'atom', got {kind!r}")
    model = None

    def compute(part):
        nonlocal model
        if model is None:
            model = CHGNet.load(verbose=False)
            model.eval()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            structs = [AseAtomsAdaptor.get_structure(structures[i]) for i in part]
            preds = model.predict_structure(structs, task="e", return_crystal_feas=kind == "crystal",
                                            return_atom_feas=kind == "atom", batch_size=32)
        preds = preds if isinstance(preds, list) else [preds]
        if kind == "crystal":
            return [np.asarray(q["crystal_fea"], dtype=float) for q in preds]
        return [np.asarray(q["atom_fea"], dtype=float).mean(axis=0) for q in preds]

    key = f"chgnet-{chgnet.__version__}-crystal-mean" if kind == "crystal" else f"chgnet-{chgnet.__version__}-atom-mean"
    return cached_rows(key, ids, compute, chunk=250, log=log, cached_only=cached_only)


def baseline_features(name: str, structures: dict, ids: list[str], species: list[str], n_atoms_max: int,
                      log=print, cached_only: bool = False) -> tuple[np.ndarray, float, int]:
    """OFM (matminer), sine matrix eigenspectrum and averaged SOAP (dscribe), CHGNet crystal features; cached per id."""
    import warnings

    if name in ("chgnet", "chgnet-atom"):
        return chgnet_features(structures, ids, "crystal" if name == "chgnet" else "atom", log=log,
                               cached_only=cached_only)
    if name == "ofm":
        from matminer.featurizers.structure import OrbitalFieldMatrix
        from pymatgen.io.ase import AseAtomsAdaptor

        ofm = OrbitalFieldMatrix(period_tag=False, flatten=True)

        def compute(part):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return [ofm.featurize(AseAtomsAdaptor.get_structure(structures[i])) for i in part]

        return cached_rows("ofm-matminer", ids, compute, chunk=250, log=log, cached_only=cached_only)
    from _dscribe_compat import patch_dscribe

    patch_dscribe()
    if name == "sine":
        from dscribe.descriptors import SineMatrix

        d = SineMatrix(n_atoms_max=n_atoms_max, permutation="eigenspectrum")
        key = f"sine-eig-{n_atoms_max}"
    elif name == "soap":
        from dscribe.descriptors import SOAP

        d = SOAP(species=species, r_cut=5.0, n_max=3, l_max=3, periodic=True, average="inner",
                 compression={"mode": "crossover"})
        key = f"soap-avg-{digest(*species)}"
    else:
        raise ValueError(f"unknown baseline {name!r}")

    def compute(part):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return [np.real(d.create(structures[i])) for i in part]

    return cached_rows(key, ids, compute, chunk=1000, log=log)


def extract_mcifs(data: Path) -> Path:
    """MAGNDATA magnetic CIFs from ``DATA/magndata/mcifs.tar.xz``, extracted once to ``benchmarks/cache/mcifs``;
    the folder holding the files (exits naming the archive when it is missing)."""
    target = CACHE / "mcifs"
    archive = data / "magndata" / "mcifs.tar.xz"
    if not archive.exists():
        sys.exit(f"not found: {archive} (give --data, the shared data folder)")
    if not (target / ".complete").exists():
        target.mkdir(parents=True, exist_ok=True)
        with tarfile.open(archive) as tar:
            tar.extractall(target, filter="data")
        (target / ".complete").write_text("ok\n")
    hits = list(target.rglob("*.mcif"))
    return hits[0].parent if hits else target
