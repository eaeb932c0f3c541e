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


def test_factorised_weighted_messages_equal_propagate():
    torch.manual_seed(1)
    conv = WeightedCGConv(5, dim=4, aggr="add").double()
    x = torch.randn(12, 5, dtype=torch.float64)
    edge_index = torch.randint(0, 12, (2, 40))
    e, w = torch.randn(40, 4, dtype=torch.float64), torch.rand(40, dtype=torch.float64)
    slow = conv.propagate(edge_index, x=(x, x), edge_attr=e, edge_weight=w)
    torch.testing.assert_close(conv._factorised((x, x), edge_index, e, w), slow, rtol=0, atol=1e-12)


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
