"""Reading structures (ASE files, CIF directories, ASE databases) and caching their crystal graphs on disk."""

from __future__ import annotations

import bz2
import gzip
import hashlib
import json
import logging
import lzma
import shutil
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch
from ase import Atoms
from torch.utils.data import Dataset
from torch_geometric.data import Data

from .graph import CrystalGraphConverter
from .io import atomic_open

__all__ = ["GraphDataset", "atomic_torch_save", "build_graphs", "example_structures", "load_graph_dataset", "read_magnetic_cif", "read_structures"]

logger = logging.getLogger(__name__)

_COMPRESSED = {".gz": gzip.open, ".xz": lzma.open, ".bz2": bz2.open}
_DB_SUFFIXES = {".db", ".sqlite"}
_STRUCTURE_GLOBS = ("*.cif", "*.mcif", "*.vasp", "POSCAR*", "*.extxyz", "*.xyz", "*.json")
#: Bump when the on-disk cache layout changes; older caches are rebuilt.
CACHE_VERSION = 2


def atomic_torch_save(obj, path: str | Path) -> None:
    """``torch.save`` to a temporary file in the same directory, then rename over ``path``."""
    with atomic_open(path, "wb") as fh:
        torch.save(obj, fh)


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
        raise ValueError(f"could not read structures from {path}: {type(ex).__name__}: {ex}") from ex
    return images if isinstance(images, list) else [images]


def read_magnetic_cif(path: str | Path) -> Atoms:
    """Read a magnetic CIF (MAGNDATA ``.mcif``) with its per-site moments.

    pymatgen's ``CifParser`` expands the magnetic space group (conventional cell, ``primitive=False``, the site order
    of MAGNDATA-derived datasets such as the paper's ``magmom.csv``) and turns the moments given along the crystal
    axes into Cartesian vectors. Returns ``Atoms`` with ``arrays["magmoms"]`` = moment magnitude per atom (μB, 0 for
    non-magnetic sites), ``arrays["magmom_vectors"]`` (N, 3) and ``info["id"]`` = the file stem (the MAGNDATA id).
    """
    import warnings as _warnings

    from pymatgen.io.ase import AseAtomsAdaptor
    from pymatgen.io.cif import CifParser

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no such file: {path}")
    try:
        with _warnings.catch_warnings():
            _warnings.simplefilter("ignore")
            structure = CifParser(path).parse_structures(primitive=False)[0]
    except Exception as ex:
        raise ValueError(f"could not read magnetic structure from {path}: {type(ex).__name__}: {ex}") from ex
    moments = structure.site_properties.get("magmom")
    vectors = np.zeros((len(structure), 3))
    if moments is not None:
        for i, m in enumerate(moments):
            moment = getattr(m, "moment", None)  # pymatgen Magmom (Cartesian) or a plain collinear number
            vectors[i] = moment if moment is not None else (0.0, 0.0, float(m))
        structure.remove_site_property("magmom")
    atoms = AseAtomsAdaptor.get_atoms(structure)
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
    if suffix in _DB_SUFFIXES:
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


class GraphDataset(Dataset):
    """Crystal graphs stored as a few concatenated tensors (compact, fast to save and load).

    Parameters
    ----------
    arrays : dict of torch.Tensor
        ``z``, ``pos``, ``cell``, ``edge_index``, ``edge_shift``, ``node_ptr``, ``edge_ptr``.
    meta : dict
        Graph settings and provenance, stored with the cache.
    """

    _KEYS = ("z", "pos", "cell", "edge_index", "edge_shift", "node_ptr", "edge_ptr")

    def __init__(self, arrays: dict, meta: dict | None = None):
        missing = [k for k in self._KEYS if k not in arrays]
        if missing:
            raise ValueError(f"graph arrays lack {missing}")
        self.arrays = arrays
        self.meta = dict(meta or {})

    @classmethod
    def from_graphs(cls, graphs: list[Data], meta: dict | None = None) -> GraphDataset:
        n_nodes = torch.tensor([g.num_nodes for g in graphs], dtype=torch.long)
        n_edges = torch.tensor([g.edge_index.shape[1] for g in graphs], dtype=torch.long)
        zero = torch.zeros(1, dtype=torch.long)
        arrays = {
            "z": torch.cat([g.z for g in graphs]),
            "pos": torch.cat([g.pos for g in graphs]),
            "cell": torch.cat([g.cell for g in graphs]),
            "edge_index": torch.cat([g.edge_index for g in graphs], dim=1),
            "edge_shift": torch.cat([g.edge_shift for g in graphs]),
            "node_ptr": torch.cat([zero, n_nodes.cumsum(0)]),
            "edge_ptr": torch.cat([zero, n_edges.cumsum(0)]),
        }
        return cls(arrays, meta)

    def __len__(self) -> int:
        return int(self.arrays["node_ptr"].numel() - 1)

    def __getitem__(self, i: int) -> Data:
        a = self.arrays
        n0, n1 = int(a["node_ptr"][i]), int(a["node_ptr"][i + 1])
        e0, e1 = int(a["edge_ptr"][i]), int(a["edge_ptr"][i + 1])
        return Data(
            z=a["z"][n0:n1],
            pos=a["pos"][n0:n1],
            cell=a["cell"][i : i + 1],
            edge_index=a["edge_index"][:, e0:e1],
            edge_shift=a["edge_shift"][e0:e1],
            num_nodes=n1 - n0,
            idx=torch.tensor([i]),
        )

    def save(self, path: str | Path) -> None:
        """Write the cache atomically."""
        atomic_torch_save({"version": CACHE_VERSION, "meta": self.meta, "arrays": self.arrays}, path)

    @classmethod
    def load(cls, path: str | Path) -> GraphDataset:
        """Load a cache written by :meth:`save` (``weights_only=True``: nothing pickled is executed)."""
        try:
            blob = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as ex:
            raise ValueError(f"graph cache {path} is unreadable or corrupt: {ex}") from ex
        if not isinstance(blob, dict) or blob.get("version") != CACHE_VERSION:
            raise ValueError(f"graph cache {path} has an unknown layout (expected version {CACHE_VERSION})")
        return cls(blob["arrays"], blob["meta"])


def _source_signature(path: Path) -> dict:
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file())
        digest = hashlib.sha1()
        for f in files:
            st = f.stat()
            digest.update(f"{f.name}:{st.st_size}:{st.st_mtime_ns}".encode())
        return {"path": str(path.resolve()), "dir_digest": digest.hexdigest()}
    st = path.stat()
    return {"path": str(path.resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def build_graphs(images, converter: CrystalGraphConverter, progress: bool = False, name: str = "input",
                 meta: dict | None = None) -> GraphDataset:
    """Graphs of ``images`` in memory. Structures that cannot be converted are skipped with one warning naming
    them; ``meta["indices"]`` maps each graph back to its position in ``images``."""
    from tqdm.auto import tqdm

    graphs, ids, indices, skipped = [], [], [], []
    for i, atoms in enumerate(tqdm(images, disable=not progress, desc="building graphs", unit="struct")):
        try:
            graphs.append(converter(atoms))
            ids.append(str(atoms.info.get("mp_id", atoms.info.get("id", i))))
            indices.append(i)
        except (ValueError, TypeError) as ex:
            skipped.append(f"{i}: {ex}")
    if skipped:
        warnings.warn(f"skipped {len(skipped)} structure(s) of {name}: {skipped[:5]}", stacklevel=3)
    if not graphs:
        raise ValueError(f"no usable structures in {name}")
    meta = {"graph": converter.settings.todict(), **(meta or {})}
    return GraphDataset.from_graphs(graphs, {**meta, "ids": ids, "indices": indices, "skipped": len(skipped)})


def load_graph_dataset(
    source: str | Path,
    converter: CrystalGraphConverter,
    cache_dir: str | Path | None = None,
    progress: bool = True,
    images: list | None = None,
) -> GraphDataset:
    """Read ``source`` and build its graphs, using (or writing) an on-disk cache.

    The cache file name hashes the source's path, size and modification time with the graph settings, and
    the settings are checked again on load, so a cache built with another cutoff or for a changed file is
    never reused. Structures that cannot be converted (e.g. overlapping atoms) are skipped with a warning
    naming them; their count is kept in ``dataset.meta["skipped"]`` and the position in ``source`` of each kept
    structure in ``dataset.meta["indices"]`` (to align labels). ``images``, when the caller has already read
    ``source``, saves reading it again on a cache miss.
    """
    path = Path(source)
    if not path.exists():
        raise FileNotFoundError(f"no such file or directory: {path}")
    meta = {"source": _source_signature(path), "graph": converter.settings.todict(), "cache_version": CACHE_VERSION}
    key = hashlib.sha1(json.dumps(meta, sort_keys=True).encode()).hexdigest()[:16]
    cache_path = None
    if cache_dir is not None:
        cache_path = Path(cache_dir) / f"{path.stem}-{key}.graphs.pt"
        if cache_path.exists():
            try:
                ds = GraphDataset.load(cache_path)
                if ds.meta.get("graph") == meta["graph"] and ds.meta.get("source") == meta["source"]:
                    logger.info("loaded %d cached graphs from %s", len(ds), cache_path)
                    return ds
                logger.warning("graph cache %s was built with other settings; rebuilding", cache_path)
            except ValueError as ex:
                logger.warning("%s; rebuilding", ex)
    if images is None:
        images = read_structures(path)
    ds = build_graphs(images, converter, progress, name=str(path), meta=meta)
    if cache_path is not None:
        ds.save(cache_path)
    return ds


def split_indices(n: int, val_fraction: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Seeded random train/validation split of ``range(n)``; at least one item in each when ``n >= 2``."""
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction!r}")
    if n < 2:
        raise ValueError(f"need at least 2 structures to hold some out for validation, got {n}")
    perm = np.random.default_rng(seed).permutation(n)
    n_val = min(max(1, int(round(n * val_fraction))), n - 1)
    return np.sort(perm[n_val:]), np.sort(perm[:n_val])
