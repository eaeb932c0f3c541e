"""SSAR/SSMR descriptors (dscribe-style checks) and the scikit-learn / matminer adapters."""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms

from ase_negnn.descriptor import SSAR, SSMR, parse_layers

from conftest import rel_close


@pytest.fixture(scope="module")
def rattled_si(si) -> Atoms:
    atoms = si.copy()
    atoms.rattle(0.08, seed=11)
    return atoms


@pytest.fixture(scope="module")
def rattled_nacl(nacl) -> Atoms:
    atoms = nacl.repeat((1, 2, 1))
    atoms.rattle(0.08, seed=12)
    return atoms


# -- layer selection ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "layers, expected",
    [("3", (3,)), ("012", (0, 1, 2)), ("0-5", (0, 1, 2, 3, 4, 5)), (" 2 - 4 ", (2, 3, 4)), ("0,2,5", (0, 2, 5)),
     ("all", (0, 1, 2, 3, 4, 5)), ("ALL", (0, 1, 2, 3, 4, 5)), (2, (2,)), (np.int64(4), (4,)), ([0, 1], (0, 1)),
     ((5, 0), (5, 0))],
)
def test_parse_layers(layers, expected):
    assert parse_layers(layers, 5) == expected


@pytest.mark.parametrize(
    "layers, message",
    [("6", "outside 0…5"), (7, "outside 0…5"), ([-1], "outside"), ("5-2", "empty"), ("abc", "cannot parse"),
     ("0,0", "repeated"), ("011", "repeated"), ([], "no layers"), (1.5, "must be an int"), ("0-9", "outside")],
)
def test_parse_layers_errors(layers, message):
    with pytest.raises(ValueError, match=message):
        parse_layers(layers, 5)


# -- shapes ------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("layers, n_selected", [("all", None), ("3", 1), ("012", 3), ([1, 4], 2)])
def test_ssar_shape_matches_number_of_features(encoder, triclinic, layers, n_selected):
    n_selected = n_selected or encoder.n_layers + 1
    desc = SSAR(layers=layers, encoder=encoder)
    out = desc.create(triclinic)
    assert desc.get_number_of_features() == encoder.width * n_selected
    assert out.shape == (len(triclinic), desc.get_number_of_features())
    assert out.dtype == np.float64 and np.isfinite(out).all()
    assert len(desc.feature_labels()) == out.shape[1]


def test_ssar_layers_are_slices_of_all(encoder, triclinic):
    full = SSAR(encoder=encoder).create(triclinic)
    w = encoder.width
    np.testing.assert_array_equal(SSAR(layers="3", encoder=encoder).create(triclinic), full[:, 3 * w : 4 * w])
    np.testing.assert_array_equal(SSAR(layers=[4, 0], encoder=encoder).create(triclinic),
                                  np.hstack([full[:, 4 * w : 5 * w], full[:, :w]]))


def test_ssmr_is_pooled_ssar(encoder, mp_structures):
    structures = mp_structures[:6]
    per_atom = SSAR(layers="012", encoder=encoder).create(structures)
    mean = SSMR(layers="012", encoder=encoder, pooling="mean", batch_size=4).create(structures)
    total = SSMR(layers="012", encoder=encoder, pooling="sum", batch_size=4).create(structures)
    assert mean.shape == (6, 3 * encoder.width)
    for i, a in enumerate(per_atom):
        assert a.shape == (len(structures[i]), 3 * encoder.width)
        rel_close(mean[i], a.mean(axis=0))
        rel_close(total[i], a.sum(axis=0))


def test_float32_output(encoder, si):
    out = SSMR(encoder=encoder, dtype="float32").create(si)
    assert out.dtype == np.float32 and out.shape == ((encoder.n_layers + 1) * encoder.width,)


@pytest.mark.parametrize("kwargs, message", [({"pooling": "median"}, "pooling"), ({"dtype": "float16"}, "dtype"),
                                             ({"batch_size": 0}, "batch_size")])
def test_bad_descriptor_settings(encoder, kwargs, message):
    with pytest.raises(ValueError, match=message):
        SSMR(encoder=encoder, **kwargs)


# -- invariances -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["rattled_si", "triclinic", "al_slab"])
def test_ssmr_translation_invariance(encoder, request, name):
    atoms = request.getfixturevalue(name)
    desc = SSMR(encoder=encoder)
    ref = desc.create(atoms)
    moved = atoms.copy()
    moved.translate([1.37, -2.11, 0.73])
    rel_close(desc.create(moved), ref)
    if atoms.pbc.all():
        moved.wrap()
        rel_close(desc.create(moved), ref)


@pytest.mark.parametrize("name", ["rattled_si", "triclinic", "al_slab", "h2o"])
def test_ssmr_rotation_invariance(encoder, request, name):
    atoms = request.getfixturevalue(name)
    desc = SSMR(encoder=encoder)
    ref = desc.create(atoms)
    rotated = atoms.copy()
    rotated.rotate(37.0, (1.0, 2.0, 3.0), rotate_cell=True)
    assert not np.allclose(rotated.positions, atoms.positions)
    rel_close(desc.create(rotated), ref)


@pytest.mark.parametrize("name", ["rattled_nacl", "triclinic", "h2o"])
def test_permutation_invariance(encoder, request, name):
    atoms = request.getfixturevalue(name)
    perm = np.random.default_rng(0).permutation(len(atoms))
    assert (perm != np.arange(len(atoms))).any()
    rel_close(SSMR(encoder=encoder).create(atoms[perm]), SSMR(encoder=encoder).create(atoms))
    # per atom: the rows follow the atoms
    rel_close(SSAR(encoder=encoder).create(atoms[perm]), SSAR(encoder=encoder).create(atoms)[perm])


@pytest.mark.parametrize("name", ["rattled_si", "rattled_nacl", "triclinic"])
def test_supercell_sum_extensive_mean_intensive(encoder, request, name):
    atoms = request.getfixturevalue(name)
    sup = atoms.repeat((2, 1, 1))
    s_sum, s_mean = SSMR(encoder=encoder, pooling="sum"), SSMR(encoder=encoder, pooling="mean")
    rel_close(s_sum.create(sup), 2.0 * s_sum.create(atoms))
    rel_close(s_mean.create(sup), s_mean.create(atoms))


def test_distinguishes_structures(encoder, si, nacl, cu):
    out = SSMR(encoder=encoder).create([si, nacl, cu])
    assert np.linalg.matrix_rank(out) == 3


def test_deterministic(encoder, mp_structures):
    desc = SSMR(encoder=encoder, batch_size=7)
    a = desc.create(mp_structures[:12])
    b = desc.create(mp_structures[:12])
    np.testing.assert_array_equal(a, b)
    # batch composition does not matter either (eval-mode BatchNorm)
    rel_close(SSMR(encoder=encoder, batch_size=1).create(mp_structures[:12]), a)


def test_input_not_modified(encoder, triclinic):
    atoms = triclinic.copy()
    atoms.info["tag"] = "x"
    before = atoms.copy()
    SSAR(encoder=encoder).create(atoms)
    SSMR(encoder=encoder).create([atoms])
    assert atoms == before  # numbers, positions, cell, pbc
    assert atoms.info == before.info and set(atoms.arrays) == set(before.arrays)
    assert atoms.calc is None


def test_list_input(encoder, mp_structures):
    structures = mp_structures[:5]
    ssmr = SSMR(encoder=encoder).create(structures)
    assert ssmr.shape == (5, SSMR(encoder=encoder).get_number_of_features())
    ssar = SSAR(encoder=encoder).create(structures)
    assert isinstance(ssar, list) and [a.shape[0] for a in ssar] == [len(a) for a in structures]
    rel_close(ssmr[2], SSMR(encoder=encoder).create(structures[2]))


def test_pymatgen_structure_input(encoder, rattled_nacl, triclinic):
    from pymatgen.io.ase import AseAtomsAdaptor

    structures = [AseAtomsAdaptor.get_structure(a) for a in (rattled_nacl, triclinic)]
    desc = SSMR(encoder=encoder)
    rel_close(desc.create(structures), desc.create([rattled_nacl, triclinic]))
    rel_close(desc.create(structures[1]), desc.create(triclinic))


def test_bad_structure_in_list_names_index(encoder, si, nacl):
    bad = Atoms("Cu2", positions=[[0, 0, 0], [0.01, 0, 0]], cell=[5, 5, 5], pbc=True)
    with pytest.raises(ValueError, match=r"structure 2: .*overlap"):
        SSMR(encoder=encoder).create([si, nacl, bad])
    with pytest.raises(ValueError, match="structure 1: empty structure"):
        SSAR(encoder=encoder).create([si, Atoms()])
    with pytest.raises(ValueError, match="no structures given"):
        SSMR(encoder=encoder).create([])


def test_model_from_directory(encoder_dir, small_encoder, si):
    """A saved encoder directory gives the same descriptor as the in-memory encoder."""
    rel_close(SSMR(encoder=str(encoder_dir)).create(si), SSMR(encoder=small_encoder).create(si))


# -- scikit-learn ------------------------------------------------------------------------------------------------
def test_sklearn_transformer_clone_and_params(encoder_dir):
    from sklearn.base import clone

    from ase_negnn.adapters import SSMRTransformer

    t = SSMRTransformer(layers="0-2", encoder=str(encoder_dir), pooling="sum")
    params = t.get_params()
    assert params == {"layers": "0-2", "encoder": str(encoder_dir), "pooling": "sum", "batch_size": 64,
                      "device": "cpu", "model": None}
    c = clone(t)
    assert c is not t and c.get_params() == params
    c.set_params(pooling="mean")
    assert c.pooling == "mean" and t.pooling == "sum"
    assert not hasattr(c, "descriptor_")  # nothing loaded before fit


def test_sklearn_transformer_not_fitted(encoder_dir, si):
    from sklearn.exceptions import NotFittedError

    from ase_negnn.adapters import SSMRTransformer

    with pytest.raises(NotFittedError):
        SSMRTransformer(encoder=str(encoder_dir)).transform([si])


def test_sklearn_pipeline_kernel_ridge(encoder_dir, mp_structures):
    from sklearn.kernel_ridge import KernelRidge
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    from ase_negnn.adapters import SSMRTransformer

    y = np.array([a.info["formation_energy_per_atom"] for a in mp_structures])
    train, test = mp_structures[:30], mp_structures[30:]
    pipe = Pipeline([("ssmr", SSMRTransformer(layers="all", encoder=str(encoder_dir))), ("scale", StandardScaler()),
                     ("krr", KernelRidge(alpha=1e-3, kernel="rbf", gamma=0.05))])
    pipe.fit(train, y[:30])
    fitted = pipe.predict(train)
    pred = pipe.predict(test)
    assert pred.shape == (10,) and np.isfinite(pred).all()
    # a near-interpolating kernel fit: training error far below the mean predictor's
    assert np.abs(fitted - y[:30]).mean() < 0.25 * np.abs(y[:30] - y[:30].mean()).mean()
    names = pipe.named_steps["ssmr"].get_feature_names_out()
    assert len(names) == pipe.named_steps["ssmr"].n_features_out_ == 3 * 8 and names[0] == "ssmr_mean_L0_0"


# -- matminer-style featurizer -----------------------------------------------------------------------------------
def test_matminer_style_featurizer(encoder_dir, small_encoder, si, nacl):
    from pymatgen.io.ase import AseAtomsAdaptor

    from ase_negnn.adapters import SSMRFeaturizer

    f = SSMRFeaturizer(layers="01", encoder=str(encoder_dir), pooling="sum")
    row = f.featurize(AseAtomsAdaptor.get_structure(si))
    labels = f.feature_labels()
    assert isinstance(row, list) and len(row) == len(labels) == 2 * small_encoder.width
    assert labels[0] == "ssmr_sum_L0_0" and len(set(labels)) == len(labels)
    many = f.featurize_many([si, nacl], pbar=False)
    assert len(many) == 2 and all(len(r) == len(labels) for r in many)
    rel_close(many[0], row)
    cites = f.citations()
    assert len(cites) == 2 and any("Kong" in c for c in cites) and any("Xie" in c for c in cites)
    assert f.fit([si]) is f and f.implementors()
    # errors: NaN row (and the message when asked), instead of an exception
    rows = f.featurize_many([si, Atoms()], ignore_errors=True, pbar=False)
    assert np.isnan(rows[1]).all() and len(rows[1]) == len(labels)
    rows = f.featurize_many([Atoms()], return_errors=True, pbar=False)
    assert "empty structure" in rows[0][-1]


def test_multi_statistic_pooling_matches_numpy_and_is_invariant():
    """'mean+max+min+std' = the per-atom SSAR reduced by numpy, statistic-major; permutation and supercell invariant."""
    from ase.build import bulk

    from ase_negnn.descriptor import SSAR, SSMR, parse_pooling
    from ase_negnn.pretrained import random_encoder

    enc = random_encoder(1, n_layers=2, width=4)
    atoms = bulk("NaCl", "rocksalt", a=5.64, cubic=True)
    atoms.rattle(0.05, seed=0)
    per = SSAR("0-2", enc).create(atoms)
    d = SSMR("0-2", enc, pooling="mean+max+min+std")
    x = d.create(atoms)
    expected = np.concatenate([per.mean(0), per.max(0), per.min(0), per.std(0)])
    np.testing.assert_allclose(x, expected, rtol=1e-5, atol=1e-6)
    assert d.get_number_of_features() == x.size == 4 * 12 and len(d.feature_labels()) == x.size
    assert d.feature_labels()[12] == "max_L0_0"
    shuffled = atoms[[3, 1, 7, 0, 2, 6, 5, 4]]
    np.testing.assert_allclose(d.create(shuffled), x, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(d.create(atoms.repeat((2, 1, 1))), x, rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="pooling must be one of"):
        SSMR("0-2", enc, pooling="mean+median")
    with pytest.raises(ValueError, match="repeated"):
        parse_pooling("max+max")


def test_old_argument_name_model_still_works_with_a_deprecation_warning(encoder_dir, encoder, si):
    """``model=`` (the encoder, before the vocabulary was unified) gives the same descriptor and says what to use."""
    from ase_negnn.adapters import SSMRFeaturizer, SSMRTransformer

    expected = SSMR(encoder=encoder).create(si)
    with pytest.warns(DeprecationWarning, match="use encoder="):
        np.testing.assert_array_equal(SSMR(model=encoder).create(si), expected)
    with pytest.warns(DeprecationWarning, match="use encoder="):
        SSAR(model=encoder)
    with pytest.raises(TypeError, match="both encoder= and"):
        SSMR(encoder=str(encoder_dir), model=encoder)
    with pytest.warns(DeprecationWarning, match="use encoder="):
        t = SSMRTransformer(layers="0-1", model=str(encoder_dir)).fit()
    assert t.descriptor_.encoder.width == 8
    with pytest.warns(DeprecationWarning, match="use encoder="):
        assert SSMRFeaturizer(model=str(encoder_dir)).encoder == str(encoder_dir)
