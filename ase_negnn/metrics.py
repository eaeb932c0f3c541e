"""Regression and uncertainty metrics (plain NumPy/SciPy; no torch)."""

from __future__ import annotations

import numpy as np

__all__ = ["reference_spearman", "regression_metrics", "uncertainty_metrics"]


def regression_metrics(pred, true) -> dict:
    """MAE, RMSE and R² of flattened arrays."""
    pred, true = np.asarray(pred, float).ravel(), np.asarray(true, float).ravel()
    err = pred - true
    ss_tot = float(((true - true.mean()) ** 2).sum())
    return {
        "mae": float(np.abs(err).mean()),
        "rmse": float(np.sqrt((err**2).mean())),
        "r2": float(1.0 - (err**2).sum() / ss_tot) if ss_tot > 0 else float("nan"),
        "n": int(true.size),
    }


def uncertainty_metrics(pred, std, true, multiplier=None) -> dict:
    """How well predicted standard deviations ``std`` describe the errors of ``pred``.

    ``coverage_68`` / ``coverage_90``: fraction of ``true`` inside the model's central 68 % / 90 % intervals
    ``pred ± k·std``, ``k = multiplier(level)`` (a kernel model's ``interval_multiplier``; default the Gaussian ``k``,
    0.994 and 1.645); ``spearman``: rank correlation of ``|error|`` with ``std`` (nan when either is constant);
    ``mean_std``; ``nll``: mean Gaussian negative log-likelihood; ``n``.
    """
    from scipy.stats import norm, spearmanr

    pred, std, true = (np.asarray(a, float).ravel() for a in (pred, std, true))
    if not (len(pred) == len(std) == len(true)):
        raise ValueError(f"pred, std and true differ in length: {len(pred)}, {len(std)}, {len(true)}")
    err = np.abs(pred - true)
    safe = np.clip(std, 1e-300, None)
    z = err / safe
    rho = float("nan")
    if len(err) > 2 and np.ptp(err) > 0 and np.ptp(std) > 0:
        rho = float(spearmanr(err, std).statistic)
    if multiplier is None:
        multiplier = lambda level: float(norm.ppf(0.5 + level / 2))  # noqa: E731
    return {"coverage_68": float(np.mean(z <= multiplier(0.68))), "coverage_90": float(np.mean(z <= multiplier(0.9))),
            "spearman": rho, "mean_std": float(std.mean()),
            "nll": float(np.mean(0.5 * z**2 + np.log(safe) + 0.5 * np.log(2 * np.pi))), "n": int(len(err))}


def reference_spearman(std, draws: int = 200, seed: int = 0) -> float:
    """Spearman correlation of ``|error|`` with ``std`` that exact standard deviations would give: the mean over
    ``draws`` simulated test sets whose errors are drawn from ``N(0, std_i²)``.

    ``uncertainty_metrics``' ``spearman`` is bounded by the spread of the stds themselves (the errors of one std are
    as random as ``|N(0, 1)|``): 0 for a constant std however right, near 1 only when the stds span orders of
    magnitude. This is the value the same stds would reach if they were the errors' true scale, the yardstick for
    the measured one. nan for fewer than 3 values or a constant std.
    """
    from scipy.stats import spearmanr

    std = np.asarray(std, float).ravel()
    if std.size < 3 or np.ptp(std) == 0:
        return float("nan")
    rng = np.random.default_rng(seed)
    return float(np.mean([spearmanr(std * np.abs(rng.standard_normal(std.size)), std).statistic
                          for _ in range(int(draws))]))
