"""Self-supervised objectives: atom masking, NT-Xent, predictive/contrastive steps and their gradients."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch_geometric.data import Batch

from ase_negnn.elements import N_GROUP_CLASSES, N_PERIOD_CLASSES, element_features
from ase_negnn.graph import CrystalGraphConverter
from ase_negnn.pretrained import random_encoder
from ase_negnn.ssl import SSLPretrainer, nt_xent, sample_atom_mask


@pytest.fixture(scope="module")
def graphs(mp_structures):
    conv = CrystalGraphConverter()
    return [conv(a) for a in mp_structures[:16]]


@pytest.fixture
def batch(graphs):
    return Batch.from_data_list(graphs)


class FixedOutput(torch.nn.Module):
    """A stand-in head returning fixed logits."""

    def __init__(self, out: torch.Tensor):
        super().__init__()
        self.out = out

    def forward(self, h):
        assert h.shape[0] == self.out.shape[0]
        return self.out


def f(t: torch.Tensor) -> float:
    return float(t.detach())


def fresh_module(**kwargs) -> SSLPretrainer:
    torch.manual_seed(0)
    return SSLPretrainer(random_encoder(2, n_layers=2, width=16), **kwargs).train()


# -- masking -----------------------------------------------------------------------------------------------------
def test_mask_counts_per_graph(batch):
    gen = torch.Generator().manual_seed(0)
    mask = sample_atom_mask(batch.batch, 0.15, gen)
    assert mask.dtype == torch.bool and mask.shape == (batch.num_nodes,)
    counts = torch.bincount(batch.batch).tolist()
    masked = torch.bincount(batch.batch[mask], minlength=batch.num_graphs).tolist()
    assert masked == [min(int(n * 0.15) + 1, n) for n in counts]


def test_mask_counts_many_sizes():
    """Synthetic batch with every graph size 1…120 (also sizes where n·0.15 is an integer: 20, 40, …)."""
    sizes = torch.arange(1, 121)
    batch_vec = torch.repeat_interleave(torch.arange(len(sizes)), sizes)
    for rate in (0.15, 0.3):
        mask = sample_atom_mask(batch_vec, rate, torch.Generator().manual_seed(1))
        masked = torch.bincount(batch_vec[mask], minlength=len(sizes)).tolist()
        assert masked == [min(int(n * rate) + 1, n) for n in sizes.tolist()]


def test_mask_is_seeded_and_random(batch):
    a = sample_atom_mask(batch.batch, 0.15, torch.Generator().manual_seed(5))
    b = sample_atom_mask(batch.batch, 0.15, torch.Generator().manual_seed(5))
    c = sample_atom_mask(batch.batch, 0.15, torch.Generator().manual_seed(6))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_mask_covers_every_atom_position():
    """Over many draws every atom of a 10-atom graph gets masked (no position is favoured or excluded)."""
    batch_vec = torch.zeros(10, dtype=torch.long)
    gen = torch.Generator().manual_seed(0)
    hits = sum(sample_atom_mask(batch_vec, 0.15, gen).long() for _ in range(400))
    assert int(hits.sum()) == 400 * 2
    assert hits.min() > 40 and hits.max() < 120  # expectation 80 each


# -- NT-Xent -----------------------------------------------------------------------------------------------------
def test_nt_xent_matches_a_direct_implementation():
    """Against the SimCLR definition written out pair by pair (cosine similarity, temperature, 2n−1 negatives)."""
    torch.manual_seed(0)
    z1, z2, t = torch.randn(5, 8), torch.randn(5, 8), 0.3
    loss, acc = nt_xent(z1, z2, t)
    z = torch.nn.functional.normalize(torch.cat([z1, z2]), dim=-1)
    n = len(z1)
    terms, hits = [], 0
    for i in range(2 * n):
        j = (i + n) % (2 * n)
        sims = {k: float(z[i] @ z[k]) / t for k in range(2 * n) if k != i}
        terms.append(-sims[j] + np.log(sum(np.exp(v) for v in sims.values())))
        hits += max(sims, key=sims.get) == j
    assert float(loss) == pytest.approx(float(np.mean(terms)), rel=1e-5)
    assert float(acc) == pytest.approx(hits / (2 * n))
    same, acc_same = nt_xent(z1, z1.clone(), t)
    assert acc_same == 1.0 and same < loss  # identical views: every positive found, lower loss


# -- steps -------------------------------------------------------------------------------------------------------
def _check_metrics(metrics, n, batch):
    assert n == batch.num_graphs
    for key, value in metrics.items():
        assert torch.isfinite(value), key
        if key.startswith("acc"):
            assert 0.0 <= f(value) <= 1.0, key


def test_predictive_step(batch):
    module = fresh_module(objective="predictive")
    metrics, n = module.step(batch, torch.Generator().manual_seed(0))
    _check_metrics(metrics, n, batch)
    assert {"loss", "loss_group", "loss_period", "acc_group", "acc_period", "loss_edge", "acc_edge"} <= set(metrics)
    assert module.atom_head.out_features == N_GROUP_CLASSES + N_PERIOD_CLASSES
    assert module.edge_head.out_features == module.encoder.expansion.n_features == 41
    total = metrics["loss_group"] + metrics["loss_period"] + metrics["loss_edge"]
    np.testing.assert_allclose(f(metrics["loss"]), f(total), rtol=1e-6)


def test_predictive_without_edges(batch):
    metrics, _ = fresh_module(mask_edges=False).step(batch, torch.Generator().manual_seed(0))
    assert "loss_edge" not in metrics
    np.testing.assert_allclose(f(metrics["loss"]), f(metrics["loss_group"] + metrics["loss_period"]), rtol=1e-6)


def test_contrastive_step(batch):
    module = fresh_module(objective="contrastive")
    metrics, n = module.step(batch, torch.Generator().manual_seed(0))
    _check_metrics(metrics, n, batch)
    assert set(metrics) == {"loss", "acc_contrastive"}
    # NT-Xent over 2·16 views: a random model's loss is near log(2·16 − 1)
    assert 0.5 * np.log(31) < f(metrics["loss"]) < 2.0 * np.log(31)


def test_element_vector_target(batch):
    module = fresh_module(atom_target="element_vector")
    assert module.atom_head.out_features == 92
    metrics, n = module.step(batch, torch.Generator().manual_seed(0))
    _check_metrics(metrics, n, batch)
    assert f(metrics["loss"]) > f(metrics["loss_group"] + metrics["loss_period"] + metrics["loss_edge"])


def test_element_vector_perfect_head_has_zero_loss(batch):
    """A head that outputs ±20 × the masked atoms' own element vectors has (almost) zero loss: the group and
    period blocks it scores by cross-entropy are exactly the one-hot blocks of the table (19 and 7 wide)."""
    module = fresh_module(atom_target="element_vector", mask_edges=False)
    mask = sample_atom_mask(batch.batch, module.hparams.mask_rate, torch.Generator().manual_seed(3))
    table = torch.from_numpy(element_features().copy())
    perfect = 20.0 * (2.0 * table[batch.z[mask]] - 1.0)
    module.atom_head = FixedOutput(perfect)  # the step draws the same mask from the same seed
    metrics, _ = module.step(batch, torch.Generator().manual_seed(3))
    assert f(metrics["acc_group"]) == 1.0 and f(metrics["acc_period"]) == 1.0
    assert f(metrics["loss_group"]) < 1e-6 and f(metrics["loss_period"]) < 1e-6
    assert f(metrics["loss"]) < 1e-6


@pytest.mark.parametrize("objective", ["predictive", "contrastive"])
def test_backward_reaches_encoder(batch, objective):
    module = fresh_module(objective=objective)
    metrics, _ = module.step(batch, torch.Generator().manual_seed(0))
    metrics["loss"].backward()
    enc = module.encoder
    for name in ("node_embedding.weight", "edge_embedding.weight", "convs.0.lin_f.weight", "convs.1.lin_s.weight"):
        grad = enc.get_parameter(name).grad
        assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0, name


def test_masking_all_atoms_zeroes_their_input(batch):
    enc = random_encoder(2, n_layers=2, width=16)
    all_masked = torch.ones(batch.num_nodes, dtype=torch.bool)
    with torch.no_grad():
        layer0 = enc(batch, node_mask=all_masked)[0]
        unmasked = enc(batch)[0]
    np.testing.assert_allclose(layer0.numpy(), enc.node_embedding.bias.detach().expand_as(layer0).numpy(), atol=1e-7)
    assert not torch.allclose(unmasked, layer0)
    # masking some atoms changes exactly those rows of layer 0
    some = sample_atom_mask(batch.batch, 0.15, torch.Generator().manual_seed(0))
    with torch.no_grad():
        partial = enc(batch, node_mask=some)[0]
    assert torch.equal(partial[~some], unmasked[~some])
    assert torch.equal(partial[some], layer0[some])


def test_edge_mask_zeroes_distance_features(batch):
    enc = random_encoder(2, n_layers=1, width=8)
    edge_mask = torch.ones(batch.edge_index.shape[1], dtype=torch.bool)
    with torch.no_grad():
        masked = enc(batch, edge_mask=edge_mask)[1]
        # every edge then carries only the edge-embedding bias: moving atoms changes nothing while the graph keeps
        # the same edges (those of weight > 0 in the smooth graph; the graph would be rebuilt otherwise)
        moved = batch.clone()
        moved.pos = moved.pos + 1e-3 * torch.randn_like(moved.pos, generator=torch.Generator().manual_seed(3))
        positive = [enc.graph_weights(b, enc.edge_distances(b)) > 0 for b in (batch, moved)]
        assert torch.equal(*positive) and not positive[0].all()  # zero-weight edges present, none flipped
        np.testing.assert_allclose(enc(moved, edge_mask=edge_mask)[1].numpy(), masked.numpy(), atol=1e-6)
        assert not torch.allclose(enc(moved)[1], enc(batch)[1])


def test_validation_step_is_reproducible(batch):
    """Validation masks come from a seed, so two evaluations of the same model agree exactly."""
    module = fresh_module().eval()
    with torch.no_grad():
        a, _ = module.step(batch, torch.Generator().manual_seed(module.hparams.val_seed))
        b, _ = module.step(batch, torch.Generator().manual_seed(module.hparams.val_seed))
    for key in a:
        assert torch.equal(a[key], b[key]), key


@pytest.mark.parametrize(
    "kwargs, message",
    [({"objective": "generative"}, "objective"), ({"atom_target": "mass"}, "atom_target"),
     ({"mask_rate": 0.0}, "mask_rate"), ({"mask_rate": 1.0}, "mask_rate"), ({"edge_drop_rate": 1.0}, "edge_drop_rate")],
)
def test_bad_settings(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SSLPretrainer(random_encoder(0, n_layers=1, width=4), **kwargs)


def test_optimizer_schedule():
    """The learning rate follows a cosine from lr to 0 over max_epochs, one step per epoch."""
    module = fresh_module(max_epochs=5, lr=0.01)
    conf = module.configure_optimizers()
    opt, sched = conf["optimizer"], conf["lr_scheduler"]["scheduler"]
    assert conf["lr_scheduler"]["interval"] == "epoch"
    seen = []
    for _ in range(5):
        seen.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    np.testing.assert_allclose(seen, [0.01 * (1 + np.cos(np.pi * e / 5)) / 2 for e in range(5)], rtol=1e-9)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.0, abs=1e-12)
    assert isinstance(fresh_module().configure_optimizers(), torch.optim.Adam)
    assert module.hparams["encoder_args"]["n_layers"] == 2
