"""Crystal-graph datasets: graphs of many structures built once, cached on disk (and in memory across calls), and
the loaders that batch them. Reading the structures themselves is :mod:`ase_negnn.readers`."""

from __future__ import annotations

import hashlib
import json
import logging
import warnings
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset
from torch_geometric.data import Data

from .graph import CrystalGraphConverter
from .io import atomic_open, structure_id
from .readers import read_structures

__all__ = ["EpochShuffle", "GraphDataset", "GraphMemo", "subset_loader", "atomic_torch_save", "build_graphs", "load_graph_dataset"]

logger = logging.getLogger(__name__)

#: Bump when the on-disk cache layout changes; older caches are rebuilt.
CACHE_VERSION = 2


def atomic_torch_save(obj, path: str | Path) -> None:
    """``torch.save`` to a temporary file in the same directory, then rename over ``path``."""
    with atomic_open(path, "wb") as fh:
        torch.save(obj, fh)


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
            raise ValueError(f"graph cache {path} is unreadable or corrupt: {type(ex).__name__}: "
                             f"{str(ex).strip()[:300] or 'empty or truncated file'}") from ex
        if not isinstance(blob, dict) or blob.get("version") != CACHE_VERSION:
            raise ValueError(f"graph cache {path} has an unknown layout (expected version {CACHE_VERSION})")
        arrays, meta = blob.get("arrays"), blob.get("meta", {})
        if not isinstance(arrays, dict) or not isinstance(meta, dict):
            raise ValueError(f"graph cache {path} has an unknown layout (no 'arrays'/'meta' dicts)")
        bad = [k for k in cls._KEYS if k in arrays and not isinstance(arrays[k], torch.Tensor)]
        if bad:
            raise ValueError(f"graph cache {path}: {bad} are not tensors")
        try:
            return cls(arrays, meta)
        except ValueError as ex:  # e.g. missing arrays
            raise ValueError(f"graph cache {path}: {ex}") from ex


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


class GraphMemo:
    """In-memory graphs keyed by the structure's content (atomic numbers, positions, cell, pbc) and the converter's
    settings: repeated :func:`build_graphs` / ``train(graph_memo=...)`` calls on overlapping structure lists (learning
    curves, ensembles, seeds) convert each structure once. A changed position or setting is a different key, never a
    stale graph. ``hits`` / ``built`` count the lookups."""

    def __init__(self):
        self._graphs: dict = {}
        self.hits = self.built = 0

    @staticmethod
    def key(atoms, settings: str) -> str:
        h = hashlib.sha1(settings.encode())
        for array in (atoms.numbers, atoms.positions, atoms.cell.array, atoms.pbc):
            h.update(np.ascontiguousarray(array).tobytes())
        return h.hexdigest()

    def get(self, atoms, converter: CrystalGraphConverter):
        """The graph of ``atoms`` (converted once; a conversion error is remembered and raised again)."""
        k = self.key(atoms, json.dumps(converter.settings.todict(), sort_keys=True))
        if k in self._graphs:
            self.hits += 1
        else:
            try:
                self._graphs[k] = converter(atoms)
            except (ValueError, TypeError) as ex:
                self._graphs[k] = ex
            self.built += 1
        value = self._graphs[k]
        if isinstance(value, Exception):
            raise value
        return value

    def __len__(self) -> int:
        return len(self._graphs)


def build_graphs(images, converter: CrystalGraphConverter, progress: bool = False, name: str = "input",
                 meta: dict | None = None, memo: GraphMemo | None = None) -> GraphDataset:
    """Graphs of ``images`` in memory (through ``memo`` when given). Structures that cannot be converted are skipped
    with one warning naming them; ``meta["indices"]`` maps each graph back to its position in ``images``."""
    from tqdm.auto import tqdm

    graphs, ids, indices, skipped = [], [], [], []
    for i, atoms in enumerate(tqdm(images, disable=not progress, desc="building graphs", unit="struct")):
        try:
            graphs.append(memo.get(atoms, converter) if memo is not None else converter(atoms))
            ids.append(structure_id(atoms, i))
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


class EpochShuffle(torch.utils.data.Sampler):
    """Random order that depends only on ``(seed, epoch)``.

    Lightning calls ``set_epoch`` before every epoch, so a run resumed from a checkpoint sees exactly the batches an
    uninterrupted run would have seen (the global RNG, which Lightning does not checkpoint, plays no part).
    """

    def __init__(self, n: int, seed: int = 0):
        self.n, self.seed, self.epoch = int(n), int(seed), 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __iter__(self):
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        return iter(torch.randperm(self.n, generator=g).tolist())

    def __len__(self) -> int:
        return self.n


def subset_loader(dataset, idx, batch_size: int, shuffle: bool, num_workers: int = 0, seed: int = 0,
                  drop_last: bool = False):
    """PyG ``DataLoader`` over ``dataset[idx]``: in a seeded :class:`EpochShuffle` order when ``shuffle`` (a resumed
    run sees the same batches), else in order. Used by pretraining and training alike."""
    from torch.utils.data import Subset
    from torch_geometric.loader import DataLoader

    subset = Subset(dataset, [int(i) for i in idx])
    return DataLoader(subset, batch_size=batch_size, sampler=EpochShuffle(len(subset), seed) if shuffle else None,
                      shuffle=False, drop_last=drop_last, num_workers=num_workers,
                      persistent_workers=num_workers > 0)


def __getattr__(name):
    """The structure readers moved to :mod:`ase_negnn.readers`; their old home answers for one release, warning."""
    if name in ("read_magnetic_cif", "example_structures", "DB_SUFFIXES"):
        from . import readers
        from .deprecation import warn_moved

        warn_moved(f"ase_negnn.data.{name}", f"ase_negnn.readers.{name}")
        return getattr(readers, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
