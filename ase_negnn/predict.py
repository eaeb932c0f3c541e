"""Writing NEGNN predictions: CSV tables or ASE databases, atomically."""

from __future__ import annotations

import csv
import os
import tempfile
from pathlib import Path

import numpy as np
from ase.stress import full_3x3_to_voigt_6_stress

from .io import atomic_open, db_structure_id, structure_ids

__all__ = ["write_predictions"]


def write_predictions(path: str | Path, model, images, rows: list[dict]) -> Path:
    """Write ``rows`` (from :meth:`NEGNN.predict`) for ``images`` to ``path`` (``.csv`` or ``.db``).

    CSV: graph models one row per structure (``id, formula, n_atoms, <target>`` and, for models with a standard
    deviation, ``<target>_std``); site models one row per atom
    (``id, atom_index, symbol, <target>``); potentials ``id, formula, n_atoms, energy, energy_per_atom,
    stress_xx … stress_xy``. ASE db: each structure with the prediction as a key-value pair (per-atom values and
    forces as a ``SinglePointCalculator`` / ``data``), written to a temporary file and renamed into place.
    """
    path = Path(path)
    ids = structure_ids(images)
    task, target = model.task, model.target
    outputs = list(getattr(model, "outputs", (target,)))  # e.g. a kernel model's target and target_std
    if path.suffix.lower() == ".db":
        from ase.calculators.singlepoint import SinglePointCalculator
        from ase.db import connect

        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".db", dir=path.parent)
        os.close(fd)
        os.unlink(tmp)
        try:
            with connect(tmp, append=False) as db:
                for sid, atoms, row in zip(ids, images, rows):
                    a = atoms.copy()
                    a.calc = None
                    kv = {"structure_id": db_structure_id(sid)}
                    data = {}
                    if task == "graph":
                        kv.update({name: float(row[name]) for name in outputs})
                    elif task == "site":
                        data[target] = np.asarray(row[target])
                    else:
                        a.calc = SinglePointCalculator(a, energy=row["energy"], forces=row["forces"],
                                                       stress=full_3x3_to_voigt_6_stress(row["stress"]) if "stress" in row else None)
                    db.write(a, key_value_pairs=kv, data=data)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        return path
    with atomic_open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        if task == "graph":
            w.writerow(["id", "formula", "n_atoms", *outputs])
            for sid, atoms, row in zip(ids, images, rows):
                w.writerow([sid, atoms.get_chemical_formula(), len(atoms), *(f"{row[name]:.6g}" for name in outputs)])
        elif task == "site":
            w.writerow(["id", "atom_index", "symbol", target])
            for sid, atoms, row in zip(ids, images, rows):
                for j, (sym, v) in enumerate(zip(atoms.get_chemical_symbols(), row[target])):
                    w.writerow([sid, j, sym, f"{v:.6g}"])
        else:
            w.writerow(["id", "formula", "n_atoms", "energy", "energy_per_atom",
                        *(f"stress_{c}" for c in ("xx", "yy", "zz", "yz", "xz", "xy"))])
            for sid, atoms, row in zip(ids, images, rows):
                stress = full_3x3_to_voigt_6_stress(row["stress"]) if "stress" in row else [float("nan")] * 6
                w.writerow([sid, atoms.get_chemical_formula(), len(atoms), f"{row['energy']:.8g}",
                            f"{row['energy'] / len(atoms):.8g}", *(f"{v:.6g}" for v in stress)])
    return path
