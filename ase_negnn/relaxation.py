"""Structure relaxation with ASE optimisers (FIRE, BFGS) and ``FrechetCellFilter``, with NEGNN property predictions.

Any ASE calculator drives the relaxation (a NEGNN potential or another one); NEGNN property models ride along and
predict the properties of each relaxed structure.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from ase import Atoms

__all__ = ["OPTIMIZERS", "RelaxResult", "relax"]

OPTIMIZERS = ("FIRE", "BFGS", "LBFGS")


@dataclass
class RelaxResult:
    """Outcome of :func:`relax`: the relaxed ``atoms`` (with a single-point calculator holding the final results)."""

    atoms: Atoms
    converged: bool
    steps: int
    fmax: float
    energy: float
    properties: dict = field(default_factory=dict)


def _optimizer(name: str):
    from ase import optimize

    key = name.upper()
    if key not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {name!r}")
    return {"FIRE": optimize.FIRE, "BFGS": optimize.BFGS, "LBFGS": optimize.LBFGS}[key]


def relax(atoms: Atoms, calculator, fmax: float = 0.05, steps: int = 500, cell: bool = False,
          optimizer: str = "FIRE", trajectory: str | Path | None = None, logfile: str | None = None,
          property_calculator=None, callback=None) -> RelaxResult:
    """Relax positions (and the cell with ``cell=True``) until the largest force is below ``fmax``.

    Parameters
    ----------
    atoms : ase.Atoms
        Not modified: a copy is relaxed.
    calculator : ase.calculators.calculator.BaseCalculator
        Energy, forces (and stress for ``cell=True``) in ASE units.
    fmax : float
        Force criterion in eV/Å (with ``cell=True`` it also applies to the cell's generalised forces, stress × volume).
    steps : int
        Maximum optimiser steps.
    cell : bool
        Also relax the cell with ``ase.filters.FrechetCellFilter`` (needs a periodic cell and stress).
    optimizer : {"FIRE", "BFGS", "LBFGS"}
    trajectory : path, optional
        ASE ``.traj`` file receiving every step.
    property_calculator : NEGNNCalculator, optional
        Property models evaluated on the relaxed structure (results in ``RelaxResult.properties``).
    callback : callable, optional
        Called after every optimiser step as ``callback(step, fmax_now)`` (e.g. to move a progress bar).

    Returns
    -------
    RelaxResult
    """
    from ase.calculators.singlepoint import SinglePointCalculator
    from ase.filters import FrechetCellFilter

    if not fmax > 0 or steps < 1:
        raise ValueError(f"fmax must be > 0 eV/Å and steps >= 1, got {fmax!r}, {steps!r}")
    if cell and not np.all(atoms.pbc):
        raise ValueError("cell relaxation needs a periodic cell in all three directions (pbc all True)")
    opt_cls = _optimizer(optimizer)
    work = atoms.copy()
    work.calc = calculator
    target = FrechetCellFilter(work) if cell else work
    traj = None
    if trajectory is not None:
        from ase.io import Trajectory

        Path(trajectory).parent.mkdir(parents=True, exist_ok=True)
        traj = Trajectory(str(trajectory), "w", work)
    try:
        opt = opt_cls(target, logfile=logfile)
        if traj is not None:
            opt.attach(traj.write, interval=1)
            traj.write()
        if callback is not None:
            opt.attach(lambda: callback(int(opt.nsteps), float(np.linalg.norm(target.get_forces(), axis=1).max())),
                       interval=1)
        converged = bool(opt.run(fmax=fmax, steps=steps))
    finally:
        if traj is not None:
            traj.close()
    forces = target.get_forces()
    energy = float(work.get_potential_energy())
    results = {"energy": energy, "forces": work.get_forces()}
    if np.all(work.pbc) and "stress" in getattr(calculator, "implemented_properties", ()):
        results["stress"] = work.get_stress()
    final = work.copy()
    final.calc = SinglePointCalculator(final, **results)
    props = {}
    if property_calculator is not None:
        props = property_calculator.predict_many([final], properties=list(property_calculator.property_models))[0]
        props = {k: (float(v) if np.ndim(v) == 0 else np.asarray(v)) for k, v in props.items()}
    return RelaxResult(final, converged, int(opt.nsteps), float(np.linalg.norm(forces, axis=1).max()), energy, props)
