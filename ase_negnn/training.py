"""Supervised NEGNN training with Lightning: labels → graphs → split → ``Trainer`` → best model, test metrics, plot."""

from __future__ import annotations

import csv
import logging
import math
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import lightning as L
import numpy as np
import torch
from torch.utils.data import Dataset
from torch_geometric.data import Batch, Data

from .data import GraphDataset, GraphMemo, build_graphs, load_graph_dataset, subset_loader
from .readers import read_structures
from .io import atomic_open, quiet_lightning, run_checkpoint, run_stamp, structure_ids, write_json_atomic
from .labels import Labels, extract_labels
from .metrics import regression_metrics
from .models import NEGNN
from .pretraining import MetricsCSV
from .splits import parse_split, split_three

__all__ = ["LabelledGraphs", "NEGNNModule", "evaluate", "fit_element_refs", "parse_split", "regression_metrics", "train",
           "train_ensemble"]

logger = logging.getLogger(__name__)


def fit_element_refs(graphs: GraphDataset, energies: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Least-squares element reference energies (eV) from total energies of structures ``rows``: E ≈ Σ_Z n_Z·e_Z."""
    from .elements import MAX_Z

    z, ptr = graphs.arrays["z"].numpy(), graphs.arrays["node_ptr"].numpy()
    counts = np.zeros((len(rows), MAX_Z + 1))
    for k, i in enumerate(rows):
        counts[k] = np.bincount(z[ptr[i] : ptr[i + 1]], minlength=MAX_Z + 1)
    present = counts.any(axis=0)
    sol, *_ = np.linalg.lstsq(counts[:, present], energies[rows], rcond=None)
    refs = np.zeros(MAX_Z + 1)
    refs[present] = sol
    return refs


class LabelledGraphs(Dataset):
    """Cached graphs plus aligned labels (and, for frozen encoders, precomputed node inputs)."""

    def __init__(self, graphs: GraphDataset, labels: Labels, rows: np.ndarray):
        self.graphs, self.labels, self.rows = graphs, labels, np.asarray(rows)
        self.node_inputs: torch.Tensor | None = None

    def __len__(self) -> int:
        return len(self.graphs)

    def __getitem__(self, i: int) -> Data:
        g = self.graphs[i]
        j = int(self.rows[i])
        lab = self.labels
        if lab.task == "graph":
            g.y = torch.tensor([lab.y[j]], dtype=torch.float32)
        elif lab.task == "site":
            g.y = torch.as_tensor(lab.y[j], dtype=torch.float32)
        else:
            g.energy = torch.tensor([lab.y[j]], dtype=torch.float32)
            g.forces = torch.as_tensor(lab.forces[j], dtype=torch.float32)
            s = lab.stress[j]
            g.stress = torch.as_tensor(np.zeros((3, 3)) if s is None else s, dtype=torch.float32).unsqueeze(0)
            g.has_stress = torch.tensor([s is not None])
        if self.node_inputs is not None:
            ptr = self.graphs.arrays["node_ptr"]
            g.node_inputs = self.node_inputs[int(ptr[i]) : int(ptr[i + 1])]
        return g


@torch.inference_mode()
def _precompute_node_inputs(model: NEGNN, dataset: LabelledGraphs, batch_size: int, progress: bool) -> torch.Tensor:
    """SSAR of a frozen encoder for every atom, computed once instead of every epoch."""
    from tqdm.auto import tqdm

    model.eval()
    chunks = []
    n = len(dataset.graphs)
    for start in tqdm(range(0, n, batch_size), disable=not progress, desc="encoder features", unit="batch"):
        batch = Batch.from_data_list([dataset.graphs[i] for i in range(start, min(n, start + batch_size))])
        chunks.append(model.node_inputs(batch))
    return torch.cat(chunks)


#: property-task losses of :class:`NEGNNModule` (``train(loss=...)``)
LOSSES = ("mse", "l1")


def _check_loss(loss: str, task: str) -> None:
    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")
    if loss != "mse" and task == "potential":
        raise ValueError(f"loss={loss!r} applies to graph and site tasks; potentials use the weighted MSE of "
                         "energies, forces and stresses")


class NEGNNModule(L.LightningModule):
    """Lightning wrapper: losses, metrics and optimiser of a :class:`~ase_negnn.models.NEGNN`.

    Property tasks minimise the MSE (``loss="mse"``) or the mean absolute error (``loss="l1"``, the metric itself) of
    the standardised target; potentials minimise ``w_E·MSE(E/N) + w_F·MSE(F) + w_S·MSE(σ)`` in eV/atom, eV/Å and
    eV/Å³ (matgl's M3GNet defaults 1, 1, 0.1).
    """

    def __init__(self, model: NEGNN, lr: float = 1e-3, max_epochs: int = 100, energy_weight: float = 1.0,
                 force_weight: float = 1.0, stress_weight: float = 0.1, encoder_lr_scale: float = 1.0,
                 loss: str = "mse"):
        super().__init__()
        _check_loss(loss, model.task)
        self.model, self.loss = model, loss
        self.lr, self.max_epochs = lr, max_epochs
        self.encoder_lr_scale = float(encoder_lr_scale)
        self.energy_weight, self.force_weight, self.stress_weight = energy_weight, force_weight, stress_weight

    def _step(self, batch, stage: str):
        m = self.model
        n = batch.num_graphs
        if m.task != "potential":
            pred, y = m(batch)["y"], batch.y
            if m.task == "site":  # unlabelled atoms (NaN, allow_missing_sites=True) are left out
                known = ~torch.isnan(y)
                if not bool(known.any()):  # a batch of unlabelled atoms only: zero loss that keeps the graph
                    return pred.sum() * 0.0
                pred, y = pred[known], y[known]
            err = (pred - y) / m.target_std
            loss = torch.mean(err**2) if self.loss == "mse" else torch.mean(torch.abs(err))
            self.log(f"{stage}_loss", loss, batch_size=n, prog_bar=stage == "train", sync_dist=True)
            self.log(f"{stage}_mae", torch.mean(torch.abs(pred - y)), batch_size=n, prog_bar=True, sync_dist=True)
            return loss
        with torch.enable_grad():
            out = m(batch, compute_forces=True, compute_stress=self.stress_weight > 0 and bool(batch.has_stress.any()))
        n_atoms = torch.bincount(batch.batch, minlength=n).clamp_min(1)
        e_err = (out["energy"] - batch.energy) / n_atoms
        f_err = out["forces"] - batch.forces
        loss = self.energy_weight * torch.mean(e_err**2) + self.force_weight * torch.mean(f_err**2)
        if "stress" in out:
            mask = batch.has_stress
            s_err = (out["stress"] - batch.stress)[mask]
            loss = loss + self.stress_weight * torch.mean(s_err**2)
        self.log(f"{stage}_loss", loss, batch_size=n, prog_bar=stage == "train", sync_dist=True)
        self.log(f"{stage}_mae", torch.mean(torch.abs(e_err)), batch_size=n, prog_bar=True, sync_dist=True)
        self.log(f"{stage}_force_mae", torch.mean(torch.abs(f_err)), batch_size=n, prog_bar=True, sync_dist=True)
        return loss

    def on_fit_start(self):
        self.model.train()  # explicit: NEGNN.train decides which parts run in training mode

    def training_step(self, batch, batch_idx):
        return self._step(batch, "train")

    def validation_step(self, batch, batch_idx):
        return self._step(batch, "val")

    def configure_optimizers(self):
        """AdamW with cosine decay to 1 % over ``max_epochs``; a fine-tuned pretrained encoder learns at
        ``encoder_lr_scale`` × the rate of the new layers (its own parameter group, same schedule)."""
        m = self.model
        tuned = self.encoder_lr_scale != 1.0 and not (m.from_scratch or m.freeze_encoder)
        if not tuned:  # one group, the scheduler runs and checkpoints were made with: resumes and retrains stay exact
            params = [p for p in m.parameters() if p.requires_grad]
            opt = torch.optim.AdamW(params, lr=self.lr, weight_decay=0.0)
            sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, self.max_epochs),
                                                               eta_min=self.lr * 0.01)
            return {"optimizer": opt, "lr_scheduler": sched}
        encoder = {id(p) for p in m.encoder.parameters()}
        groups = [{"params": [p for p in m.parameters() if p.requires_grad and id(p) in encoder],
                   "lr": self.lr * self.encoder_lr_scale},
                  {"params": [p for p in m.parameters() if p.requires_grad and id(p) not in encoder], "lr": self.lr}]
        opt = torch.optim.AdamW(groups, weight_decay=0.0)
        t_max = max(1, self.max_epochs)
        sched = torch.optim.lr_scheduler.LambdaLR(  # the same cosine-to-1 % curve, applied to each group's rate
            opt, lambda epoch: 0.01 + 0.99 * 0.5 * (1.0 + math.cos(math.pi * min(epoch, t_max) / t_max)))
        return {"optimizer": opt, "lr_scheduler": sched}


def evaluate(model: NEGNN, dataset: LabelledGraphs, idx, batch_size: int = 64) -> tuple[dict, list]:
    """Metrics and per-structure (true, predicted) pairs of ``model`` on ``dataset[idx]``."""
    model.eval()
    pairs = []
    true_all, pred_all, f_true, f_pred = [], [], [], []
    for batch in subset_loader(dataset, idx, batch_size, False):
        if model.task == "potential":
            with torch.enable_grad():
                out = model(batch, compute_forces=True)
            n_atoms = torch.bincount(batch.batch, minlength=batch.num_graphs).numpy()
            e_pred = out["energy"].detach().numpy() / n_atoms
            e_true = batch.energy.numpy() / n_atoms
            true_all.append(e_true)
            pred_all.append(e_pred)
            f_true.append(batch.forces.numpy())
            f_pred.append(out["forces"].detach().numpy())
            pairs.extend(zip(batch.idx.tolist(), e_true.tolist(), e_pred.tolist()))
        else:
            with torch.inference_mode():
                pred = model(batch)["y"].numpy()
            true = batch.y.numpy()
            true_all.append(true)
            pred_all.append(pred)
            if model.task == "graph":
                pairs.extend(zip(batch.idx.tolist(), true.tolist(), pred.tolist()))
            else:
                node_graph = batch.batch.numpy()
                for k, gi in enumerate(batch.idx.tolist()):
                    sel = (node_graph == k) & ~np.isnan(true)
                    pairs.extend((gi, t, p) for t, p in zip(true[sel].tolist(), pred[sel].tolist()))
    pred_all, true_all = np.concatenate(pred_all), np.concatenate(true_all)
    known = ~np.isnan(true_all)  # unlabelled sites (NaN) are not scored
    metrics = regression_metrics(pred_all[known], true_all[known])
    if model.task == "potential":
        metrics = {"energy_per_atom_" + k: v for k, v in metrics.items()}
        metrics.update({"force_" + k: v for k, v in regression_metrics(np.concatenate(f_pred), np.concatenate(f_true)).items()})
    return metrics, pairs


def _parity_plot(pairs, path: Path, title: str, units: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    true = np.array([p[1] for p in pairs])
    pred = np.array([p[2] for p in pairs])
    fig, ax = plt.subplots(figsize=(4.2, 4.2), dpi=120)
    ax.scatter(true, pred, s=6, alpha=0.5, lw=0)
    lo, hi = float(min(true.min(), pred.min())), float(max(true.max(), pred.max()))
    ax.plot([lo, hi], [lo, hi], "k--", lw=0.8)
    ax.set_xlabel(f"true ({units})" if units else "true")
    ax.set_ylabel(f"predicted ({units})" if units else "predicted")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    with atomic_open(path, "wb") as fh:
        fig.savefig(fh, format="png")
    plt.close(fig)


def train(
    data,
    target: str,
    *,
    task: str = "graph",
    out: str | Path = "negnn-run",
    split="0.8,0.1,0.1",
    seed: int = 0,
    max_epochs: int = 100,
    early_stopping: int = 20,
    from_scratch: bool = False,
    encoder="default",
    layers=None,
    freeze_encoder: bool = False,
    n_conv: int = 3,
    width: int = 64,
    pooling: str = "mean",
    cutoff: float | None = None,
    units: str = "",
    batch_size: int = 64,
    lr: float = 1e-3,
    labels_csv: str | Path | None = None,
    id_column: str | None = None,
    energy_weight: float = 1.0,
    force_weight: float = 1.0,
    stress_weight: float = 0.1,
    max_train: int | None = None,
    allow_missing_sites: bool = False,
    test_data=None,
    resume: bool = False,
    cache_dir: str | Path | None = None,
    accelerator: str = "auto",
    devices="auto",
    strategy: str = "auto",
    num_nodes: int = 1,
    num_workers: int = 0,
    progress: bool = True,
    plot: bool = True,
    nonnegative: bool = False,
    init_seed: int | None = None,
    graph_memo: GraphMemo | None = None,
    encoder_lr_scale: float = 1.0,
    init_from=None,
    loss: str = "mse",
) -> dict:
    """Train a NEGNN and write the run to ``out``. Everything after ``target`` is keyword-only.

    Parameters
    ----------
    data : path or list of ase.Atoms
        Labelled structures (ASE file, CIF directory, ASE db, or ``Atoms`` list).
    target : str
        Label key (see :func:`~ase_negnn.labels.extract_labels`); for potentials it is only the model's name.
    task : {"graph", "site", "potential"}
    split : str or sequence
        Train/validation/test fractions (seeded by ``seed``); the test set is only used after training.
        With ``test_data``, two fractions (train/validation of ``data``).
    test_data : path or list of ase.Atoms, optional
        A separate, fixed test set (e.g. mlearn's test file) instead of a random test fraction.
    max_epochs, early_stopping : int
        Epoch limit and early-stopping patience on the validation MAE (0 disables early stopping).
    from_scratch : bool
        Random, trainable encoder (the baseline); otherwise ``encoder`` (bundled name or directory) is used,
        fine-tuned with the GNN unless ``freeze_encoder=True`` (the paper's NEGNN: frozen SSAR, faster, and measured
        worse than fine-tuning in ``benchmarks/results/paper_label_efficiency.md``).
    layers, n_conv, width, pooling, cutoff, units, nonnegative
        Model settings, see :class:`~ase_negnn.models.NEGNN`.
    max_train : int, optional
        Use only the first ``max_train`` structures of the (seeded) training split: learning curves with the
        same validation and test sets.
    allow_missing_sites : bool
        Site task: NaN per-atom labels mark unlabelled atoms, left out of the loss, normalisation and metrics
        (see :func:`~ase_negnn.labels.extract_labels`).
    resume : bool
        Continue from ``out/checkpoints/last.ckpt``.
    init_seed : int, optional
        Seed of the initialisation and batch order when it should differ from the split's ``seed`` (ensemble
        members share a split); default ``seed``.
    graph_memo : GraphMemo, optional
        Graphs of in-memory structures kept across calls (:class:`~ase_negnn.data.GraphMemo`): learning curves,
        seeds or ensembles on overlapping structures convert each once. Files use the on-disk cache instead.
    encoder_lr_scale : float
        Learning-rate multiplier of a fine-tuned pretrained encoder (its own parameter group, same schedule): below
        1 the encoder moves slower than the new layers, as is usual when fine-tuning on little data. 1 = one rate
        for every parameter (the default; how the bundled models were trained). Ignored for frozen or from-scratch
        encoders.
    init_from : str, path or NEGNN, optional
        Start from a trained NEGNN (bundled name such as ``"mp-eform"``, model directory or instance) instead of
        the pretrained encoder alone: its architecture, encoder and weights. Train it further on its own data (a new
        learning-rate cycle), or fine-tune it on another target of the same task (transfer learning); the target
        standardisation is recomputed from this run's training labels. The architecture options (``encoder``,
        ``layers``, ``n_conv``, ``width``, ``pooling``, ``cutoff``, ``nonnegative``, ``from_scratch``) then come from
        the model: setting one to another value is an error.
    loss : {"mse", "l1"}
        Graph and site tasks: mean squared (the default) or mean absolute error of the standardised target.
    accelerator, devices, strategy, num_nodes
        Passed to ``lightning.Trainer``: several GPUs or nodes (or CPU processes) use Lightning DDP unchanged
        (``devices=2, strategy="ddp"``); rank 0 alone evaluates and writes, the other ranks return ``{}``.

    Returns
    -------
    dict
        The run card (data, split sizes, settings, wall time, validation and test metrics), also written to
        ``out/card.json``. ``out/model`` holds the best model (``matgl.load_model`` / :func:`~ase_negnn.models.load_model`),
        ``out/metrics.csv`` the per-epoch curve, ``out/test_metrics.json|csv`` the test MAE/RMSE/R²,
        ``out/test_predictions.csv`` and ``out/parity.png`` the test predictions.
    """
    out = Path(out)
    last = run_checkpoint(out, resume)
    if max_epochs < 1 or batch_size < 1:
        raise ValueError(f"max_epochs and batch_size must be >= 1, got {max_epochs} and {batch_size}")
    if not encoder_lr_scale > 0:
        raise ValueError(f"encoder_lr_scale must be > 0 (a multiplier of lr), got {encoder_lr_scale!r}")
    _check_loss(loss, task)  # before any graph is built
    model_args = dict(encoder=encoder, task=task, target=target, units=units, layers=layers,
                      freeze_encoder=freeze_encoder, from_scratch=from_scratch, n_conv=n_conv, width=width,
                      pooling=pooling, cutoff=cutoff, nonnegative=nonnegative)
    start = None
    if init_from is not None:
        start = _init_source(init_from)
        _check_init_from(start, model_args)
    t0 = time.perf_counter()
    run = _prepare(data, target, task, split, seed, test_data, labels_csv, id_column, allow_missing_sites, max_train,
                   cache_dir, progress, batch_size, init_seed, graph_memo, model_args, start)
    t_prep = time.perf_counter() - t0
    module = NEGNNModule(run.model, lr=lr, max_epochs=max_epochs, energy_weight=energy_weight,
                         force_weight=force_weight, stress_weight=stress_weight, encoder_lr_scale=encoder_lr_scale,
                         loss=loss)
    t1 = time.perf_counter()
    trainer, best = _fit(module, run, out, last if resume else None, max_epochs, early_stopping, batch_size,
                         num_workers, seed, progress, dict(accelerator=accelerator, devices=devices, strategy=strategy,
                                                           num_nodes=num_nodes))
    t_train = time.perf_counter() - t1
    if not trainer.is_global_zero:  # DDP: rank 0 alone evaluates and writes the model, card and predictions
        return {}
    if best.best_model_path:
        state = torch.load(best.best_model_path, map_location="cpu", weights_only=True)["state_dict"]
        module.load_state_dict(state)
    model = module.model.cpu().eval()
    val_metrics, _ = evaluate(model, run.dataset, run.val_idx, batch_size)
    test_metrics, pairs = evaluate(model, run.dataset, run.test_idx, batch_size)
    source = _source_summary(init_from)
    card = {
        "task": task,
        "target": target,
        "units": units,
        "data": str(data) if isinstance(data, (str, Path)) else f"{len(run.images)} Atoms",
        "labels": run.labels.source,
        "label_notes": run.labels.notes,
        "n_structures": len(run.dataset),
        "skipped_structures": len(run.images) - len(run.dataset),
        "split": list(parse_split(split, test_data is None)),
        "test_data": str(test_data) if isinstance(test_data, (str, Path)) else None,
        "seed": seed,
        "init_seed": seed if init_seed is None else init_seed,
        "n_train": len(run.train_idx),
        "n_validation": len(run.val_idx),
        "n_test": len(run.test_idx),
        "from_scratch": from_scratch,
        # with init_from the encoder comes from that model: its lineage, as the source's card gives it
        "encoder": (((source or {}).get("encoder") or "from init_from") if init_from is not None
                    else str(encoder) if not from_scratch else "random init"),
        "init_from": None if init_from is None else str(init_from) if isinstance(init_from, (str, Path)) else "a NEGNN",
        "init_from_run": source,
        "loss": loss,
        "model": {k: v for k, v in model._init_args.items() if k != "encoder"},
        "graph": model.graph_converter().settings.todict(),
        "batch_size": batch_size,
        "lr": lr,
        "encoder_lr_scale": encoder_lr_scale,
        "max_epochs": max_epochs,
        "epochs_run": trainer.current_epoch,
        "best_epoch_checkpoint": Path(best.best_model_path).name if best.best_model_path else None,
        "early_stopping_patience": early_stopping,
        "loss_weights": {"energy": energy_weight, "force": force_weight, "stress": stress_weight} if task == "potential" else None,
        "validation_metrics": val_metrics,
        "test_metrics": test_metrics,
        "prepare_seconds": round(t_prep, 1),
        "train_seconds_this_session": round(t_train, 1),
        **run_stamp(trainer),
    }
    _write_run(out, model, card, pairs, run, plot)
    return card


@dataclass
class _Run:
    """What :func:`train` prepares before fitting: structures, labels, graphs, splits and the model."""

    images: list
    labels: Labels
    dataset: LabelledGraphs
    rows: np.ndarray  # dataset row -> index in images
    ids: list
    model: NEGNN
    train_idx: np.ndarray
    val_idx: np.ndarray
    test_idx: np.ndarray


def _prepare(data, target, task, split, seed, test_data, labels_csv, id_column, allow_missing_sites, max_train,
             cache_dir, progress, batch_size, init_seed, graph_memo, model_args: dict, start: NEGNN | None = None) -> _Run:
    """Read and check the structures and labels, build the model and the graphs, split, normalise."""
    with_test = test_data is None
    parse_split(split, with_test)
    images = read_structures(data)
    n_main = len(images)
    if test_data is not None:
        images = images + read_structures(test_data)
    labels = extract_labels(images, target, task, labels_csv, id_column, allow_missing_sites)
    split_three(n_main, split, seed, with_test)  # fail on an empty split before building anything
    L.seed_everything(seed if init_seed is None else init_seed, workers=True, verbose=False)
    model = NEGNN(**model_args) if start is None else _model_from(start, model_args)
    converter = model.graph_converter()
    if isinstance(data, (str, Path)) and with_test:
        graphs = load_graph_dataset(data, converter, cache_dir, progress=progress, images=images)
    else:
        graphs = build_graphs(images, converter, progress, name=str(data) if isinstance(data, (str, Path)) else "input",
                              memo=graph_memo)
    rows = np.asarray(graphs.meta["indices"])
    dataset = LabelledGraphs(graphs, labels, rows)
    main = np.flatnonzero(rows < n_main)
    train_idx, val_idx, test_idx = (main[i] for i in split_three(len(main), split, seed, with_test))
    if not with_test:
        test_idx = np.flatnonzero(rows >= n_main)
        if not len(test_idx):
            raise ValueError(f"no usable test structures in {test_data}")
    if max_train is not None:
        if max_train < 1:
            raise ValueError(f"max_train must be >= 1, got {max_train}")
        train_idx = np.random.default_rng(seed + 1).permutation(train_idx)[:max_train]
    if task == "site" and allow_missing_sites:  # each split needs a labelled atom (loss, early stopping, metrics)
        for name, idx in (("training", train_idx), ("validation", val_idx), ("test", test_idx)):
            if not any(np.isfinite(labels.y[int(rows[i])]).any() for i in idx):
                raise ValueError(f"no labelled atom in the {name} split: all its per-atom labels are NaN")
    _set_normalization(model, dataset, train_idx)
    z, ptr = graphs.arrays["z"].numpy(), graphs.arrays["node_ptr"].numpy()
    model.set_trained_elements(np.concatenate([z[ptr[i] : ptr[i + 1]] for i in train_idx]))
    if model.freeze_encoder and task != "potential":
        dataset.node_inputs = _precompute_node_inputs(model, dataset, max(batch_size, 64), progress)
    return _Run(images, labels, dataset, rows, structure_ids(images), model, train_idx, val_idx, test_idx)


#: NEGNN settings that ``init_from`` takes from the trained model, with train()'s defaults
_ARCHITECTURE = {"encoder": "default", "layers": None, "n_conv": 3, "width": 64, "pooling": "mean", "cutoff": None,
                 "nonnegative": False, "from_scratch": False}


def _init_source(init_from) -> NEGNN:
    from .models import load_model

    src = load_model(init_from)
    if not isinstance(src, NEGNN):
        raise ValueError(f"init_from must be a trained NEGNN, got a {type(src).__name__} ({init_from})")
    return src


#: what a run card keeps of the card of the model it started from (``init_from_run``; nested when that one started
#: from another)
_SOURCE_KEYS = ("target", "data", "encoder", "seed", "n_train", "lr", "loss", "max_epochs", "epochs_run", "early_stopping_patience",
                "init_from", "init_from_run", "validation_metrics", "test_metrics")


def _source_summary(init_from) -> dict | None:
    """The training history of the model a run started from, from its card (None without ``init_from`` or card)."""
    if init_from is None or isinstance(init_from, NEGNN):
        return None
    from .models import model_card

    card = model_card(init_from)
    return {k: card[k] for k in _SOURCE_KEYS if k in card} or None


def _check_init_from(src: NEGNN, model_args: dict) -> None:
    """Refuse options that contradict the model training starts from (never silently ignored)."""
    from .descriptor import parse_layers

    if src.task != model_args["task"]:
        raise ValueError(f"init_from is a {src.task}-task model; this run has task={model_args['task']!r}")
    for key, default in _ARCHITECTURE.items():
        value = model_args[key]
        if value is None or value == default:
            continue
        if key in ("encoder", "from_scratch"):
            raise ValueError(f"init_from brings its own encoder: {key}={value!r} cannot be combined with it")
        ours = parse_layers(value, src.encoder.n_layers) if key == "layers" else value
        if src._init_args.get(key) != ours:
            raise ValueError(f"init_from sets the architecture: {key}={value!r} conflicts with the model's "
                             f"{src._init_args.get(key)!r}; leave {key} at its default")


def _model_from(src: NEGNN, model_args: dict) -> NEGNN:
    """A new NEGNN with the architecture and weights of the trained ``src`` and this run's target and units."""
    args = {**src._init_args, "target": model_args["target"], "units": model_args["units"]}
    if not src.from_scratch:
        args["freeze_encoder"] = bool(model_args["freeze_encoder"])
    model = NEGNN(**args)
    model.load_state_dict(src.state_dict())
    return model


def _fit(module, run: _Run, out: Path, ckpt, max_epochs, early_stopping, batch_size, num_workers, seed, progress,
         hardware: dict):
    """Lightning: best-validation and last checkpoints, metrics.csv, early stopping; resumes from ``ckpt``."""
    best = L.pytorch.callbacks.ModelCheckpoint(dirpath=out / "checkpoints", filename="best", monitor="val_mae",
                                               mode="min", save_top_k=1, save_last=True)
    callbacks = [best, MetricsCSV(out / "metrics.csv")]
    if early_stopping:
        callbacks.append(L.pytorch.callbacks.EarlyStopping(monitor="val_mae", mode="min", patience=early_stopping))
    with quiet_lightning(), warnings.catch_warnings():
        trainer = L.Trainer(max_epochs=max_epochs, **hardware, logger=False, callbacks=callbacks,
                            enable_progress_bar=progress, enable_model_summary=False, default_root_dir=out,
                            inference_mode=run.model.task != "potential", num_sanity_val_steps=0)
        # the pretrained encoder's BatchNorm stays in eval mode on purpose (NEGNN.train); Lightning warns about it
        warnings.filterwarnings("ignore", message=r"Found \d+ module\(s\) in eval mode")
        trainer.fit(module, subset_loader(run.dataset, run.train_idx, batch_size, True, num_workers, seed),
                    subset_loader(run.dataset, run.val_idx, batch_size, False, num_workers),
                    ckpt_path=str(ckpt) if ckpt is not None else None)
    return trainer, best


def _write_run(out: Path, model: NEGNN, card: dict, pairs, run: _Run, plot: bool) -> None:
    """The model, card, test metrics, test predictions and parity plot of a finished run, each written atomically."""
    test_metrics = card["test_metrics"]
    model.save(out / "model", metadata=card)
    write_json_atomic(card, out / "card.json")
    write_json_atomic(test_metrics, out / "test_metrics.json")
    with atomic_open(out / "test_metrics.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["metric", "value"])
        w.writerows(sorted(test_metrics.items()))
    with atomic_open(out / "test_predictions.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["id", "true", "predicted"])  # site task: one row per atom
        for gi, t, p in pairs:
            w.writerow([run.ids[int(run.rows[gi])], f"{t:.6g}", f"{p:.6g}"])
    if plot:
        task, units = card["task"], card["units"]
        key = "energy_per_atom_mae" if task == "potential" else "mae"
        name = "energy per atom" if task == "potential" else card["target"]
        _parity_plot(pairs, out / "parity.png", f"{name}: test MAE {test_metrics[key]:.4g} {units} (n={len(pairs)})",
                     "eV/atom" if task == "potential" else units)


def _set_normalization(model: NEGNN, dataset: LabelledGraphs, train_idx) -> None:
    lab = dataset.labels
    rows = dataset.rows[np.asarray(train_idx)]
    if lab.task == "graph":
        y = np.asarray(lab.y)[rows]
        if model.pooling == "sum":
            n = np.diff(dataset.graphs.arrays["node_ptr"].numpy())[np.asarray(train_idx)]
            y = y / n
        model.set_normalization(float(y.mean()), float(max(y.std(), 1e-6)))
    elif lab.task == "site":
        y = np.concatenate([lab.y[j] for j in rows])
        y = y[~np.isnan(y)]  # unlabelled sites (allow_missing_sites=True; train() checked some are left)
        model.set_normalization(float(y.mean()), float(max(y.std(), 1e-6)))
    else:
        energies = np.zeros(len(dataset))
        energies[:] = np.asarray(lab.y)[dataset.rows]
        refs = fit_element_refs(dataset.graphs, energies, np.asarray(train_idx))
        z, ptr = dataset.graphs.arrays["z"].numpy(), dataset.graphs.arrays["node_ptr"].numpy()
        resid = np.array([(energies[i] - refs[z[ptr[i] : ptr[i + 1]]].sum()) / (ptr[i + 1] - ptr[i]) for i in train_idx])
        # Scale atomic energies by the RMS force (as MACE does): forces are the bulk of the signal.
        forces = np.concatenate([lab.forces[j] for j in rows])
        scale = float(np.sqrt(np.mean(forces**2)))
        model.set_normalization(float(resid.mean()), scale if scale > 1e-3 else float(max(resid.std(), 1e-3)), refs)


def train_ensemble(data, target: str, out: str | Path, n_members: int = 5, *, seed: int = 0,
                   split="0.8,0.1,0.1", test_data=None, calibration_level: float = 0.9, **train_kwargs) -> dict:
    """Train ``n_members`` NEGNNs (``out/members/<k>``, resumable one by one) and save their calibrated ensemble as
    ``out/model`` with ``out/card.json``; returns the card (test metrics and uncertainty metrics of the ensemble)."""
    import json

    from .kernel import calibrate_scale
    from .metrics import uncertainty_metrics
    from .models import NEGNNEnsemble, load_model

    if int(n_members) < 2:
        raise ValueError(f"an ensemble needs at least 2 members, got {n_members}")
    if train_kwargs.get("task", "graph") != "graph":
        raise ValueError("ensembles are for graph-task property models (one value per structure)")
    out = Path(out)
    t0 = time.perf_counter()
    train_kwargs.pop("resume", None)  # each member resumes from its own checkpoint
    memo = GraphMemo()  # members share the split: in-memory structures are converted once, not once per member
    cards = []
    for k in range(int(n_members)):
        run = out / "members" / str(k)
        done = run / "card.json"
        if done.exists() and (run / "model").is_dir():  # finished before: an interrupted ensemble resumes here
            cards.append(json.loads(done.read_text()))
            continue
        resume = (run / "checkpoints" / "last.ckpt").exists()
        cards.append(train(data, target, out=run, split=split, seed=seed, init_seed=seed + k, test_data=test_data,
                           resume=resume, **{"graph_memo": memo, **train_kwargs, "task": "graph"}))
    if cards[0].get("skipped_structures"):
        raise ValueError(f"{cards[0]['skipped_structures']} structure(s) of {data} could not be converted; the ensemble "
                         "calibrates on the validation split and needs every structure usable")
    members = [load_model(out / "members" / str(k) / "model") for k in range(int(n_members))]
    images = read_structures(data)
    y = np.asarray(extract_labels(images, target, "graph", train_kwargs.get("labels_csv"),
                                  train_kwargs.get("id_column")).y, float)
    _, val_idx, test_idx = split_three(len(images), split, seed, test_data is None)
    ens = NEGNNEnsemble.from_members(members)
    Pv = ens.member_predictions([images[i] for i in val_idx])
    scale = calibrate_scale(Pv.mean(0) - y[val_idx], Pv.std(0, ddof=1), calibration_level)
    ens.std_scale.fill_(scale)
    if test_data is None:
        test_images, y_test = [images[i] for i in test_idx], y[test_idx]
    else:
        test_images = read_structures(test_data)
        y_test = np.asarray(extract_labels(test_images, target, "graph").y, float)
    rows = ens.predict(test_images)
    mean = np.array([r[target] for r in rows])
    std = np.array([r[f"{target}_std"] for r in rows])
    card = {"model": "NEGNNEnsemble", "method": "negnn-ensemble", "target": target, "task": "graph",
            "units": cards[0].get("units"), "n_members": int(n_members), "seed": seed, "split": str(split),
            "member_init_seeds": [c.get("init_seed") for c in cards], "std_scale": scale,
            "calibration_level": calibration_level, "n_train": cards[0]["n_train"],
            "n_validation": cards[0]["n_validation"], "n_test": len(test_images),
            "member_test_mae": [c["test_metrics"]["mae"] for c in cards],
            "test_metrics": regression_metrics(mean, y_test), "test_uncertainty": uncertainty_metrics(mean, std, y_test),
            "seconds": round(time.perf_counter() - t0, 1), **run_stamp()}
    ens.save(out / "model", metadata={"card": "card.json"})
    write_json_atomic(card, out / "card.json")
    return card
