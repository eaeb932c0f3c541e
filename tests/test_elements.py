"""The CGCNN element table and the group/period labels derived from it."""

from __future__ import annotations

import numpy as np
import pytest

from ase_negnn.elements import (
    MAX_Z,
    N_GROUP_CLASSES,
    N_PERIOD_CLASSES,
    check_numbers,
    element_features,
    group_labels,
    period_labels,
)


def test_table_shape_and_rows():
    feats = element_features()
    assert feats.shape == (MAX_Z + 1, 92) and MAX_Z == 100
    assert feats.dtype == np.float32
    assert (feats[0] == 0).all()  # the "masked atom" vector
    assert (feats[1:].sum(axis=1) >= 6).all()  # every element sets one bit in each of its one-hot blocks
    assert set(np.unique(feats)) <= {0.0, 1.0}
    # CGCNN's blocks: group 19, period 7, electronegativity 10, covalent radius 10, valence electrons 12,
    # first ionisation energy 10, electron affinity 10, block 4, atomic volume 10 (= 92). Each is one-hot, or
    # empty where the property is unknown (e.g. the electronegativity of noble gases).
    sizes = [19, N_PERIOD_CLASSES, 10, 10, 12, 10, 10, 4, 10]
    always_set = [True, True, False, True, True, True, False, True, False]
    assert sum(sizes) == 92
    bounds = np.cumsum([0, *sizes])
    for lo, hi, full in zip(bounds[:-1], bounds[1:], always_set):
        bits = feats[1:, lo:hi].sum(axis=1)
        assert bits.max() == 1, (lo, hi)
        assert (bits.min() == 1) == full, (lo, hi)
    # CGCNN's binned properties leave only a few f-block elements indistinguishable (La/Ce, Sm/Gd, Ho/Er, …)
    assert len({row.tobytes() for row in feats[1:]}) == 92
    assert len({row.tobytes() for row in feats[1:57]}) == 56


def test_labels_are_the_one_hot_blocks():
    """group/period labels are exactly the positions of the bits in the table's first two blocks."""
    feats = element_features()
    z = np.arange(1, MAX_Z + 1)
    np.testing.assert_array_equal(feats[z, group_labels()[z]], 1)
    np.testing.assert_array_equal(feats[z, 19 + period_labels()[z]], 1)
    assert period_labels()[z].max() == N_PERIOD_CLASSES - 1


def test_table_is_read_only():
    with pytest.raises(ValueError, match="read-only"):
        element_features()[1, 0] = 5.0


@pytest.mark.parametrize(
    "symbol, group, period",
    [("H", 1, 1), ("Li", 1, 2), ("O", 16, 2), ("Fe", 8, 4), ("Br", 17, 4), ("Xe", 18, 5), ("Lu", 3, 6),
     ("La", 0, 6), ("Ce", 0, 6), ("U", 0, 7), ("Fm", 0, 7)],
)
def test_group_period_labels(symbol, group, period):
    """Group class 0 = f-block (CGCNN puts La…Yb and Ac…Fm there; Lu is group 3); period class = period − 1."""
    from pymatgen.core import Element

    z = Element(symbol).Z
    assert group_labels()[z] == group
    assert period_labels()[z] == period - 1
    el = Element(symbol)
    assert el.row == period
    assert (el.block == "f") == (group == 0)


def test_labels_match_pymatgen_for_all_elements():
    """Periods match pymatgen's rows everywhere; groups match except pymatgen's f-block (group 3 there, 0 here)."""
    from pymatgen.core import Element

    g, p = group_labels(), period_labels()
    assert g[0] == -1 and p[0] == -1
    assert g[1:].min() >= 0 and g.max() < N_GROUP_CLASSES
    assert p[1:].min() >= 0 and p.max() < N_PERIOD_CLASSES
    for z in range(1, MAX_Z + 1):
        el = Element.from_Z(z)
        assert p[z] == el.row - 1, el.symbol
        assert g[z] == (0 if el.block == "f" else el.group), el.symbol
    assert int((g == 0).sum()) == 26  # 14 lanthanides La…Yb + the 12 actinides Ac…Fm (the table ends at Z = 100)


def test_check_numbers_accepts_valid():
    z = check_numbers([1, 8, 100])
    assert z.dtype == np.int64 and z.tolist() == [1, 8, 100]
    assert check_numbers(np.array([], dtype=int)).shape == (0,)


@pytest.mark.parametrize(
    "numbers, message",
    [([0, 1], r"\[0\]"), ([101], r"\[101\]"), ([-3, 6, 120], r"\[-3, 120\]"), ([1.0, 2.0], "must be integers")],
)
def test_check_numbers_errors(numbers, message):
    with pytest.raises(ValueError, match=message):
        check_numbers(numbers)
