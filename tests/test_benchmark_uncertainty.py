"""benchmarks/krr_uncertainty.py's active-learning loop and coverage curve (a script; these pieces otherwise run only
in its hour-long benchmark)."""

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
import krr_uncertainty as KU  # noqa: E402


def test_active_learning_strategies_label_distinct_training_structures(random_encoder, monkeypatch):
    """Every strategy (std, std-batch, ivr, random) starts from the same random labels and adds `step` new, distinct
    training-split structures per round, never a test structure: fails if a strategy re-picks a labelled structure
    (pool bookkeeping), indexes the pool wrongly, or crashes."""
    import ase_negnn.kernel as K
    import _paper as P

    rng = np.random.default_rng(0)
    X = rng.normal(size=(120, 3))
    y = np.sin(X[:, 0]) + 0.1 * rng.normal(size=120)
    X[:, 2] = np.arange(120)  # a row id the fits see: which structures were labelled
    fitted = []
    fit = K.fit_kernel_model

    def recording_fit(Xc, yc, *args, **kwargs):
        fitted.append(Xc[:, 2].astype(int))
        return fit(Xc, yc, *args, kernels=("rbf",), gammas=[0.3], alphas=[1e-2])

    monkeypatch.setattr(K, "fit_kernel_model", recording_fit)
    rows = KU.active_learning("toy", np.arange(120), X, y, 1, random_encoder, start=20, step=10, max_labels=40,
                              log=lambda *a: None)
    train, test = P.split_80_20(120, 1)
    assert [r["n_labels"] for r in rows] == [20, 30, 40] * len(KU.STRATEGIES)
    assert [r["strategy"] for r in rows[::3]] == list(KU.STRATEGIES)
    starts = [f for f in fitted if len(f) == 20]
    assert len(starts) == len(KU.STRATEGIES) and all(np.array_equal(s, starts[0]) for s in starts)
    for labelled in fitted:
        assert len(set(labelled.tolist())) == len(labelled) and set(labelled.tolist()) <= set(train.tolist())
    for a, b in zip(fitted[:-1], fitted[1:]):
        if len(b) > len(a):  # the next round of the same strategy keeps what was labelled
            assert np.array_equal(b[: len(a)], a)


def test_coverage_curve_uses_the_models_multiplier():
    """With a multiplier, the curve counts |error| <= k(level) · std: a model whose k is the empirical quantile of
    its own z-scores covers each level exactly; the default Gaussian k does not for uniform z."""
    z = np.linspace(0.0, 2.0, 2001)[1:]
    mean, std, y = np.zeros_like(z), np.ones_like(z), z
    curve = KU.coverage_curve(mean, std, y, lambda level: float(np.quantile(z, level)))
    np.testing.assert_allclose(curve, KU.LEVELS, atol=2e-3)
    assert np.abs(KU.coverage_curve(mean, std, y) - KU.LEVELS).max() > 0.1
