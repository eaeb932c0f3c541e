"""Regression and uncertainty metrics (plain NumPy/SciPy; no torch)."""

from __future__ import annotations

import numpy as np

__all__ = ["regression_metrics", "uncertainty_metrics"]


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


def uncertainty_metrics(pred, std, true) -> dict:
    """How well predicted standard deviations ``std`` describe the errors of ``pred``.

    ``coverage_68`` / ``coverage_90``: fraction of ``true`` inside ``pred ± z·std`` for the Gaussian 68.27 % (z = 1)
    and 90 % (z = 1.645) intervals; ``spearman``: rank correlation of ``|error|`` with ``std`` (nan when either is
    constant); ``mean_std``; ``nll``: mean Gaussian negative log-likelihood; ``n``.
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
    return {"coverage_68": float(np.mean(z <= 1.0)), "coverage_90": float(np.mean(z <= norm.ppf(0.95))),
            "spearman": rho, "mean_std": float(std.mean()),
            "nll": float(np.mean(0.5 * z**2 + np.log(safe) + 0.5 * np.log(2 * np.pi))), "n": int(len(err))}
