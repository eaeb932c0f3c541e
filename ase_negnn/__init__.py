"""ase-negnn: self-supervised atomic representations (SSAR/SSMR) and node-embedding GNNs for ASE.

Public names are imported lazily, so ``import ase_negnn`` (and ASE's plugin discovery of
``ase_negnn.plugins``) does not pull in torch. Importing it registers the ASE calculator name ``negnn``
(``ase.calculators.calculator.get_calculator_class("negnn")``).
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

PAPER_CITATION = (
    "J. Kong et al., Self-supervised atomic representations for material discovery, "
    "Mach. Learn.: Sci. Technol. (2024), arXiv:2211.03563"
)

_LAZY = {
    "NEGNNCalculator": "calculator",
    "SSAR": "descriptor",
    "SSMR": "descriptor",
    "parse_layers": "descriptor",
    "CGCNNEncoder": "encoder",
    "CrystalGraphConverter": "graph",
    "load_encoder": "pretrained",
    "available_encoders": "pretrained",
    "encoder_card": "pretrained",
    "random_encoder": "pretrained",
    "read_structures": "readers",
    "example_structures": "readers",
    "SSMRTransformer": "adapters",
    "SSMRFeaturizer": "adapters",
    "pretrain": "pretraining",
    "NEGNN": "models",
    "load_model": "models",
    "available_models": "models",
    "model_card": "models",
    "train": "training",
    "extract_labels": "labels",
    "relax": "relaxation",
    "RelaxResult": "relaxation",
    "screen": "screening",
    "KernelModel": "kernel",
    "NEGNNEnsemble": "models",
}

__all__ = ["PAPER_CITATION", "__version__", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'ase_negnn' has no attribute {name!r}")


def __dir__():
    return sorted(__all__)


def _register() -> None:
    from .calculator import register_calculator  # ASE and NumPy only

    register_calculator()


_register()
