"""Element features: the CGCNN 92-dimensional encoding and group/period labels for self-supervision.

The table ``data/cgcnn_atom_init.json`` is bundled unchanged from CGCNN (Xie & Grossman, Phys. Rev. Lett.
120, 145301 (2018), MIT licence), the same file the SSAR authors (Kong et al. 2024) use, rather than recomputed
from pymatgen, so features match the authors' checkpoints bit for bit. It covers Z = 1…100. Its layout is
one-hot blocks; the first two are the group (columns 0–18: 0 = f-block, 1…18 = group) and the period
(columns 19–25: period 1…7). The SSL labels are read from the table itself, so they agree with the features
by construction. (pymatgen puts La–Yb and Ac–Fm in group 3; the table gives them the f-block class 0 and
keeps Lu in group 3.)
"""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources

import numpy as np

__all__ = [
    "CGCNN_CITATION",
    "GROUP_SLICE",
    "PERIOD_SLICE",
    "MAX_Z",
    "N_GROUP_CLASSES",
    "N_PERIOD_CLASSES",
    "check_numbers",
    "element_features",
    "group_labels",
    "period_labels",
]

CGCNN_CITATION = (
    "T. Xie and J. C. Grossman, Crystal Graph Convolutional Neural Networks for an Accurate and "
    "Interpretable Prediction of Material Properties, Phys. Rev. Lett. 120, 145301 (2018)"
)

#: Largest atomic number in the bundled table.
MAX_Z = 100
#: Group classes: 0 = f-block (lanthanides/actinides except those CGCNN puts in group 3), 1…18.
N_GROUP_CLASSES = 19
#: Period classes: 0…6 for periods 1…7.
N_PERIOD_CLASSES = 7

#: Columns of the group and period one-hot blocks in the 92-dim vector.
GROUP_SLICE = slice(0, 19)
PERIOD_SLICE = slice(19, 26)


@lru_cache(maxsize=1)
def element_features() -> np.ndarray:
    """Return the CGCNN element-feature table.

    Returns
    -------
    numpy.ndarray
        Array of shape ``(MAX_Z + 1, 92)``, float32; row ``Z`` holds element ``Z``'s features and row 0
        is all zeros (it is also the "masked atom" vector used in self-supervised pretraining).
    """
    text = resources.files("ase_negnn").joinpath("data/cgcnn_atom_init.json").read_text()
    table = json.loads(text)
    feats = np.zeros((MAX_Z + 1, 92), dtype=np.float32)
    for key, vec in table.items():
        feats[int(key)] = vec
    feats.setflags(write=False)
    return feats


def _block_labels(block: slice) -> np.ndarray:
    """Index of the set bit of one one-hot block of the table, per Z (row 0, no element, gets -1)."""
    labels = np.argmax(element_features()[:, block], axis=1).astype(np.int64)
    labels[0] = -1
    labels.setflags(write=False)
    return labels


@lru_cache(maxsize=1)
def group_labels() -> np.ndarray:
    """Group class (0 = f-block, 1…18) per atomic number, shape ``(MAX_Z + 1,)``; entry 0 is -1."""
    return _block_labels(GROUP_SLICE)


@lru_cache(maxsize=1)
def period_labels() -> np.ndarray:
    """Period class (period − 1, so 0…6) per atomic number, shape ``(MAX_Z + 1,)``; entry 0 is -1."""
    return _block_labels(PERIOD_SLICE)


def check_numbers(numbers) -> np.ndarray:
    """Validate atomic numbers against the element table.

    Parameters
    ----------
    numbers : array-like of int
        Atomic numbers.

    Returns
    -------
    numpy.ndarray
        The numbers as int64.

    Raises
    ------
    ValueError
        If any number is outside 1…``MAX_Z``; the message names the offending values.
    """
    z = np.asarray(numbers)
    if z.size and not np.issubdtype(z.dtype, np.integer):
        raise ValueError(f"atomic numbers must be integers, got dtype {z.dtype}")
    z = z.astype(np.int64)
    bad = np.unique(z[(z < 1) | (z > MAX_Z)])
    if bad.size:
        raise ValueError(
            f"unsupported atomic number(s) {bad.tolist()}: the CGCNN element table covers Z = 1…{MAX_Z}"
        )
    return z
