"""CGCNN encoder: layer outputs, matgl-format save/load round trip, safe loading and its errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch_geometric.data import Batch

from ase_negnn.encoder import CGCNNEncoder
from ase_negnn.graph import CrystalGraphConverter
from ase_negnn.pretrained import available_encoders, encoder_card, load_encoder, random_encoder


@pytest.fixture(scope="module")
def batch(si, nacl, triclinic, al_slab):
    conv = CrystalGraphConverter()
    return Batch.from_data_list([conv(a) for a in (si, nacl, triclinic, al_slab)])


@pytest.mark.parametrize("n_layers, width", [(5, 64), (2, 8), (1, 3)])
def test_forward_returns_every_layer(batch, n_layers, width):
    enc = random_encoder(0, n_layers=n_layers, width=width)
    with torch.no_grad():
        layers = enc(batch)
    assert len(layers) == n_layers + 1
    for h in layers:
        assert h.shape == (batch.num_nodes, width) and h.dtype == torch.float32
        assert torch.isfinite(h).all()
    # layer 0 is the element embedding alone: identical atoms (both Si of the diamond cell) agree exactly
    assert torch.equal(layers[0][0], layers[0][1])


def test_layer_index_sets_the_range():
    """Layer 0 sees the element only; layer l sees neighbours: changing a neighbour's element changes an atom's
    layers ≥ 1 but never its layer 0."""
    from ase.build import bulk

    enc = random_encoder(0, n_layers=2, width=8).eval()
    si = bulk("Si", "diamond", a=5.43, cubic=True)
    swapped = si.copy()
    swapped.numbers[1] = 6  # one neighbour of atom 0 becomes C
    conv = enc.graph_converter()
    with torch.no_grad():
        a, b = enc(conv(si)), enc(conv(swapped))
    assert torch.equal(a[0][0], b[0][0])
    assert not torch.allclose(a[1][0], b[1][0]) and not torch.allclose(a[2][0], b[2][0])


def test_batched_equals_single(batch, random_encoder, si, triclinic):
    """A structure's embedding does not depend on which other structures share its batch (eval mode)."""
    conv = random_encoder.graph_converter()
    with torch.no_grad():
        together = random_encoder(batch)[-1]
        alone = random_encoder(Batch.from_data_list([conv(triclinic)]))[-1]
    start = len(si) + 2  # si (2 atoms) and nacl (2 atoms) come first
    np.testing.assert_allclose(together[start : start + len(triclinic)].numpy(), alone.numpy(), rtol=1e-5,
                               atol=1e-5)


def test_random_encoder_is_seeded_and_keeps_global_rng():
    state = torch.random.get_rng_state()
    a, b, c = (random_encoder(seed, n_layers=1, width=4) for seed in (3, 3, 4))
    assert torch.equal(torch.random.get_rng_state(), state)
    assert torch.equal(a.node_embedding.weight, b.node_embedding.weight)
    assert not torch.equal(a.node_embedding.weight, c.node_embedding.weight)
    assert not a.training


@pytest.mark.parametrize("kwargs", [{"n_layers": 0}, {"width": 0}])
def test_bad_architecture(kwargs):
    with pytest.raises(ValueError, match="n_layers|width"):
        CGCNNEncoder(**kwargs)


@pytest.fixture
def trained_like():
    """A small random encoder with non-trivial BatchNorm statistics (so they must survive saving)."""
    enc = random_encoder(5, n_layers=2, width=8)
    for norm in enc.norms:
        norm.running_mean.uniform_(-0.5, 0.5)
        norm.running_var.uniform_(0.5, 2.0)
    return enc.eval()


def test_save_load_round_trip(tmp_path, batch, trained_like):
    import matgl

    path = tmp_path / "enc"
    trained_like.save(path, metadata={"note": "round trip"})
    assert sorted(p.name for p in path.iterdir()) == ["model.json", "model.pt", "state.pt"]
    with torch.no_grad():
        expected = trained_like(batch)
        for loaded in (CGCNNEncoder.load(path), matgl.load_model(path), load_encoder(path)):
            assert isinstance(loaded, CGCNNEncoder)
            loaded.eval()
            assert (loaded.n_layers, loaded.width) == (2, 8)
            got = loaded(batch)
            for a, b in zip(got, expected):
                np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=0, atol=1e-6)
    meta = json.loads((path / "model.json").read_text())
    assert meta["@class"] == "CGCNNEncoder" and meta["metadata"] == {"note": "round trip"}
    assert encoder_card(path) == {"note": "round trip"}


def test_saved_files_load_with_weights_only(tmp_path, small_encoder):
    small_encoder.save(tmp_path / "enc")
    state = torch.load(tmp_path / "enc" / "state.pt", weights_only=True)
    args = torch.load(tmp_path / "enc" / "model.pt", weights_only=True)
    assert "node_embedding.weight" in state and all(isinstance(v, torch.Tensor) for v in state.values())
    assert args["n_layers"] == 2 and args["width"] == 8


def test_save_overwrites_atomically(tmp_path, small_encoder, trained_like):
    path = tmp_path / "enc"
    small_encoder.save(path)
    trained_like.save(path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["enc"]  # no temporary directories left behind
    loaded = CGCNNEncoder.load(path)
    assert torch.equal(loaded.norms[0].running_mean, trained_like.norms[0].running_mean)


def test_newer_code_warns_on_old_model(tmp_path, small_encoder):
    small_encoder.save(tmp_path / "enc")

    class NewerEncoder(CGCNNEncoder):
        __version__ = CGCNNEncoder.__version__ + 1

    with pytest.warns(UserWarning, match="Incompatible model version"):
        NewerEncoder.load(tmp_path / "enc")


def test_load_encoder_missing_file(tmp_path, small_encoder):
    small_encoder.save(tmp_path / "enc")
    (tmp_path / "enc" / "state.pt").unlink()
    with pytest.raises(FileNotFoundError, match="missing state.pt"):
        load_encoder(tmp_path / "enc")


def test_load_encoder_corrupted_state(tmp_path, small_encoder):
    small_encoder.save(tmp_path / "enc")
    (tmp_path / "enc" / "state.pt").write_bytes(b"\x00garbage\xff" * 100)
    with pytest.raises(ValueError, match="could not load encoder"):
        load_encoder(tmp_path / "enc")


def test_load_encoder_bad_json_and_wrong_class(tmp_path, small_encoder):
    small_encoder.save(tmp_path / "enc")
    model_json = tmp_path / "enc" / "model.json"
    meta = json.loads(model_json.read_text())
    model_json.write_text(json.dumps({**meta, "@class": "M3GNet"}))
    with pytest.raises(ValueError, match="M3GNet"):
        load_encoder(tmp_path / "enc")
    model_json.write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_encoder(tmp_path / "enc")


def test_load_encoder_unknown_name_and_missing_dir(tmp_path):
    with pytest.raises(ValueError, match="unknown encoder 'no-such-encoder'"):
        load_encoder("no-such-encoder")
    with pytest.raises(FileNotFoundError, match="encoder directory not found"):
        load_encoder(tmp_path / "absent")


def test_load_encoder_instance_and_bundled(small_encoder):
    assert load_encoder(small_encoder) is small_encoder and not small_encoder.training
    names = available_encoders()
    assert {"default", "v1-hard"} <= set(names), names
    for name in names:  # whatever the package ships must load
        enc = load_encoder(name)
        assert isinstance(enc, CGCNNEncoder) and not enc.training
    # v2: the default runs on the continuous graph; the pre-v2 encoder keeps the paper's hard graph
    assert load_encoder("default").smooth and load_encoder("v1-hard").smooth_width is None


def test_load_names_the_missing_file(tmp_path):
    """The encoder's own reader (no matgl import) says which of model.json / model.pt / state.pt is missing, instead
    of a bare open() error deep inside."""
    import shutil
    from pathlib import Path

    from ase_negnn.encoder import CGCNNEncoder

    src = Path(__file__).resolve().parents[1] / "ase_negnn" / "pretrained" / "default"
    shutil.copytree(src, tmp_path / "enc")
    (tmp_path / "enc" / "state.pt").unlink()
    with pytest.raises(FileNotFoundError, match=r"enc is not a saved model directory: missing state\.pt"):
        CGCNNEncoder.load(tmp_path / "enc")
