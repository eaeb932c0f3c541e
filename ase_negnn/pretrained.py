"""Pretrained encoders: lookup by name or path (:mod:`ase_negnn.registry`), safe loading, random baselines."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from . import registry
from .encoder import CGCNNEncoder, check_saved_model

__all__ = ["available_encoders", "encoder_card", "encoder_dir", "load_encoder", "random_encoder"]


def available_encoders() -> list[str]:
    """Names of the installed and bundled encoders (``"default"``, ``"v1-hard"``, …)."""
    return registry.available(CGCNNEncoder.__name__)


def _resolve(model: str | Path) -> Path:
    return registry.resolve(model, CGCNNEncoder.__name__, "encoder")


def encoder_dir(model: str | Path = "default") -> Path:
    """Directory of a bundled encoder (by name) or of a saved encoder (by path)."""
    return _resolve(model)


def encoder_card(model: str | Path = "default") -> dict:
    """The JSON card (objective, data, epochs, held-out accuracies, date) of a bundled or saved encoder."""
    return registry.card(_resolve(model))


def load_encoder(model: str | Path | CGCNNEncoder = "default", device: str | torch.device = "cpu") -> CGCNNEncoder:
    """Load an encoder in evaluation mode.

    Parameters
    ----------
    model : str, path or CGCNNEncoder
        A bundled name (see :func:`available_encoders`), a directory written by ``CGCNNEncoder.save`` /
        ``ase-negnn pretrain``, or an encoder instance (returned as is, switched to eval mode).
    device : str or torch.device
        Where to put the weights.

    Raises
    ------
    ValueError
        Unknown name, or a directory whose files are corrupt or belong to another model class.
    FileNotFoundError
        A directory that lacks one of ``model.json``, ``model.pt``, ``state.pt`` (the message names it).
    """
    if isinstance(model, CGCNNEncoder):
        return model.to(device).eval()
    path = _resolve(model)
    missing = [f for f in registry.MODEL_FILES if not (path / f).exists()]
    if missing:
        raise FileNotFoundError(f"{path} is not a saved encoder: missing {', '.join(missing)}")
    try:
        meta = json.loads((path / "model.json").read_text())
    except ValueError as ex:  # JSONDecodeError, or UnicodeDecodeError for binary garbage
        raise ValueError(f"{path / 'model.json'} is not valid JSON: {ex}") from ex
    if not isinstance(meta, dict) or meta.get("@class") != CGCNNEncoder.__name__:
        found = meta.get("@class") if isinstance(meta, dict) else type(meta).__name__
        raise ValueError(f"{path} holds a {found!r}, not a {CGCNNEncoder.__name__}")
    try:
        check_saved_model(path, CGCNNEncoder)  # before matgl builds anything from model.pt
    except ValueError as ex:
        raise ValueError(f"could not load encoder from {path}: {ex}") from ex
    try:
        encoder = CGCNNEncoder.load({f: path / f for f in registry.MODEL_FILES})
    except Exception as ex:
        raise ValueError(f"could not load encoder from {path}: {type(ex).__name__}: {ex}") from ex
    return encoder.to(device).eval()


def random_encoder(seed: int = 0, **kwargs) -> CGCNNEncoder:
    """An encoder of the same architecture with random (untrained) weights — the baseline of the SSL benefit."""
    gen_state = torch.random.get_rng_state()
    try:
        torch.manual_seed(seed)
        return CGCNNEncoder(**kwargs).eval()
    finally:
        torch.random.set_rng_state(gen_state)
