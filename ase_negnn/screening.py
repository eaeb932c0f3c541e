"""High-throughput screening: stream structures → (optional relaxation) → NEGNN predictions → ASE database + CSV.

The run is resumable and loses nothing on interruption: results go to the ASE database in one transaction per
chunk of structures, ids already in the database are skipped on restart, and the CSV is rewritten (atomically) from
the database at the end. A structure that fails (bad geometry, unsupported element, relaxation error) gets a row with
``status="error"`` and the message, and the run continues.
"""

from __future__ import annotations

import csv
import time
from itertools import chain, islice
from pathlib import Path

import numpy as np
from ase import Atoms

from .io import atomic_open, db_structure_id, structure_id

__all__ = ["ACQUISITIONS", "acquisition_scores", "export_csv", "iter_structures", "parse_rank", "ranks_lowest_first",
           "screen"]

#: Ranking of screened structures by a property's prediction and standard deviation (``--rank PROP:KIND``):
#: kind -> (what it ranks first, whether it needs ``PROP_std``).
ACQUISITIONS = {
    "ucb": ("highest mean + κ·std (optimistic maximisation)", True),
    "lcb": ("lowest mean − κ·std (optimistic minimisation)", True),
    "std": ("highest std (most informative to label next)", True),
    "max": ("highest mean", False),
    "min": ("lowest mean", False),
    "in": ("highest probability that the property lies in [low, high] (Gaussian)", True),
}
DEFAULT_KAPPA = 2.0

#: Key-value names ASE's database reserves (they cannot be used for our results).
_RESERVED = {"id", "unique_id", "ctime", "mtime", "user", "calculator", "energy", "natoms", "charge", "mass",
             "volume", "fmax", "smax", "magmom", "age", "formula", "pbc"}


def iter_structures(source):
    """Yield ``(id, Atoms)`` one at a time from a file (``ase.io.iread``), a directory of structure files, an ASE db
    or a list of ``Atoms``. Ids are ``info["mp_id"]``, else ``info["id"]``, else the file stem (directories) or the
    position in the input."""
    import ase.io

    from .readers import DB_SUFFIXES, read_structures

    if isinstance(source, Atoms):
        source = [source]
    if isinstance(source, (list, tuple)):
        for i, atoms in enumerate(source):
            yield structure_id(atoms, i), atoms
        return
    path = Path(source)
    if not path.exists():
        raise FileNotFoundError(f"no such file or directory: {path}")
    if path.is_dir() or path.suffix.lower() in DB_SUFFIXES or path.suffix.lower() in (".gz", ".xz", ".bz2", ".mcif"):
        for i, atoms in enumerate(read_structures(path)):
            yield structure_id(atoms, i), atoms
        return
    n = 0
    try:
        for n, atoms in enumerate(ase.io.iread(str(path), index=":"), start=1):
            yield structure_id(atoms, n - 1), atoms
    except Exception as ex:
        why = str(ex).strip() or f"not a valid {path.suffix.lstrip('.') or 'structure'} file"  # bare AssertionError
        raise ValueError(f"could not read structures from {path}: {type(ex).__name__}: {why}") from ex
    if n == 0:  # e.g. a CIF whose atom-site loop ASE cannot use: say so instead of screening nothing
        raise ValueError(f"{path} holds no structures")


def parse_rank(spec: str) -> dict:
    """``"band_gap:ucb"``, ``"band_gap:ucb:1.5"`` (κ), ``"formation_energy_per_atom:lcb"``, ``"band_gap:std"``,
    ``"band_gap:max"`` or ``"band_gap:in:1.0:2.0"`` → ``{"property", "kind", "kappa", "low", "high"}``.

    Raises
    ------
    ValueError
        An unknown kind, a missing or non-numeric parameter (the message lists the kinds).
    """
    parts = [p.strip() for p in str(spec).split(":")]
    kinds = ", ".join(f"{k} ({v[0]})" for k, v in ACQUISITIONS.items())
    if len(parts) < 2 or not parts[0] or parts[1] not in ACQUISITIONS:
        raise ValueError(f"rank must be PROPERTY:KIND with KIND one of {kinds}; got {spec!r}")
    out = {"property": parts[0], "kind": parts[1], "kappa": DEFAULT_KAPPA, "low": None, "high": None}
    try:
        if parts[1] == "in":
            if len(parts) != 4:
                raise ValueError
            out["low"], out["high"] = float(parts[2]), float(parts[3])
            if not out["low"] < out["high"]:
                raise ValueError
        elif len(parts) == 3 and parts[1] in ("ucb", "lcb"):
            out["kappa"] = float(parts[2])
        elif len(parts) != 2:
            raise ValueError
    except ValueError:
        raise ValueError(f"bad rank {spec!r}: use PROPERTY:ucb[:KAPPA], PROPERTY:lcb[:KAPPA], PROPERTY:std, "
                         "PROPERTY:max, PROPERTY:min or PROPERTY:in:LOW:HIGH (LOW < HIGH)") from None
    return out


def acquisition_scores(mean, std, rank: dict) -> np.ndarray:
    """Values of the acquisition ``rank`` (from :func:`parse_rank`): ``mean ± κ·std``, ``std``, ``mean`` or the
    window probability; NaN where the inputs are missing. ``lcb`` and ``min`` rank the lowest first, the others the
    highest (:func:`ranks_lowest_first`)."""
    from scipy.stats import norm

    mean = np.asarray(mean, float)
    std = np.asarray(std, float) if std is not None else np.full_like(mean, np.nan)
    kind, kappa = rank["kind"], rank["kappa"]
    if kind == "ucb":
        return mean + kappa * std
    if kind == "lcb":
        return mean - kappa * std
    if kind == "std":
        return std
    if kind == "max":
        return mean
    if kind == "min":
        return mean
    sd = np.clip(std, 1e-12, None)
    return norm.cdf((rank["high"] - mean) / sd) - norm.cdf((rank["low"] - mean) / sd)


def ranks_lowest_first(rank: dict) -> bool:
    """Whether the acquisition ``rank`` puts its lowest values first (``lcb``, ``min``)."""
    return rank["kind"] in ("lcb", "min")


def _key(name: str) -> str:
    return f"pred_{name}" if name in _RESERVED else name


def _done_ids(db) -> set[str]:
    return {str(row.get("structure_id")) for row in db.select(include_data=False) if row.get("structure_id") is not None}


def screen(source, out: str | Path, calculator, relax: bool = False, fmax: float = 0.05, steps: int = 500,
           cell: bool = False, optimizer: str = "FIRE", chunk_size: int = 64, csv_path: str | Path | None = None,
           progress: bool = True, limit: int | None = None, rank: str | None = None) -> dict:
    """Screen every structure of ``source`` with ``calculator`` and store the results in the ASE db ``out``.

    Parameters
    ----------
    source : path or list of Atoms
        File (streamed), directory, ASE database or list.
    out : path
        ASE database (``.db``); created or, on a restart, extended (ids already present are skipped).
    calculator : NEGNNCalculator
        Its property models are evaluated for every structure; with ``relax=True`` its potential relaxes first.
    relax, fmax, steps, cell, optimizer
        Optional relaxation before prediction, with :func:`ase_negnn.relaxation.relax`'s defaults (positions only unless
        ``cell=True``; at most 500 steps).
    chunk_size : int
        Structures per batch and per database transaction.
    csv_path : path, optional
        CSV export of the whole database (default ``out`` with ``.csv``), rewritten atomically at the end.
    limit : int, optional
        Stop after this many structures of ``source`` (counting skipped ones).
    rank : str, optional
        Order the CSV by an acquisition of one property (:func:`parse_rank`, e.g. ``"band_gap:ucb"``), with its
        ``acquisition`` score and ``rank`` columns; the database keeps the input order.

    Returns
    -------
    dict
        ``n_new``, ``n_skipped`` (already done), ``n_errors``, ``seconds``, ``structures_per_second``, ``csv``.
    """
    from ase.calculators.singlepoint import SinglePointCalculator
    from ase.db import connect
    from tqdm.auto import tqdm

    out = Path(out)
    if out.suffix.lower() != ".db":
        raise ValueError(f"screen output must be an ASE database ending in .db, got {out.name!r}")
    if relax and calculator.potential is None:
        raise ValueError("relax=True needs a calculator with a potential model")
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    properties = list(calculator.property_models)
    outputs = list(getattr(calculator, "model_outputs", properties))
    ranking = parse_rank(rank) if rank else None
    if ranking is not None:
        if ranking["property"] not in calculator.property_models:
            raise ValueError(f"rank: no model predicts {ranking['property']!r}; models: {properties}")
        if ACQUISITIONS[ranking["kind"]][1] and f"{ranking['property']}_std" not in outputs:
            raise ValueError(f"rank {rank!r} needs a standard deviation, but the {ranking['property']!r} model has "
                             "none: train it with --method krr (or as an ensemble), or rank by :max / :min")
    out.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    n_new = n_skipped = n_errors = 0
    # SQLite's own transactions keep the file consistent and their locks die with the process; ASE's extra
    # `<out>.lock` file would outlive a killed run and make the resume wait forever.
    stream = iter_structures(source)
    first = next(stream, None)  # read (and check) the input before any output file exists
    stream = chain([first], stream) if first is not None else stream
    db = connect(out, append=True, use_lock_file=False)
    done = _done_ids(db)
    if limit is not None:
        stream = islice(stream, limit)
    total = len(source) if isinstance(source, (list, tuple)) else None  # a file is streamed: its length is unknown
    if limit is not None:
        total = limit if total is None else min(total, limit)
    bar = tqdm(total=total, disable=not progress, desc="screen", unit="struct")
    seen_now: set[str] = set()
    while True:
        chunk = []
        for sid, atoms in stream:
            sid = db_structure_id(sid)  # ASE db refuses ids such as "0" as strings: stored as numbers
            if str(sid) in done or str(sid) in seen_now:
                n_skipped += 1
                bar.update(1)
                continue
            seen_now.add(str(sid))
            chunk.append((sid, atoms))
            if len(chunk) >= chunk_size:
                break
        if not chunk:
            break
        rows = _evaluate(chunk, calculator, properties, relax, fmax, steps, cell, optimizer)
        with db:  # one transaction: a killed run never leaves half a chunk
            for sid, atoms, kv, data in rows:
                if kv["status"] == "error":
                    n_errors += 1
                a = atoms.copy()
                results = kv.pop("_results", None)
                a.calc = SinglePointCalculator(a, **results) if results else None
                try:
                    db.write(a, key_value_pairs={"structure_id": sid, **kv}, data=data)
                except Exception as ex:  # e.g. an unstorable geometry: keep the id and the reason
                    db.write(Atoms(), key_value_pairs={"structure_id": sid, "status": "error",
                                                       "error": f"{kv.get('error', '')} / not storable: {ex}"[:500]})
        n_new += len(chunk)
        bar.update(len(chunk))
    bar.close()
    seconds = time.perf_counter() - t0
    csv_out = export_csv(out, csv_path or out.with_suffix(".csv"), outputs, rank=ranking)
    return {"n_new": n_new, "n_skipped": n_skipped, "n_errors": n_errors, "seconds": round(seconds, 2),
            "structures_per_second": round(n_new / seconds, 2) if seconds > 0 else float("nan"), "csv": str(csv_out)}


def _evaluate(chunk, calculator, properties, relax, fmax, steps, cell, optimizer):
    """Rows ``(id, atoms, key_value_pairs, data)`` for a chunk: batched when possible, one by one on failure."""
    from .relaxation import relax as run_relax

    out = []
    structures = []
    for sid, atoms in chunk:
        try:
            if relax:
                res = run_relax(atoms, calculator, fmax=fmax, steps=steps, cell=cell and bool(np.all(atoms.pbc)),
                                optimizer=optimizer)
                kv = {"relaxed": True, "relax_converged": res.converged, "relax_steps": res.steps,
                      "relax_fmax": res.fmax, "energy_per_atom": res.energy / len(atoms)}
                structures.append((sid, res.atoms, kv, {"_results": dict(res.atoms.calc.results)}))
            else:
                structures.append((sid, atoms, {}, {}))
        except Exception as ex:  # recorded per structure, the run continues
            out.append((sid, atoms, {"status": "error", "error": f"{type(ex).__name__}: {ex}"[:500]}, {}))
    if structures:
        try:
            preds = calculator.predict_many([s[1] for s in structures], properties=properties)
        except Exception:
            preds = None
        for k, (sid, atoms, kv, extra) in enumerate(structures):
            try:
                pred = preds[k] if preds is not None else calculator.predict_many([atoms], properties=properties)[0]
            except Exception as ex:
                out.append((sid, atoms, {**kv, "status": "error", "error": f"{type(ex).__name__}: {ex}"[:500]}, {}))
                continue
            values, data = {}, {}
            for name, v in pred.items():
                if np.ndim(v) == 0:
                    values[_key(name)] = float(v)
                else:
                    data[name] = np.asarray(v)
            row_kv = {**kv, **values, "status": "ok"}
            if "_results" in extra:
                row_kv["_results"] = extra["_results"]
            out.append((sid, atoms, row_kv, data))
    order = {sid: i for i, (sid, _) in enumerate(chunk)}
    return sorted(out, key=lambda r: order[r[0]])


def export_csv(db_path: str | Path, csv_path: str | Path, properties=None, rank: str | dict | None = None) -> Path:
    """Write the screening database as CSV (one row per structure id), atomically.

    With ``rank`` (:func:`parse_rank`'s spec or result) the rows are ordered by that acquisition, best first (rows
    without a score, e.g. errors, last), with ``acquisition`` and ``rank`` columns.
    """
    from ase.db import connect

    csv_path = Path(csv_path)
    with connect(db_path) as db:
        rows = list(db.select())
    props = [_key(p) for p in (properties or [])]
    extra = sorted({k for r in rows for k in r.key_value_pairs} - {"structure_id", "status", "error", *props})
    head = ["structure_id", "formula", "natoms", "status", *props, *extra, "error"]
    table = [[kv.get("structure_id"), r.formula, r.natoms, kv.get("status"), *(kv.get(p, "") for p in props),
              *(kv.get(k, "") for k in extra), kv.get("error", "")] for r in rows for kv in [r.key_value_pairs]]
    if rank is not None:
        rank = parse_rank(rank) if isinstance(rank, str) else rank
        key = _key(rank["property"])

        def num(kv, k):
            v = kv.get(k)
            return float(v) if isinstance(v, (int, float)) else np.nan

        kvs = [r.key_value_pairs for r in rows]
        scores = acquisition_scores([num(kv, key) for kv in kvs], [num(kv, key + "_std") for kv in kvs], rank)
        sign = 1.0 if ranks_lowest_first(rank) else -1.0
        order = sorted(range(len(table)), key=lambda i: (not np.isfinite(scores[i]), sign * np.nan_to_num(scores[i])))
        head += ["acquisition", "rank"]
        table = [table[i] + ([f"{scores[i]:.6g}", k + 1] if np.isfinite(scores[i]) else ["", ""])
                 for k, i in enumerate(order)]
    with atomic_open(csv_path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(head)
        w.writerows(table)
    return csv_path
