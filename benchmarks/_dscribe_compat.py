"""Make dscribe 2.1.x work with ASE ≥ 3.27 (benchmarks only; the package never imports dscribe).

dscribe's ``System(Atoms)`` forwards its arguments to ``Atoms.__init__`` **by position** (symbols, positions, numbers,
tags, momenta, …). ASE 3.27 changed ``Atoms.__init__`` to ``(symbols, *args, calculator, **kwargs)`` with a new
argument order, so every descriptor call fails with "Use only one of momenta and velocities". ``patch_dscribe()``
replaces ``System.__init__`` by the same constructor passing keywords; nothing else in dscribe is touched, and on an
ASE whose ``Atoms.__init__`` still has the old positional order it does nothing.

Checked: SOAP and sine-matrix outputs from the patched dscribe under ASE 3.29 equal unpatched dscribe under ASE 3.26.0
(``benchmarks/check_dscribe_compat.py`` prints the comparison).
"""

from __future__ import annotations

import inspect

_OLD_ORDER = ["symbols", "positions", "numbers", "tags", "momenta", "masses", "magmoms", "charges",
              "scaled_positions", "cell", "pbc", "celldisp", "constraint", "calculator", "info"]


def needs_patch() -> bool:
    """True when ``ase.Atoms.__init__`` no longer takes dscribe's positional order."""
    from ase import Atoms

    params = list(inspect.signature(Atoms.__init__).parameters)[1:]
    return params[: len(_OLD_ORDER)] != _OLD_ORDER


def patch_dscribe() -> bool:
    """Patch ``dscribe.core.system.System.__init__`` if needed; returns whether it patched."""
    from ase import Atoms
    from dscribe.core import system as _system

    System = _system.System
    if getattr(System.__init__, "_ase_negnn_patched", False):
        return True
    if not needs_patch():
        return False

    def __init__(self, symbols=None, positions=None, numbers=None, tags=None, momenta=None, masses=None,
                 magmoms=None, charges=None, scaled_positions=None, cell=None, pbc=None, celldisp=None,
                 constraint=None, calculator=None, info=None, wyckoff_positions=None, equivalent_atoms=None):
        Atoms.__init__(self, symbols=symbols, positions=positions, numbers=numbers, tags=tags, momenta=momenta,
                       masses=masses, magmoms=magmoms, charges=charges, scaled_positions=scaled_positions,
                       cell=cell, pbc=pbc, celldisp=celldisp, constraint=constraint, calculator=calculator,
                       info=info)
        self.wyckoff_positions = wyckoff_positions
        self.equivalent_atoms = equivalent_atoms
        self._cell_inverse = None
        self._displacement_tensor = None
        self._distance_matrix = None
        self._inverse_distance_matrix = None

    __init__._ase_negnn_patched = True
    System.__init__ = __init__
    return True
