"""Structure → crystal graph (PyG ``Data`` for training, :class:`CrystalGraph` for inference): the only module that
knows the graph backend.

Neighbours come from pymatgen's ``find_points_in_spheres`` (the Cython cell-list search matgl uses; pymatgen is a
dependency anyway). ``benchmarks/graph_neighbors.py`` measures it against vesin and ``ase.neighborlist`` on mp36k
structures at 8 Å (``benchmarks/results/graph_neighbors.md``): pymatgen and vesin are on par, ``ase.neighborlist``
is two orders of magnitude slower, and all three give the same pairs.

Two graphs are offered (``GraphSettings.smooth_width``):

* **smooth** (the default since encoder v2): every neighbour within the cutoff is a candidate; neighbour ``j`` of
  atom ``i`` gets the weight ``w_ij = 1 − S((d_ij − s_i)/δ)`` with ``S`` the C² smoothstep and ``s_i`` a *soft* k-th
  neighbour distance, the root of ``Σ_j S((s − d_ij)/δ + ½) = k − ½`` (a smooth count of the neighbours closer than
  ``s``). ``s_i`` is a C¹ function of all the distances (implicit function theorem: the count is strictly increasing
  at its non-integer root), so the weights, and every message multiplied by them, are C¹ in positions and cell. The
  converter stores every edge that can have ``w > 0`` (``d < d_k + 1.5 δ``, ``d_k`` the k-th distance); the encoder
  solves ``s_i`` per batch, and the few stored edges beyond ``s_i + δ`` get weight exactly 0. On an ideal crystal it
  keeps the same shells as the hard graph (all weight 1), e.g. 16 neighbours in diamond Si, 12 in fcc, 14 in bcc.
* **hard** (``smooth_width=None``): the paper's CGCNN graph, the 12 nearest neighbours plus those tied with the 12th
  within ``TIE_TOLERANCE``. Discontinuous (a 1e-4 Å rattle breaks the ties); kept for the authors' checkpoints, the
  paper reproduction and encoders saved before v2.

A graph holds what a model needs to recompute distances differentiably (positions, cell, integer image
shifts), so forces and stress can later come from autograd; distances themselves are recomputed in the model.
Edges are directed ``neighbour → centre`` (``edge_index[0]`` = source/neighbour, ``edge_index[1]`` = centre),
PyG's ``source_to_target`` convention, so messages aggregate on the centre atom.

Training batches graphs with torch-geometric (``Data``, its ``DataLoader``). Inference (SSAR/SSMR, ``ase-negnn
embed``) uses :meth:`CrystalGraphConverter.graph` and :func:`collate_graphs` instead, the same tensors without
importing torch-geometric, whose eager ``__init__`` costs seconds of start-up (issue 18).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
from ase import Atoms

from .elements import check_numbers

__all__ = ["MIN_DISTANCE", "SMOOTH_WIDTH", "GraphSettings", "CrystalGraph", "CrystalGraphConverter", "collate_graphs",
           "edge_vectors", "knn_weights", "soft_kth_distance", "to_atoms"]

#: Two atoms closer than this (Å) are rejected as overlapping.
MIN_DISTANCE = 0.1
#: Neighbours within this distance (Å) of the k-th nearest are kept too, so ties never depend on atom order.
TIE_TOLERANCE = 1e-4
#: Default width δ (Å) of the smooth k-nearest-neighbour step (encoder v2).
SMOOTH_WIDTH = 0.25
#: Smooth envelope of the last ``CUTOFF_TAPER`` Å before the cutoff (sparse structures whose k-th neighbour is far).
CUTOFF_TAPER = 1.0
#: Radius (Å) of the first neighbour search of a k-nearest graph: enough when every atom has k neighbours within it and
#: the farthest edge the graph can keep lies inside it (98.6 % of 500 mp36k structures at 5.5 Å); else the search is
#: repeated at the cutoff. Same edges either way, ~3× fewer candidate pairs than an 8 Å search.
FIRST_SEARCH_RADIUS = 5.5
# Bisection steps of the soft k-th distance: the bracket (≤ 9 Å) shrinks to ~1e-11 Å.
_BISECTION_STEPS = 40


@dataclass(frozen=True)
class GraphSettings:
    """Crystal-graph settings (the paper's defaults).

    Parameters
    ----------
    cutoff : float
        Neighbour search radius in Å.
    max_neighbors : int or None
        Keep at most this many nearest neighbours per atom (plus any tied with the last one, within
        ``TIE_TOLERANCE``); ``None`` keeps every neighbour within the cutoff.
    smooth_width : float or None
        Width δ (Å) of the smooth k-nearest-neighbour step (the continuous graph, see the module notes); ``None`` =
        the paper's hard graph. Ignored (no k-nearest selection) when ``max_neighbors`` is ``None``.
    """

    cutoff: float = 8.0
    max_neighbors: int | None = 12
    smooth_width: float | None = SMOOTH_WIDTH

    def __post_init__(self):
        if not np.isfinite(self.cutoff) or self.cutoff <= 0:
            raise ValueError(f"cutoff must be a positive number of Å, got {self.cutoff!r}")
        if self.max_neighbors is not None and int(self.max_neighbors) < 1:
            raise ValueError(f"max_neighbors must be >= 1 or None, got {self.max_neighbors!r}")
        if self.smooth_width is not None and not (np.isfinite(self.smooth_width) and 0 < self.smooth_width < self.cutoff):
            raise ValueError(f"smooth_width must be a positive width in Å below the cutoff, or None for the hard "
                             f"graph, got {self.smooth_width!r}")

    @property
    def smooth(self) -> bool:
        """True for the continuous (weighted) k-nearest graph."""
        return self.smooth_width is not None and self.max_neighbors is not None

    def todict(self) -> dict:
        """Plain-dict form, used to tag graph caches and saved models."""
        return asdict(self)


def to_atoms(structure) -> Atoms:
    """Return an ASE ``Atoms`` for an ``Atoms`` or a pymatgen ``Structure``/``Molecule``."""
    if isinstance(structure, Atoms):
        return structure
    try:
        from pymatgen.core import Molecule, Structure
    except ImportError:  # pragma: no cover - pymatgen is a dependency
        Structure = Molecule = ()
    if isinstance(structure, (Structure, Molecule)):
        from pymatgen.io.ase import AseAtomsAdaptor

        return AseAtomsAdaptor.get_atoms(structure)
    raise TypeError(
        f"expected ase.Atoms or pymatgen Structure/Molecule, got {type(structure).__name__}"
    )


def _search_cell(atoms: Atoms) -> tuple[np.ndarray, np.ndarray]:
    """Cell for the neighbour search: the real cell along periodic directions, completed elsewhere."""
    pbc = np.asarray(atoms.pbc, dtype=bool)
    cell = atoms.cell
    lengths = cell.lengths()
    for axis in np.flatnonzero(pbc):
        if lengths[axis] < 1e-8:
            raise ValueError(
                f"periodic direction {axis} has a zero-length cell vector; set a cell or pbc=False there"
            )
    if pbc.all():
        # full rank for sure (smallest singular value ≥ |det| / ‖cell‖_F² > 1e-8) without an SVD: the common case
        array = np.ascontiguousarray(cell.array, dtype=float)
        if abs(np.linalg.det(array)) > 1e-8 * float((array * array).sum()):
            return array, pbc
    if pbc.any():
        periodic = cell.array[pbc]
        if np.linalg.matrix_rank(periodic, tol=1e-8) < pbc.sum():
            raise ValueError(f"the periodic cell vectors are linearly dependent (cell volume 0): {cell.array.tolist()}")
    # Non-periodic directions get orthogonal unit vectors: pymatgen then makes no images along them.
    search = cell.array.copy()
    search[~pbc] = 0.0
    search = np.asarray(type(cell)(search).complete(), dtype=float)
    return np.ascontiguousarray(search), pbc


def _near_enough(centers: np.ndarray, dists: np.ndarray, n_atoms: int, k: int,
                 margin: float = TIE_TOLERANCE) -> np.ndarray:
    """Pairs that can survive the k-nearest selection: a superset of it, found with one cheap sort.

    The exact selection keeps, per centre, every pair within ``TIE_TOLERANCE`` of its k-th smallest distance. Here the
    k-th distance comes from one ``argsort`` of ``centre·(span) + distance`` (a single float key, instead of the
    six-key ``lexsort``); float rounding of that key can misplace distances only within ~1e-9 Å of each other, so
    keeping every pair within ``TIE_TOLERANCE + 1e-6`` Å of it keeps everything the exact selection keeps. The exact
    selection then runs on these few pairs (about k per atom instead of every pair within the cutoff) and gives the
    same edges in the same order as on the full list. The smooth graph passes ``margin = 1.5 δ``: its soft k-th
    distance is at most the k-th distance + δ/2 and its weights vanish δ beyond it.
    """
    keep = np.ones(len(centers), dtype=bool)
    counts = np.bincount(centers, minlength=n_atoms)
    if not len(centers) or counts.max() <= k:
        return keep
    span = 2.0 * float(dists.max()) + 1.0
    order = np.argsort(centers * span + dists)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    kth = np.full(n_atoms, np.inf)
    has_k = counts > k
    kth[has_k] = dists[order[starts[has_k] + k - 1]]
    return dists <= kth[centers] + (margin + 1e-6)


def smoothstep(x: torch.Tensor) -> torch.Tensor:
    """C² smoothstep ``6t⁵ − 15t⁴ + 10t³`` of ``t = clamp(x, 0, 1)``: 0 below 0, 1 above 1."""
    t = x.clamp(0.0, 1.0)
    return t * t * t * (t * (6.0 * t - 15.0) + 10.0)


def _smoothstep_slope(x: torch.Tensor) -> torch.Tensor:
    t = x.clamp(0.0, 1.0)
    return 30.0 * t * t * (t - 1.0) ** 2


def soft_kth_distance(distances: torch.Tensor, centers: torch.Tensor, n_nodes: int, k: int, width: float,
                      iterations: int = _BISECTION_STEPS) -> torch.Tensor:
    """Soft k-th neighbour distance ``s_i`` of every atom: the root of ``Σ_j S((s − d_ij)/δ + ½) = k − ½``.

    The smooth count is strictly increasing at its (non-integer) root, so the root is unique and, by the implicit
    function theorem, C¹ in the distances. It is found by bisection (float64, no gradient), then refined by one
    Newton step carrying the gradient ``∂s/∂d_ij = S'_ij / Σ_j S'_ij`` (exact at the root). Atoms with fewer than
    ``k`` candidate neighbours get ``+inf`` (every candidate kept with weight 1, up to the cutoff envelope).

    Parameters
    ----------
    distances : torch.Tensor, shape (E,)
        Edge lengths (Å), differentiable.
    centers : torch.Tensor of int64, shape (E,)
        Centre atom of each edge.
    n_nodes : int
        Number of atoms (the length of the result).
    k : int
        Neighbour count (12 for CGCNN).
    width : float
        δ in Å, the width of the counting step.
    """
    target = float(k) - 0.5
    n = torch.zeros(n_nodes, dtype=torch.float64, device=distances.device)
    n.index_add_(0, centers, torch.ones_like(distances, dtype=torch.float64))
    s = torch.full((n_nodes,), float("inf"), dtype=distances.dtype, device=distances.device)
    enough = n > target
    if not bool(enough.any()):
        return s
    d64 = distances.detach().to(torch.float64)

    def count(shell, d, dtype):
        c = torch.zeros(n_nodes, dtype=dtype, device=d.device)
        return c.index_add_(0, centers, smoothstep((shell[centers] - d) / width + 0.5))

    big = float(d64.max()) + width if d64.numel() else width
    lo = torch.zeros(n_nodes, dtype=torch.float64, device=distances.device)
    hi = torch.full((n_nodes,), big, dtype=torch.float64, device=distances.device)
    for _ in range(iterations):
        mid = 0.5 * (lo + hi)
        below = count(mid, d64, torch.float64) < target
        lo = torch.where(below, mid, lo)
        hi = torch.where(below, hi, mid)
    s0 = (0.5 * (lo + hi)).to(distances.dtype)
    # One Newton step with the gradient: value unchanged (to rounding), first derivative exact.
    c = count(s0, distances, distances.dtype)
    slope = torch.zeros(n_nodes, dtype=distances.dtype, device=distances.device)
    slope.index_add_(0, centers, _smoothstep_slope((s0[centers] - distances.detach()) / width + 0.5) / width)
    refined = s0 - (c - target) / slope.clamp_min(1e-12)
    return torch.where(enough, refined, s)


def knn_weights(distances: torch.Tensor, centers: torch.Tensor, n_nodes: int, k: int, width: float,
                cutoff: float) -> torch.Tensor:
    """Per-edge weights of the smooth k-nearest graph: ``(1 − S((d − s_i)/δ)) · envelope(d)``, in [0, 1].

    ``s_i`` is :func:`soft_kth_distance`; the envelope ``1 − S((d − r_c + 1 Å)/1 Å)`` takes every weight to zero at the
    cutoff, so neighbours entering the search sphere (only relevant for sparse structures) enter with weight 0.
    """
    s = soft_kth_distance(distances, centers, n_nodes, k, width)
    sc = s[centers]
    step = torch.where(torch.isfinite(sc), 1.0 - smoothstep((distances - sc) / width), torch.ones_like(distances))
    taper = min(CUTOFF_TAPER, cutoff)
    return step * (1.0 - smoothstep((distances - (cutoff - taper)) / taper))


class CrystalGraph:
    """A crystal graph, or a batch of them, as plain tensors: what the encoder reads of a PyG ``Data``/``Batch``.

    ``z`` (N,), ``pos`` (N, 3) Å, ``cell`` (G, 3, 3) Å, ``edge_index`` (2, E), ``edge_shift`` (E, 3), ``num_nodes``;
    a batch from :func:`collate_graphs` also has ``batch`` (N,) (graph of each atom) and ``num_graphs``.
    """

    __slots__ = ("z", "pos", "cell", "edge_index", "edge_shift", "num_nodes", "batch", "num_graphs")

    def __init__(self, z, pos, cell, edge_index, edge_shift, num_nodes: int, batch=None, num_graphs: int = 1):
        self.z, self.pos, self.cell = z, pos, cell
        self.edge_index, self.edge_shift = edge_index, edge_shift
        self.num_nodes, self.batch, self.num_graphs = int(num_nodes), batch, int(num_graphs)

    def to(self, device) -> CrystalGraph:
        """The graph with every tensor on ``device``."""
        moved = {k: getattr(self, k) for k in self.__slots__}
        for k, v in moved.items():
            if isinstance(v, torch.Tensor):
                moved[k] = v.to(device)
        return CrystalGraph(**moved)

    def __repr__(self) -> str:
        return (f"CrystalGraph(num_graphs={self.num_graphs}, num_nodes={self.num_nodes}, "
                f"num_edges={self.edge_index.shape[1]})")


def collate_graphs(graphs) -> CrystalGraph:
    """Batch graphs (:class:`CrystalGraph` or PyG ``Data`` from the converter) into one :class:`CrystalGraph`.

    As PyG's ``Batch.from_data_list`` for these fields: nodes and edges concatenated, edge indices offset by the atoms
    before, cells stacked, ``batch`` the graph index of each atom.
    """
    graphs = list(graphs)
    if not graphs:
        raise ValueError("no graphs to collate")
    sizes = torch.tensor([int(g.num_nodes) for g in graphs])
    offsets = torch.cumsum(sizes, 0) - sizes
    n_edges = torch.tensor([g.edge_index.shape[1] for g in graphs])
    edge_index = torch.cat([g.edge_index for g in graphs], dim=1) + offsets.repeat_interleave(n_edges)
    return CrystalGraph(
        z=torch.cat([g.z for g in graphs]),
        pos=torch.cat([g.pos for g in graphs]),
        cell=torch.cat([g.cell for g in graphs]),
        edge_index=edge_index,
        edge_shift=torch.cat([g.edge_shift for g in graphs]),
        num_nodes=int(sizes.sum()),
        batch=torch.arange(len(graphs)).repeat_interleave(sizes),
        num_graphs=len(graphs),
    )


class CrystalGraphConverter:
    """Turn structures into crystal graphs.

    Parameters
    ----------
    cutoff : float, default 8.0
        Neighbour radius in Å.
    max_neighbors : int or None, default 12
        Nearest neighbours per atom (ties with the last kept one are kept too); ``None`` = all.
    smooth_width : float or None, default ``SMOOTH_WIDTH``
        Width δ (Å) of the continuous k-nearest graph; ``None`` = the paper's hard graph (see the module notes).

    Notes
    -----
    An atom with no neighbour inside the cutoff (an isolated atom, a dilute gas) gets no edges: its
    embedding is then the element's, transformed by the layers without messages. That is a documented
    result, not an error. Structures with any periodic direction shorter than the cutoff get periodic
    images as neighbours, including images of the atom itself.
    """

    def __init__(self, cutoff: float = 8.0, max_neighbors: int | None = 12, smooth_width: float | None = SMOOTH_WIDTH):
        self.settings = GraphSettings(float(cutoff), None if max_neighbors is None else int(max_neighbors),
                                      None if smooth_width is None else float(smooth_width))

    @property
    def cutoff(self) -> float:
        return self.settings.cutoff

    @property
    def max_neighbors(self) -> int | None:
        return self.settings.max_neighbors

    @property
    def smooth_width(self) -> float | None:
        return self.settings.smooth_width

    def __repr__(self) -> str:
        return (f"CrystalGraphConverter(cutoff={self.cutoff}, max_neighbors={self.max_neighbors}, "
                f"smooth_width={self.smooth_width})")

    @staticmethod
    def _search(atoms: Atoms, search_cell: np.ndarray, pbc: np.ndarray, radius: float):
        """Every pair within ``radius`` (pymatgen's cell-list search), overlaps refused; also the self-pair mask."""
        from pymatgen.optimization.neighbors import find_points_in_spheres

        pos = np.ascontiguousarray(atoms.positions, dtype=float)
        centers, nbrs, shifts, dists = find_points_in_spheres(
            pos, pos, float(radius), pbc.astype(np.int64), search_cell, 1e-8
        )
        centers = centers.astype(np.int64)
        nbrs = nbrs.astype(np.int64)
        shifts = np.asarray(shifts, dtype=float).reshape(-1, 3)
        self_pair = (centers == nbrs) & ~shifts.any(axis=1)
        if (dists[~self_pair] < MIN_DISTANCE).any():
            bad = np.flatnonzero(~self_pair & (dists < MIN_DISTANCE))[0]
            raise ValueError(
                f"atoms {centers[bad]} and {nbrs[bad]} overlap (distance {dists[bad]:.3g} Å < {MIN_DISTANCE} Å)"
            )
        return centers, nbrs, shifts, dists, self_pair

    def neighbors(self, atoms: Atoms) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Neighbour list of one validated structure.

        Returns
        -------
        centers, neighbors : numpy.ndarray of int64
            Index of the centre atom and of its neighbour.
        shifts : numpy.ndarray of float64, shape (E, 3)
            Integer cell shift of the neighbour image (zero along non-periodic directions).
        distances : numpy.ndarray of float64
            Distances in Å, sorted ascending within each centre.
        """
        search_cell, pbc = _search_cell(atoms)
        k = self.max_neighbors
        margin = 1.5 * self.smooth_width if self.settings.smooth else TIE_TOLERANCE
        radius = self.cutoff if k is None else min(self.cutoff, FIRST_SEARCH_RADIUS)
        centers, nbrs, shifts, dists, self_pair = self._search(atoms, search_cell, pbc, radius)
        if radius < self.cutoff:
            # the short search has every edge the selection can keep iff each atom has k neighbours in it and its
            # k-th distance + margin (the farthest edge kept) lies inside it
            d = dists[~self_pair]
            c = centers[~self_pair]
            counts = np.bincount(c, minlength=len(atoms))
            ok = bool(counts.min() >= k)
            if ok:
                order = np.lexsort((d, c))
                starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
                ok = float(d[order[starts + k - 1]].max()) + margin + 1e-6 < radius
            if not ok:
                centers, nbrs, shifts, dists, self_pair = self._search(atoms, search_cell, pbc, self.cutoff)
        keep = ~self_pair
        centers, nbrs, shifts, dists = centers[keep], nbrs[keep], shifts[keep], dists[keep]
        if self.settings.smooth and len(centers):
            width = self.smooth_width
            # Every edge that can have a weight > 0 (d < s_i + δ with s_i < d_k + δ/2, inside the cutoff) is kept; the
            # soft k-th distance s_i itself is solved once per batch in the encoder (knn_weights), not here. The few
            # edges kept with s_i + δ <= d < d_k + 1.5 δ get weight exactly 0 there (and count 0 towards s_i).
            keep = _near_enough(centers, dists, len(atoms), k, margin=1.5 * width) & (dists < self.cutoff)
            centers, nbrs, shifts, dists = centers[keep], nbrs[keep], shifts[keep], dists[keep]
            k = None  # nothing more to select
        elif k is not None:
            keep = _near_enough(centers, dists, len(atoms), k)
            centers, nbrs, shifts, dists = centers[keep], nbrs[keep], shifts[keep], dists[keep]
        # Sort by centre then distance; neighbour index and shift break exact ties deterministically.
        order = np.lexsort((shifts[:, 2], shifts[:, 1], shifts[:, 0], nbrs, dists, centers))
        centers, nbrs, shifts, dists = centers[order], nbrs[order], shifts[order], dists[order]
        if k is not None and len(centers):
            counts = np.bincount(centers, minlength=len(atoms))
            starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
            rank = np.arange(len(centers)) - starts[centers]
            kth = np.full(len(atoms), np.inf)
            has_k = counts > k
            kth[has_k] = dists[starts[has_k] + k - 1]
            keep = (rank < k) | (dists <= kth[centers] + TIE_TOLERANCE)
            centers, nbrs, shifts, dists = centers[keep], nbrs[keep], shifts[keep], dists[keep]
        return centers, nbrs, shifts, dists

    def validate(self, structure) -> Atoms:
        """Return the structure as validated ``Atoms``; raise ``ValueError`` naming any problem."""
        atoms = to_atoms(structure)
        if len(atoms) == 0:
            raise ValueError("empty structure: it has no atoms")
        check_numbers(atoms.numbers)
        if not np.isfinite(atoms.positions).all():
            bad = np.flatnonzero(~np.isfinite(atoms.positions).all(axis=1))
            raise ValueError(f"non-finite (NaN/inf) positions for atom(s) {bad[:10].tolist()}")
        if not np.isfinite(atoms.cell.array).all():
            raise ValueError("the cell contains NaN/inf")
        return atoms

    def _tensors(self, structure) -> dict:
        atoms = self.validate(structure)
        centers, nbrs, shifts, _ = self.neighbors(atoms)
        return dict(
            z=torch.from_numpy(atoms.numbers.astype(np.int64)),
            pos=torch.tensor(atoms.positions, dtype=torch.float32),
            cell=torch.tensor(np.asarray(atoms.cell.array), dtype=torch.float32).unsqueeze(0),
            edge_index=torch.from_numpy(np.stack([nbrs, centers])),
            edge_shift=torch.tensor(shifts, dtype=torch.float32),
            num_nodes=len(atoms),
        )

    def __call__(self, structure):
        """Convert one ``Atoms``/``Structure`` to a PyG ``Data`` graph (training; batched by PyG's loaders).

        The graph has ``z`` (N,) atomic numbers, ``pos`` (N, 3) Å, ``cell`` (1, 3, 3) Å (zero rows along
        non-periodic directions are kept as given), ``edge_index`` (2, E), ``edge_shift`` (E, 3) integer
        image shifts and ``num_nodes``.
        """
        from torch_geometric.data import Data  # training-side: imported on use (seconds of start-up)

        return Data(**self._tensors(structure))

    def graph(self, structure) -> CrystalGraph:
        """The same graph as :meth:`__call__`, as a :class:`CrystalGraph` (inference; no torch-geometric import)."""
        return CrystalGraph(**self._tensors(structure))

    def convert_many(self, structures, progress: bool = False) -> list:
        """Convert a sequence of structures, optionally with a progress bar."""
        from tqdm.auto import tqdm

        return [self(s) for s in tqdm(structures, disable=not progress, desc="graphs", unit="struct")]


def edge_vectors(data) -> torch.Tensor:
    """Edge vectors ``r_neighbour + shift·cell − r_centre`` (Å) of a graph or batch, differentiable in pos/cell."""
    src, dst = data.edge_index
    batch = getattr(data, "batch", None)
    if batch is None:
        cell = data.cell[0].expand(src.shape[0], 3, 3) if src.numel() else data.cell.new_zeros((0, 3, 3))
    else:
        cell = data.cell[batch[dst]]
    offsets = torch.bmm(data.edge_shift.unsqueeze(1).to(cell.dtype), cell).squeeze(1)
    return data.pos[src] + offsets - data.pos[dst]
