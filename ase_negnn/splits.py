"""Seeded train/validation(/test) splits of ``range(n)``, shared by pretraining, training and the kernel models."""

from __future__ import annotations

import numpy as np

__all__ = ["parse_split", "split_indices", "split_three"]


def parse_split(split, with_test: bool = True) -> tuple[float, ...]:
    """``"0.8,0.1,0.1"`` → (train, val, test) fractions, or ``"0.9,0.1"`` → (train, val) when the test set is a
    separate file (``with_test=False``); fractions must be positive and sum to 1."""
    try:
        parts = [float(x) for x in (split.split(",") if isinstance(split, str) else split)]
    except (TypeError, ValueError):
        parts = []
    n = 3 if with_test else 2
    if len(parts) != n or any(not np.isfinite(p) or p <= 0 for p in parts) or abs(sum(parts) - 1.0) > 1e-6:
        what = "train,val,test" if with_test else "train,val (the test set is --test-data)"
        raise ValueError(f"split must be {n} positive fractions summing to 1 ({what}), got {split!r}")
    return tuple(parts)


def split_three(n: int, split, seed: int = 0, with_test: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Seeded random train/validation/test indices of ``range(n)``; raises if any part would be empty.

    With ``with_test=False`` the split has two fractions and the test indices are empty (separate test data).
    """
    fractions = parse_split(split, with_test)
    n_train = round(n * fractions[0])
    n_val = round(n * fractions[1]) if with_test else n - n_train
    n_test = n - n_train - n_val
    if min(n_train, n_val) < 1 or (with_test and n_test < 1):
        raise ValueError(f"split {split} of {n} structure(s) leaves an empty set "
                         f"(train {n_train}, validation {n_val}, test {n_test}); use more structures or another split")
    perm = np.random.default_rng(seed).permutation(n)
    return np.sort(perm[:n_train]), np.sort(perm[n_train : n_train + n_val]), np.sort(perm[n_train + n_val :])


def split_indices(n: int, val_fraction: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Seeded random train/validation split of ``range(n)``; at least one item in each when ``n >= 2``."""
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction!r}")
    if n < 2:
        raise ValueError(f"need at least 2 structures to hold some out for validation, got {n}")
    perm = np.random.default_rng(seed).permutation(n)
    n_val = min(max(1, int(round(n * val_fraction))), n - 1)
    return np.sort(perm[n_val:]), np.sort(perm[:n_val])
