"""CGCNN-style crystal-graph encoder returning every layer's node embeddings (the SSAR of Kong et al.)."""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .elements import element_features
from .graph import SMOOTH_WIDTH, CrystalGraphConverter, edge_vectors, knn_weights
from .io import atomic_directory

__all__ = ["CGCNNEncoder", "GaussianExpansion", "WeightedCGConv", "check_saved_model", "save_atomic"]


class WeightedCGConv(nn.Module):
    """The crystal-graph convolution of Xie & Grossman, whose messages can be scaled by a per-edge weight.

    PyG's ``CGConv`` with the same arguments, parameters (``lin_f``, ``lin_s``, optional ``bn``), state-dict keys,
    initialisation and function (``tests/test_fast_paths.py`` checks all four against it), so pretrained encoders
    and models load unchanged. It is written out here rather than subclassed so that the inference path (SSAR/SSMR,
    ``ase-negnn embed``) runs without importing torch-geometric, whose eager ``__init__`` costs seconds of start-up
    (issue 18). With ``edge_weight=None`` it is exactly ``CGConv``; with a weight that goes smoothly to zero (the smooth
    k-nearest graph, a cutoff envelope), the output is a smooth function of the positions.

    ``lin(cat[x_i, x_j, e]) = W_i x_i + W_j x_j + W_e e + b``: the node blocks are applied once per atom and gathered
    onto the edges, so only the edge block costs a matrix product per edge (3× fewer multiply-adds per edge than the
    concatenated product for equal widths, and no concatenation); the sums are only rounded in another order.

    Parameters
    ----------
    channels : int or (int, int)
        Node feature width (source, target).
    dim : int
        Edge feature width.
    aggr : {"add", "sum", "mean"}
        Aggregation of the messages on the centre atom.
    batch_norm, bias : bool
        As in ``CGConv``.
    """

    def __init__(self, channels: int | tuple[int, int], dim: int = 0, aggr: str = "add", batch_norm: bool = False,
                 bias: bool = True):
        super().__init__()
        if aggr not in ("add", "sum", "mean"):
            raise ValueError(f"aggr must be 'add', 'sum' or 'mean', got {aggr!r}")
        self.channels, self.dim, self.aggr, self.batch_norm = channels, int(dim), aggr, bool(batch_norm)
        src, dst = (channels, channels) if isinstance(channels, int) else channels
        self.lin_f = nn.Linear(src + dst + self.dim, dst, bias=bias)
        self.lin_s = nn.Linear(src + dst + self.dim, dst, bias=bias)
        self.bn = nn.BatchNorm1d(dst) if batch_norm else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Re-initialise as ``CGConv`` does (its constructor draws the linears twice: same random stream, same init)."""
        self.lin_f.reset_parameters()
        self.lin_s.reset_parameters()
        if self.bn is not None:
            self.bn.reset_parameters()

    def forward(self, x: Tensor | tuple[Tensor, Tensor], edge_index: Tensor, edge_attr: Tensor | None = None,
                edge_weight: Tensor | None = None) -> Tensor:
        """``x_i + Σ_j w_ij σ(W_f z_ij + b_f) ⊙ softplus(W_s z_ij + b_s)``, ``z_ij = [x_i, x_j, e_ij]``.

        ``edge_index[0]`` is the source (neighbour ``j``), ``edge_index[1]`` the target (centre ``i``).
        """
        if isinstance(x, Tensor):
            x = (x, x)
        src, dst = edge_index[0], edge_index[1]
        n_dst, n_src = x[1].shape[-1], x[0].shape[-1]
        weight = torch.cat([self.lin_f.weight, self.lin_s.weight], dim=0)
        bias = None if self.lin_f.bias is None else torch.cat([self.lin_f.bias, self.lin_s.bias])
        z = F.linear(x[1], weight[:, :n_dst]).index_select(0, dst)
        z += F.linear(x[0], weight[:, n_dst : n_dst + n_src]).index_select(0, src)
        if edge_attr is not None:
            z += F.linear(edge_attr, weight[:, n_dst + n_src :], bias)
        elif bias is not None:
            z += bias
        gate, core = z.chunk(2, dim=-1)
        msg = gate.sigmoid() * F.softplus(core)
        if edge_weight is not None:
            msg = msg * edge_weight.unsqueeze(-1)
        out = msg.new_zeros((x[1].shape[0], msg.shape[-1])).index_add_(0, dst, msg)
        if self.aggr == "mean":
            count = torch.bincount(dst, minlength=x[1].shape[0]).clamp_min(1).to(out.dtype)
            out = out / count.unsqueeze(-1)
        out = out if self.bn is None else self.bn(out)
        return out + x[1]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.channels}, dim={self.dim})"


class GaussianExpansion(nn.Module):
    """CGCNN Gaussian distance expansion ``exp(-(d - μ_k)² / σ²)`` with centres ``μ_k = k·step``.

    Parameters
    ----------
    dmin, dmax, step : float
        Centres from ``dmin`` to ``dmax`` (inclusive) in Å; 0, 8, 0.2 gives CGCNN's 41 features.
    width : float or None
        Gaussian width σ in Å; defaults to ``step`` as in CGCNN.
    """

    def __init__(self, dmin: float = 0.0, dmax: float = 8.0, step: float = 0.2, width: float | None = None):
        super().__init__()
        n = int(round((dmax - dmin) / step)) + 1
        self.register_buffer("centers", torch.linspace(dmin, dmin + (n - 1) * step, n), persistent=False)
        self.dmin, self.step = dmin, step
        self.width = step if width is None else width

    @property
    def n_features(self) -> int:
        return int(self.centers.numel())

    def forward(self, distances: torch.Tensor) -> torch.Tensor:
        return torch.exp(-((distances.unsqueeze(-1) - self.centers) ** 2) / self.width**2)

    def bin_index(self, distances: torch.Tensor) -> torch.Tensor:
        """Index of the nearest centre (the argmax of the expansion): the SSL distance-bin label."""
        idx = torch.round((distances - self.dmin) / self.step).long()
        return idx.clamp_(0, self.n_features - 1)


class SavedArgs:
    """matgl's ``IOMixIn.save_args`` protocol without importing matgl (whose ``__init__`` imports Lightning, seconds
    of start-up for every descriptor call): ``_init_args`` holds the constructor arguments, ``nested_args()`` is the
    form matgl stores for a module inside another model's arguments (``@class``, ``@module``, ``@model_version``,
    ``init_args``), and :func:`save_atomic` writes the files with matgl's own ``IOMixIn.save``."""

    def save_args(self, locals: dict, kwargs: dict | None = None) -> None:
        import inspect

        names = inspect.getfullargspec(self.__class__.__init__).args
        args = {k: v for k, v in locals.items() if k in names and k not in ("self", "__class__")}
        args.update(kwargs or {})
        self._init_args = {k: v.nested_args() if isinstance(v, SavedArgs) else v for k, v in args.items()}

    def nested_args(self) -> dict:
        """This module as an argument of another saved model (what matgl writes for an ``IOMixIn`` argument)."""
        cls = type(self)
        return {"@class": cls.__name__, "@module": cls.__module__, "@model_version": getattr(self, "__version__", 0),
                "init_args": self._init_args}


class CGCNNEncoder(nn.Module, SavedArgs):
    """Crystal-graph encoder: element embedding → ``n_layers`` CGConv + BatchNorm layers.

    The architecture follows the SSAR authors' encoder (Kong et al. 2024): a linear embedding of the
    92-dim CGCNN element vector (layer 0), a linear embedding of the Gaussian-expanded distance, then
    PyG ``CGConv`` layers (residual, sum aggregation) each followed by ``BatchNorm1d`` and ReLU (no ReLU
    after the last layer).

    Parameters
    ----------
    n_layers : int
        Number of graph-convolution layers (the paper uses 5).
    width : int
        Embedding width (64 in the paper).
    cutoff : float
        Graph cutoff in Å (also the largest Gaussian centre).
    max_neighbors : int or None
        Nearest neighbours per atom in the graph.
    gaussian_step : float
        Spacing of the Gaussian centres in Å (0.2 → 41 features for 8 Å).
    smooth_width : float or None
        Width δ (Å) of the continuous k-nearest graph (:mod:`ase_negnn.graph`): messages are multiplied by the smooth
        neighbour weights, so embeddings are C¹ in positions and cell. ``None`` = the paper's hard graph (the authors'
        checkpoints, encoders saved before v2: a saved encoder without this setting loads with ``None``).

    Notes
    -----
    ``forward`` returns a list of ``n_layers + 1`` tensors of shape ``(n_atoms, width)``; index ``l`` is the
    SSAR of layer ``l``. The encoder is saved in matgl's layout with matgl's ``IOMixIn.save`` (``model.pt``,
    ``state.pt``, ``model.json``), so ``matgl.load_model(path)`` and :meth:`load` both restore it with
    ``torch.load(weights_only=True)``; building and loading one does not import matgl (:class:`SavedArgs`).
    """

    __version__ = 1  # v2 graphs are told apart by smooth_width (absent = hard), so v1 files stay compatible

    def __init__(
        self,
        n_layers: int = 5,
        width: int = 64,
        cutoff: float = 8.0,
        max_neighbors: int | None = 12,
        gaussian_step: float = 0.2,
        smooth_width: float | None = SMOOTH_WIDTH,
    ):
        super().__init__()
        self.save_args(locals())
        if int(n_layers) < 1:
            raise ValueError(f"n_layers must be >= 1, got {n_layers!r}")
        if int(width) < 1:
            raise ValueError(f"width must be >= 1, got {width!r}")
        self.n_layers, self.width = int(n_layers), int(width)
        self.cutoff, self.max_neighbors = float(cutoff), max_neighbors
        self.smooth_width = None if smooth_width is None else float(smooth_width)
        self.graph_converter()  # validates the graph settings now, not at the first structure
        self.register_buffer("element_table", torch.from_numpy(element_features().copy()), persistent=False)
        self.expansion = GaussianExpansion(0.0, self.cutoff, gaussian_step)
        self.node_embedding = nn.Linear(self.element_table.shape[1], self.width)
        self.edge_embedding = nn.Linear(self.expansion.n_features, self.width)
        self.convs = nn.ModuleList(
            [WeightedCGConv(self.width, dim=self.width, aggr="add", batch_norm=False) for _ in range(self.n_layers)]
        )
        self.norms = nn.ModuleList([nn.BatchNorm1d(self.width) for _ in range(self.n_layers)])

    @property
    def n_features_per_layer(self) -> int:
        return self.width

    @property
    def smooth(self) -> bool:
        """True when this encoder runs on the continuous (weighted) k-nearest graph."""
        return self.smooth_width is not None and self.max_neighbors is not None

    def graph_converter(self) -> CrystalGraphConverter:
        """The structure → graph converter matching this encoder's cutoff, neighbour count and graph kind."""
        return CrystalGraphConverter(self.cutoff, self.max_neighbors, self.smooth_width)

    def graph_weights(self, data, distances: torch.Tensor) -> torch.Tensor | None:
        """Per-edge message weights of this encoder's graph (smooth k-nearest weights), ``None`` for the hard graph."""
        if not self.smooth:
            return None
        return knn_weights(distances, data.edge_index[1], int(data.num_nodes), int(self.max_neighbors),
                           self.smooth_width, self.cutoff)

    @classmethod
    def load(cls, path, **kwargs):
        """Load a saved encoder (directory or matgl's file dict); one saved before v2 gets the hard graph it used."""
        return load_graph_aware(cls, path, **kwargs)

    def edge_distances(self, data) -> torch.Tensor:
        """Edge lengths (Å) of a graph/batch, recomputed from positions (differentiable)."""
        return edge_vectors(data).norm(dim=-1)

    def forward(
        self,
        data,
        node_mask: torch.Tensor | None = None,
        edge_mask: torch.Tensor | None = None,
        edge_weight: torch.Tensor | None = None,
        max_layer: int | None = None,
        distances: torch.Tensor | None = None,
    ):
        """Embed a graph or batch.

        Parameters
        ----------
        data : torch_geometric.data.Data or Batch
            Graph(s) from :class:`~ase_negnn.graph.CrystalGraphConverter`.
        node_mask, edge_mask : torch.Tensor of bool, optional
            Atoms whose element vector, and edges whose distance features, are replaced by zeros
            (self-supervised masking); a masked edge of the smooth graph also gets weight 1, so nothing about its
            length is left.
        edge_weight : torch.Tensor, optional
            Per-edge factor multiplying every message; default :meth:`graph_weights` (the smooth graph's weights, or
            none for the hard graph). A caller passing its own (e.g. a potential's envelope) includes those.
        max_layer : int, optional
            Stop after this layer (layers beyond it are not computed and not returned).
        distances : torch.Tensor, optional
            Edge lengths in Å, when the caller already computed them (e.g. from strained positions).

        Returns
        -------
        list of torch.Tensor
            ``max_layer + 1`` (default ``n_layers + 1``) node-embedding tensors of shape ``(n_atoms, width)``.
        """
        x = self.element_table[data.z]
        if node_mask is not None:
            x = x.masked_fill(node_mask.unsqueeze(-1), 0.0)
        n_conv = self.n_layers if max_layer is None else max(0, min(int(max_layer), self.n_layers))
        h = self.node_embedding(x)
        layers = [h]
        if n_conv == 0:
            return layers
        distances = self.edge_distances(data) if distances is None else distances
        if edge_weight is None:
            edge_weight = self.graph_weights(data, distances)
            if edge_weight is not None and edge_mask is not None:
                # a masked edge hides its length: its smooth weight (a function of it) is replaced by 1; an edge of
                # weight 0 (kept by the converter's prefilter beyond the soft shell) stays out of the graph
                edge_weight = edge_weight.masked_fill(edge_mask & (edge_weight > 0), 1.0)
        e = self.expansion(distances)
        if edge_mask is not None:
            e = e.masked_fill(edge_mask.unsqueeze(-1), 0.0)
        e = self.edge_embedding(e)
        for i, (conv, norm) in enumerate(zip(self.convs[:n_conv], self.norms[:n_conv])):
            h = norm(conv(h, data.edge_index, e, edge_weight))
            if i < self.n_layers - 1:
                h = F.relu(h)
            layers.append(h)
        return layers

    def save(self, path: str | Path = ".", metadata: dict | None = None, makedirs: bool = True):
        """Save atomically (matgl layout: ``model.pt``, ``state.pt``, ``model.json``) into directory ``path``."""
        save_atomic(self, path, metadata)


def load_graph_aware(cls, path, **kwargs):
    """matgl's ``IOMixIn.load``, except that an encoder saved before v2 (no ``smooth_width`` in its arguments, top
    level or nested) is rebuilt with ``smooth_width=None``: the hard graph it was trained on, never silently the new
    default."""
    import json

    fpaths = path if isinstance(path, dict) else model_files(path)
    with open(fpaths["model.json"]) as fh:
        written = json.load(fh).get("@model_version", 0)
    if getattr(cls, "__version__", 0) > written:  # matgl's check (its _check_ver), without importing matgl
        warnings.warn(f"Incompatible model version detected: {fpaths['model.json']} holds {cls.__name__} version "
                      f"{written}, this code is version {cls.__version__}; loading it anyway", UserWarning,
                      stacklevel=3)
    args = torch.load(fpaths["model.pt"], map_location="cpu", weights_only=True)
    state = torch.load(fpaths["state.pt"], map_location="cpu", weights_only=True)
    if not isinstance(args, dict) or not isinstance(state, dict):
        raise ValueError(f"{fpaths['model.pt']} / {fpaths['state.pt']} are not a saved {cls.__name__}")
    if cls is CGCNNEncoder:
        args.setdefault("smooth_width", None)
    for key, value in list(args.items()):
        if isinstance(value, dict) and "@class" in value and "@module" in value:
            import importlib

            if not str(value["@module"]).startswith("ase_negnn."):
                raise ValueError(f"{fpaths['model.pt']}: argument {key!r} would construct "
                                 f"{value['@module']}.{value['@class']}; refusing to load")
            sub = getattr(importlib.import_module(value["@module"]), value["@class"])
            init = dict(value["init_args"])
            if sub is CGCNNEncoder:
                init.setdefault("smooth_width", None)
            args[key] = sub(**init)
    model = cls(**{k: v for k, v in args.items() if not k.startswith("@")})
    result = model.load_state_dict(state, strict=False)
    # As matgl: a missing parameter is an error, a missing buffer keeps its constructor value (older files).
    missing = sorted(set(result.missing_keys) & {name for name, _ in model.named_parameters()})
    if missing or result.unexpected_keys:
        raise ValueError(f"{fpaths['state.pt']} does not match {cls.__name__}: missing {missing[:5]}, "
                         f"unexpected {list(result.unexpected_keys)[:5]}")
    return model


def model_files(path: str | Path) -> dict[str, Path]:
    """The three files of a saved model directory (matgl's layout), or ``FileNotFoundError`` naming what is missing."""
    path = Path(path)
    files = {name: path / name for name in ("model.json", "model.pt", "state.pt")}
    missing = [name for name, f in files.items() if not f.is_file()]
    if missing:
        raise FileNotFoundError(f"{path} is not a saved model directory: missing {', '.join(missing)}")
    return files


def check_saved_model(path: str | Path, cls: type, allowed: frozenset[str] = frozenset()) -> None:
    """Check ``model.pt`` and ``state.pt`` of a saved model directory before matgl builds anything from them.

    Both files are read with ``torch.load(weights_only=True)`` (no pickled code runs) and must hold dicts: the
    constructor arguments of ``cls`` and a state dict of tensors. matgl's loader builds any argument written as
    ``{"@module": m, "@class": c, "init_args": …}`` by calling ``m.c(**init_args)``, which a crafted ``model.pt`` could
    point at any callable (``os.system``); only the ``"module.Class"`` names in ``allowed`` are accepted here.

    Raises
    ------
    ValueError
        Naming the file: unreadable (truncated, random bytes, empty), not a dict, constructor arguments that
        ``cls`` does not take, a state dict with non-tensor values, or a class reference outside ``allowed``.
    """
    import inspect

    path = Path(path)
    params = inspect.signature(cls.__init__).parameters
    for name in ("model.pt", "state.pt"):
        f = path / name
        try:
            obj = torch.load(f, map_location="cpu", weights_only=True)
        except Exception as ex:
            lines = str(ex).strip().splitlines()
            why = lines[0][:200] if lines else ("empty file" if f.stat().st_size == 0 else "truncated file")
            raise ValueError(f"{f} is corrupt or not a torch file written by {cls.__name__}.save "
                             f"({type(ex).__name__}: {why})") from ex
        what = "constructor arguments" if name == "model.pt" else "a state dict of tensors"
        if not isinstance(obj, dict):
            raise ValueError(f"{f} holds a {type(obj).__name__}, expected {what} of a {cls.__name__} (a dict)")
        if name == "state.pt":
            bad = [k for k, v in obj.items() if not isinstance(v, torch.Tensor)]
            if bad:
                raise ValueError(f"{f} is not a {cls.__name__} state dict: non-tensor entries {bad[:5]}")
            continue
        unknown = [k for k in obj if k not in params or k == "self"]
        if unknown:
            raise ValueError(f"{f} holds argument(s) {unknown[:5]} that {cls.__name__} does not take: "
                             f"not a saved {cls.__name__}")
        for key, value in obj.items():
            if isinstance(value, dict) and ("@module" in value or "@class" in value):
                ref = f"{value.get('@module')}.{value.get('@class')}"
                if ref not in allowed:
                    raise ValueError(f"{f}: argument {key!r} would construct {ref}; refusing to load "
                                     f"(allowed: {sorted(allowed) or 'none'})")


def save_atomic(model: nn.Module, path: str | Path, metadata: dict | None = None) -> Path:
    """Write a matgl-format model directory atomically: into a sibling temp dir, then rename over ``path``.

    A reader never sees half a model: either the old directory or the complete new one.
    """
    from matgl.utils.io import IOMixIn  # saving is a training-side action; matgl's writer, imported on use

    with atomic_directory(path) as tmp:
        IOMixIn.save(model, tmp, metadata=metadata, makedirs=False)
    return path

