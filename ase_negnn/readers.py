"""Reading structures from anything a user is likely to hand over: ASE-readable files (compressed too), folders of
structure files, ASE databases, and MAGNDATA magnetic CIFs (with per-site moments); the bundled example crystals."""

from __future__ import annotations

import bz2
import gzip
import logging
import lzma
import shutil
import tempfile
import warnings
from pathlib import Path

import numpy as np
from ase import Atoms

__all__ = ["DB_SUFFIXES", "example_structures", "read_magnetic_cif", "read_structures"]

logger = logging.getLogger(__name__)

_COMPRESSED = {".gz": gzip.open, ".xz": lzma.open, ".bz2": bz2.open}
#: File suffixes read as ASE databases.
DB_SUFFIXES = {".db", ".sqlite"}
_STRUCTURE_GLOBS = ("*.cif", "*.mcif", "*.vasp", "POSCAR*", "*.extxyz", "*.xyz", "*.json")


def example_structures() -> list[Atoms]:
    """14 real Materials Project crystals shipped with the package (see ``data/README.md``), for offline demos.

    Each ``atoms.info`` has ``mp_id``, ``formation_energy_per_atom`` (eV/atom) and ``band_gap`` (PBE, eV).
    """
    from importlib import resources

    with resources.as_file(resources.files("ase_negnn").joinpath("data/mp_examples.extxyz")) as path:
        return _read_ase_file(Path(path))


def _read_ase_file(path: Path, fmt: str | None = None) -> list[Atoms]:
    import ase.io

    try:
        images = ase.io.read(path, index=":", format=fmt)
    except Exception as ex:  # ASE raises many types for malformed files
        # Some readers fail on garbage with a bare assertion (no message): say what was expected instead.
        why = str(ex).strip() or f"not a valid {fmt or path.suffix.lstrip('.') or 'structure'} file"
        raise ValueError(f"could not read structures from {path}: {type(ex).__name__}: {why}") from ex
    return images if isinstance(images, list) else [images]


#: Refined occupancies this close to 1 (e.g. 0.9991, 1.003) count as fully occupied sites in magnetic CIFs.
_MCIF_OCCUPANCY_TOL = 0.05
#: Largest relative change of length allowed for a magnetic symmetry operation in the file's cell (rounded cell
#: parameters give up to 0.4% in MAGNDATA; a cell that contradicts the symmetry gives far more).
_MCIF_ISOMETRY_TOL = 0.01
#: Fractional-coordinate tolerance for matching a symmetry image of an atom site to a parsed site.
_MCIF_SITE_TOL = 1e-3
#: Largest disagreement (μB) allowed between symmetry images that land on the same site (the file's moment must be
#: compatible with its site symmetry) and between pymatgen's moments and ours.
_MCIF_MOMENT_TOL = 1e-3


def _cif_items(block: dict, name: str) -> list[str] | None:
    """Values of the CIF data item ``name`` as a list, whichever of ``.``/``_`` the file puts after the category."""
    want = name.replace(".", "_").lower()
    for key, value in block.items():
        if key.replace(".", "_").lower() == want:
            return [value] if isinstance(value, str) else list(value)
    return None


def _mcif_structural_part(text: str) -> str | None:
    """The part of a MAGNDATA ``.mcif`` from ``_cell_length_a`` on: cell, symmetry operations, atom sites, moments.

    MAGNDATA files put the literature data and free-text comments first; a typo there (an unclosed or orphan
    ``;`` text field, a k-vector such as ``[1/2 0 0 ]``) breaks CIF parsing of the whole file but not the structure.
    """
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line.lstrip().startswith("_cell_length_a"):
            return "data_structure\n" + "\n".join(lines[i:]) + "\n"
    return None


def _mcif_moments(block: dict, structure, ops, path: Path) -> np.ndarray:
    """Cartesian moments (N, 3) of ``structure``'s sites, from the file's crystal-axis components.

    magCIF gives ``_atom_site_moment.crystalaxis_x/y/z`` in μB along the unit vectors a/|a|, b/|b|, c/|c|; in the
    basis of the lattice vectors themselves the moment is f = m / (|a|, |b|, |c|). A magnetic symmetry operation
    (R, t, θ) maps the site at x to R x + t and, the moment being an axial vector, f to θ det(R) R f. Each parsed site
    takes the moment of the first operation (pymatgen's order) that maps an atom site onto it; all operations that
    do must agree, otherwise the file's moments contradict its own symmetry.
    """
    from pymatgen.io.cif import str2float

    labels = _cif_items(block, "_atom_site_moment.label")
    columns = [_cif_items(block, f"_atom_site_moment.crystalaxis_{ax}") for ax in "xyz"]
    if labels is None or any(c is None for c in columns):
        raise ValueError(f"{path} has no _atom_site_moment loop (label, crystalaxis_x/y/z): not a magnetic CIF "
                         "with moments")
    if any(len(c) != len(labels) for c in columns):
        raise ValueError(f"{path}: the _atom_site_moment columns have different lengths")
    site_labels = _cif_items(block, "_atom_site_label") or []
    fract = [_cif_items(block, f"_atom_site_fract_{ax}") or [] for ax in "xyz"]
    try:
        moments = {lab: np.array([str2float(c[i]) for c in columns]) for i, lab in enumerate(labels)}
        positions = {lab: np.array([str2float(c[i]) for c in fract]) for i, lab in enumerate(site_labels)}
    except (ValueError, IndexError) as ex:
        raise ValueError(f"{path}: unreadable atom-site or moment value: {ex}") from ex
    unknown = [lab for lab in moments if lab not in positions]
    if unknown:
        raise ValueError(f"{path}: moments given for {unknown}, which are not atom-site labels "
                         f"({site_labels[:10]})")

    lattice = structure.lattice.matrix  # rows a, b, c (Å)
    lengths = np.linalg.norm(lattice, axis=1)
    frac = structure.frac_coords
    rot = np.array([op.rotation_matrix for op in ops], dtype=float)  # (K, 3, 3), acting on fractional coordinates
    trans = np.array([op.translation_vector for op in ops], dtype=float)
    sign = np.array([op.time_reversal * round(np.linalg.det(op.rotation_matrix)) for op in ops], dtype=float)
    # In Cartesian coordinates every operation must be a rotation (orthogonal); one that stretches means the cell
    # parameters contradict the symmetry (e.g. beta = 102° with orthorhombic operations) and the moments of the
    # symmetry-equivalent sites would come out with different magnitudes.
    stretch = np.linalg.svd(lattice.T @ rot @ np.linalg.inv(lattice.T), compute_uv=False)  # (K, 3)
    worst = np.abs(stretch - 1).max()
    if worst > _MCIF_ISOMETRY_TOL:
        raise ValueError(f"{path}: the cell parameters contradict the magnetic symmetry operations (in this cell "
                         f"operation {int(np.abs(stretch - 1).max(axis=1).argmax()) + 1} changes lengths by up to "
                         f"{100 * worst:.3g}%)")
    vectors = np.zeros((len(structure), 3))
    for label, moment in moments.items():
        images = rot @ positions[label] + trans  # (K, 3)
        delta = images[:, None, :] - frac[None, :, :]
        hit = (np.abs(delta - np.round(delta)) < _MCIF_SITE_TOL).all(axis=-1)  # (K, N)
        if not hit.any():
            raise ValueError(f"{path}: no parsed site at the position of magnetic atom {label}")
        cartesian = (sign[:, None] * (rot @ (moment / lengths))) @ lattice  # (K, 3), μB
        for n in np.flatnonzero(hit.any(axis=0)):
            candidates = cartesian[hit[:, n]]
            spread = float(np.abs(candidates - candidates[0]).max())
            if spread > _MCIF_MOMENT_TOL + 1e-3 * np.abs(candidates[0]).max():
                raise ValueError(f"{path}: the moment of {label} is incompatible with its site symmetry (the "
                                 f"symmetry images on site {n} differ by up to {spread:.3g} μB)")
            vectors[n] = candidates[0]
    return vectors


def read_magnetic_cif(path: str | Path) -> Atoms:
    """Read a magnetic CIF (MAGNDATA ``.mcif``) with its per-site moments.

    pymatgen's ``CifParser`` expands the magnetic space group (magnetic cell as given, ``primitive=False``; atom
    ``i`` here is site ``i + 1`` of MAGNDATA-derived tables such as the paper's ``magmom.csv``, which count from
    1). The moments, given in μB along the unit crystal axes ``a/|a|``, ``b/|b|``, ``c/|c|`` (magCIF
    ``_atom_site_moment.crystalaxis_x/y/z``), are turned into Cartesian vectors by pymatgen and checked against an
    independent expansion (:func:`_mcif_moments`): pymatgen releases before pymatgen-core PR #76 (June 2026) rotated
    them wrongly in cells with axes of unequal length (e.g. hexagonal supercells) and are refused rather than
    trusted. The moments come from the components; MAGNDATA's ``_atom_site_moment.magnitude`` column, where
    present, is not used (in a few files it disagrees with the components).

    Returns ``Atoms`` with ``arrays["magmoms"]`` = moment magnitude per atom (μB, 0 for non-magnetic sites),
    ``arrays["magmom_vectors"]`` (N, 3, Cartesian, μB) and ``info["id"]`` = the file stem (the MAGNDATA id).
    Refined occupancies within 0.05 of 1 count as full.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        Naming the file and the reason, for files that are empty or not valid CIF, lack a moment loop, are
        disordered (several atoms or a partially occupied atom on one site) or incommensurate, or whose cell or
        moments contradict their magnetic symmetry.
    """
    from pymatgen.electronic_structure.core import Magmom
    from pymatgen.io.cif import CifParser

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no such file: {path}")
    text = path.read_text(encoding="utf-8", errors="replace")
    if not text.strip():
        raise ValueError(f"could not read magnetic structure from {path}: the file is empty")

    def parse(cif: str) -> tuple[CifParser, dict]:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                parser = CifParser.from_str(cif, occupancy_tolerance=1 + _MCIF_OCCUPANCY_TOL, check_cif=False)
        except Exception as ex:  # pymatgen's CIF tokenizer raises many types
            raise ValueError(f"invalid CIF: {type(ex).__name__}: {ex}") from ex
        blocks = list(parser.as_dict().values())
        if len(blocks) != 1:
            raise ValueError(f"{len(blocks)} data blocks, expected 1")
        if _cif_items(blocks[0], "_cell_length_a") is None or _cif_items(blocks[0], "_atom_site_label") is None:
            raise ValueError("no _cell_length_a or _atom_site_label item (or hidden in an unclosed ';' text field)")
        return parser, blocks[0]

    try:
        parser, block = parse(text)
    except ValueError as ex:  # a typo in the prose before the cell? Retry with the structural part only
        part = _mcif_structural_part(text)
        if part is None:
            raise ValueError(f"could not read magnetic structure from {path}: {ex}") from ex
        try:
            parser, block = parse(part)
        except ValueError as ex2:
            raise ValueError(f"could not read magnetic structure from {path}: {ex} (and from _cell_length_a on: "
                             f"{ex2})") from ex2
        logger.debug("%s: %s; read from _cell_length_a on", path, ex)
    if not parser.feature_flags.get("magcif"):
        raise ValueError(f"{path} is not a magnetic CIF (no magnetic symmetry or _atom_site_moment items)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            structure = parser.parse_structures(primitive=False, on_error="raise")[0]
    except NotImplementedError as ex:  # pymatgen: disordered (several atoms on one site) or incommensurate
        why = " (several atom sites share one position, e.g. a mixed-occupancy site)" if "isorder" in str(ex) else ""
        raise ValueError(f"could not read magnetic structure from {path}: {ex}{why}") from ex
    except Exception as ex:
        raise ValueError(f"could not read magnetic structure from {path}: {type(ex).__name__}: {ex}") from ex

    symbols = []
    for i, site in enumerate(structure):
        (species, occupancy), *others = site.species.items()
        if others or occupancy < 1 - _MCIF_OCCUPANCY_TOL:
            raise ValueError(f"could not read magnetic structure from {path}: site {i} ({getattr(site, 'label', '?')}) is partially "
                             f"occupied ({site.species}); ASE Atoms cannot represent disorder")
        symbols.append(species.symbol)
    vectors = _mcif_moments(block, structure, parser.symmetry_operations, path)
    theirs = np.array([Magmom(m).global_moment for m in structure.site_properties["magmom"]])
    worst = int(np.abs(theirs - vectors).max(axis=1).argmax())
    if np.abs(theirs[worst] - vectors[worst]).max() > _MCIF_MOMENT_TOL:
        import pymatgen.core

        raise ValueError(
            f"{path}: pymatgen {getattr(pymatgen.core, '__version__', '?')} expands the moments differently from the "
            f"magCIF definition (site {worst}: {np.round(theirs[worst], 4).tolist()} vs "
            f"{np.round(vectors[worst], 4).tolist()} μB); upgrade pymatgen (fixed in pymatgen-core PR #76, 2026)")
    atoms = Atoms(symbols=symbols, positions=structure.cart_coords, cell=structure.lattice.matrix, pbc=True)
    atoms.arrays["magmom_vectors"] = vectors
    atoms.arrays["magmoms"] = np.linalg.norm(vectors, axis=1)
    atoms.info["id"] = path.stem
    return atoms


def _read_database(path: Path) -> list[Atoms]:
    from ase.db import connect

    images = []
    with connect(path) as db:
        for row in db.select():
            atoms = row.toatoms()
            atoms.info.update(row.key_value_pairs)
            atoms.info.setdefault("id", row.id)
            images.append(atoms)
    return images


def read_structures(source: str | Path | Atoms | list) -> list[Atoms]:
    """Read structures from anything a user is likely to hand over.

    Parameters
    ----------
    source : path, Atoms or list of Atoms
        An ASE-readable file (extxyz, CIF, POSCAR, …; ``.gz``/``.xz``/``.bz2`` are decompressed to a
        temporary file first, because ASE's extxyz reader seeks), a directory of structure files (read in
        sorted order; each structure's ``info["id"]`` is set to the file stem), or an ASE database
        (``.db``). ``Atoms`` objects are passed through.

    Returns
    -------
    list of ase.Atoms

    Raises
    ------
    FileNotFoundError
        If the path does not exist.
    ValueError
        If a file cannot be parsed (the message names it) or holds no structures.
    """
    if isinstance(source, Atoms):
        return [source]
    if isinstance(source, (list, tuple)):
        return list(source)
    path = Path(source)
    if not path.exists():
        raise FileNotFoundError(f"no such file or directory: {path}")
    if path.is_dir():
        files = sorted({f for pattern in _STRUCTURE_GLOBS for f in path.glob(pattern) if f.is_file()})
        if not files:
            raise ValueError(f"directory {path} holds no structure files (looked for {', '.join(_STRUCTURE_GLOBS)})")
        images = []
        for f in files:
            structures = [read_magnetic_cif(f)] if f.suffix == ".mcif" else _read_ase_file(f)
            if not structures:
                raise ValueError(f"{f} holds no structures")
            for atoms in structures:
                atoms.info.setdefault("id", f.stem)
                images.append(atoms)
        return images
    suffix = path.suffix.lower()
    if suffix == ".mcif":
        return [read_magnetic_cif(path)]
    if suffix in DB_SUFFIXES:
        images = _read_database(path)
    elif suffix in _COMPRESSED:
        inner = Path(path.stem)
        with tempfile.TemporaryDirectory() as tmpdir:
            tmp = Path(tmpdir) / inner.name
            with _COMPRESSED[suffix](path, "rb") as src, open(tmp, "wb") as dst:
                shutil.copyfileobj(src, dst, length=1 << 20)
            images = _read_ase_file(tmp)
    else:
        images = _read_ase_file(path)
    if not images:
        raise ValueError(f"{path} holds no structures")
    return images
