"""Load the SSAR authors' PyG checkpoints (``cgcnn_60k_pred.pth``, ``cgcnn_60k_contra.pth``) into our encoder.

The authors' encoder (Kong et al., github.com/Harrykjg-physics/self-supervised-atomic-representations,
``ssl/pretrained/model.py``) is the same architecture as :class:`~ase_negnn.encoder.CGCNNEncoder`:
``embedding1`` (92→64), ``embedding2`` (41→64), PyG ``CGConv`` layers used without their internal BatchNorm,
each followed by ``batch_norm[i]`` and ReLU (none after the last). Only the names differ.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch

from .encoder import CGCNNEncoder

__all__ = ["load_authors_checkpoint"]

_RENAMES = [
    (re.compile(r"^embedding1\.(weight|bias)$"), r"node_embedding.\1"),
    (re.compile(r"^embedding2\.(weight|bias)$"), r"edge_embedding.\1"),
    (re.compile(r"^convs\.(\d+)\.(lin_f|lin_s)\.(weight|bias)$"), r"convs.\1.\2.\3"),
    (re.compile(r"^batch_norm\.(\d+)\.(weight|bias|running_mean|running_var|num_batches_tracked)$"), r"norms.\1.\2"),
]
_SSL_HEAD = re.compile(r"^projection_head\.")
_UNUSED_CONV_BN = re.compile(r"^convs\.(\d+)\.bn\.(weight|bias|running_mean|running_var|num_batches_tracked)$")


def load_authors_checkpoint(path: str | Path, smooth_width: float | None = None) -> tuple[CGCNNEncoder, dict]:
    """Build a :class:`CGCNNEncoder` carrying the authors' pretrained weights.

    Parameters
    ----------
    path : path
        A ``.pth`` file holding ``{"model_state_dict": …}`` (keys optionally prefixed ``gnn.``) or a bare
        state dict. Loaded with ``torch.load(weights_only=True)``.
    smooth_width : float or None
        Graph the encoder runs on. Default ``None``: the paper's hard 12-nearest graph, the one the authors trained on;
        a width (Å) runs their weights on the continuous graph instead (a cross-check, not their setting).

    Returns
    -------
    encoder : CGCNNEncoder
        In eval mode, with ``n_layers`` and ``width`` read from the checkpoint.
    report : dict
        ``mapped`` (their key → ours), ``dropped_identity`` (the CGConv-internal BatchNorm entries, which their
        forward pass never applies: checked to hold untouched initial values), and ``unmapped`` (anything else;
        a non-empty list raises); ``dropped_ssl_head`` lists the contrastive projection head, which is not
        part of the encoder.

    Raises
    ------
    ValueError
        If the file is not a state dict of that architecture, a key does not map, or a CGConv-internal
        BatchNorm was actually trained (then dropping it would change the model).
    """
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as ex:
        raise ValueError(f"cannot read checkpoint {path}: {type(ex).__name__}: {ex}") from ex
    state = blob.get("model_state_dict", blob) if isinstance(blob, dict) else None
    if not isinstance(state, dict) or not state:
        raise ValueError(f"{path} does not hold a model state dict")
    state = {k.removeprefix("gnn."): v for k, v in state.items()}
    mapped, ours, dropped, heads, unmapped = {}, {}, [], [], []
    for key, value in state.items():
        for pattern, repl in _RENAMES:
            if pattern.match(key):
                new = pattern.sub(repl, key)
                mapped[key] = new
                ours[new] = value
                break
        else:
            if _UNUSED_CONV_BN.match(key):
                dropped.append(key)
            elif _SSL_HEAD.match(key):
                heads.append(key)
            else:
                unmapped.append(key)
    if unmapped:
        raise ValueError(f"{path}: keys that do not map onto CGCNNEncoder: {unmapped}")
    for key in dropped:
        if key.endswith("num_batches_tracked") and int(state[key]) != 0:
            raise ValueError(f"{path}: {key} shows a trained CGConv-internal BatchNorm; cannot drop it")
    try:
        width = ours["node_embedding.weight"].shape[0]
        n_layers = 1 + max(int(k.split(".")[1]) for k in ours if k.startswith("convs."))
        n_gauss = ours["edge_embedding.weight"].shape[1]
    except (KeyError, ValueError) as ex:
        raise ValueError(f"{path}: not a CGCNN encoder state dict ({ex})") from ex
    encoder = CGCNNEncoder(n_layers=n_layers, width=width, smooth_width=smooth_width)
    if encoder.expansion.n_features != n_gauss:
        raise ValueError(f"{path}: edge embedding expects {n_gauss} Gaussian features, ours has "
                         f"{encoder.expansion.n_features}")
    missing, unexpected = encoder.load_state_dict(ours, strict=False)
    if missing or unexpected:
        raise ValueError(f"{path}: missing {missing}, unexpected {unexpected}")
    report = {"mapped": mapped, "dropped_identity": dropped, "dropped_ssl_head": heads, "unmapped": unmapped,
              "n_layers": n_layers, "width": width}
    return encoder.eval(), report
