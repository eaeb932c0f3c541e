"""Shared fixtures: small structures named by formula, the real-structure fixture file, tiny encoders.

Everything here is offline: structures come from ``ase.build`` or ``tests/data`` (see its README), encoders are
random (seeded) unless the package already bundles a trained ``default`` one.
Session-scoped structures are shared between tests: copy them (``atoms.copy()``) before changing them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.build import bulk, fcc111, molecule

torch.set_num_threads(1)

DATA_DIR = Path(__file__).resolve().parent / "data"
MP_SMALL = DATA_DIR / "mp_small.extxyz"
CIF_DIR = DATA_DIR / "cifs"


def rel_close(actual, desired, rtol: float = 1e-5) -> None:
    """Assert ``actual ≈ desired`` to ``rtol`` relative to the largest magnitude (so near-zero entries pass)."""
    actual, desired = np.asarray(actual), np.asarray(desired)
    scale = max(float(np.abs(desired).max(initial=0.0)), 1e-12)
    np.testing.assert_allclose(actual, desired, rtol=rtol, atol=rtol * scale)


# -- structures ---------------------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def si() -> Atoms:
    """Si diamond, 2-atom primitive cell (cell vectors 3.84 Å, shorter than the 8 Å cutoff)."""
    return bulk("Si", "diamond", a=5.43)


@pytest.fixture(scope="session")
def nacl() -> Atoms:
    """NaCl rocksalt primitive cell."""
    return bulk("NaCl", "rocksalt", a=5.64)


@pytest.fixture(scope="session")
def cu() -> Atoms:
    """Cu fcc, 1-atom primitive cell: every neighbour is a periodic image of the atom itself."""
    return bulk("Cu", "fcc", a=3.61)


@pytest.fixture(scope="session")
def h2o() -> Atoms:
    """Water molecule: no cell, pbc False."""
    return molecule("H2O")


@pytest.fixture(scope="session")
def al_slab() -> Atoms:
    """Al(111) slab, 2×2×3, 6 Å vacuum each side: pbc (True, True, False)."""
    return fcc111("Al", (2, 2, 3), vacuum=6.0)


@pytest.fixture(scope="session")
def triclinic() -> Atoms:
    """A seeded random triclinic cell with 4 atoms of 3 elements (no symmetry, no ties)."""
    rng = np.random.default_rng(7)
    cell = np.diag([4.6, 5.1, 5.7]) + rng.uniform(-1.2, 1.2, (3, 3))
    frac = np.array([[0.02, 0.05, 0.11], [0.48, 0.41, 0.09], [0.13, 0.62, 0.55], [0.71, 0.19, 0.73]])
    atoms = Atoms("NaClOMg", scaled_positions=frac, cell=cell, pbc=True)
    assert min(atoms.cell.angles()) < 85 or max(atoms.cell.angles()) > 95  # really non-orthogonal
    return atoms


@pytest.fixture(scope="session")
def cu108() -> Atoms:
    """Rattled 3×3×3 conventional Cu fcc supercell: 108 atoms."""
    atoms = bulk("Cu", "fcc", a=3.61, cubic=True).repeat((3, 3, 3))
    atoms.rattle(0.05, seed=3)
    return atoms


@pytest.fixture(scope="session")
def mp_structures() -> list[Atoms]:
    """The 40 Materials Project structures of ``tests/data/mp_small.extxyz``."""
    import ase.io

    return ase.io.read(MP_SMALL, index=":")


# -- encoders -----------------------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def random_encoder():
    """The paper's architecture (5 layers, width 64) with seeded random weights, in eval mode."""
    from ase_negnn.pretrained import random_encoder as make

    return make(0)


@pytest.fixture(scope="session")
def encoder(random_encoder):
    """The bundled ``default`` encoder if it is installed, else the random one (same architecture)."""
    from ase_negnn.pretrained import available_encoders, load_encoder

    if "default" in available_encoders():
        return load_encoder("default")
    return random_encoder


@pytest.fixture(scope="session")
def small_encoder():
    """A tiny random encoder (2 layers, width 8) for fast training-mode tests."""
    from ase_negnn.pretrained import random_encoder as make

    return make(1, n_layers=2, width=8)


@pytest.fixture(scope="session")
def encoder_dir(tmp_path_factory, small_encoder):
    """``small_encoder`` saved to a directory (matgl layout), for the path-based APIs."""
    path = tmp_path_factory.mktemp("encoder") / "small"
    small_encoder.save(path)
    return path


# -- trained models -----------------------------------------------------------------------------------------------
SI_SMALL = DATA_DIR / "si_mlearn_small.extxyz"


@pytest.fixture(scope="session")
def si_potential_dir(tmp_path_factory, encoder_dir):
    """A tiny NEGNN potential trained in the session on the mlearn-Si fixture (10 epochs, ~10 s)."""
    from ase_negnn.training import train

    out = tmp_path_factory.mktemp("si-potential")
    train(SI_SMALL, "energy", task="potential", out=out, encoder=str(encoder_dir), cutoff=4.5, n_conv=2, width=24,
          max_epochs=10, batch_size=4, lr=3e-3, progress=False, plot=False, split="0.8,0.1,0.1")
    return out / "model"


@pytest.fixture(scope="session")
def property_model_dirs(tmp_path_factory, encoder_dir):
    """Untrained but saved property models (graph ``band_gap`` in eV, site ``magmoms`` in μB) for calculator tests."""
    from ase_negnn.models import NEGNN

    root = tmp_path_factory.mktemp("property-models")
    torch.manual_seed(5)
    gap = NEGNN(str(encoder_dir), task="graph", target="band_gap", units="eV", n_conv=1, width=8, hidden=8)
    gap.set_normalization(1.0, 0.5)
    gap.save(root / "gap")
    mag = NEGNN(str(encoder_dir), task="site", target="magmoms", units="μB", n_conv=1, width=8, hidden=8)
    mag.save(root / "mag")
    return {"band_gap": root / "gap", "magmoms": root / "mag"}


@pytest.fixture(scope="session")
def potential64(small_encoder):
    """A random NEGNN potential running the encoder (layers 0–2) on the smooth graph, in float64 (clean FD checks)."""
    from ase_negnn.models import NEGNN

    torch.manual_seed(0)
    model = NEGNN(small_encoder, task="potential", layers="0-2", n_conv=2, width=16, hidden=16, cutoff=4.0)
    model.set_normalization(0.1, 0.5)
    return model.double().eval()
