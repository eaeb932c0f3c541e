"""One registry for saved encoders and models: bundled in the package, or installed in the user's data directory.

A saved encoder or model is a matgl-layout directory (``model.json``, ``model.pt``, ``state.pt``, and optionally the
run's ``card.json``); ``model.json``'s ``@class`` says what it holds. A *name* is looked up first among the user's
installed directories (``$ASE_NEGNN_HOME``, default ``~/.local/share/ase_negnn``), then among those bundled with the
package; anything else is taken as a path. Nothing here imports torch or a model class: the loaders
(:func:`ase_negnn.pretrained.load_encoder`, :func:`ase_negnn.models.load_model`) check and build.
"""

from __future__ import annotations

import json
import os
import shutil
from importlib import resources
from pathlib import Path

from .io import atomic_directory

__all__ = ["MODEL_FILES", "available", "bundled_root", "card", "class_of", "install", "resolve", "user_root"]

MODEL_FILES = ("model.json", "model.pt", "state.pt")


def bundled_root() -> Path:
    """The package's own directory of bundled encoders and models."""
    return Path(str(resources.files("ase_negnn").joinpath("pretrained")))


def user_root() -> Path:
    """Where :func:`install` puts encoders and models by default (``$ASE_NEGNN_HOME`` or ``~/.local/share/ase_negnn``)."""
    home = os.environ.get("ASE_NEGNN_HOME")
    return Path(home).expanduser() if home else Path.home() / ".local" / "share" / "ase_negnn"


def class_of(path: str | Path) -> str | None:
    """``@class`` of a saved directory's ``model.json`` (``"CGCNNEncoder"``, ``"NEGNN"``), ``None`` if unreadable."""
    try:
        value = json.loads((Path(path) / "model.json").read_text()).get("@class")
    except (OSError, ValueError, AttributeError):  # missing, not JSON, or JSON that is not an object
        return None
    return value if isinstance(value, str) else None


def _named(cls_name: str | tuple[str, ...]) -> dict[str, Path]:
    names = (cls_name,) if isinstance(cls_name, str) else tuple(cls_name)
    found: dict[str, Path] = {}
    for root in (bundled_root(), user_root()):  # user directories shadow bundled ones of the same name
        if root.is_dir():
            for p in sorted(root.iterdir()):
                if p.is_dir() and class_of(p) in names:
                    found[p.name] = p
    return found


def available(cls_name: str | tuple[str, ...]) -> list[str]:
    """Names of the installed and bundled directories holding a ``cls_name`` (or one of several)."""
    return sorted(_named(cls_name))


def resolve(spec: str | Path, cls_name: str | tuple[str, ...], kind: str = "model") -> Path:
    """Directory of a name (installed or bundled ``cls_name``, or one of several) or of a path.

    Raises
    ------
    ValueError
        A bare name that is neither installed, bundled nor a directory (the message lists the known names).
    FileNotFoundError
        A path that does not exist.
    """
    if isinstance(spec, str):
        named = _named(cls_name)
        if spec in named:
            return named[spec]
    path = Path(spec)
    if path.is_dir():
        return path
    if isinstance(spec, str) and "/" not in spec and "\\" not in spec and not path.suffix:
        raise ValueError(f"unknown {kind} {spec!r}; known: {available(cls_name)} (or give a directory)")
    raise FileNotFoundError(f"{kind} directory not found: {path}")


def card(path: str | Path) -> dict:
    """The run card saved with a directory (``card.json``, else ``model.json``'s metadata)."""
    path = Path(path)
    if (path / "card.json").exists():
        return json.loads((path / "card.json").read_text())
    return json.loads((path / "model.json").read_text()).get("metadata") or {}


def install(src: str | Path, name: str, root: str | Path | None = None) -> Path:
    """Copy a saved encoder or model directory (plus the run's ``card.json`` beside it) under ``root/name``.

    ``root`` defaults to :func:`user_root` (never the installed package); ``scripts/`` pass the package's source
    directory to update the bundled files. The copy is atomic: a reader sees the old directory or the new one. The
    caller checks that ``src`` loads before installing it.
    """
    src = Path(src)
    missing = [f for f in MODEL_FILES if not (src / f).exists()]
    if missing:
        raise FileNotFoundError(f"{src} is not a saved encoder or model: missing {', '.join(missing)}")
    root = Path(root) if root is not None else user_root()
    dest = root / name
    with atomic_directory(dest) as tmp:
        for f in MODEL_FILES:
            shutil.copy2(src / f, tmp / f)
        run_card = src.parent / "card.json"
        if run_card.exists():
            shutil.copy2(run_card, tmp / "card.json")
    return dest
