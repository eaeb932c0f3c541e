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
    """Make ``get_calculator_class("negnn")`` return :class:`NEGNNCalculator` (idempotent; ASE asserts new names)."""
    from ase.calculators import calculator as _calc

    if CALCULATOR_NAME not in _calc.external_calculators:
        _calc.register_calculator_class(CALCULATOR_NAME, calculator_class())


try:  # the plugin API lives in ASE's experimental ase._4 namespace (ASE >= 3.26)
    from ase._4.plugins.plugin import CalculatorPlugin
except ImportError:  # pragma: no cover - older ASE: no plugin discovery, the name lookup still works
    __ase_plugins__: set = set()
else:
    __ase_plugins__ = {CalculatorPlugin(CALCULATOR_NAME, citation=PAPER_CITATION, implementation=_IMPLEMENTATION)}

register()
