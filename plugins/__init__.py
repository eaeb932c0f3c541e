"""ASE / phonopy / matgl integration glue for ase-negnn (installed as ``ase_negnn.plugins``).

ASE discovers the calculator through the ``ase.plugins`` entry point (setup.py), which points at this module and reads
``__ase_plugins__``: ``ase info --plugins`` then lists ``negnn``, and ``ase._4.plugins.plugins.calculators`` holds it.
ASE's older name lookup, ``ase.calculators.calculator.get_calculator_class("negnn")``, ignores plugins; importing this
module registers the name there too (:func:`register`). Nothing here imports torch: the calculator class is resolved
lazily by ASE, and ``ase_negnn.calculator`` itself imports torch only when a calculator is built.
"""

from __future__ import annotations

from ase_negnn import PAPER_CITATION

__all__ = ["CALCULATOR_NAME", "calculator_class", "register"]

CALCULATOR_NAME = "negnn"
_IMPLEMENTATION = "ase_negnn.calculator.NEGNNCalculator"


def calculator_class():
    """The calculator class (``ase_negnn.calculator.NEGNNCalculator``)."""
    from ase_negnn.calculator import NEGNNCalculator

    return NEGNNCalculator


def register() -> None:
    """Make ``get_calculator_class("negnn")`` return :class:`NEGNNCalculator` (idempotent; ``import ase_negnn`` already
    does it)."""
    from ase_negnn.calculator import register_calculator

    register_calculator()


_PLUGINS: set | None = None


def __getattr__(name: str):
    """Build ``__ase_plugins__`` on first access (PEP 562).

    ASE reads ``__ase_plugins__`` while it imports ``ase._4.plugins``; if this module is imported first (e.g. via
    ``ase_negnn.plugins.phonons``), importing ASE's plugin classes at the top would run ASE's discovery while this
    module is half-initialised and ASE would miss the calculator. A module ``__getattr__`` answers ASE even then.
    """
    global _PLUGINS
    if name != "__ase_plugins__":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    if _PLUGINS is None:
        try:  # the plugin API lives in ASE's experimental ase._4 namespace (ASE >= 3.26)
            from ase._4.plugins.plugin import CalculatorPlugin
        except ImportError:  # pragma: no cover - older ASE: no plugin discovery, the name lookup still works
            _PLUGINS = set()
        else:
            _PLUGINS = {CalculatorPlugin(CALCULATOR_NAME, citation=PAPER_CITATION, implementation=_IMPLEMENTATION)}
    return _PLUGINS


register()
