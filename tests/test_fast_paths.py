"""The performance paths compute the same thing as the plain ones: factorised CGConv and the k-NN pre-filter."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ase.build import bulk
from torch_geometric.nn import CGConv

from ase_negnn.encoder import WeightedCGConv
from ase_negnn.graph import TIE_TOLERANCE, CrystalGraphConverter


@pytest.mark.parametrize("dim", [0, 7])
@pytest.mark.parametrize("batch_norm", [False, True])
def test_factorised_cgconv_equals_pyg_cgconv(dim, batch_norm):
    torch.manual_seed(0)
    ref = CGConv(6, dim=dim, aggr="add", batch_norm=batch_norm).double().eval()
    ours = WeightedCGConv(6, dim=dim, aggr="add", batch_norm=batch_norm).double().eval()
    ours.load_state_dict(ref.state_dict())
    x = torch.randn(20, 6, dtype=torch.float64, requires_grad=True)
    edge_index = torch.randint(0, 20, (2, 90))
    e = torch.randn(90, dim, dtype=torch.float64, requires_grad=True) if dim else None
    a, b = ref(x, edge_index, e), ours(x, edge_index, e)
    torch.testing.assert_close(b, a, rtol=0, atol=1e-12)
    inputs = [x] + ([e] if dim else [])
    ga = torch.autograd.grad(a.square().sum(), inputs)
    gb = torch.autograd.grad(b.square().sum(), inputs)
    for u, v in zip(ga, gb):
        torch.testing.assert_close(v, u, rtol=0, atol=1e-12)


def test_weighted_messages_equal_the_concatenated_cgconv_message():
    """Weighted messages against CGConv's formula written out (concatenated input, one loop over the edges)."""
    torch.manual_seed(1)
    conv = WeightedCGConv(5, dim=4, aggr="add").double()
    x = torch.randn(12, 5, dtype=torch.float64)
    edge_index = torch.randint(0, 12, (2, 40))
    e, w = torch.randn(40, 4, dtype=torch.float64), torch.rand(40, dtype=torch.float64)
    slow = x.clone()
    for k, (j, i) in enumerate(edge_index.T.tolist()):
        z = torch.cat([x[i], x[j], e[k]])
        slow[i] += w[k] * torch.sigmoid(conv.lin_f(z)) * torch.nn.functional.softplus(conv.lin_s(z))
    torch.testing.assert_close(conv(x, edge_index, e, w), slow, rtol=0, atol=1e-12)


@pytest.mark.parametrize("batch_norm", [False, True])
def test_weighted_cgconv_initialises_as_pyg_cgconv(batch_norm):
    """Same seed, same initial parameters and keys as PyG's CGConv (its constructor draws the linears twice): seeded
    training (scripts/train_bundled_models.sh) gives the same model as before the PyG-free rewrite."""
    torch.manual_seed(7)
    ref = CGConv((6, 5), dim=3, aggr="add", batch_norm=batch_norm)
    torch.manual_seed(7)
    ours = WeightedCGConv((6, 5), dim=3, aggr="add", batch_norm=batch_norm)
    a, b = ref.state_dict(), ours.state_dict()
    assert list(a) == list(b)
    for key in a:
        torch.testing.assert_close(b[key], a[key], rtol=0, atol=0)


def test_collated_graphs_equal_pyg_batch():
    """The inference batch (no PyG) holds what PyG's Batch holds for the encoder: offsets, cells, batch vector; the
    encoder gives the same embeddings from both."""
    from torch_geometric.data import Batch

    from ase_negnn.encoder import CGCNNEncoder
    from ase_negnn.graph import collate_graphs

    converter = CrystalGraphConverter()
    structures = [bulk("Si", "diamond", a=5.43), bulk("NaCl", "rocksalt", a=5.64, cubic=True), bulk("Cu", "fcc", a=3.6)]
    ref = Batch.from_data_list([converter(s) for s in structures])
    ours = collate_graphs([converter.graph(s) for s in structures])
    for key in ("z", "pos", "cell", "edge_index", "edge_shift", "batch"):
        torch.testing.assert_close(getattr(ours, key), getattr(ref, key), rtol=0, atol=0)
    assert (ours.num_nodes, ours.num_graphs) == (ref.num_nodes, ref.num_graphs)
    encoder = CGCNNEncoder(n_layers=2, width=8).eval()
    for a, b in zip(encoder(ours), encoder(ref)):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    with pytest.raises(ValueError, match="no graphs"):
        collate_graphs([])


@pytest.mark.parametrize("k", [1, 4, 12])
def test_knn_prefilter_keeps_exactly_the_selection(k):
    """k-NN edges = the all-neighbour list (not pre-filtered) cut at each centre's k-th distance + tolerance."""
    rng = np.random.default_rng(3)
    structures = [bulk("Cu", "fcc", a=3.6).repeat(2), bulk("NaCl", "rocksalt", a=5.64, cubic=True)]  # exact ties
    rattled = bulk("Si", "diamond", a=5.43).repeat((2, 1, 1))
    rattled.positions += rng.normal(scale=0.05, size=rattled.positions.shape)
    structures.append(rattled)
    for atoms in structures:
        full_c, full_n, full_s, full_d = CrystalGraphConverter(6.0, None).neighbors(atoms)
        kth = np.array([np.sort(full_d[full_c == i])[min(k, (full_c == i).sum()) - 1] for i in range(len(atoms))])
        keep = full_d <= kth[full_c] + TIE_TOLERANCE
        c, n, s, d = CrystalGraphConverter(6.0, k, smooth_width=None).neighbors(atoms)
        np.testing.assert_array_equal(c, full_c[keep])
        np.testing.assert_array_equal(n, full_n[keep])
        np.testing.assert_array_equal(s, full_s[keep])
        np.testing.assert_array_equal(d, full_d[keep])


@pytest.mark.parametrize("smooth_width", [None, 0.25])
def test_short_first_search_gives_the_edges_of_the_cutoff_search(monkeypatch, mp_structures, smooth_width):
    """The k-nearest graph searches FIRST_SEARCH_RADIUS first and repeats at the cutoff only when an atom lacks k
    neighbours in it or could keep an edge beyond it: the edges (and their order) must equal a search at the cutoff,
    for structures that take either path (dense MP crystals; a molecule, a sparse gas, a long-range 13th neighbour).
    Fails if the acceptance test ignores the margin (the smooth graph's 1.5 δ) or the atoms with fewer than k."""
    from ase import Atoms

    from ase_negnn import graph as G

    rng = np.random.default_rng(5)
    rattled = bulk("Si", "diamond", a=5.43).repeat(2)
    rattled.positions += rng.normal(scale=0.02, size=rattled.positions.shape)
    sparse = Atoms("Ar2", positions=[[0, 0, 0], [2.5, 0, 0]], cell=[12, 12, 12], pbc=True)
    # body-centred orthorhombic: 8 neighbours at 4.69 Å, 2 + 2 at 5.30 / 5.35 (the 12th inside 5.5 Å) and 2 at 5.60,
    # which the smooth graph keeps (within 1.5 δ of the 12th): only the margin sends it to the cutoff search
    big_cell = Atoms("Fe2", scaled_positions=[[0, 0, 0], [0.5, 0.5, 0.5]], cell=[5.3, 5.35, 5.6], pbc=True)
    structures = list(mp_structures) + [rattled, Atoms("H2O", positions=[[0, 0, 0], [0.96, 0, 0], [-0.24, 0.93, 0]]),
                                        sparse, big_cell]
    converter = CrystalGraphConverter(smooth_width=smooth_width)
    calls = []
    search = CrystalGraphConverter._search

    def counted(atoms, cell, pbc, radius):
        calls.append(radius)
        return search(atoms, cell, pbc, radius)

    monkeypatch.setattr(CrystalGraphConverter, "_search", staticmethod(counted))
    short = [converter.neighbors(a) for a in structures]
    n_fallback = sum(r == converter.cutoff for r in calls)
    assert 0 < n_fallback < len(structures) and len(calls) == len(structures) + n_fallback
    monkeypatch.setattr(G, "FIRST_SEARCH_RADIUS", 100.0)
    for atoms, got in zip(structures, short):
        for a, b in zip(got, converter.neighbors(atoms)):
            np.testing.assert_array_equal(a, b)
