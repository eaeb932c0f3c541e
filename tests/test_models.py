"""NEGNN model: matgl save/load round trip, heads, autograd forces and stress against finite differences."""

from __future__ import annotations

import matgl
import numpy as np
import pytest
import torch
from ase import Atoms
from ase.build import bulk
from torch_geometric.data import Batch

from ase_negnn.models import NEGNN, available_models, cosine_envelope, load_model


@pytest.fixture(scope="module")
def si_rattled() -> Atoms:
    atoms = bulk("Si", "diamond", a=5.43).repeat((2, 1, 1))
    atoms.rattle(0.08, seed=4)
    return atoms


@pytest.fixture(scope="module")
def potential(potential64) -> NEGNN:
    """The shared random float64 potential (conftest), for clean finite differences."""
    return potential64


def _graph64(model: NEGNN, atoms: Atoms):
    g = Batch.from_data_list([model.graph_converter()(atoms)])
    g.pos, g.cell = g.pos.double(), g.cell.double()
    return g


def _energy(model, atoms) -> float:
    return float(model(_graph64(model, atoms), compute_forces=False)["energy"].detach())


@pytest.mark.parametrize("task", ["graph", "site", "potential"])
def test_matgl_load_model_round_trip(task, small_encoder, mp_structures, tmp_path):
    torch.manual_seed(1)
    model = NEGNN(small_encoder, task=task, target="t", units="u", n_conv=1, width=8, hidden=8,
                  pooling="sum" if task == "graph" else "mean")
    model.set_normalization(0.7, 1.9, np.linspace(-1, 1, 101) if task == "potential" else None)
    structures = mp_structures[:6]
    before = model.predict(structures)
    model.save(tmp_path / "m", metadata={"note": "test"})
    loaded = matgl.load_model(tmp_path / "m")
    assert isinstance(loaded, NEGNN)
    assert (loaded.task, loaded.target, loaded.units, loaded.layers) == (task, "t", "u", model.layers)
    after = loaded.predict(structures)
    for b, a in zip(before, after):
        assert b.keys() == a.keys()
        for k in b:
            np.testing.assert_allclose(a[k], b[k], rtol=0, atol=1e-6)
    assert float(loaded.target_std) == pytest.approx(1.9)
    assert load_model(tmp_path / "m").training is False


def test_forces_match_finite_differences(potential, si_rattled):
    out = potential(_graph64(potential, si_rattled), compute_forces=True)
    forces = out["forces"].detach().numpy()
    assert np.abs(forces).max() > 1e-3  # not trivially zero
    h = 1e-4
    for i in range(len(si_rattled)):
        for c in range(3):
            plus, minus = si_rattled.copy(), si_rattled.copy()
            plus.positions[i, c] += h
            minus.positions[i, c] -= h
            fd = -(_energy(potential, plus) - _energy(potential, minus)) / (2 * h)
            assert forces[i, c] == pytest.approx(fd, abs=1e-3)
    np.testing.assert_allclose(forces.sum(axis=0), 0.0, atol=1e-8)


@pytest.mark.parametrize("name", ["si_rattled", "triclinic"])
def test_stress_matches_strain_derivative(potential, name, request):
    atoms = request.getfixturevalue(name)
    out = potential(_graph64(potential, atoms), compute_forces=False, compute_stress=True)
    stress = out["stress"][0].detach().numpy()
    np.testing.assert_allclose(stress, stress.T, atol=1e-10)
    h, volume = 1e-5, atoms.get_volume()
    for i, j in [(0, 0), (1, 1), (2, 2), (1, 2), (0, 2), (0, 1)]:
        eps = np.zeros((3, 3))
        eps[i, j] = eps[j, i] = h if i == j else h / 2
        energies = []
        for sign in (1, -1):
            strained = atoms.copy()
            strained.set_cell(atoms.cell.array @ (np.eye(3) + sign * eps), scale_atoms=True)
            energies.append(_energy(potential, strained))
        fd = (energies[0] - energies[1]) / (2 * h) / volume
        assert stress[i, j] == pytest.approx(fd, abs=1e-3 / volume + 1e-6)


def test_energy_is_continuous_across_the_cutoff(potential):
    """A dimer straddling the cutoff: no jump in energy, vanishing force (the envelope's slope is zero there)."""
    rc = potential.cutoff
    near = Atoms("Si2", positions=[[0, 0, 0], [rc - 1e-5, 0, 0]])
    far = Atoms("Si2", positions=[[0, 0, 0], [rc + 1e-5, 0, 0]])
    assert _energy(potential, near) == pytest.approx(_energy(potential, far), abs=1e-7)
    f = potential(_graph64(potential, near), compute_forces=True)["forces"].detach().numpy()
    assert np.abs(f).max() < 1e-4
    assert float(cosine_envelope(torch.tensor(rc), rc)) == 0.0


def test_energy_invariant_under_rotation_and_translation(potential, si_rattled):
    moved = si_rattled.copy()
    moved.rotate(33, (1, 2, 3), rotate_cell=True)
    moved.translate((0.3, -1.1, 2.0))
    assert _energy(potential, moved) == pytest.approx(_energy(potential, si_rattled), abs=1e-8)


def test_frozen_encoder_stays_fixed_and_in_eval_mode(small_encoder, mp_structures):
    model = NEGNN(small_encoder, n_conv=1, width=8, hidden=8)
    model.train()
    assert not model.encoder.training and model.training
    assert not any(p.requires_grad for p in model.encoder.parameters())
    before = {k: v.clone() for k, v in model.encoder.state_dict().items()}
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    batch = Batch.from_data_list([model.graph_converter()(a) for a in mp_structures[:8]])
    model(batch)["y"].pow(2).sum().backward()
    opt.step()
    for k, v in model.encoder.state_dict().items():
        assert torch.equal(v, before[k]), k


def test_from_scratch_is_the_same_network_with_a_random_trainable_encoder(small_encoder):
    pre = NEGNN(small_encoder, n_conv=1, width=8, hidden=8)
    scratch = NEGNN(small_encoder, n_conv=1, width=8, hidden=8, from_scratch=True)
    assert [(k, v.shape) for k, v in pre.state_dict().items()] == [(k, v.shape) for k, v in scratch.state_dict().items()]
    assert all(p.requires_grad for p in scratch.encoder.parameters())
    assert not torch.equal(pre.encoder.node_embedding.weight, scratch.encoder.node_embedding.weight)
    assert scratch._init_args["freeze_encoder"] is False


def test_nonnegative_head_never_predicts_below_zero_and_trains(small_encoder, mp_structures):
    """A gap model's output passes through softplus: even a target mean far below 0 gives predictions ≥ 0."""
    model = NEGNN(small_encoder, n_conv=1, width=8, hidden=8, nonnegative=True)
    model.set_normalization(-3.0, 1.0)
    batch = Batch.from_data_list([model.graph_converter()(a) for a in mp_structures[:8]])
    y = model(batch)["y"]
    assert (y >= 0).all() and (y < 0.05).all()
    y.sum().backward()  # differentiable: the head still learns
    assert model.head[-1].weight.grad.abs().sum() > 0
    plain = NEGNN(small_encoder, n_conv=1, width=8, hidden=8)
    plain.set_normalization(-3.0, 1.0)
    assert (plain(batch)["y"] < 0).all()
    with pytest.raises(ValueError, match="nonnegative"):
        NEGNN(small_encoder, task="potential", nonnegative=True)


def test_site_and_graph_heads_shapes(small_encoder, mp_structures):
    site = NEGNN(small_encoder, task="site", target="magmoms", n_conv=1, width=8, hidden=8)
    rows = site.predict(mp_structures[:3])
    assert [r["magmoms"].shape for r in rows] == [(len(a),) for a in mp_structures[:3]]
    graph = NEGNN(small_encoder, task="graph", target="gap", n_conv=0, width=8, hidden=8)
    assert [set(r) for r in graph.predict(mp_structures[:3])] == [{"gap"}] * 3


def test_sum_pooling_is_extensive(small_encoder, nacl):
    model = NEGNN(small_encoder, task="graph", pooling="sum", n_conv=1, width=8, hidden=8)
    one, two = model.predict([nacl, nacl.repeat((2, 1, 1))])
    assert two["y"] == pytest.approx(2 * one["y"], rel=1e-5)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"task": "energy"}, "task must be one of"),
        ({"pooling": "max"}, "pooling must be"),
        ({"layers": "0-9"}, "layer"),
        ({"task": "potential", "cutoff": -1.0}, "cutoff"),
    ],
)
def test_bad_arguments(small_encoder, kwargs, match):
    with pytest.raises(ValueError, match=match):
        NEGNN(small_encoder, **kwargs)


def test_load_model_errors(tmp_path, encoder_dir):
    with pytest.raises(ValueError, match="unknown model 'no-such-model'"):
        load_model("no-such-model")
    with pytest.raises(FileNotFoundError, match="not found"):
        load_model(tmp_path / "missing")
    with pytest.raises(ValueError, match="not a NEGNN"):
        load_model(encoder_dir)
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="missing"):
        load_model(tmp_path / "empty")


def test_bundled_models_are_listed_and_load():
    names = available_models()
    assert {"mp-eform", "mp-gap"} <= set(names), names
    for name in names:
        model = load_model(name)
        assert model.task == "graph" and model.units
        assert model.encoder.smooth  # v2: continuous graph
        assert 60 < len(model.element_types) < 95  # the training elements are recorded (all True = not recorded)
    assert load_model("mp-gap").nonnegative and not load_model("mp-eform").nonnegative
