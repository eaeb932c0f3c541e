"""SSMR kernel models: kernel ridge regression on the pretrained encoder's structure descriptor, read as a Gaussian
process, so that every prediction carries a calibrated standard deviation.

The model is the paper's SSMR + KRR (Kong et al.): features standardised, kernel ``exp(-γ d)`` with ``d`` the squared
Euclidean (``rbf``) or the Manhattan (``laplacian``) distance, ridge ``α``, kernel, ``γ`` and ``α`` chosen on the
paper's grid by **exact leave-one-out** CV (one eigendecomposition per kernel and ``γ``; every ``α`` and every held-out
structure then costs a matrix-vector product). The prior mean is 0, as in scikit-learn's ``KernelRidge`` (the paper),
or the training mean, whichever the leave-one-out error prefers (both share the decompositions).

Read as a Gaussian process with prior covariance ``k`` and noise variance ``α`` (the same posterior mean as the kernel
ridge), a new structure's predictive variance is ``v(x) = 1 + α - k*ᵀ (K + α I)⁻¹ k*`` in units of an unknown scale.
Where the data are noisier than elsewhere (metals vs insulators for a gap), ``v`` alone ranks errors poorly, so the
reported standard deviation is ``s · a(x) · sqrt(v(x))``: ``a`` is a second kernel ridge (its kernel type, width and
``α`` chosen by its leave-one-out error: each searched kernel at the ``γ`` the grid found best for it on the labels
times a factor in :data:`SCALE_GAMMA_FACTORS`) fitted to the absolute leave-one-out z-scores ``|r_i| / sqrt(v_i)``
(exact leave-one-out residual ``r_i`` and variance ``v_i = 1/[(K + αI)⁻¹]_ii``), and ``s`` makes ``calibration_level``
(default 90 %) of the training residuals fall inside the Gaussian interval of that level. The calibration residuals and
stds are **cross-fitted** (:func:`cross_fitted_scores`: each of 5 folds predicted by the mean, variance and scale models
refitted without its labels), not leave-one-out: the scale model learns from the other points' leave-one-out residuals,
which were computed with point ``i``'s label, so leave-one-out scores flatter outliers. No held-out labels are used.

Errors are rarely Gaussian (a transition temperature's are heavy-tailed: a Gaussian interval right at 90 % is too wide
at 68 %), so central intervals do not assume it: ``mean ± k(level) · std`` with ``k`` the conformal quantile of the
cross-fitted ``|r_i| / std_i`` at each level of :data:`INTERVAL_LEVELS` (``KernelModel.interval_multiplier``; the
Gaussian ``z`` for a model saved before these were stored).

Beyond ``max_exact`` training structures (default 5,000), an exact model would decompose an ``n × n`` kernel 22 times
(the grid's kernels × γ: about a minute at 2,500 structures on two cores, growing as ``n³``: 8× that at 5,000, 500×
at 20,000) and keep an ``n × n`` posterior for the standard deviation (3.2 GB at 20,000); the fit then switches to a Nyström approximation (``n_basis`` landmark structures, Bayesian linear regression
on the Nyström features: same grid, exact leave-one-out of the approximate model through its hat matrix, same
calibration) and says so in the card.

``KernelModel`` subclasses matgl's ``MatGLModel``: ``model.save(dir)`` writes matgl's layout atomically and both
:func:`ase_negnn.models.load_model` and ``matgl.load_model(dir)`` return it. Its ``predict`` answers like a graph
NEGNN plus a ``<target>_std`` entry, so the calculator, ``predict`` and ``screen`` use it like any property model.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
from matgl.models._core import MatGLModel

from .elements import MAX_Z
from .encoder import CGCNNEncoder, load_graph_aware, save_atomic

__all__ = ["ALPHAS", "GAMMAS", "KERNELS", "LAYER_WEIGHTS", "KernelModel", "calibrate_scale", "fit_kernel_model",
           "kernel_matrix", "loo_grid_search", "loo_layer_weights", "ssmr_blocks", "train_kernel_model"]

#: Kernels of the grid search (scikit-learn's names).
KERNELS = ("rbf", "laplacian")
#: Ridge parameters α of the grid: the paper's ``logspace(-10, 0, 11)``.
ALPHAS = np.logspace(-10, 0, 11)
#: Kernel widths γ of the grid: the paper's ``logspace(-10, 0, 11)``.
GAMMAS = np.logspace(-10, 0, 11)
MAX_EXACT = 5_000
N_BASIS = 2_000
MIN_STRUCTURES = 10  # fewer cannot fit a grid of 242 points by leave-one-out meaningfully
CALIBRATION_LEVEL = 0.9
#: Folds of the cross-fitted calibration of the standard deviation and the intervals (:func:`cross_fitted_scores`).
CALIBRATION_FOLDS = 5
#: Most candidates ``KernelModel.select`` takes at once (its posterior covariance over them: 200 MB at 5,000).
MAX_SELECTION_POOL = 5_000
#: Central-interval levels whose multipliers a kernel model stores (calibrated on its cross-fitted residuals).
INTERVAL_LEVELS = np.round(np.linspace(0.01, 0.99, 99), 2)
#: Values tried for each layer's weight by :func:`loo_layer_weights` (0 drops the layer).
LAYER_WEIGHTS = (0.0, 0.25, 0.5, 1.0, 2.0, 4.0)
#: The layer-weight search runs on at most this many structures (a seeded subset).
LAYER_SEARCH_ROWS = 1_000
SCALE_ALPHAS = np.logspace(-3, 3, 13)  # ridge of the scale model (smoother than the mean's)
#: Widths of the scale model's kernel, as multiples of the ``γ`` the grid search found best for that kernel on the
#: labels (kernel, width and ``α`` chosen together by leave-one-out). The mean's own width smooths the error level too
#: little: on the HSE gap, over 10 splits, Spearman(|error|, std) 0.29 with it, 0.31 with the width chosen among these.
#: Choosing the kernel type as well (the Laplacian mostly wins where the mean picks rbf), held-out split seeds HSE
#: 45-69 and Tc 45-54: HSE 0.316 -> 0.340 (higher on 23 of 25), Tc 0.613 -> 0.630. Averaging the widths instead of
#: choosing one helped the HSE gap (0.347) but lowered Tc to 0.563 (seeds 45-52; 0.605 with the mean's kernel).
SCALE_GAMMA_FACTORS = (1.0, 3.0, 10.0)
# The scale model never goes below this fraction of its mean. A kernel ridge of heavy-tailed |z| can dip below 0: at
# 5 %, 6 % of one Tc split's test structures sat on the floor (19 % with --layer-weights loo, where a structure whose
# duplicate in the training set has a Tc 285 K away got std 1 K: z = 245). 30 % lowered the held-out NLL (Tc 11.7 ->
# 7.3, HSE 1.76 -> 1.52 on split seeds 40-44) and left coverage and Spearman as they were (Tc 0.53 -> 0.54, HSE 0.275
# -> 0.279).
SCALE_FLOOR = 0.3


# --------------------------------------------------------------------------------------------------- kernels


def distances(A: np.ndarray, B: np.ndarray | None, kernel: str) -> np.ndarray:
    """Squared Euclidean (``rbf``) or Manhattan (``laplacian``) distances between the rows of ``A`` and ``B``."""
    from sklearn.metrics.pairwise import euclidean_distances, manhattan_distances

    if kernel == "rbf":
        return euclidean_distances(A, B, squared=True)
    if kernel == "laplacian":
        return manhattan_distances(A, A if B is None else B)
    raise ValueError(f"kernel must be one of {KERNELS}, got {kernel!r}")


def kernel_matrix(A: np.ndarray, B: np.ndarray | None, kernel: str, gamma: float) -> np.ndarray:
    """``exp(-γ d(a, b))``: scikit-learn's ``rbf`` and ``laplacian`` kernels."""
    K = distances(A, B, kernel)
    K *= -float(gamma)
    np.exp(K, out=K)
    return K


def _eigh(K: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    lam, V = np.linalg.eigh(K)
    return np.clip(lam, 0.0, None), V


# --------------------------------------------------------------------------------------------------- LOO search


class _System:
    """Kernel ridge of one kernel matrix, exact (``K = V Λ Vᵀ``) or Nyström (features ``Φ = K_nm P``), decomposed
    once: every ``α`` then gives leave-one-out residuals and coefficients at the cost of matrix-vector products."""

    def __init__(self, K: np.ndarray, Kmm: np.ndarray | None = None):
        self.nystrom = Kmm is not None
        if not self.nystrom:
            self.lam, self.V = _eigh(K)
            return
        lam, U = _eigh(Kmm)
        keep = lam > lam.max() * 1e-10
        self.P = np.zeros_like(U)
        self.P[:, keep] = U[:, keep] / np.sqrt(lam[keep])
        phi = K @ self.P
        self.s, self.W = _eigh(phi.T @ phi)
        self.E = phi @ self.W
        # the approximate kernel's prior variance φᵀφ falls short of k(x, x) = 1 away from the landmarks
        self.prior_gap = np.clip(1.0 - np.einsum("ij,ij->i", phi, phi), 0.0, None)

    def loo(self, y: np.ndarray, alpha: float) -> tuple[np.ndarray, np.ndarray]:
        """Leave-one-out residuals ``y_i - ŷ_-i`` and unit-scale LOO predictive variances (``1/[(K + αI)⁻¹]_ii``;
        Nyström: ``α / (1 - H_ii)`` with ``H`` the hat matrix, the same quantity for the approximate kernel, plus
        the prior variance it misses, ``1 - φ_iᵀφ_i``)."""
        r, v = self.loo_many(y, [alpha])
        return r[:, 0], v[:, 0]

    def loo_many(self, y: np.ndarray, alphas) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`loo` for every ``α`` of ``alphas`` at once: ``(n, len(alphas))`` residuals and variances, two
        matrix products in all (one ``α`` at a time re-squared the eigenvectors for each)."""
        alphas = np.asarray(alphas, dtype=np.float64)
        inv, diag = self._diagonals(alphas)
        if not self.nystrom:
            c = self.V @ (inv * (self.V.T @ y)[:, None])
            return c / diag, 1.0 / diag
        h = diag
        fitted = self.E @ (inv * (self.E.T @ y)[:, None])
        one_minus = np.clip(1.0 - h, 1e-12, None)
        return (y[:, None] - fitted) / one_minus, alphas / one_minus + self.prior_gap[:, None]

    def _diagonals(self, alphas: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The label-independent part of :meth:`loo_many` for ``alphas``: ``1/(λ + α)`` and the diagonals of
        ``(K + αI)⁻¹`` (exact) or of the hat matrix (Nyström), kept for the last ``alphas`` (the grid search asks for
        the same ones once per prior-mean offset)."""
        key = alphas.tobytes()
        if getattr(self, "_diag_key", None) != key:
            inv = 1.0 / ((self.s if self.nystrom else self.lam)[:, None] + alphas[None, :])
            self._diag = inv, np.square(self.E if self.nystrom else self.V) @ inv
            self._diag_key = key
        return self._diag

    def coef(self, y: np.ndarray, alpha: float) -> np.ndarray:
        """Coefficients ``c`` over the basis: prediction ``k(x, basis) · c``."""
        if not self.nystrom:
            return self.V @ ((self.V.T @ y) / (self.lam + alpha))
        return self.P @ (self.W @ ((self.E.T @ y) / (self.s + alpha)))

    def posterior_root(self, alpha: float) -> np.ndarray:
        """Nyström only: ``R`` with ``R Rᵀ = M = P (I - α (ΦᵀΦ + αI)⁻¹) Pᵀ = P W diag(s/(s + α)) Wᵀ Pᵀ``, so that the
        variance is ``1 + α - |Rᵀ k_m|²`` (a sum of squares) as for the exact model (``α (1 + φᵀ(ΦᵀΦ + αI)⁻¹φ)`` of
        the Bayesian ridge plus the prior gap ``1 - φᵀφ``); with every training point a landmark ``M`` is the exact
        ``(K + αI)⁻¹``."""
        return self.P @ (self.W * np.sqrt(self.s / (self.s + alpha)))


def loo_grid_search(X: np.ndarray, y: np.ndarray, kernels=KERNELS, alphas=ALPHAS, gammas=GAMMAS,
                    basis: np.ndarray | None = None, offsets=(0.0,)) -> dict:
    """Exact leave-one-out mean absolute error of kernel ridge on the whole grid.

    ``X`` are the (already standardised) features, ``y`` the targets. With ``basis`` (rows of ``X`` used as Nyström
    landmarks) the search is over the Nyström model instead of the exact one. ``offsets`` are constant prior means
    tried as well (the model fits ``y - offset``; e.g. ``(0, mean(y))``: uncentred as scikit-learn's KernelRidge, or
    centred); they share each decomposition, so they cost almost nothing.

    Returns
    -------
    dict
        ``kernel``, ``gamma``, ``alpha``, ``offset``, ``cv_mae`` of the best point (ties keep the first in (kernel, γ,
        α, offset) order), ``scores`` ``{(kernel, γ, α): LOO MAE}`` of the first offset, ``best_by_kernel``
        ``{kernel: {gamma, cv_mae, system, K, Kmm}}`` (each kernel's own best point, its decomposition and kernel
        matrices: rows × rows, or rows × landmarks and the landmarks' own), and at the best point the LOO residuals
        ``loo_residuals``, the unit-scale LOO predictive variances ``loo_variances`` and the decomposed ``system``.
    """
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    scores: dict = {}
    best = None
    by_kernel: dict = {}
    for kernel in kernels:
        D = distances(X, basis, kernel)
        Dmm = None if basis is None else distances(basis, None, kernel)
        for gamma in gammas:
            K = np.exp(-float(gamma) * D)
            Kmm = None if Dmm is None else np.exp(-float(gamma) * Dmm)
            system = _System(K, Kmm)
            loo = [system.loo_many(y - offset, alphas) for offset in offsets]
            maes = [np.mean(np.abs(r), axis=0) for r, _ in loo]
            for j, a in enumerate(alphas):
                for k, offset in enumerate(offsets):
                    mae = float(maes[k][j])
                    key = (kernel, float(gamma), float(a))
                    if k == 0:
                        scores[key] = mae
                    if np.isfinite(mae) and (kernel not in by_kernel or mae < by_kernel[kernel]["cv_mae"]):
                        by_kernel[kernel] = {"gamma": float(gamma), "cv_mae": mae, "system": system, "K": K,
                                             "Kmm": Kmm}
                    if np.isfinite(mae) and (best is None or mae < best[0]):
                        best = (mae, (*key, float(offset)), loo[k][0][:, j], loo[k][1][:, j], system)
    if best is None:
        raise ValueError("no finite leave-one-out error on the grid (degenerate features or labels)")
    mae, (kernel, gamma, alpha, offset), r, v, system = best
    return {"kernel": kernel, "gamma": gamma, "alpha": alpha, "offset": offset, "cv_mae": mae, "scores": scores,
            "best_by_kernel": by_kernel, "loo_residuals": r, "loo_variances": v, "system": system}


def ssmr_blocks(n_columns: int, n_layers: int, n_stats: int = 1) -> np.ndarray:
    """Block index of every SSMR column (``SSMR.create``'s layout ``[statistic][layer][unit]``): block
    ``statistic · n_layers + layer``; a ``ValueError`` when the columns do not split that way."""
    n_blocks = int(n_layers) * int(n_stats)
    if n_blocks < 1 or n_columns % n_blocks:
        raise ValueError(f"{n_columns} SSMR columns do not split into {n_layers} layers × {n_stats} statistics")
    return np.arange(n_columns) // (n_columns // n_blocks)


def loo_layer_weights(X: np.ndarray, y: np.ndarray, blocks: list, kernel: str, gamma: float, alphas=ALPHAS,
                      offsets=(0.0,), values=LAYER_WEIGHTS, sweeps: int = 2, max_rows: int | None = LAYER_SEARCH_ROWS,
                      seed: int = 0) -> tuple[np.ndarray, float, int]:
    """Per-layer weights of standardised multi-scale SSMR, chosen by exact leave-one-out.

    Concatenated layers enter the kernel with equal weight; which scale matters depends on the property (the
    element alone for formation energy, the first shells for the moduli). Each block of columns (a layer) is
    multiplied by a weight from ``values`` (0 drops it), one block at a time (coordinate descent from all ones,
    ``sweeps`` passes, a change kept only if it lowers the LOO MAE), with ``kernel`` and ``gamma`` held fixed: a common
    factor of the weights is a change of ``γ``, which the caller's grid search chooses afterwards. Every trial costs
    one decomposition (all ``α`` share it), so beyond ``max_rows`` structures the search runs on a seeded random
    subset of that many (about 60 decompositions of 1,000 × 1,000: seconds; the caller's final grid uses them all).

    Parameters
    ----------
    X : ndarray (n, d)
        Standardised features. ``blocks`` : list of index arrays, the columns of each layer.

    Returns
    -------
    (weights per block, LOO MAE at those weights, number of decompositions)
    """
    if max_rows is not None and len(y) > max_rows:
        rows = np.sort(np.random.default_rng(seed).choice(len(y), int(max_rows), replace=False))
        X, y = X[rows], np.asarray(y)[rows]
    weights = np.ones(len(blocks))
    cols = np.zeros(X.shape[1], dtype=int)
    for b, idx in enumerate(blocks):
        cols[np.asarray(idx)] = b

    def score(w):
        return loo_grid_search(X * w[cols], y, (kernel,), alphas, (gamma,), offsets=offsets)["cv_mae"]

    best, trials = score(weights), 1
    for _ in range(int(sweeps)):
        changed = False
        for b in range(len(blocks)):
            for v in values:
                if v == weights[b]:
                    continue
                trial = weights.copy()
                trial[b] = v
                if not trial.any():
                    continue
                mae = score(trial)
                trials += 1
                if mae < best * (1 - 1e-6):
                    best, weights, changed = mae, trial, True
        if not changed:
            break
    return weights, float(best), trials


def calibrate_scale(residuals: np.ndarray, sigmas: np.ndarray, level: float = CALIBRATION_LEVEL) -> float:
    """Scale ``s`` such that a fraction ``level`` of the leave-one-out ``|residual| / sigma`` lie within
    ``s · z_level`` (``z_level`` the Gaussian two-sided quantile of ``level``)."""
    from scipy.stats import norm

    if not 0 < level < 1:
        raise ValueError(f"calibration level must be in (0, 1), got {level!r}")
    z = np.abs(np.asarray(residuals, float)) / np.clip(np.asarray(sigmas, float), 1e-300, None)
    s = float(np.quantile(z, level) / norm.ppf(0.5 + level / 2))
    if not np.isfinite(s) or s <= 0:
        s = float(np.sqrt(np.mean(z * z))) or 1.0
    return s


def interval_multipliers(residuals: np.ndarray, sigmas: np.ndarray, levels=INTERVAL_LEVELS) -> np.ndarray:
    """Multipliers ``k`` such that ``|residual| <= k · sigma`` for a fraction ``level`` of the (cross-fitted) residuals.

    The split-conformal quantile: the ``⌈(n + 1) · level⌉``-th smallest ``|residual| / sigma`` (the largest when that
    exceeds ``n``), which covers at least ``level`` of a new exchangeable residual. Non-decreasing in ``level``.
    """
    z = np.sort(np.abs(np.asarray(residuals, float)) / np.clip(np.asarray(sigmas, float), 1e-300, None))
    levels = np.asarray(levels, float)
    if z.size == 0 or not ((levels > 0) & (levels < 1)).all():
        raise ValueError(f"need residuals and levels in (0, 1), got {z.size} residuals and levels {levels!r}")
    rank = np.minimum(np.ceil((z.size + 1) * levels).astype(int), z.size)
    return z[rank - 1]


def _scale_model(z: np.ndarray, candidates: list) -> dict:
    """Kernel ridge of ``|z|`` (leave-one-out z-scores): where the model errs more than its posterior says.
    ``candidates`` are ``(kernel, γ_k, K, Kmm, system)``: a kernel type at a base width, its matrices (training rows,
    or rows × landmarks and the landmarks' own) and their decomposition when already made (else ``None``). The kernel,
    the width ``factor · γ_k`` (``factor`` in :data:`SCALE_GAMMA_FACTORS`; the ``factor``-th power of ``K`` is that
    kernel) and ``α`` (in :data:`SCALE_ALPHAS`) are those of smallest leave-one-out MAE (ties keep the first). Returns
    the kernel, width, ``α``, coefficients, mean, floor and the chosen kernel's matrices ``K``/``Kmm``."""
    t = np.abs(z)
    mean = float(t.mean())
    best = None
    for kernel, gamma, K, Kmm, system in candidates:
        for factor in SCALE_GAMMA_FACTORS:
            s = system if factor == 1 and system is not None else _System(
                _widen(K, factor), None if Kmm is None else _widen(Kmm, factor))
            maes = np.mean(np.abs(s.loo_many(t - mean, SCALE_ALPHAS)[0]), axis=0)
            for a, mae in zip(SCALE_ALPHAS, maes):
                if best is None or mae < best[0]:
                    best = (float(mae), kernel, float(factor * gamma), float(a), s, K, Kmm, factor)
    _, kernel, gamma, alpha, s, K, Kmm, factor = best
    return {"kernel": kernel, "gamma": gamma, "alpha": alpha, "mean": mean, "floor": SCALE_FLOOR * mean,
            "coef": s.coef(t - mean, alpha), "K": _widen(K, factor),
            "Kmm": None if Kmm is None else _widen(Kmm, factor)}


def _widen(K: np.ndarray, factor: float) -> np.ndarray:
    """The kernel ``exp(-factor · γ d)`` from ``K = exp(-γ d)`` (both kernels are exponentials of a distance)."""
    return K if factor == 1 else np.power(K, factor)


def _inverse_root(K: np.ndarray, alpha: float) -> np.ndarray:
    """``W`` with ``(K + αI)⁻¹ = W Wᵀ``: ``L⁻ᵀ`` of the Cholesky factor (a fifth of an eigendecomposition's time), or
    ``V (Λ + α)^(-1/2)`` from the eigendecomposition when ``α`` is too small for the factorisation of a near-singular
    kernel to be accurate, or it fails. Quadratic forms are then sums of squares (``|Wᵀk|²``), which keep their
    precision where ``kᵀ (K + αI)⁻¹ k`` with the explicit inverse (entries ~ 1/α) would not."""
    from scipy.linalg import LinAlgError, cholesky, solve_triangular

    n = len(K)
    if alpha >= 1e-6:
        try:
            L = cholesky(K + alpha * np.eye(n), lower=True, check_finite=False)
            return solve_triangular(L, np.eye(n), lower=True, check_finite=False).T
        except LinAlgError:
            pass
    lam, V = _eigh(K)
    return V / np.sqrt(lam + alpha)


def _noisy_variance(quadratic: np.ndarray, alpha: float) -> np.ndarray:
    """Unit-scale predictive variance of a noisy label, ``1 + α - k*ᵀ(K + αI)⁻¹k*`` from its quadratic term, floored
    at the noise ``α`` it can never go below (a near-interpolating fit leaves the difference below float64's
    resolution; clipping at 0 gave a zero std)."""
    return np.clip(1.0 + alpha - quadratic, alpha, None)


def _scale_prediction(K: np.ndarray, coef: np.ndarray, mean: float, floor: float) -> np.ndarray:
    """The scale model ``a(x) = max(k(x, basis) · coef + mean, floor)``."""
    return np.maximum(K @ coef + mean, floor)


def cross_fitted_scores(K: np.ndarray, y: np.ndarray, alpha: float, scale_alpha: float, Kmm: np.ndarray | None = None,
                        folds: int = CALIBRATION_FOLDS, seed: int = 0, scale_K: np.ndarray | None = None,
                        scale_Kmm: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Out-of-fold residuals and unscaled standard deviations ``a(x) · sqrt(v(x))`` for the calibration.

    Leave-one-out residuals are honest for the mean, but not for the scale model: the other points' leave-one-out
    z-scores, which ``a`` is fitted to, were computed with point ``i``'s label, so a training outlier inflates its
    neighbours' z-scores and with them its own ``a`` — a covered outlier, where a new outlier is not (on MAGNDATA Tc
    the 90 % interval covered 0.85 of held-out structures for 0.90 of the leave-one-out ones). Here each of ``folds``
    folds is predicted by the model refitted on the others (same hyper-parameters: mean, variance and scale model all
    rebuilt without the fold's labels), as a new structure is.

    ``K`` is the kernel between the training rows (``n × n``), or between the rows and the Nyström landmarks
    (``n × m``, with ``Kmm`` the landmarks' kernel); ``y`` the labels minus the prior mean; ``scale_K`` /
    ``scale_Kmm`` the same matrices in the scale model's kernel and width (default: ``K`` / ``Kmm``).
    """
    n = len(y)
    folds = int(min(folds, n))
    fold = np.empty(n, dtype=int)
    fold[np.random.default_rng(seed).permutation(n)] = np.arange(n) % folds
    same = scale_K is None
    Ks, Ksmm = (K, Kmm) if same else (scale_K, scale_Kmm)
    residuals, sigmas = np.empty(n), np.empty(n)
    for f in range(folds):
        out, keep = fold == f, fold != f
        if Kmm is None:  # exact: one factor per fold gives the leave-one-out, the coefficients and the variance
            Kt, Kst = K[np.ix_(out, keep)], Ks[np.ix_(out, keep)]
            W = _inverse_root(K[np.ix_(keep, keep)], alpha)
            coef = W @ (W.T @ y[keep])
            g = np.einsum("ij,ij->i", W, W)  # diagonal of (K + αI)⁻¹
            t = np.abs(coef / g) * np.sqrt(g)  # |leave-one-out residual| / sqrt(its variance 1/g)
            mean = float(t.mean())
            Q = Kt @ W
            var = _noisy_variance(np.einsum("ij,ij->i", Q, Q), alpha)
            Ws = _inverse_root(Ks[np.ix_(keep, keep)], scale_alpha)
            scale_coef = Ws @ (Ws.T @ (t - mean))
        else:
            Kt, Kst = K[out], Ks[out]
            system = _System(K[keep], Kmm)
            r, v = system.loo(y[keep], alpha)
            t = np.abs(r) / np.sqrt(v)
            mean = float(t.mean())
            coef = system.coef(y[keep], alpha)
            Q = Kt @ system.posterior_root(alpha)
            var = _noisy_variance(np.einsum("ij,ij->i", Q, Q), alpha)
            scale_system = system if same else _System(Ks[keep], Ksmm)
            scale_coef = scale_system.coef(t - mean, scale_alpha)
        a = _scale_prediction(Kst, scale_coef, mean, SCALE_FLOOR * mean)
        residuals[out] = y[out] - Kt @ coef
        sigmas[out] = a * np.sqrt(var)
    return residuals, sigmas


def _gaussian_z(levels) -> np.ndarray:
    from scipy.stats import norm

    return norm.ppf(0.5 + np.asarray(levels, float) / 2)


# --------------------------------------------------------------------------------------------------- model


class KernelModel(MatGLModel):
    """SSMR + kernel ridge with a calibrated predictive standard deviation (see the module docstring).

    Built by :func:`fit_kernel_model`; the constructor only allocates the buffers that ``state.pt`` fills.

    Parameters
    ----------
    encoder : CGCNNEncoder
        The pretrained encoder whose SSMR the model reads (saved with the model).
    target, units : str
        Property name (the prediction's key; the standard deviation is ``<target>_std``) and its units.
    layers, pooling
        SSMR layer selection and pooling (``ase_negnn.descriptor.SSMR``).
    kernel, gamma, alpha : the chosen kernel ridge hyper-parameters.
    scale_gamma : width of the scale model's kernel (``None``: ``gamma``, as in models saved before it was chosen).
    scale_kernel : the scale model's kernel type (``None``: ``kernel``, as in models saved before it was chosen).
    approximation : ``"exact"`` or ``"nystrom"``.
    n_basis, n_features : rows of the stored basis (training structures or landmarks) and SSMR features.
    """

    task = "graph"
    smooth = False

    def __init__(self, encoder: CGCNNEncoder, target: str = "y", units: str = "", layers="all",
                 pooling: str = "mean", kernel: str = "laplacian", gamma: float = 1e-3, alpha: float = 1e-3,
                 approximation: str = "exact", n_basis: int = 1, n_features: int = 1,
                 scale_gamma: float | None = None, scale_kernel: str | None = None):
        super().__init__()
        from .descriptor import parse_layers, parse_pooling

        for name, value in (("kernel", kernel), ("scale_kernel", kernel if scale_kernel is None else scale_kernel)):
            if value not in KERNELS:
                raise ValueError(f"{name} must be one of {KERNELS}, got {value!r}")
        if approximation not in ("exact", "nystrom"):
            raise ValueError(f"approximation must be 'exact' or 'nystrom', got {approximation!r}")
        for name, value in (("gamma", gamma), ("alpha", alpha), ("scale_gamma", scale_gamma)):
            # a non-positive width gives a flat kernel (or one growing with distance), a non-positive ridge an
            # indefinite system: nonsense numbers, never an error, when a hand-edited model.json carries one
            if value is not None and not (np.isfinite(float(value)) and float(value) > 0):
                raise ValueError(f"{name} must be a positive finite number, got {value!r}")
        if isinstance(encoder, dict):
            encoder = CGCNNEncoder(**encoder)
        layers = parse_layers(layers, encoder.n_layers)
        parse_pooling(pooling)
        self.save_args(locals(), {"encoder": encoder.nested_args(), "layers": layers})
        self.encoder = encoder.eval().requires_grad_(False)
        self.target, self.units, self.layers, self.pooling = str(target), str(units), layers, pooling
        self.kernel, self.gamma, self.alpha = kernel, float(gamma), float(alpha)
        self.scale_gamma = self.gamma if scale_gamma is None else float(scale_gamma)
        self.scale_kernel = kernel if scale_kernel is None else scale_kernel
        self.approximation = approximation
        n, d = int(n_basis), int(n_features)
        f64 = torch.float64
        self.register_buffer("basis", torch.zeros(n, d, dtype=f64))  # standardised SSMR of the basis structures
        self.register_buffer("coef", torch.zeros(n, dtype=f64))  # mean = k(x, basis) · coef + target_mean
        self.register_buffer("feature_mean", torch.zeros(d, dtype=f64))
        self.register_buffer("feature_scale", torch.ones(d, dtype=f64))
        self.register_buffer("target_mean", torch.zeros((), dtype=f64))
        self.register_buffer("std_scale", torch.ones((), dtype=f64))  # calibrated s
        self.register_buffer("scale_coef", torch.zeros(n, dtype=f64))  # a(x) = max(k_s(x, basis) · scale_coef + mean,
        self.register_buffer("scale_mean", torch.ones((), dtype=f64))  #          floor)
        self.register_buffer("scale_floor", torch.zeros((), dtype=f64))
        # central interval at INTERVAL_LEVELS[i]: mean ± interval_z[i] · std (cross-fitted conformal multipliers)
        self.register_buffer("interval_z", torch.from_numpy(_gaussian_z(INTERVAL_LEVELS)))
        # Nyström only: M of variance 1 + α - k_mᵀ M k_m; exact models rebuild M = (K + αI)⁻¹ from the basis on demand
        self.register_buffer("posterior", torch.zeros((n, n) if approximation == "nystrom" else (0, 0), dtype=f64))
        self.register_buffer("trained_elements", torch.ones(MAX_Z + 1, dtype=torch.bool))
        self._descriptor = None
        self._root = None

    @property
    def outputs(self) -> tuple[str, str]:
        """The keys each prediction holds: the target and its standard deviation."""
        return self.target, f"{self.target}_std"

    @classmethod
    def load(cls, path, **kwargs):
        return load_graph_aware(cls, path, **kwargs)

    def save(self, path: str | Path = ".", metadata: dict | None = None, makedirs: bool = True):
        """Save atomically in matgl's layout (``model.pt``, ``state.pt``, ``model.json``) into directory ``path``."""
        save_atomic(self, path, metadata)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # a model saved before the interval multipliers were stored keeps the Gaussian intervals it was fitted with
        state_dict.setdefault(prefix + "interval_z", torch.from_numpy(_gaussian_z(INTERVAL_LEVELS)))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        self._root = None

    def interval_multiplier(self, level: float) -> float:
        """``k`` of the central interval ``mean ± k · std`` that holds ``level`` of the errors (calibrated on the
        cross-fitted residuals; between the stored :data:`INTERVAL_LEVELS`, interpolated)."""
        level = float(level)
        if not INTERVAL_LEVELS[0] <= level <= INTERVAL_LEVELS[-1]:
            raise ValueError(f"interval level must be in [{INTERVAL_LEVELS[0]}, {INTERVAL_LEVELS[-1]}], got {level!r}")
        return float(np.interp(level, INTERVAL_LEVELS, self.interval_z.numpy()))

    # -- element bookkeeping (as NEGNN) ------------------------------------------------------------------------
    def set_trained_elements(self, numbers) -> None:
        mask = torch.zeros(MAX_Z + 1, dtype=torch.bool)
        mask[torch.as_tensor(sorted({int(z) for z in numbers}), dtype=torch.long)] = True
        self.trained_elements.copy_(mask)

    @property
    def element_types(self) -> tuple[str, ...]:
        from ase.data import chemical_symbols

        return tuple(chemical_symbols[z] for z in torch.nonzero(self.trained_elements).flatten().tolist())

    def unsupported_elements(self, numbers) -> list[str]:
        """Symbols of ``numbers`` absent from the training structures (empty when training recorded none)."""
        from ase.data import chemical_symbols

        if bool(self.trained_elements.all()):
            return []
        return sorted({chemical_symbols[int(z)] for z in numbers if not bool(self.trained_elements[int(z)])})

    # -- prediction --------------------------------------------------------------------------------------------
    def descriptor(self):
        """The SSMR this model reads (same encoder, layers and pooling as in training)."""
        if self._descriptor is None:
            from .descriptor import SSMR

            self._descriptor = SSMR(layers=self.layers, encoder=self.encoder, pooling=self.pooling)
        return self._descriptor

    def features(self, structures, progress: bool = False) -> np.ndarray:
        """Standardised SSMR of ``structures`` (rows), as the kernel sees them."""
        X = self.descriptor().create(list(structures), progress=progress)
        return (np.asarray(X, np.float64) - self.feature_mean.numpy()) / self.feature_scale.numpy()

    def _posterior_root(self) -> np.ndarray:
        """``R`` with ``R Rᵀ = M``, the matrix of the variance ``1 + α - kᵀ M k`` (exact: ``(K + αI)⁻¹``, from the
        basis' eigendecomposition; Nyström: the stored ``posterior``), so that ``kᵀ M k = |Rᵀk|²`` is a sum of
        squares. With the explicit ``M`` (entries ~ 1/α) a near-interpolating fit (α = 1e-10) lost the variance to
        cancellation."""
        if self._root is None:
            if self.approximation == "exact":
                lam, V = _eigh(kernel_matrix(self.basis.numpy(), None, self.kernel, self.gamma))
                self._root = V / np.sqrt(lam + self.alpha)
            else:
                mu, U = _eigh(self.posterior.numpy())
                self._root = U * np.sqrt(mu)
        return self._root

    def _explained(self, K: np.ndarray) -> np.ndarray:
        """``Q = K R``: ``Q Qᵀ = K M Kᵀ`` for the kernel ``K`` between some structures and the basis."""
        return K @ self._posterior_root()

    def predict_features(self, Xs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Mean and standard deviation for standardised features ``Xs``."""
        K = kernel_matrix(np.atleast_2d(Xs), self.basis.numpy(), self.kernel, self.gamma)
        mean = K @ self.coef.numpy() + float(self.target_mean)
        Q = self._explained(K)
        var = _noisy_variance(np.einsum("ij,ij->i", Q, Q), self.alpha)
        return mean, float(self.std_scale) * self._scale(K, Xs) * np.sqrt(var)

    def _scale(self, K: np.ndarray, Xs: np.ndarray) -> np.ndarray:
        """The scale model ``a(x)`` for standardised features ``Xs``; ``K`` is the mean's kernel between them and the
        basis (widened when the scale model's kernel is of the same type)."""
        if self.scale_kernel == self.kernel:
            Ks = _widen(K, self.scale_gamma / self.gamma)
        else:
            Ks = kernel_matrix(np.atleast_2d(Xs), self.basis.numpy(), self.scale_kernel, self.scale_gamma)
        return _scale_prediction(Ks, self.scale_coef.numpy(), float(self.scale_mean), float(self.scale_floor))

    def select_features(self, Xs: np.ndarray, n: int, max_pool: int = MAX_SELECTION_POOL) -> np.ndarray:
        """Indices of ``n`` rows of ``Xs`` (standardised features of unlabelled candidates) to label next, best first.

        Greedy integrated variance reduction: each pick is the candidate whose (noisy) label would most reduce the
        expected squared error summed over the whole pool, ``Σ_j a(x_j)² C_jc² / (C_cc + α)`` with ``C`` the posterior
        covariance of the latent function over the candidates (given the training set and the picks so far) and
        ``a`` the scale model; then ``C`` is conditioned on that pick. Unlike the largest standard deviation, it
        favours candidates that stand for many others over isolated outliers, and a batch does not pile up in one
        uncertain corner. ``O(P²)`` memory and ``O(n P²)`` time for ``P`` candidates: at most ``max_pool``.
        """
        Xs = np.atleast_2d(np.asarray(Xs, np.float64))
        P, n = len(Xs), int(n)
        if n < 1:
            raise ValueError(f"number of candidates to select must be >= 1, got {n}")
        if P > max_pool:
            raise ValueError(f"{P} candidates exceed max_pool={max_pool} (memory grows as its square): narrow them "
                             "first, e.g. screen --rank PROP:std and keep the top ones, or raise max_pool")
        K = kernel_matrix(Xs, self.basis.numpy(), self.kernel, self.gamma)
        Q = self._explained(K)
        C = kernel_matrix(Xs, None, self.kernel, self.gamma) - Q @ Q.T
        w = self._scale(K, Xs) ** 2
        picked: list[int] = []
        for _ in range(min(n, P)):
            d = np.clip(np.diag(C), 0.0, None) + self.alpha
            score = (w @ (C * C)) / d
            score[picked] = -np.inf
            c = int(np.argmax(score))
            u = C[:, c].copy()
            C -= np.outer(u, u) / d[c]
            picked.append(c)
        return np.asarray(picked, dtype=np.int64)

    def select(self, structures, n: int, max_pool: int = MAX_SELECTION_POOL, progress: bool = False) -> np.ndarray:
        """Indices of ``n`` of ``structures`` to label next (active learning), best first: :meth:`select_features`."""
        return self.select_features(self.features(list(structures), progress), n, max_pool)

    def predict(self, structures, batch_size: int = 256, progress: bool = False, **kwargs) -> list[dict]:
        """One dict per structure: ``{target: mean, target_std: standard deviation}`` (in ``units``)."""
        structures = list(structures)
        rows: list[dict] = []
        for start in range(0, len(structures), max(1, int(batch_size))):
            mean, std = self.predict_features(self.features(structures[start : start + batch_size], progress))
            rows.extend({self.target: float(m), f"{self.target}_std": float(s)} for m, s in zip(mean, std))
        return rows

    def forward(self, structures):  # matgl models are modules; the numbers come from predict()
        return torch.as_tensor([r[self.target] for r in self.predict(structures)])

    def predict_structure(self, structure, *args, **kwargs) -> torch.Tensor:
        """matgl's single-structure entry point: the predicted mean."""
        return torch.as_tensor(self.predict([structure])[0][self.target])


# --------------------------------------------------------------------------------------------------- fitting


def fit_kernel_model(X: np.ndarray, y: np.ndarray, encoder: CGCNNEncoder, target: str, units: str = "",
                     layers="all", pooling: str = "mean", kernels=KERNELS, alphas=ALPHAS, gammas=GAMMAS,
                     max_exact: int = MAX_EXACT, n_basis: int = N_BASIS, calibration_level: float = CALIBRATION_LEVEL,
                     seed: int = 0, numbers=None, layer_weights: str | None = None) -> tuple[KernelModel, dict]:
    """Fit a :class:`KernelModel` on SSMR rows ``X`` (raw, as ``SSMR.create`` returns them) and labels ``y``.

    ``layer_weights="loo"`` weights each SSMR layer — each (pooling statistic, layer) block when several statistics
    are pooled — by :func:`loo_layer_weights` (0 to 4, 0 drops the block) on at most ``LAYER_SEARCH_ROWS`` of the
    structures, at the kernel and ``γ`` the equal-weight grid picks on those rows, before the one grid search on all
    of them (report ``layer_search``: its rows, kernel, ``γ`` and LOO MAE there with equal and chosen weights); the
    weights are folded into the stored feature scale (a dropped block of a kept layer gets an infinite scale: it
    standardises to 0) and a layer whose every block is dropped is not computed at prediction time. ``None``
    (default): every layer weighs the same, as in the paper.

    Returns the model and a report: the chosen hyper-parameters, LOO MAE, calibration scale and LOO coverage of the
    68 % / 90 % intervals, whether the Nyström approximation was used, the layer weights, and the fit time.

    Raises
    ------
    ValueError
        Fewer than ``MIN_STRUCTURES`` structures, NaN/inf features or labels, mismatched lengths, or an unknown
        ``layer_weights``.
    """
    t0 = time.perf_counter()
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64).reshape(-1)
    if X.ndim != 2 or len(X) != len(y):
        raise ValueError(f"need one SSMR row per label: X has shape {X.shape}, y has {len(y)} values")
    if len(y) < MIN_STRUCTURES:
        raise ValueError(f"kernel ridge with leave-one-out model selection needs at least {MIN_STRUCTURES} labelled "
                         f"structures, got {len(y)}")
    if not np.isfinite(y).all():
        raise ValueError(f"{int((~np.isfinite(y)).sum())} label(s) are NaN/inf")
    if not np.isfinite(X).all():
        raise ValueError("the SSMR of some structures is NaN/inf")
    mu, sd = X.mean(axis=0), X.std(axis=0)
    sd[sd == 0] = 1.0  # constant columns, as StandardScaler
    Xs = (X - mu) / sd
    nystrom = len(y) > max_exact
    basis_idx = None
    if nystrom:
        basis_idx = np.sort(np.random.default_rng(seed).choice(len(y), min(n_basis, len(y)), replace=False))
    # prior mean 0 (scikit-learn's KernelRidge, the paper) or the training mean, whichever leaves one out better
    offsets = (0.0, float(y.mean()))
    weights = search = None
    if layer_weights is not None and layer_weights != "equal":
        if layer_weights != "loo":
            raise ValueError(f"layer_weights must be None, 'equal' or 'loo', got {layer_weights!r}")
        from .descriptor import parse_layers, parse_pooling

        layer_list = parse_layers(layers, encoder.n_layers)
        stats = parse_pooling(pooling)
        col_block = ssmr_blocks(X.shape[1], len(layer_list), len(stats))  # one block per (statistic, layer)
        col_layer = col_block % len(layer_list)
        blocks = [np.flatnonzero(col_block == b) for b in range(len(layer_list) * len(stats))]
        # the search rows (Nyström: among the landmarks, exact there): the equal-weight grid on them gives the
        # kernel and γ the weights are searched at; the full grid then runs once, on all rows, weighted
        rows = np.arange(len(y)) if basis_idx is None else basis_idx
        if len(rows) > LAYER_SEARCH_ROWS:
            rows = np.sort(np.random.default_rng(seed).choice(rows, LAYER_SEARCH_ROWS, replace=False))
        equal = loo_grid_search(Xs[rows], y[rows], kernels, alphas, gammas, offsets=offsets)
        weights, weighted_mae, _ = loo_layer_weights(Xs[rows], y[rows], blocks, equal["kernel"], equal["gamma"],
                                                     alphas, offsets=offsets, max_rows=None)
        search = {"rows": len(rows), "kernel": equal["kernel"], "gamma": equal["gamma"],
                  "loo_mae_equal_weights": equal["cv_mae"], "loo_mae_weighted": weighted_mae}
        # a layer is dropped (never computed) when all its statistics weigh 0; a single (statistic, layer) block of
        # weight 0 in a kept layer gets an infinite scale: it standardises to exactly 0
        kept_layers = [i for i in range(len(layer_list)) if weights[i::len(layer_list)].any()]
        keep = np.isin(col_layer, kept_layers)
        w = weights[col_block][keep]
        mu = mu[keep]
        sd = np.divide(sd[keep], w, out=np.full(int(keep.sum()), np.inf), where=w > 0)
        X = X[:, keep]
        Xs = (X - mu) / sd
        layers = tuple(layer_list[i] for i in kept_layers)
    res = loo_grid_search(Xs, y, kernels, alphas, gammas, basis=None if basis_idx is None else Xs[basis_idx],
                          offsets=offsets)
    kernel, gamma, alpha, system = res["kernel"], res["gamma"], res["alpha"], res["system"]
    y_mean = res["offset"]
    yc = y - y_mean
    r, v = res["loo_residuals"], res["loo_variances"]
    B = Xs if basis_idx is None else Xs[basis_idx]
    Kfit, Kmm = res["best_by_kernel"][kernel]["K"], res["best_by_kernel"][kernel]["Kmm"]  # the grid's own matrices
    # the scale model: the mean's kernel at its γ, or each other searched kernel at the γ the grid found best for it
    candidates = [(kernel, gamma, Kfit, Kmm, system)]
    candidates += [(other, best["gamma"], best["K"], best["Kmm"], best["system"])
                   for other, best in res["best_by_kernel"].items() if other != kernel]
    scale = _scale_model(r / np.sqrt(v), candidates)
    # (None: the mean's own kernel matrices, whose decomposition the cross-fitting then shares with the mean)
    Ks, Ksmm = (None, None) if scale["kernel"] == kernel and scale["gamma"] == gamma else (scale["K"], scale["Kmm"])
    # calibration (s and the interval multipliers) on out-of-fold predictions: see cross_fitted_scores
    r_cal, sigma_cal = cross_fitted_scores(Kfit, yc, alpha, scale["alpha"], Kmm, seed=seed, scale_K=Ks,
                                           scale_Kmm=Ksmm)
    s = calibrate_scale(r_cal, sigma_cal, calibration_level)
    model = KernelModel(encoder, target=target, units=units, layers=layers, pooling=pooling, kernel=kernel,
                        gamma=gamma, alpha=alpha, approximation="nystrom" if nystrom else "exact",
                        n_basis=len(B), n_features=X.shape[1], scale_gamma=scale["gamma"],
                        scale_kernel=scale["kernel"])
    with torch.no_grad():
        for name, value in (("basis", B), ("coef", system.coef(yc, alpha)), ("feature_mean", mu),
                            ("feature_scale", sd), ("scale_coef", scale["coef"])):
            getattr(model, name).copy_(torch.from_numpy(np.ascontiguousarray(value)))
        model.target_mean.fill_(y_mean)
        model.std_scale.fill_(s)
        model.scale_mean.fill_(scale["mean"])
        model.scale_floor.fill_(scale["floor"])
        model.interval_z.copy_(torch.from_numpy(interval_multipliers(r_cal, s * sigma_cal)))
        if nystrom:  # its root is taken from the stored M on first use, as after loading: the same answers
            R = system.posterior_root(alpha)
            model.posterior.copy_(torch.from_numpy(R @ R.T))
        else:  # the search already decomposed K: hand the root of (K + αI)⁻¹ over instead of decomposing K again
            model._root = system.V / np.sqrt(system.lam + alpha)
    if numbers is not None:
        model.set_trained_elements(numbers)
    z = np.abs(r_cal) / (s * sigma_cal)
    k68, k90 = model.interval_multiplier(0.68), model.interval_multiplier(0.9)
    report = {"kernel": kernel, "gamma": gamma, "alpha": alpha, "prior_mean": y_mean, "loo_mae": res["cv_mae"],
              "std_scale": s,
              "scale_kernel": scale["kernel"], "scale_alpha": scale["alpha"], "scale_gamma": scale["gamma"],
              "calibration_level": calibration_level,
              "calibration": f"{min(CALIBRATION_FOLDS, len(y))}-fold cross-fitted",
              "calibration_coverage_68": float(np.mean(z <= k68)),
              "calibration_coverage_90": float(np.mean(z <= k90)),
              "interval_z_68": k68, "interval_z_90": k90,
              "approximation": "nystrom" if nystrom else "exact", "n_basis": len(B), "n_train": len(y),
              "layer_weights": None if weights is None else {
                  (f"{st}:{la}" if len(stats) > 1 else str(la)): float(weights[k * len(layer_list) + i])
                  for k, st in enumerate(stats) for i, la in enumerate(layer_list)},
              "layer_search": search,
              "columns": None if weights is None else np.flatnonzero(keep),
              "grid": {"kernels": list(kernels), "alphas": [float(a) for a in alphas],
                       "gammas": [float(g) for g in gammas]},
              "fit_seconds": round(time.perf_counter() - t0, 2)}
    return model, report


def train_kernel_model(data, target: str, out: str | Path, *, encoder="default", layers="all", pooling: str = "mean",
                       units: str = "", split="0.8,0.1,0.1", seed: int = 0, test_data=None, labels_csv=None,
                       id_column: str | None = None, max_exact: int = MAX_EXACT, n_basis: int = N_BASIS,
                       calibration_level: float = CALIBRATION_LEVEL, layer_weights: str | None = None,
                       progress: bool = False) -> dict:
    """Fit an SSMR kernel model on labelled structures and save it as ``out/model`` (+ ``out/card.json``).

    The split is :func:`ase_negnn.training.split_three`'s for the same ``split`` and ``seed`` (so NEGNN and kernel
    models trained on one file share a test set); the kernel model fits on training + validation structures
    (leave-one-out replaces the validation set) and reports test MAE, RMSE, R², interval coverage and the
    Spearman correlation of the absolute error with the predicted standard deviation. ``test_data`` replaces the test part
    (``split`` then has two fractions, both fitted on).
    """
    from .readers import read_structures
    from .io import run_stamp, structure_ids, write_json_atomic
    from .labels import extract_labels
    from .metrics import regression_metrics, uncertainty_metrics
    from .pretrained import load_encoder
    from .splits import split_three

    out = Path(out)
    t0 = time.perf_counter()
    images = read_structures(data)
    n_main = len(images)
    if test_data is not None:
        images = images + read_structures(test_data)
    labels = extract_labels(images, target, "graph", labels_csv, id_column)
    y = np.asarray(labels.y, dtype=float)
    with_test = test_data is None
    tr, va, te = split_three(n_main, split, seed, with_test)
    fit_idx = np.sort(np.concatenate([tr, va]))
    test_idx = te if with_test else np.arange(n_main, len(images))
    enc = encoder if isinstance(encoder, CGCNNEncoder) else load_encoder(encoder)
    from .descriptor import SSMR

    X = SSMR(layers=layers, encoder=enc, pooling=pooling).create(images, progress=progress)
    numbers = {int(z) for i in fit_idx for z in images[i].numbers}
    model, report = fit_kernel_model(X[fit_idx], y[fit_idx], enc, target, units, layers, pooling,
                                     max_exact=max_exact, n_basis=n_basis, calibration_level=calibration_level,
                                     seed=seed, numbers=numbers, layer_weights=layer_weights)
    columns = report.pop("columns")  # the kept layers' columns of X (None: all)
    Xt = X[test_idx] if columns is None else X[test_idx][:, columns]
    Xs = (Xt - model.feature_mean.numpy()) / model.feature_scale.numpy()
    mean, std = model.predict_features(Xs)
    card = {"model": "KernelModel", "method": "krr", "target": target, "units": units, "task": "graph",
            "data": str(data) if isinstance(data, (str, Path)) else "in-memory structures",
            "test_data": str(test_data) if test_data is not None else None, "split": str(split), "seed": seed,
            "encoder": str(encoder) if not isinstance(encoder, CGCNNEncoder) else "instance",
            "layers": list(model.layers), "pooling": pooling, "n_train": int(len(fit_idx)),
            "n_test": int(len(test_idx)), **{k: v for k, v in report.items() if k != "grid"}, "grid": report["grid"],
            "test_metrics": regression_metrics(mean, y[test_idx]),
            "test_uncertainty": uncertainty_metrics(mean, std, y[test_idx], model.interval_multiplier),
            "elements": list(model.element_types), "seconds": round(time.perf_counter() - t0, 1), **run_stamp()}
    ids = structure_ids(images)
    out.mkdir(parents=True, exist_ok=True)
    model.save(out / "model", metadata={"card": "card.json"})
    write_json_atomic(card, out / "card.json")
    from .io import atomic_open

    with atomic_open(out / "test_predictions.csv", "w", newline="") as fh:
        import csv

        w = csv.writer(fh)
        w.writerow(["id", target, f"{target}_pred", f"{target}_std"])
        for i, m, s in zip(test_idx, mean, std):
            w.writerow([ids[i], f"{y[i]:.6g}", f"{m:.6g}", f"{s:.6g}"])
    return card
