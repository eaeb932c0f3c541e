"""Training labels from structures: ``atoms.info``, per-atom arrays, calculator results, or a CSV joined by id.

Every check happens here, before any graph is built or any epoch runs: an unknown key, a NaN label, a CSV id that
matches no structure, or a per-atom array of the wrong shape raises ``ValueError`` naming the key and the structures.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .io import structure_ids

__all__ = ["Labels", "extract_labels", "read_label_csv"]

_ID_COLUMNS = ("id", "mp_id", "material_id", "mpid", "name")
_MAGMOM_KEYS = ("magmoms", "magmom", "initial_magmoms")


@dataclass
class Labels:
    """Labels aligned with a list of structures.

    ``y`` holds one float per structure (graph task), one ``(n_atoms,)`` array per structure (site task) or the
    total energies in eV (potential task); ``forces`` (eV/Å) and ``stress`` (3×3, eV/Å³, ASE sign; ``None`` where
    absent) are filled for potentials.
    """

    task: str
    target: str
    y: list
    forces: list | None = None
    stress: list | None = None
    source: str = ""
    notes: list = field(default_factory=list)


def read_label_csv(path: str | Path, target: str, id_column: str | None = None) -> dict[str, float]:
    """Read ``{id: value}`` for column ``target`` of a CSV; the id column is ``id_column`` or the first of
    ``id``/``mp_id``/``material_id``/``mpid``/``name`` present."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"label file not found: {path}")
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        columns = reader.fieldnames or []
        if target not in columns:
            raise ValueError(f"label column {target!r} not in {path.name}; columns: {columns}")
        idcol = id_column or next((c for c in _ID_COLUMNS if c in columns), None)
        if idcol is None or idcol not in columns:
            raise ValueError(f"no id column in {path.name} (looked for {id_column or _ID_COLUMNS}); columns: {columns}")
        values: dict[str, float] = {}
        for line, row in enumerate(reader, start=2):
            key = str(row[idcol]).strip()
            raw = (row[target] or "").strip()
            try:
                value = float(raw) if raw else float("nan")
            except ValueError:
                raise ValueError(f"{path.name} line {line}: {target}={raw!r} is not a number") from None
            if key in values:
                raise ValueError(f"{path.name}: id {key!r} appears twice")
            values[key] = value
    if not values:
        raise ValueError(f"{path.name} has no rows")
    return values


def _results(atoms) -> dict:
    calc = atoms.calc
    return dict(getattr(calc, "results", {}) or {}) if calc is not None else {}


def _graph_value(atoms, target: str):
    if target in atoms.info:
        return atoms.info[target]
    results = _results(atoms)
    if target in results:
        return results[target]
    return None


def _site_value(atoms, target: str):
    if target in atoms.arrays:
        return atoms.arrays[target]
    results = _results(atoms)
    if target in results:
        return results[target]
    if target in _MAGMOM_KEYS:
        for key in _MAGMOM_KEYS:
            if key in results:
                return results[key]
            if key in atoms.arrays:
                return atoms.arrays[key]
    return None


def _available_keys(atoms, task: str) -> list[str]:
    if task == "site":
        return sorted({*atoms.arrays, *(k for k, v in _results(atoms).items() if np.ndim(v) == 1)} - {"numbers", "positions"})
    return sorted({*(k for k, v in atoms.info.items() if np.ndim(v) == 0), *(k for k, v in _results(atoms).items() if np.ndim(v) == 0)})


def _stress_matrix(value) -> np.ndarray:
    from ase.stress import voigt_6_to_full_3x3_stress

    s = np.asarray(value, dtype=float)
    if s.shape == (6,):
        return voigt_6_to_full_3x3_stress(s)
    if s.shape == (3, 3):
        return s
    raise ValueError(f"stress must be Voigt (6,) or (3, 3), got shape {s.shape}")


def _bad(ids, mask, limit: int = 5) -> str:
    bad = [ids[i] for i in np.flatnonzero(mask)]
    more = f" and {len(bad) - limit} more" if len(bad) > limit else ""
    return ", ".join(bad[:limit]) + more


def extract_labels(images, target: str, task: str, labels_csv: str | Path | None = None,
                   id_column: str | None = None, allow_missing_sites: bool = False) -> Labels:
    """Collect and check the labels of ``images`` for ``task``.

    Parameters
    ----------
    images : list of ase.Atoms
    target : str
        Graph task: a key of ``atoms.info`` or of the calculator results (or a CSV column with ``labels_csv``).
        Site task: a per-atom array (``atoms.arrays``) or calculator result; ``magmoms`` also finds
        ``initial_magmoms``. Potential task: ignored (energies, forces and stress come from the calculator
        results or ``info["energy"]``/``arrays["forces"]``).
    labels_csv : path, optional
        Graph task: take the labels from this CSV, joined on the structure ids (``info["mp_id"]``/``info["id"]``).
    allow_missing_sites : bool
        Site task: NaN marks an atom without a label (e.g. only the magnetic sites of a structure are known); such
        atoms are left out of the loss, the normalisation and the metrics. Off by default, so a NaN that is a data
        error is reported instead of silently dropped; ``inf`` is always an error.

    Raises
    ------
    ValueError
        Unknown key (the message lists the available ones), NaN/inf labels, CSV ids matching no structure,
        per-atom labels of the wrong length, structures without forces.
    """
    if not images:
        raise ValueError("no structures to label")
    ids = structure_ids(images)
    if task == "graph":
        return _graph_labels(images, ids, target, labels_csv, id_column)
    if task == "site":
        return _site_labels(images, ids, target, allow_missing_sites)
    if task == "potential":
        return _potential_labels(images, ids)
    raise ValueError(f"task must be 'graph', 'site' or 'potential', got {task!r}")


def _graph_labels(images, ids, target, labels_csv, id_column) -> Labels:
    """One number per structure, from ``atoms.info``/the calculator results or a CSV joined on the ids."""
    task = "graph"
    if labels_csv is not None:
        table = read_label_csv(labels_csv, target, id_column)
        known = set(ids)
        unmatched = [k for k in table if k not in known]
        matched = [i for i, k in enumerate(ids) if k in table]
        if not matched:
            raise ValueError(f"no id of {Path(labels_csv).name} matches a structure id "
                             f"(CSV ids like {list(table)[:3]}, structure ids like {ids[:3]})")
        labels = Labels(task, target, [], source=f"{labels_csv}:{target}")
        if unmatched:
            labels.notes.append(f"{len(unmatched)} CSV id(s) match no structure, e.g. {unmatched[:3]}")
        missing = [ids[i] for i in range(len(ids)) if ids[i] not in table]
        if missing:
            raise ValueError(f"{len(missing)} structure(s) have no row in {Path(labels_csv).name}: "
                             f"{missing[:5]}; drop them from the input or add their labels")
        y = np.array([table[k] for k in ids], dtype=float)
    else:
        raw = [_graph_value(a, target) for a in images]
        absent = np.array([v is None for v in raw])
        if absent.all():
            raise ValueError(f"unknown target {target!r}: not in atoms.info or the calculator results; "
                             f"available: {_available_keys(images[0], 'graph')}")
        if absent.any():
            raise ValueError(f"target {target!r} missing for {absent.sum()} structure(s): {_bad(ids, absent)}")
        try:
            y = np.array([float(np.asarray(v).item()) for v in raw], dtype=float)
        except (TypeError, ValueError) as ex:
            raise ValueError(f"target {target!r} is not one number per structure: {ex}") from None
        labels = Labels(task, target, [], source=f"info/results:{target}")
    bad = ~np.isfinite(y)
    if bad.any():
        raise ValueError(f"target {target!r} is NaN/inf for {bad.sum()} structure(s): {_bad(ids, bad)}")
    labels.y = y.tolist()
    return labels


def _site_labels(images, ids, target, allow_missing_sites) -> Labels:
    """One value per atom (NaN = unlabelled with ``allow_missing_sites``)."""
    task = "site"
    values = []
    for i, atoms in enumerate(images):
        v = _site_value(atoms, target)
        if v is None:
            raise ValueError(f"unknown per-atom target {target!r} for structure {ids[i]}; "
                             f"available: {_available_keys(atoms, 'site')}")
        v = np.asarray(v, dtype=float)
        if v.ndim == 2 and v.shape[1] == 3:  # non-collinear moments → magnitude
            v = np.linalg.norm(v, axis=1)
        if v.shape != (len(atoms),):
            raise ValueError(f"per-atom target {target!r} of {ids[i]} has shape {v.shape}, expected ({len(atoms)},)")
        bad = np.isinf(v) if allow_missing_sites else ~np.isfinite(v)
        if bad.any():
            hint = "" if allow_missing_sites else " (NaN = unlabelled atom needs allow_missing_sites=True)"
            raise ValueError(f"per-atom target {target!r} of {ids[i]} has {'inf' if allow_missing_sites else 'NaN/inf'} "
                             f"at atoms {np.flatnonzero(bad)[:10].tolist()}{hint}")
        values.append(v)
    labels = Labels(task, target, values, source=f"arrays/results:{target}")
    n_missing = int(sum(np.isnan(v).sum() for v in values))
    if n_missing:
        n_total = sum(v.size for v in values)
        if n_missing == n_total:
            raise ValueError(f"per-atom target {target!r}: every atom is NaN (unlabelled); nothing to learn")
        labels.notes.append(f"{n_missing} of {n_total} atoms unlabelled (NaN), left out of loss and metrics")
    return labels


def _potential_labels(images, ids) -> Labels:
    """Energies, forces and (where present) stresses."""
    task = "potential"
    energies, forces, stresses = [], [], []
    for i, atoms in enumerate(images):
        results = _results(atoms)
        e = results.get("energy", atoms.info.get("energy"))
        f = results.get("forces", atoms.arrays.get("forces"))
        s = results.get("stress", atoms.info.get("stress"))
        if e is None:
            raise ValueError(f"structure {ids[i]} has no energy (calculator results or info['energy'])")
        if f is None:
            raise ValueError(f"structure {ids[i]} has no forces (calculator results or arrays['forces'])")
        f = np.asarray(f, dtype=float)
        if f.shape != (len(atoms), 3):
            raise ValueError(f"forces of {ids[i]} have shape {f.shape}, expected ({len(atoms)}, 3)")
        e = float(e)
        if not np.isfinite(e) or not np.isfinite(f).all():
            raise ValueError(f"structure {ids[i]} has NaN/inf energy or forces")
        s = None if s is None else _stress_matrix(s)
        if s is not None and not np.isfinite(s).all():
            raise ValueError(f"structure {ids[i]} has NaN/inf stress")
        energies.append(e)
        forces.append(f)
        stresses.append(s)
    return Labels(task, "energy", energies, forces, stresses, source="calculator results")
