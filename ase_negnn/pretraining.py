"""Self-supervised pretraining run: data → cached graphs → Lightning ``Trainer`` → exported encoder + card."""

from __future__ import annotations

import csv
import io
import logging
import time
from pathlib import Path

import lightning as L
from torch.utils.data import Subset

from .data import load_graph_dataset, subset_loader
from .deprecation import renamed_argument
from .encoder import CGCNNEncoder
from .graph import SMOOTH_WIDTH
from .io import atomic_open, quiet_lightning, run_checkpoint, run_stamp, write_json_atomic
from .splits import split_indices
from .ssl import SSLPretrainer

__all__ = ["pretrain", "MetricsCSV", "EncoderExport"]

logger = logging.getLogger(__name__)


class MetricsCSV(L.Callback):
    """One CSV row per epoch (train/val losses and accuracies, learning rate, wall time), rewritten atomically.

    Rows of epochs at or after the current one are replaced, so a run resumed from an earlier checkpoint
    never leaves duplicate or stale rows (Lightning's ``CSVLogger`` deletes the old file on restart instead).
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._t0 = None

    def on_train_epoch_start(self, trainer, pl_module):
        self._t0 = time.perf_counter()

    def on_train_epoch_end(self, trainer, pl_module):
        if not trainer.is_global_zero or trainer.sanity_checking:
            return
        row = {"epoch": trainer.current_epoch}
        for k, v in sorted(trainer.callback_metrics.items()):
            if k.startswith(("train_", "val_")):
                row[k] = float(v)
        row["lr"] = float(trainer.optimizers[0].param_groups[0]["lr"]) if trainer.optimizers else float("nan")
        row["epoch_seconds"] = round(time.perf_counter() - (self._t0 or time.perf_counter()), 2)
        rows = []
        if self.path.exists():
            with open(self.path, newline="") as fh:
                rows = [r for r in csv.DictReader(fh) if int(r["epoch"]) < trainer.current_epoch]
        rows.append(row)
        keys = list(dict.fromkeys(k for r in rows for k in r))
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=keys)
        writer.writeheader()
        writer.writerows(rows)
        with atomic_open(self.path, "w", newline="") as fh:
            fh.write(buf.getvalue())


class EncoderExport(L.Callback):
    """After every epoch, save the encoder alone (matgl layout, atomic) with the epoch's metrics as metadata."""

    def __init__(self, path: str | Path, metadata: dict | None = None):
        self.path = Path(path)
        self.metadata = dict(metadata or {})

    def on_train_epoch_end(self, trainer, pl_module):
        if not trainer.is_global_zero or trainer.sanity_checking:
            return
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith(("train_", "val_"))}
        meta = {**self.metadata, "epoch": trainer.current_epoch + 1, "metrics": metrics}
        pl_module.encoder.save(self.path, metadata=meta)


def _total_epoch_seconds(metrics_csv: Path) -> float | None:
    """Wall time of all completed epochs, across resumed sessions (the compute budget actually used)."""
    if not metrics_csv.exists():
        return None
    with open(metrics_csv, newline="") as fh:
        return round(sum(float(r.get("epoch_seconds") or 0) for r in csv.DictReader(fh)), 1)


def _split_loaders(dataset, val_fraction, batch_size, seed, num_workers):
    train_idx, val_idx = split_indices(len(dataset), val_fraction, seed)
    train = subset_loader(dataset, train_idx, batch_size, True, num_workers, seed,
                          drop_last=len(train_idx) > batch_size)
    val = subset_loader(dataset, val_idx, batch_size, False, num_workers)
    return train, val, len(train_idx), len(val_idx)


def pretrain(
    data: str | Path,
    out: str | Path,
    *,
    objective: str = "predictive",
    epochs: int = 10,
    batch_size: int = 128,
    n_layers: int = 5,
    width: int = 64,
    lr: float = 1e-3,
    mask_rate: float = 0.15,
    atom_target: str = "group_period",
    val_fraction: float = 0.05,
    seed: int = 0,
    resume: bool = False,
    cache_dir: str | Path | None = None,
    accelerator: str = "auto",
    devices: int | str = "auto",
    num_nodes: int = 1,
    strategy: str = "auto",
    num_workers: int = 0,
    progress: bool = True,
    max_structures: int | None = None,
    smooth_width: float | None = SMOOTH_WIDTH,
    init_encoder: str | Path | None = None,
    stop_after: int | None = None,
    layers: int | None = None,
) -> Path:
    """Pretrain an encoder without labels and export it. Everything after ``out`` is keyword-only.

    Parameters
    ----------
    data : path
        Structures (any ASE-readable file, a directory of CIFs, or an ASE database).
    out : path
        Run directory. It receives ``checkpoints/`` (a Lightning checkpoint per epoch plus ``last.ckpt``),
        ``metrics.csv`` (one row per epoch), ``encoder/`` (the encoder after the latest epoch, matgl format)
        and ``card.json`` (objective, data, epochs, held-out accuracies, wall time, date).
    objective : {"predictive", "contrastive"}
        Self-supervised task, see :class:`~ase_negnn.ssl.SSLPretrainer`.
    epochs, batch_size, n_layers, width, lr, mask_rate, atom_target
        Training and architecture settings (``n_layers`` graph convolutions; ``layers=`` is its deprecated name:
        elsewhere ``layers`` selects layers, e.g. ``"0-5"``).
    val_fraction : float
        Fraction of structures held out (seeded by ``seed``) for the validation metrics.
    resume : bool
        Continue from ``out/checkpoints/last.ckpt`` (completed epochs are kept; the epoch in progress when
        the run stopped is redone).
    cache_dir : path, optional
        Where processed graphs are cached (default ``<out>/cache``).
    accelerator, devices, num_nodes, strategy
        Passed to ``lightning.Trainer``; several GPUs/nodes use Lightning DDP unchanged.
    num_workers : int
        DataLoader worker processes.
    max_structures : int, optional
        Use only the first N structures (quick trials).
    smooth_width : float or None
        Graph of the new encoder: width δ (Å) of the continuous k-nearest graph, or ``None`` for the paper's hard
        graph (see :mod:`ase_negnn.graph`).
    stop_after : int, optional
        Stop after this many epochs of the ``epochs``-long schedule (the cosine learning rate keeps its ``epochs``
        length); ``resume`` later without it to finish the schedule. Default: run all ``epochs``.
    init_encoder : str or path, optional
        Start from this encoder's weights (a bundled name or a saved directory; same ``n_layers`` and ``width``)
        instead of a random initialisation, e.g. to move an encoder to another graph. Recorded in the card.

    Returns
    -------
    pathlib.Path
        The exported encoder directory (loadable with :meth:`CGCNNEncoder.load` or ``matgl.load_model``).
    """
    out = Path(out)
    last = run_checkpoint(out, resume)
    ckpt_dir = last.parent
    if epochs < 1 or batch_size < 1:
        raise ValueError(f"epochs and batch_size must be >= 1, got {epochs} and {batch_size}")
    if stop_after is not None and not 1 <= stop_after <= epochs:
        raise ValueError(f"stop_after must be between 1 and epochs ({epochs}), got {stop_after}")
    out.mkdir(parents=True, exist_ok=True)
    L.seed_everything(seed, workers=True, verbose=False)
    n_layers = renamed_argument(layers, "layers", n_layers, "n_layers", 5)
    encoder = CGCNNEncoder(n_layers=n_layers, width=width, smooth_width=smooth_width)
    if init_encoder is not None:
        from .pretrained import load_encoder

        start = load_encoder(init_encoder)
        if (start.n_layers, start.width) != (encoder.n_layers, encoder.width):
            raise ValueError(f"init_encoder {init_encoder} has {start.n_layers} layers of width {start.width}; "
                             f"this run asks for {encoder.n_layers} of width {encoder.width}")
        encoder.load_state_dict(start.state_dict())
    t0 = time.perf_counter()
    dataset = load_graph_dataset(data, encoder.graph_converter(), cache_dir or out / "cache", progress=progress)
    if max_structures is not None:
        dataset = Subset(dataset, list(range(min(max_structures, len(dataset)))))
    t_graphs = time.perf_counter() - t0
    train, val, n_train, n_val = _split_loaders(dataset, val_fraction, batch_size, seed, num_workers)
    module = SSLPretrainer(encoder, objective=objective, atom_target=atom_target, mask_rate=mask_rate, lr=lr,
                           max_epochs=epochs)
    card = {
        "objective": objective,
        "atom_target": atom_target if objective == "predictive" else None,
        "data": str(data),
        "n_structures": len(dataset),
        "n_train": n_train,
        "n_validation": n_val,
        "val_fraction": val_fraction,
        "seed": seed,
        "encoder": dict(encoder._init_args),
        "init_encoder": None if init_encoder is None else str(init_encoder),
        "batch_size": batch_size,
        "lr": lr,
        "mask_rate": mask_rate,
    }
    checkpoint = L.pytorch.callbacks.ModelCheckpoint(
        dirpath=ckpt_dir, filename="epoch{epoch:03d}", auto_insert_metric_name=False,
        every_n_epochs=1, save_top_k=-1, save_last=True,
    )
    with quiet_lightning():  # Lightning's banner and tips; real warnings still show
        trainer = L.Trainer(
            max_epochs=epochs if stop_after is None else stop_after,
            accelerator=accelerator,
            devices=devices,
            num_nodes=num_nodes,
            strategy=strategy,
            logger=False,
            callbacks=[checkpoint, MetricsCSV(out / "metrics.csv"), EncoderExport(out / "encoder", card)],
            enable_progress_bar=progress,
            enable_model_summary=False,
            default_root_dir=out,
            deterministic=False,
        )
        t1 = time.perf_counter()
        trainer.fit(module, train, val, ckpt_path=str(last) if resume else None)
    if trainer.is_global_zero:
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith(("train_", "val_"))}
        card.update(
            epochs=trainer.current_epoch,
            epochs_scheduled=epochs,
            heldout_metrics={k: v for k, v in metrics.items() if k.startswith("val_")},
            train_metrics={k: v for k, v in metrics.items() if k.startswith("train_")},
            graph_build_seconds=round(t_graphs, 1),
            train_seconds_this_session=round(time.perf_counter() - t1, 1),
            train_seconds_all_epochs=_total_epoch_seconds(out / "metrics.csv"),
            **run_stamp(trainer),
        )
        encoder.save(out / "encoder", metadata=card)
        write_json_atomic(card, out / "card.json")
    return out / "encoder"
