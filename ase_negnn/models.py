"""NEGNN: graph networks whose node inputs are the pretrained encoder's SSAR (Kong et al.), with three heads.

* ``task="graph"`` — one value per structure (formation energy, band gap, log K, Tc, …);
  ``pooling="mean"`` (intensive: mean-pool the atoms, then an MLP) or ``"sum"`` (extensive: sum of atom terms).
* ``task="site"`` — one value per atom (magnetic moment in μB, …).
* ``task="potential"`` — total energy as a sum of atomic energies plus fitted element reference energies;
  forces ``-∂E/∂r`` and stress ``(1/V) ∂E/∂ε`` by autograd. The potential runs on its own smooth graph (every
  neighbour within ``cutoff``, messages scaled by a cosine envelope) so energy, forces and stress are continuous
  when atoms cross the cutoff; the property tasks use the encoder's own graph (12 nearest neighbours, 8 Å).

Targets are standardised inside the model (``target_mean``, ``target_std`` and ``element_refs`` are buffers saved
with the weights), so predictions come back in physical units. ``NEGNN`` subclasses matgl's ``MatGLModel``:
``model.save(dir)`` writes matgl's layout atomically and ``matgl.load_model(dir)`` returns the model.
"""

from __future__ import annotations

import copy
import math
from pathlib import Path

import numpy as np
import torch
from matgl.models._core import MatGLModel
from torch import nn
from torch_geometric.data import Batch
from torch_geometric.utils import scatter

from . import registry
from .elements import MAX_Z
from .encoder import CGCNNEncoder, GaussianExpansion, WeightedCGConv, check_saved_model, load_graph_aware, save_atomic
from .graph import CrystalGraphConverter

__all__ = ["NEGNN", "NEGNNEnsemble", "TASKS", "available_models", "cosine_envelope", "load_model", "model_card"]

TASKS = ("graph", "site", "potential")


def cosine_envelope(distances: torch.Tensor, cutoff: float) -> torch.Tensor:
    """``0.5 (cos(π d / r_c) + 1)`` inside the cutoff, 0 outside: value and slope vanish at ``r_c``."""
    env = 0.5 * (torch.cos(math.pi * distances / cutoff) + 1.0)
    return torch.where(distances < cutoff, env, torch.zeros_like(env))


def _resolve_encoder(encoder) -> CGCNNEncoder:
    if isinstance(encoder, CGCNNEncoder):
        return copy.deepcopy(encoder)  # never freeze, fine-tune or move the caller's instance
    if isinstance(encoder, dict):  # an init-args dict (e.g. written by hand), or matgl's nested form of one
        if "init_args" in encoder and "@class" in encoder:  # a NEGNN saved inside another model (an ensemble)
            if encoder["@class"] != "CGCNNEncoder":
                raise ValueError(f"encoder must be a CGCNNEncoder, got a saved {encoder['@class']}")
            return CGCNNEncoder(**{"smooth_width": None, **encoder["init_args"]})
        return CGCNNEncoder(**encoder)
    from .pretrained import load_encoder

    return load_encoder("default" if encoder is None else encoder)


class NEGNN(MatGLModel):
    """Node-embedding GNN: pretrained encoder layers → trainable CGConv layers → task head.

    Parameters
    ----------
    encoder : CGCNNEncoder, str, path or None
        The SSAR encoder: an instance (copied, so the caller's is never changed), a bundled name (``"default"``) or a saved encoder directory;
        ``None`` = the bundled ``"default"``.
    task : {"graph", "site", "potential"}
        Structure-level property, per-atom property, or interatomic potential (energy/forces/stress).
    target : str
        Name of the predicted quantity (e.g. ``"formation_energy_per_atom"``, ``"magmom"``, ``"energy"``).
    units : str
        Units of the target, recorded for users (``"eV/atom"``, ``"eV"``, ``"μB"``).
    layers : int, str or list of int, optional
        Encoder layers concatenated as node input (same syntax as :func:`~ase_negnn.descriptor.parse_layers`).
        Default: all layers for property tasks, ``[0]`` (the learned element embedding, independent of geometry)
        for potentials.
    freeze_encoder : bool
        Keep the encoder's weights fixed (and its BatchNorm in evaluation mode); ``False`` fine-tunes it.
    from_scratch : bool
        Build the identical network with a randomly initialised, trainable encoder: the paper's baseline.
    n_conv, width, hidden : int
        Trainable CGConv layers, their width, and the hidden width of the head MLP.
    pooling : {"mean", "sum"}
        Graph task only: intensive (mean pool, then MLP) or extensive (sum of per-atom MLP outputs).
    cutoff : float, optional
        Potential task only: radius (Å) of the smooth graph; default 5 Å.
    n_gaussians : int
        Gaussian distance features of the trainable layers.
    nonnegative : bool
        Graph and site tasks: the prediction ``u`` (in target units) is returned as ``softplus(u; β=5)``, which is
        never negative (band gaps, moduli): a metal's gap goes to 0 instead of to small negative values.
    """

    __version__ = 1

    def __init__(
        self,
        encoder=None,
        task: str = "graph",
        target: str = "y",
        units: str = "",
        layers=None,
        freeze_encoder: bool = True,
        from_scratch: bool = False,
        n_conv: int = 3,
        width: int = 64,
        hidden: int = 128,
        pooling: str = "mean",
        cutoff: float | None = None,
        n_gaussians: int = 40,
        nonnegative: bool = False,
    ):
        super().__init__()
        from .descriptor import parse_layers

        if task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}, got {task!r}")
        if pooling not in ("mean", "sum"):
            raise ValueError(f"pooling must be 'mean' or 'sum', got {pooling!r}")
        if int(n_conv) < 0 or int(width) < 1 or int(hidden) < 1 or int(n_gaussians) < 2:
            raise ValueError("n_conv must be >= 0, width and hidden >= 1, n_gaussians >= 2")
        enc = _resolve_encoder(encoder)
        if from_scratch:
            enc = CGCNNEncoder(**enc._init_args)
            freeze_encoder = False
        if layers is None:
            layers = [0] if task == "potential" else "all"
        layers = parse_layers(layers, enc.n_layers)
        if task == "potential":
            cutoff = 5.0 if cutoff is None else float(cutoff)
            if not cutoff > 0:
                raise ValueError(f"cutoff must be positive (Å), got {cutoff!r}")
        else:
            cutoff = enc.cutoff
        self.save_args(locals(), {"encoder": enc.nested_args(), "layers": layers, "cutoff": cutoff, "freeze_encoder": freeze_encoder})
        self.encoder = enc
        self.task, self.target, self.units = task, str(target), str(units)
        self.layers, self.pooling, self.cutoff = layers, pooling, float(cutoff)
        self.freeze_encoder, self.from_scratch = bool(freeze_encoder), bool(from_scratch)
        self.nonnegative = bool(nonnegative)
        if self.nonnegative and task == "potential":
            raise ValueError("nonnegative applies to graph and site tasks, not to potentials")
        self.smooth = task == "potential"
        if self.freeze_encoder:
            self.encoder.requires_grad_(False)
        self.input_proj = nn.Linear(len(layers) * enc.width, width)
        self.expansion = GaussianExpansion(0.0, self.cutoff, self.cutoff / (int(n_gaussians) - 1))
        self.edge_proj = nn.Linear(self.expansion.n_features, width) if n_conv else None
        self.convs = nn.ModuleList([WeightedCGConv(width, dim=width, aggr="add") for _ in range(int(n_conv))])
        self.norms = nn.ModuleList([nn.LayerNorm(width) for _ in range(int(n_conv))])
        self.head = nn.Sequential(nn.Linear(width, hidden), nn.Softplus(), nn.Linear(hidden, hidden), nn.Softplus(),
                                  nn.Linear(hidden, 1))
        self.register_buffer("target_mean", torch.zeros(()))
        self.register_buffer("target_std", torch.ones(()))
        self.register_buffer("element_refs", torch.zeros(MAX_Z + 1))
        # Elements seen in training (set by ase_negnn.training); all True = not recorded (no restriction).
        self.register_buffer("trained_elements", torch.ones(MAX_Z + 1, dtype=torch.bool))

    # -- set-up ------------------------------------------------------------------------------------------------
    def train(self, mode: bool = True):
        """Like ``nn.Module.train``, but a pretrained encoder, frozen or fine-tuned, keeps its BatchNorm in evaluation
        mode (the pretraining statistics; fine-tuning changes its weights only). A from-scratch encoder trains fully."""
        super().train(mode)
        if self.freeze_encoder or not self.from_scratch:
            self.encoder.eval()
        return self

    @classmethod
    def load(cls, path, **kwargs):
        """Load a saved model (directory or matgl's file dict); an encoder saved before v2 keeps its hard graph."""
        return load_graph_aware(cls, path, **kwargs)

    def graph_converter(self) -> CrystalGraphConverter:
        """Structure → graph converter this model expects (smooth all-neighbour graph for potentials)."""
        if self.smooth:
            return CrystalGraphConverter(self.cutoff, None)
        return self.encoder.graph_converter()

    def set_normalization(self, mean: float, std: float, element_refs=None) -> None:
        """Set target standardisation (physical = std·output + mean) and, for potentials, element energies (eV)."""
        if not (np.isfinite(mean) and np.isfinite(std) and std > 0):
            raise ValueError(f"need finite mean and positive std, got {mean!r}, {std!r}")
        self.target_mean.fill_(float(mean))
        self.target_std.fill_(float(std))
        if element_refs is not None:
            refs = torch.as_tensor(np.asarray(element_refs, dtype=np.float32))
            if refs.shape != self.element_refs.shape or not torch.isfinite(refs).all():
                raise ValueError(f"element_refs must be {tuple(self.element_refs.shape)} finite values")
            self.element_refs.copy_(refs)

    def set_trained_elements(self, numbers) -> None:
        """Record the atomic numbers present in the training data (the calculator refuses others)."""
        mask = torch.zeros_like(self.trained_elements)
        mask[torch.as_tensor(np.unique(np.asarray(numbers, dtype=np.int64)))] = True
        self.trained_elements.copy_(mask)

    @property
    def element_types(self) -> tuple[str, ...]:
        """Chemical symbols seen in training (all supported ones if not recorded)."""
        from ase.data import chemical_symbols

        return tuple(chemical_symbols[z] for z in torch.nonzero(self.trained_elements).flatten().tolist() if z > 0)

    def unsupported_elements(self, numbers) -> list[str]:
        """Symbols in ``numbers`` that this model never saw in training (or that the element table lacks)."""
        from ase.data import chemical_symbols

        z = np.unique(np.asarray(numbers, dtype=np.int64))
        bad = z[(z < 1) | (z > MAX_Z)].tolist()
        ok = z[(z >= 1) & (z <= MAX_Z)]
        bad += [int(x) for x in ok if not bool(self.trained_elements[int(x)])]
        return [chemical_symbols[x] if 0 <= x < len(chemical_symbols) else f"Z={x}" for x in sorted(bad)]

    @property
    def n_node_inputs(self) -> int:
        return len(self.layers) * self.encoder.width

    # -- forward -----------------------------------------------------------------------------------------------
    def node_inputs(self, data, edge_weight=None, distances=None) -> torch.Tensor:
        """Concatenated SSAR of the chosen encoder layers, shape ``(n_atoms, len(layers) * width)``."""
        out = self.encoder(data, edge_weight=edge_weight, max_layer=max(self.layers), distances=distances)
        return torch.cat([out[i] for i in self.layers], dim=-1)

    def _atom_features(self, data, node_inputs, distances, edge_weight):
        h = self.input_proj(node_inputs)
        if self.convs:
            e = self.edge_proj(self.expansion(distances))
            for conv, norm in zip(self.convs, self.norms):
                h = norm(conv(h, data.edge_index, e, edge_weight))
        return h

    def _graph_index(self, data):
        batch = getattr(data, "batch", None)
        if batch is None:
            batch = torch.zeros(data.num_nodes, dtype=torch.long, device=data.z.device)
        return batch, int(data.cell.shape[0])

    def _strained_geometry(self, data, compute_stress: bool):
        """Positions and cell under a symmetric strain ε = 0 (a leaf tensor, so ∂E/∂ε gives the stress)."""
        batch, n_graphs = self._graph_index(data)
        pos, cell = data.pos, data.cell
        strain = None
        if compute_stress:
            strain = torch.zeros((n_graphs, 3, 3), dtype=pos.dtype, device=pos.device, requires_grad=True)
            sym = 0.5 * (strain + strain.transpose(1, 2))
            pos = pos + torch.bmm(pos.unsqueeze(1), sym[batch]).squeeze(1)
            cell = cell + torch.bmm(cell, sym)
        src, dst = data.edge_index
        offsets = torch.bmm(data.edge_shift.unsqueeze(1).to(cell.dtype), cell[batch[dst]]).squeeze(1)
        distances = (pos[src] + offsets - pos[dst]).norm(dim=-1)
        return distances, strain

    def forward(self, data, compute_forces: bool = True, compute_stress: bool = False) -> dict:
        """Predict for a graph or a batch of graphs.

        Parameters
        ----------
        data : torch_geometric.data.Data or Batch
            Graph(s) from :meth:`graph_converter`. Property tasks use ``data.node_inputs`` when present
            (precomputed SSAR of a frozen encoder) instead of running the encoder.
        compute_forces, compute_stress : bool
            Potential task only.

        Returns
        -------
        dict of torch.Tensor
            ``{"y": (n_graphs,)}`` for graph tasks, ``{"y": (n_atoms,)}`` for site tasks, and
            ``{"energy": (n_graphs,), "energies": (n_atoms,), "forces": (n_atoms, 3), "stress": (n_graphs, 3, 3)}``
            (eV, eV per atom, eV/Å, eV/Å³; forces/stress only when asked) for potentials.
        """
        batch, n_graphs = self._graph_index(data)
        if self.smooth:
            return self._potential(data, batch, n_graphs, compute_forces, compute_stress)
        distances, _ = self._strained_geometry(data, False)
        weight = self.encoder.graph_weights(data, distances)  # smooth graph: continuous messages; hard: None
        x = getattr(data, "node_inputs", None)
        if x is None:
            x = self.node_inputs(data, edge_weight=weight, distances=distances)
        h = self._atom_features(data, x, distances, weight)
        if self.task == "site":
            return {"y": self._output(self.head(h).squeeze(-1) * self.target_std + self.target_mean)}
        if self.pooling == "mean":
            pooled = scatter(h, batch, dim=0, dim_size=n_graphs, reduce="mean")
            return {"y": self._output(self.head(pooled).squeeze(-1) * self.target_std + self.target_mean)}
        atom = self.head(h).squeeze(-1) * self.target_std + self.target_mean
        return {"y": self._output(scatter(atom, batch, dim=0, dim_size=n_graphs, reduce="sum"))}

    def _output(self, y: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.softplus(y, beta=5.0) if self.nonnegative else y

    def _potential(self, data, batch, n_graphs, compute_forces, compute_stress) -> dict:
        pos = data.pos
        if compute_forces and not pos.requires_grad:
            pos = pos.detach().requires_grad_(True)
            data = data.clone()
            data.pos = pos
        distances, strain = self._strained_geometry(data, compute_stress)
        weight = cosine_envelope(distances, self.cutoff)
        x = self.node_inputs(data, edge_weight=weight, distances=distances)
        h = self._atom_features(data, x, distances, weight)
        atom = self.head(h).squeeze(-1) * self.target_std + self.target_mean + self.element_refs[data.z]
        # Sum the atomic energies in float64 (then back to the model's dtype): a float32 running sum drifts by
        # ~0.4 meV/atom over 10,000 atoms, and the total energy of a big cell must not depend on its size that way.
        acc = torch.float64 if atom.device.type != "mps" else atom.dtype
        energy = scatter(atom.to(acc), batch, dim=0, dim_size=n_graphs, reduce="sum").to(atom.dtype)
        out = {"energy": energy, "energies": atom}
        if compute_forces or compute_stress:
            inputs = [t for t in (pos if compute_forces else None, strain) if t is not None]
            grads = torch.autograd.grad(energy.sum(), inputs, create_graph=self.training)
            if compute_forces:
                out["forces"] = -grads[0]
            if compute_stress:
                volume = torch.linalg.det(data.cell).abs().clamp_min(1e-12)
                out["stress"] = grads[-1] / volume.view(-1, 1, 1)
        return out

    # -- convenience ---------------------------------------------------------------------------------------------
    def predict(self, structures, batch_size: int = 32, progress: bool = False, compute_stress: bool = True,
                device: str | torch.device | None = None) -> list[dict]:
        """Predict for many structures (``Atoms`` or pymatgen), batched; one dict of numpy values per structure.

        Graph task: ``{target: float}``; site task: ``{target: (n_atoms,)}``; potential:
        ``{"energy": float, "energies": (n_atoms,), "forces": (n_atoms, 3), "stress": (3, 3)}`` (eV, eV, eV/Å, eV/Å³).
        """
        from tqdm.auto import tqdm

        structures = list(structures)
        converter = self.graph_converter()
        device = torch.device(device) if device is not None else next(self.parameters()).device
        was_training = self.training
        self.eval()
        results: list[dict] = []
        try:
            for start in tqdm(range(0, len(structures), batch_size), disable=not progress, desc="predict", unit="batch"):
                chunk = structures[start : start + batch_size]
                batch = Batch.from_data_list(self._graphs(converter, chunk, start, len(structures) > 1)).to(device)
                if self.smooth:
                    with torch.enable_grad():
                        out = self(batch, compute_forces=True, compute_stress=compute_stress)
                else:
                    with torch.inference_mode():
                        out = self(batch)
                results.extend(self._split(out, batch))
        finally:
            self.train(was_training)
        return results

    @staticmethod
    def _graphs(converter, chunk, offset: int, name: bool) -> list:
        """Graphs of ``chunk``; with ``name``, a bad structure's error says which one (index in the input, id)."""
        graphs = []
        for i, s in enumerate(chunk, start=offset):
            try:
                graphs.append(converter(s))
            except (ValueError, TypeError) as ex:
                if not name:
                    raise
                info = getattr(s, "info", None) or {}
                sid = info.get("mp_id", info.get("id"))
                raise type(ex)(f"structure {i}{f' ({sid})' if sid is not None else ''}: {ex}") from ex
        return graphs

    def _split(self, out: dict, batch) -> list[dict]:
        ptr = batch.ptr.tolist()
        n = len(ptr) - 1
        if self.task == "graph":
            y = out["y"].detach().cpu().numpy()
            return [{self.target: float(y[i])} for i in range(n)]
        if self.task == "site":
            y = out["y"].detach().cpu().numpy()
            return [{self.target: y[ptr[i] : ptr[i + 1]].copy()} for i in range(n)]
        energy = out["energy"].detach().cpu().numpy()
        energies = out["energies"].detach().cpu().numpy()
        forces = out["forces"].detach().cpu().numpy()
        stress = out["stress"].detach().cpu().numpy() if "stress" in out else None
        rows = []
        for i in range(n):
            row = {"energy": float(energy[i]), "energies": energies[ptr[i] : ptr[i + 1]].astype(float),
                   "forces": forces[ptr[i] : ptr[i + 1]].copy()}
            if stress is not None:
                row["stress"] = stress[i].copy()
            rows.append(row)
        return rows

    def predict_structure(self, structure, *args, **kwargs) -> torch.Tensor:
        """matgl's single-structure entry point: the graph value, the per-atom values, or the total energy (eV)."""
        row = self.predict([structure], batch_size=1, compute_stress=False)[0]
        return torch.as_tensor(row["energy"] if self.smooth else row[self.target])

    def save(self, path: str | Path = ".", metadata: dict | None = None, makedirs: bool = True):
        """Save atomically in matgl's layout (``model.pt``, ``state.pt``, ``model.json``) into directory ``path``."""
        save_atomic(self, path, metadata)


class NEGNNEnsemble(MatGLModel):
    """``n_members`` copies of the ``member`` architecture; weights come from ``state.pt`` or the trained members.

    Parameters
    ----------
    member : NEGNN
        A graph-task NEGNN: the members' architecture (its weights are not used).
    n_members : int
        Number of members (≥ 2).
    """

    def __init__(self, member: NEGNN, n_members: int = 5):
        super().__init__()
        if not isinstance(member, NEGNN) or member.task != "graph":
            raise ValueError("an ensemble's members are graph-task NEGNN models")
        if int(n_members) < 2:
            raise ValueError(f"an ensemble needs at least 2 members, got {n_members}")
        self.save_args(locals(), {"member": member, "n_members": int(n_members)})
        self.members = nn.ModuleList([copy.deepcopy(member) for _ in range(int(n_members))])
        self.task, self.target, self.units = "graph", member.target, member.units
        self.smooth = False
        self.register_buffer("std_scale", torch.ones((), dtype=torch.float64))

    @classmethod
    def from_members(cls, members: list[NEGNN], std_scale: float = 1.0) -> NEGNNEnsemble:
        """Ensemble of trained members (same architecture); their weights are copied."""
        ens = cls(members[0], len(members))
        for dst, src in zip(ens.members, members):
            dst.load_state_dict(src.state_dict())
        ens.std_scale.fill_(float(std_scale))
        return ens.eval()

    @classmethod
    def load(cls, path, **kwargs):
        return load_graph_aware(cls, path, **kwargs)

    def save(self, path: str | Path = ".", metadata: dict | None = None, makedirs: bool = True):
        """Save atomically in matgl's layout (``model.pt``, ``state.pt``, ``model.json``) into directory ``path``."""
        save_atomic(self, path, metadata)

    def train(self, mode: bool = True):
        super().train(mode)
        for m in self.members:
            m.train(mode)
        return self

    @property
    def outputs(self) -> tuple[str, str]:
        return self.target, f"{self.target}_std"

    def graph_converter(self):
        return self.members[0].graph_converter()

    def unsupported_elements(self, numbers) -> list[str]:
        return sorted({s for m in self.members for s in m.unsupported_elements(numbers)})

    def member_predictions(self, structures, batch_size: int = 32, progress: bool = False) -> np.ndarray:
        """``(n_members, n_structures)`` predictions."""
        structures = list(structures)
        return np.array([[r[self.target] for r in m.predict(structures, batch_size=batch_size, progress=progress)]
                         for m in self.members])

    def predict(self, structures, batch_size: int = 32, progress: bool = False, **kwargs) -> list[dict]:
        """One dict per structure: ``{target: members' mean, target_std: calibrated spread}``."""
        P = self.member_predictions(structures, batch_size, progress)
        mean, std = P.mean(axis=0), P.std(axis=0, ddof=1) * float(self.std_scale)
        return [{self.target: float(m), f"{self.target}_std": float(s)} for m, s in zip(mean, std)]

    def forward(self, data, *args, **kwargs) -> dict:
        outs = [m(data) for m in self.members]
        y = torch.stack([o["y"] for o in outs])
        return {"y": y.mean(0), "std": y.std(0) * self.std_scale.to(y.dtype)}

    def predict_structure(self, structure, *args, **kwargs) -> torch.Tensor:
        return torch.as_tensor(self.predict([structure])[0][self.target])


# -- bundled and installed models (ase_negnn.registry) ---------------------------------------------------------
MODEL_CLASSES = ("NEGNN", "KernelModel", "NEGNNEnsemble")


def available_models() -> list[str]:
    """Names of the installed and bundled models (e.g. ``"mp-eform"``, ``"mp-gap"``)."""
    return registry.available(MODEL_CLASSES)


def _model_path(model: str | Path) -> Path:
    return registry.resolve(model, MODEL_CLASSES, "model")


def model_card(model: str | Path) -> dict:
    """The card (data, split, training settings, test metrics) saved with a bundled or trained model."""
    return registry.card(_model_path(model))


def load_model(model, device: str | torch.device = "cpu"):
    """Load a property model or potential (bundled name or directory) in evaluation mode: a :class:`NEGNN`, a
    :class:`ase_negnn.kernel.KernelModel` (SSMR kernel ridge) or an :class:`ase_negnn.ensemble.NEGNNEnsemble` (the
    last two with standard deviations). Weights are read with ``weights_only=True``.

    Raises
    ------
    FileNotFoundError, ValueError
        Missing directory, unknown name, or a directory that holds neither (the message says what it holds).
    """
    from .kernel import KernelModel

    if isinstance(model, (NEGNN, KernelModel, NEGNNEnsemble)):
        return model.to(device).eval()
    path = _model_path(model)
    missing = [f for f in registry.MODEL_FILES if not (path / f).exists()]
    if missing:
        raise FileNotFoundError(f"{path} is not a saved model: missing {missing}")
    name = registry.class_of(path)
    classes = {"NEGNN": NEGNN, "KernelModel": KernelModel, "NEGNNEnsemble": NEGNNEnsemble}
    if name not in classes:
        raise ValueError(f"{path} holds a {name or 'unreadable model.json'}, not a {', '.join(MODEL_CLASSES)}")
    cls = classes[name]
    try:  # before matgl builds anything from model.pt
        check_saved_model(path, cls, frozenset({"ase_negnn.encoder.CGCNNEncoder", "ase_negnn.models.NEGNN"}
                                               if cls is NEGNNEnsemble else {"ase_negnn.encoder.CGCNNEncoder"}))
    except ValueError as ex:
        raise ValueError(f"could not load the {name} in {path}: {ex}") from ex
    try:
        net = cls.load(path)
    except Exception as ex:
        raise ValueError(f"could not load the {name} in {path}: {type(ex).__name__}: {ex}") from ex
    return net.to(device).eval()
