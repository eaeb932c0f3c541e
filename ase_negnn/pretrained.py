"""Bundled pretrained encoders: lookup by name or path, safe loading, and installing a new one into the package."""

from __future__ import annotations

import json
import shutil
import sys
from importlib import resources
from pathlib import Path

import torch

from .encoder import CGCNNEncoder, check_saved_model

__all__ = ["available_encoders", "encoder_card", "encoder_dir", "load_encoder", "random_encoder"]

_MODEL_FILES = ("model.json", "model.pt", "state.pt")


def _pretrained_root() -> Path:
    return Path(str(resources.files("ase_negnn").joinpath("pretrained")))


def available_encoders() -> list[str]:
    """Names of the encoders bundled with the package (``"default"`` among them once installed)."""
    root = _pretrained_root()
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if p.is_dir() and _class_of(p) == CGCNNEncoder.__name__)


def _class_of(path: Path) -> str | None:
    try:
        return json.loads((path / "model.json").read_text()).get("@class")
    except (OSError, ValueError, AttributeError):  # missing, not JSON, or JSON that is not an object
        return None


def _resolve(model: str | Path) -> Path:
    if isinstance(model, str) and model in available_encoders():
        return _pretrained_root() / model
    path = Path(model)
    if path.is_dir():
        return path
    if isinstance(model, str) and "/" not in model and "\\" not in model and not path.suffix:
        raise ValueError(f"unknown encoder {model!r}; bundled encoders: {available_encoders()} (or give a directory)")
    raise FileNotFoundError(f"encoder directory not found: {path}")


def encoder_dir(model: str | Path = "default") -> Path:
    """Directory of a bundled encoder (by name) or of a saved encoder (by path)."""
    return _resolve(model)


def encoder_card(model: str | Path = "default") -> dict:
    """The JSON card (objective, data, epochs, held-out accuracies, date) of a bundled or saved encoder."""
    path = _resolve(model)
    card = path / "card.json"
    if card.exists():
        return json.loads(card.read_text())
    return json.loads((path / "model.json").read_text()).get("metadata", {})


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
    missing = [f for f in _MODEL_FILES if not (path / f).exists()]
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
        encoder = CGCNNEncoder.load({f: path / f for f in _MODEL_FILES})
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


def install(src: str | Path, name: str) -> Path:
    """Copy a trained encoder or NEGNN model directory (and the run's ``card.json`` next to it) into the package."""
    src = Path(src)
    if _class_of(src) == "NEGNN":
        from .models import load_model

        load_model(src)
    else:
        load_encoder(src)  # refuse to install something that does not load
    dest = _pretrained_root() / name
    dest.mkdir(parents=True, exist_ok=True)
    for f in _MODEL_FILES:
        shutil.copy2(src / f, dest / f)
    card = src.parent / "card.json"
    if card.exists():
        shutil.copy2(card, dest / "card.json")
    return dest


if __name__ == "__main__":  # pragma: no cover - used by scripts/train_default_encoder.sh
    if len(sys.argv) != 4 or sys.argv[1] != "install":
        sys.exit("usage: python -m ase_negnn.pretrained install MODEL_DIR NAME")
    print(install(sys.argv[2], sys.argv[3]))
