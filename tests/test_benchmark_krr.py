"""The benchmarks' kernel-ridge grid search (benchmarks/_paper.py) agrees with scikit-learn."""

import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
import _paper  # noqa: E402

ALPHAS = np.logspace(-6, 0, 4)
GAMMAS = np.logspace(-3, 0, 4)


@pytest.fixture(scope="module")
def xy():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 5)) * [1, 10, 0.1, 1, 3]
    y = np.sin(X[:, 0]) + 0.05 * X[:, 1] + 0.1 * rng.normal(size=60)
    return X, y


def test_kfold_matches_gridsearchcv(xy):
    from sklearn.kernel_ridge import KernelRidge
    from sklearn.model_selection import GridSearchCV, KFold
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    X, y = xy
    best, scores = _paper.krr_grid_search(X, y, cv=5, alphas=ALPHAS, gammas=GAMMAS)
    grid = {"krr__kernel": ["rbf", "laplacian"], "krr__gamma": GAMMAS, "krr__alpha": ALPHAS}
    gs = GridSearchCV(Pipeline([("s", StandardScaler()), ("krr", KernelRidge())]), grid,
                      cv=KFold(5, shuffle=True, random_state=0), scoring="neg_mean_absolute_error").fit(X, y)
    for p, s in zip(gs.cv_results_["params"], gs.cv_results_["mean_test_score"]):
        assert scores[(p["krr__kernel"], float(p["krr__gamma"]), float(p["krr__alpha"]))] == pytest.approx(-s, rel=1e-6)
    assert (best["kernel"], best["gamma"], best["alpha"]) == (
        gs.best_params_["krr__kernel"], gs.best_params_["krr__gamma"], gs.best_params_["krr__alpha"])


def test_loo_matches_explicit_leave_one_out(xy):
    from sklearn.kernel_ridge import KernelRidge
    from sklearn.preprocessing import StandardScaler

    X, y = xy
    X, y = X[:30], y[:30]
    _, scores = _paper.krr_grid_search(X, y, cv="loo", alphas=ALPHAS, gammas=GAMMAS[:2])
    Xs = StandardScaler().fit_transform(X)  # the LOO engine scales once on the whole training split
    for kernel in ("rbf", "laplacian"):
        for gamma in GAMMAS[:2]:
            for alpha in ALPHAS:
                errs = []
                for i in range(len(y)):
                    m = np.arange(len(y)) != i
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        model = KernelRidge(kernel=kernel, gamma=gamma, alpha=alpha).fit(Xs[m], y[m])
                    errs.append(abs(y[i] - model.predict(Xs[i : i + 1])[0]))
                assert scores[(kernel, float(gamma), float(alpha))] == pytest.approx(np.mean(errs), rel=1e-5)


def test_layer_weighted_evaluation_drops_noise_and_is_cached(tmp_path, monkeypatch):
    """paper_krr's layer-weighted rows: two pooling statistics × three 'layers' of 4 columns, the label reads layer 0
    of both statistics only. Each (statistic, layer) block gets its weight; the noise blocks must be weighted down, the test error must not exceed the equal-weight fit's, and a
    second call must come from the cache with the same numbers."""
    monkeypatch.setattr(_paper, "CACHE", tmp_path)
    rng = np.random.default_rng(2)
    X = rng.normal(size=(160, 24))
    y = np.sin(X[:, 0]) + 0.5 * X[:, 12] + 0.05 * rng.normal(size=160)  # layer 0 of both statistics
    train, test = _paper.split_80_20(len(y))
    equal = _paper.krr_evaluate(X, y, train, test)
    r = _paper.krr_evaluate_layer_weighted(X, y, train, test, n_layers=3, width=4)
    w = r["layer_weights"]  # blocks [mean 0, 1, 2, max 0, 1, 2]: one weight per (statistic, layer)
    assert len(w) == 6 and min(w[0], w[3]) > max(w[1], w[2], w[4], w[5]), w
    assert r["cv_mae"] <= r["cv_mae_equal_weights"] == pytest.approx(equal["cv_mae"])
    assert r["test_mae"] < equal["test_mae"] and not r["cached"]
    again = _paper.krr_evaluate_layer_weighted(X, y, train, test, n_layers=3, width=4)
    assert again["cached"] and again["test_mae"] == r["test_mae"] and again["layer_weights"] == r["layer_weights"]
    # handing over krr_evaluate's equal-weight search (paper_krr does, so it runs once) changes nothing
    monkeypatch.setattr(_paper, "CACHE", tmp_path / "fresh")
    handed = _paper.krr_evaluate_layer_weighted(X, y, train, test, n_layers=3, width=4, equal=equal)
    assert not handed["cached"] and handed["test_mae"] == r["test_mae"] and handed["layer_weights"] == r["layer_weights"]
    with pytest.raises(ValueError, match="blocks"):
        _paper.krr_evaluate_layer_weighted(X[:, :23], y, train, test, n_layers=3, width=4)
