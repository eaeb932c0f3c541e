"""The authors'-checkpoint converter maps every key of their layout and reproduces the same network."""

from __future__ import annotations

import pytest
import torch
from ase.build import bulk

from ase_negnn.convert import load_authors_checkpoint
from ase_negnn.pretrained import random_encoder


def _authors_layout(encoder, prefix="", with_head=False):
    """Rename our state dict into the authors' key names (plus their never-applied CGConv BatchNorms)."""
    state = {}
    for k, v in encoder.state_dict().items():
        k = (k.replace("node_embedding", "embedding1").replace("edge_embedding", "embedding2")
             .replace("norms.", "batch_norm."))
        state[prefix + k] = v.clone()
    for i in range(encoder.n_layers):
        w = encoder.width
        state[f"{prefix}convs.{i}.bn.weight"] = torch.ones(w)
        state[f"{prefix}convs.{i}.bn.bias"] = torch.zeros(w)
        state[f"{prefix}convs.{i}.bn.running_mean"] = torch.zeros(w)
        state[f"{prefix}convs.{i}.bn.running_var"] = torch.ones(w)
        state[f"{prefix}convs.{i}.bn.num_batches_tracked"] = torch.tensor(0)
    if with_head:
        state["projection_head.0.weight"] = torch.zeros(4, 4)
    return state


@pytest.mark.parametrize("prefix,with_head", [("", False), ("gnn.", True)])
def test_authors_checkpoint_round_trip(tmp_path, prefix, with_head):
    ours = random_encoder(3)
    path = tmp_path / "authors.pth"
    torch.save({"model_state_dict": _authors_layout(ours, prefix, with_head), "optimizer": {}}, path)
    loaded, report = load_authors_checkpoint(path)
    assert report["unmapped"] == []
    assert len(report["dropped_identity"]) == 5 * ours.n_layers
    assert bool(report["dropped_ssl_head"]) is with_head
    assert (report["n_layers"], report["width"]) == (ours.n_layers, ours.width)
    assert loaded.smooth_width is None  # their weights run on the graph they were trained on: the paper's hard graph
    g = ours.graph_converter()(bulk("Si", "diamond", a=5.43))
    for a, b in zip(ours(g), loaded(g)):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


@pytest.mark.parametrize(
    "key,value,message",
    [
        ("readout.weight", torch.zeros(1), "readout.weight"),  # a key that maps nowhere is named
        ("convs.0.bn.num_batches_tracked", torch.tensor(7), "trained CGConv-internal BatchNorm"),
    ],
)
def test_checkpoints_that_do_not_fit_are_refused(tmp_path, key, value, message):
    state = _authors_layout(random_encoder(0))
    state[key] = value
    path = tmp_path / "bad.pth"
    torch.save(state, path)
    with pytest.raises(ValueError, match=message):
        load_authors_checkpoint(path)


def test_garbage_file_is_a_clear_error(tmp_path):
    path = tmp_path / "garbage.pth"
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="cannot read checkpoint"):
        load_authors_checkpoint(path)
