"""SSAR (per-atom) and SSMR (per-structure) descriptors from a pretrained encoder, dscribe-style ``create``."""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from typing import Literal

import numpy as np
import torch
from ase import Atoms

from .deprecation import renamed_argument
from .encoder import CGCNNEncoder
from .graph import collate_graphs
from .pretrained import load_encoder

__all__ = ["Descriptor", "SSAR", "SSMR", "parse_layers", "parse_pooling", "POOLINGS"]

# Statistics over the atoms of a structure; ``pooling`` joins one or more with ``+`` (e.g. ``"mean+max+min"``).
POOLINGS = ("sum", "mean", "max", "min", "std")


def parse_pooling(pooling: str) -> tuple[str, ...]:
    """``"mean+max+min"`` → ``("mean", "max", "min")``; each one of :data:`POOLINGS`, none twice.

    Raises
    ------
    ValueError
        An unknown statistic, a repeated one, or an empty string.
    """
    parts = tuple(p.strip() for p in str(pooling).split("+"))
    bad = [p for p in parts if p not in POOLINGS]
    if bad or not parts:
        raise ValueError(f"pooling must be one of {POOLINGS} or several joined by '+' (e.g. 'mean+max+min'), "
                         f"got {pooling!r}")
    if len(set(parts)) != len(parts):
        raise ValueError(f"repeated statistic in pooling {pooling!r}")
    return parts


def _scatter(x: torch.Tensor, index: torch.Tensor, n: int, reduce: str) -> torch.Tensor:
    """Per-structure ``sum``/``mean``/``max``/``min`` of atom rows (torch-geometric's ``scatter``, which imports PyG)."""
    index = index.unsqueeze(-1).expand_as(x)
    if reduce in ("sum", "mean"):
        out = x.new_zeros((n, x.shape[1])).scatter_add_(0, index, x)
        if reduce == "mean":
            count = x.new_zeros(n).scatter_add_(0, index[:, 0], x.new_ones(x.shape[0])).clamp(min=1)
            out = out / count.unsqueeze(-1)
        return out
    return x.new_zeros((n, x.shape[1])).scatter_reduce_(0, index, x, reduce="a" + reduce, include_self=False)


def _pool(x: torch.Tensor, index: torch.Tensor, n: int, stat: str) -> torch.Tensor:
    if stat == "std":  # population standard deviation over the atoms (0 for a single atom)
        mean = _scatter(x, index, n, "mean")
        var = _scatter((x - mean[index]) ** 2, index, n, "mean")
        return var.clamp_min(0).sqrt()
    return _scatter(x, index, n, stat)


def parse_layers(layers, n_layers: int) -> tuple[int, ...]:
    """Normalise a layer selection to a tuple of layer indices in ``0 … n_layers``.

    Accepted forms: an int (``3``); a sequence of ints (``[0, 1, 2]``); the paper's digit strings (``"3"``,
    ``"012"``); a range string (``"0-5"``, inclusive); a comma list (``"0,2,5"``); ``"all"``.
    Layer 0 is the embedded element alone; layer ``l`` sees neighbours up to ``l`` bonds away.

    Raises
    ------
    ValueError
        Unknown syntax, an index outside ``0 … n_layers``, a repeated index, or an empty selection.
    """
    if isinstance(layers, (int, np.integer)) and not isinstance(layers, bool):
        out = [int(layers)]
    elif isinstance(layers, str):
        text = layers.strip().lower()
        if text == "all":
            out = list(range(n_layers + 1))
        elif m := re.fullmatch(r"(\d+)\s*-\s*(\d+)", text):
            lo, hi = int(m.group(1)), int(m.group(2))
            if lo > hi:
                raise ValueError(f"layer range {layers!r} is empty (start > end)")
            out = list(range(lo, hi + 1))
        elif re.fullmatch(r"\d+(\s*,\s*\d+)+", text):
            out = [int(t) for t in text.split(",")]
        elif re.fullmatch(r"\d+", text):
            out = [int(c) for c in text]  # the paper's "012" = layers 0, 1 and 2
        else:
            raise ValueError(
                f"cannot parse layers {layers!r}; use an int, a list of ints, digits like '012', a range '0-5', "
                "a comma list '0,2,5' or 'all'"
            )
    else:
        try:
            out = [int(v) for v in layers]
        except TypeError as ex:
            raise ValueError(f"layers must be an int, a string or a sequence of ints, got {layers!r}") from ex
    if not out:
        raise ValueError("no layers selected")
    bad = [v for v in out if not 0 <= v <= n_layers]
    if bad:
        raise ValueError(f"layer index(es) {bad} outside 0…{n_layers} for an encoder with {n_layers} layers")
    if len(set(out)) != len(out):
        raise ValueError(f"repeated layer index in {layers!r}")
    return tuple(out)


class Descriptor(ABC):
    """Base class: an encoder, a layer selection, batched inference.

    Parameters
    ----------
    layers : int, str or sequence of int
        Layers to concatenate (see :func:`parse_layers`); default all layers (multi-scale).
    encoder : str, path or CGCNNEncoder
        ``"default"`` (the bundled encoder), another bundled name, a saved encoder directory, or an instance.
        (``model=`` is the deprecated name of this argument.)
    batch_size : int
        Structures per inference batch.
    device : str
        ``"cpu"`` or ``"cuda"``.
    dtype : {"float64", "float32"}
        Output dtype.
    """

    def __init__(self, layers="all", encoder="default", batch_size: int = 64, device: str = "cpu",
                 dtype: Literal["float64", "float32"] = "float64", *, model=None):
        encoder = renamed_argument(model, "model", encoder, "encoder", "default", stacklevel=4)
        if dtype not in ("float64", "float32"):
            raise ValueError(f"dtype must be 'float64' or 'float32', got {dtype!r}")
        if int(batch_size) < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size!r}")
        self.encoder: CGCNNEncoder = load_encoder(encoder, device)
        self.layers = parse_layers(layers, self.encoder.n_layers)
        self.batch_size, self.device, self.dtype = int(batch_size), torch.device(device), dtype
        self.converter = self.encoder.graph_converter()

    def get_number_of_features(self) -> int:
        """Number of features per atom (SSAR) or per structure (SSMR)."""
        return self.encoder.width * len(self.layers)

    def feature_labels(self) -> list[str]:
        """Names ``L{layer}_{k}`` of the features, in output order."""
        return [f"L{layer}_{k}" for layer in self.layers for k in range(self.encoder.width)]

    def _graphs(self, systems, offset: int = 0):
        graphs = []
        for i, s in enumerate(systems, start=offset):
            try:
                graphs.append(self.converter.graph(s))
            except (ValueError, TypeError) as ex:
                raise type(ex)(f"structure {i}: {ex}") from ex
        return graphs

    @torch.inference_mode()
    def _embed(self, systems, pooling: str | None, progress: bool):
        """Yield per-batch arrays: per-atom (list per structure) or pooled (n_batch, F).

        Graphs are built batch by batch, so memory stays bounded for long lists and the progress bar
        covers graph building as well as inference.
        """
        from tqdm.auto import tqdm

        bar = tqdm(total=len(systems), disable=not progress, desc=type(self).__name__, unit="struct")
        for start in range(0, len(systems), self.batch_size):
            chunk = self._graphs(systems[start : start + self.batch_size], offset=start)
            batch = collate_graphs(chunk).to(self.device)
            hs = self.encoder(batch)
            x = torch.cat([hs[i] for i in self.layers], dim=1)
            if pooling is None:
                sizes = torch.bincount(batch.batch, minlength=batch.num_graphs).tolist()
                yield [a.cpu().numpy() for a in torch.split(x, sizes)]
            else:
                stats = [_pool(x, batch.batch, batch.num_graphs, stat) for stat in parse_pooling(pooling)]
                yield torch.cat(stats, dim=1).cpu().numpy()
            bar.update(batch.num_graphs)
        bar.close()

    @staticmethod
    def _as_list(system) -> tuple[list, bool]:
        if isinstance(system, Atoms) or type(system).__name__ in ("Structure", "Molecule"):
            return [system], True
        systems = list(system)
        if not systems:
            raise ValueError("no structures given")
        return systems, False

    @abstractmethod
    def create(self, system, progress: bool = False):
        """Descriptor of one structure or a list of structures."""


class SSAR(Descriptor):
    """Self-supervised atomic representation: per-atom embeddings of the chosen layers, concatenated.

    ``create(atoms)`` returns an array ``(n_atoms, n_features)``; ``create([atoms, …])`` a list of them.
    ``n_features = width × len(layers)``.
    """

    def create(self, system, progress: bool = False):
        """Per-atom descriptors.

        Parameters
        ----------
        system : Atoms, pymatgen Structure, or a list of them
        progress : bool
            Show a progress bar (useful for long lists).

        Returns
        -------
        numpy.ndarray or list of numpy.ndarray
            ``(n_atoms, n_features)`` for one structure; a list of such arrays for a list.
        """
        systems, single = self._as_list(system)
        out = [a.astype(self.dtype) for chunk in self._embed(systems, None, progress) for a in chunk]
        return out[0] if single else out


class SSMR(Descriptor):
    """Self-supervised material representation: SSAR pooled over the atoms of each structure.

    Parameters
    ----------
    layers, encoder, batch_size, device, dtype
        As :class:`Descriptor`.
    pooling : str
        A statistic over the atoms, ``"mean"`` (intensive), ``"sum"`` (extensive: doubles for a doubled cell),
        ``"max"``, ``"min"``, ``"std"``, or several joined by ``+``: ``"mean+max+min"`` concatenates the three
        (statistic-major: all layers of the first statistic, then of the second, …). Every statistic is
        invariant under permutations and, except ``sum``, under supercells.
    """

    def __init__(self, layers="all", encoder="default", pooling: str = "mean",
                 batch_size: int = 64, device: str = "cpu", dtype: Literal["float64", "float32"] = "float64", *,
                 model=None):
        self.statistics = parse_pooling(pooling)
        encoder = renamed_argument(model, "model", encoder, "encoder", "default", stacklevel=3)
        super().__init__(layers, encoder, batch_size, device, dtype)
        self.pooling = pooling

    def get_number_of_features(self) -> int:
        """``width × len(layers) × number of statistics``."""
        return super().get_number_of_features() * len(self.statistics)

    def feature_labels(self) -> list[str]:
        """``L{layer}_{k}`` for one statistic; ``{stat}_L{layer}_{k}`` for several, in output order."""
        base = super().feature_labels()
        if len(self.statistics) == 1:
            return base
        return [f"{stat}_{name}" for stat in self.statistics for name in base]

    def create(self, system, progress: bool = False) -> np.ndarray:
        """Per-structure descriptors.

        Returns
        -------
        numpy.ndarray
            ``(n_features,)`` for one structure, ``(n_structures, n_features)`` for a list.
        """
        systems, single = self._as_list(system)
        out = np.concatenate(list(self._embed(systems, self.pooling, progress))).astype(self.dtype)
        return out[0] if single else out
