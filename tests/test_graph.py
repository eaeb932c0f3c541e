"""Crystal-graph construction: neighbour sets against a brute-force reference, edge geometry, input checks."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from ase import Atoms

from ase_negnn.encoder import GaussianExpansion
from ase_negnn.graph import TIE_TOLERANCE, CrystalGraphConverter, GraphSettings, edge_vectors

CUTOFF = 8.0
STRUCTURES = ["cu", "si", "nacl", "al_slab", "h2o", "triclinic", "cu108", "unwrapped"]


def brute_force(atoms: Atoms, cutoff: float) -> dict[tuple[int, int, tuple[int, int, int]], float]:
    """Every (centre, neighbour, shift) with distance < cutoff, by enumerating all image shifts.

    Periodic axis ``a``: shifts ``-n … n`` with ``n = ceil(cutoff·|b_a|) + 1`` (``b_a`` the reciprocal vector,
    no 2π) plus the spread of the fractional coordinates, so positions outside the cell are covered too.
    Non-periodic axes: shift 0 only. The atom itself at zero shift is excluded.
    """
    pbc = np.asarray(atoms.pbc, dtype=bool)
    ranges = []
    for axis in range(3):
        if pbc[axis]:
            b = atoms.cell.reciprocal()[axis]
            frac = atoms.positions @ b
            n = int(np.ceil(cutoff * np.linalg.norm(b))) + 1 + int(np.ceil(np.ptp(frac)))
            ranges.append(range(-n, n + 1))
        else:
            ranges.append(range(1))
    shifts = np.array(list(itertools.product(*ranges)), dtype=float)
    offsets = shifts @ atoms.cell.array
    pos = atoms.positions
    # d[i, j, s] = |r_j + offset_s - r_i|
    d = np.linalg.norm(pos[None, :, None, :] + offsets[None, None, :, :] - pos[:, None, None, :], axis=-1)
    out = {}
    for i, j, s in zip(*np.nonzero(d < cutoff)):
        if i == j and not shifts[s].any():
            continue
        out[(int(i), int(j), tuple(int(v) for v in shifts[s]))] = float(d[i, j, s])
    return out


def edge_set(centers, nbrs, shifts) -> set:
    return set(zip(centers.tolist(), nbrs.tolist(), map(tuple, np.rint(shifts).astype(int).tolist())))


@pytest.fixture
def structure(request, si):
    if request.param == "unwrapped":  # positions far outside the cell: shifts must refer to the given positions
        atoms = si.copy()
        atoms.positions += [[7.3, -11.2, 3.3], [20.0, 1.0, -5.0]]
        return atoms
    return request.getfixturevalue(request.param)


@pytest.mark.parametrize("structure", STRUCTURES, indirect=True)
def test_neighbors_equal_brute_force(structure):
    centers, nbrs, shifts, dists = CrystalGraphConverter(CUTOFF, max_neighbors=None).neighbors(structure)
    ref = brute_force(structure, CUTOFF)
    got = edge_set(centers, nbrs, shifts)
    assert len(got) == len(centers)  # no duplicate edges
    assert got == set(ref), f"missing {sorted(set(ref) - got)[:5]}, extra {sorted(got - set(ref))[:5]}"
    ref_d = np.array([ref[k] for k in zip(centers.tolist(), nbrs.tolist(), map(tuple, shifts.astype(int).tolist()))])
    np.testing.assert_allclose(dists, ref_d, rtol=0, atol=1e-8)


def test_tiny_cell_has_self_images(cu):
    """One Cu atom, cell vectors 2.55 Å: all neighbours are images of itself; 12 nearest at a/√2."""
    centers, nbrs, shifts, dists = CrystalGraphConverter(CUTOFF, max_neighbors=None).neighbors(cu)
    assert len(centers) > 100
    assert (centers == 0).all() and (nbrs == 0).all()
    assert np.abs(shifts).sum(axis=1).min() >= 1  # never the atom itself at zero shift
    np.testing.assert_allclose(np.sort(dists)[:12], 3.61 / np.sqrt(2), rtol=1e-10)


def test_non_periodic_axes_get_no_shift(al_slab, h2o):
    conv = CrystalGraphConverter(CUTOFF, max_neighbors=None)
    _, _, shifts, _ = conv.neighbors(al_slab)
    assert (shifts[:, 2] == 0).all() and np.abs(shifts[:, :2]).max() >= 1
    _, _, shifts, dists = conv.neighbors(h2o)
    assert (shifts == 0).all() and len(dists) == 6  # 3 atoms, all pairs, both directions


@pytest.mark.parametrize("structure", ["cu", "si", "al_slab", "triclinic", "cu108"], indirect=True)
def test_max_neighbors_keeps_nearest_plus_ties(structure):
    k = 12
    full = CrystalGraphConverter(CUTOFF, max_neighbors=None).neighbors(structure)
    kept = CrystalGraphConverter(CUTOFF, max_neighbors=k, smooth_width=None).neighbors(structure)
    full_edges = dict(zip(zip(full[0].tolist(), full[1].tolist(), map(tuple, full[2].astype(int).tolist())), full[3]))
    kept_edges = edge_set(*kept[:3])
    assert kept_edges <= set(full_edges)
    for c in range(len(structure)):
        all_d = np.sort([d for key, d in full_edges.items() if key[0] == c])
        in_d = np.array([d for key, d in full_edges.items() if key[0] == c and key in kept_edges])
        out_d = np.array([d for key, d in full_edges.items() if key[0] == c and key not in kept_edges])
        assert len(in_d) >= min(k, len(all_d))
        if len(out_d):
            assert in_d.max() <= out_d.min()
            # exactly the k nearest plus those tied with the k-th
            assert len(in_d) == int((all_d <= all_d[k - 1] + TIE_TOLERANCE).sum())


def test_max_neighbors_ties_are_kept(cu):
    """fcc: 12 nearest at a/√2, then 6 at a — k=13 must keep all 6 tied second neighbours (18 edges)."""
    centers, _, _, dists = CrystalGraphConverter(CUTOFF, max_neighbors=13, smooth_width=None).neighbors(cu)
    assert len(centers) == 18
    np.testing.assert_allclose(np.sort(dists)[12:], 3.61, rtol=1e-10)


@pytest.mark.parametrize("structure", ["cu", "al_slab", "triclinic", "h2o"], indirect=True)
def test_edge_vectors_reproduce_distances(structure):
    conv = CrystalGraphConverter(CUTOFF, max_neighbors=None)
    _, _, _, dists = conv.neighbors(structure)
    graph = conv(structure)
    assert graph.edge_index.shape == (2, len(dists)) and graph.edge_shift.shape == (len(dists), 3)
    np.testing.assert_allclose(edge_vectors(graph).norm(dim=-1).numpy(), dists, rtol=1e-5, atol=1e-5)


def test_edge_vectors_batched_and_differentiable(si, triclinic):
    from torch_geometric.data import Batch

    conv = CrystalGraphConverter(CUTOFF)
    graphs = [conv(si), conv(triclinic)]
    batch = Batch.from_data_list(graphs)
    lengths = edge_vectors(batch).norm(dim=-1)
    expected = torch.cat([edge_vectors(g).norm(dim=-1) for g in graphs])
    np.testing.assert_allclose(lengths.numpy(), expected.numpy(), rtol=1e-6)
    pos = graphs[1].pos.clone().requires_grad_(True)
    g = graphs[1].clone()
    g.pos = pos
    edge_vectors(g).norm(dim=-1).sum().backward()
    assert pos.grad is not None and torch.isfinite(pos.grad).all()


def test_graph_fields(si):
    g = CrystalGraphConverter()(si)
    assert g.num_nodes == 2 and g.z.tolist() == [14, 14]
    assert g.z.dtype == torch.int64 and g.edge_index.dtype == torch.int64
    assert g.cell.shape == (1, 3, 3)
    np.testing.assert_allclose(g.pos.numpy(), si.positions, atol=1e-6)
    # edge_index[1] is the centre: every atom is a centre of at least 12 edges (max_neighbors default)
    assert torch.bincount(g.edge_index[1], minlength=2).min() >= 12


def test_gaussian_expansion_41_features():
    exp = GaussianExpansion(0.0, 8.0, 0.2)
    assert exp.n_features == 41
    np.testing.assert_allclose(exp.centers.numpy(), np.arange(41) * 0.2, atol=1e-6)
    d = torch.tensor([0.0, 1.03, 4.49, 7.95, 12.0])
    feats = exp(d)
    assert feats.shape == (5, 41)
    assert exp.bin_index(d).tolist() == [0, 5, 22, 40, 40]
    assert feats[:4].argmax(dim=1).tolist() == exp.bin_index(d)[:4].tolist()


def test_pymatgen_structure_input(nacl, triclinic):
    from pymatgen.io.ase import AseAtomsAdaptor

    conv = CrystalGraphConverter()
    for atoms in (nacl, triclinic):
        from_pmg = conv(AseAtomsAdaptor.get_structure(atoms))
        from_ase = conv(atoms)
        assert torch.equal(from_pmg.z, from_ase.z)
        assert torch.equal(from_pmg.edge_index, from_ase.edge_index)
        assert torch.equal(from_pmg.edge_shift, from_ase.edge_shift)
        np.testing.assert_allclose(from_pmg.pos.numpy(), from_ase.pos.numpy(), atol=1e-5)


def _bad_structures():
    nan = Atoms("Cu2", positions=[[0, 0, 0], [np.nan, 0, 0]], cell=[5, 5, 5], pbc=True)
    return [
        pytest.param(Atoms(), "empty structure", id="empty"),
        pytest.param(Atoms(numbers=[0, 14], positions=[[0, 0, 0], [2, 0, 0]]), r"unsupported atomic number\(s\) \[0\]",
                     id="Z=0"),
        pytest.param(Atoms(numbers=[101], positions=[[0, 0, 0]]), r"\[101\].*1…100", id="Z=101"),
        pytest.param(nan, r"non-finite.*\[1\]", id="nan-position"),
        pytest.param(Atoms("Cu", pbc=True), "zero-length cell vector", id="pbc-zero-cell"),
        pytest.param(Atoms("Cu2", positions=[[0, 0, 0], [0.05, 0, 0]], cell=[5, 5, 5], pbc=True),
                     r"atoms 0 and 1 overlap", id="overlap"),
        pytest.param(Atoms("Cu2", positions=[[0, 0, 0], [4.97, 0, 0]], cell=[5, 5, 5], pbc=True),
                     "overlap", id="overlap-through-boundary"),
        pytest.param(Atoms("Cu", cell=[[3, 0, 0], [6, 0, 0], [0, 0, 3]], pbc=True), "linearly dependent",
                     id="flat-cell"),
    ]


@pytest.mark.parametrize("atoms, message", _bad_structures())
def test_bad_input_raises_clear_value_error(atoms, message):
    with pytest.raises(ValueError, match=message):
        CrystalGraphConverter()(atoms)


def test_not_a_structure_raises_type_error():
    with pytest.raises(TypeError, match="expected ase.Atoms"):
        CrystalGraphConverter()("Si")


@pytest.mark.parametrize("kwargs", [{"cutoff": 0}, {"cutoff": float("nan")}, {"max_neighbors": 0}])
def test_bad_settings(kwargs):
    with pytest.raises(ValueError, match="cutoff|max_neighbors"):
        GraphSettings(**kwargs)


@pytest.mark.parametrize("pbc", [False, True])
def test_isolated_atom_has_no_edges_and_finite_descriptor(pbc, random_encoder):
    """Documented result: an atom with nothing inside the cutoff gets no edges, and a finite descriptor equal
    to its element embedding passed through the layers without messages (the same for pbc True/False)."""
    from ase_negnn.descriptor import SSAR

    atoms = Atoms("Ar", positions=[[10.0, 10.0, 10.0]], cell=[20.0, 20.0, 20.0], pbc=pbc)
    graph = CrystalGraphConverter()(atoms)
    assert graph.edge_index.shape == (2, 0) and graph.num_nodes == 1
    ssar = SSAR(encoder=random_encoder).create(atoms)
    assert ssar.shape == (1, 6 * 64) and np.isfinite(ssar).all()
    with torch.no_grad():
        layer0 = random_encoder.node_embedding(random_encoder.element_table[18]).numpy()
    np.testing.assert_allclose(ssar[0, :64], layer0, rtol=1e-6, atol=1e-6)
    other = SSAR(encoder=random_encoder).create(Atoms("Ar", cell=[20.0] * 3, pbc=not pbc))
    np.testing.assert_allclose(ssar, other, rtol=1e-6, atol=1e-6)
