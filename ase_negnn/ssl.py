"""Self-supervised objectives (Lightning module): predictive masking and contrastive NT-Xent (Kong et al.)."""

from __future__ import annotations

import copy
from typing import Literal

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch_geometric.utils import scatter

from .elements import GROUP_SLICE, N_GROUP_CLASSES, N_PERIOD_CLASSES, PERIOD_SLICE, group_labels, period_labels
from .encoder import CGCNNEncoder

__all__ = ["OBJECTIVES", "ATOM_TARGETS", "SSLPretrainer", "sample_atom_mask", "nt_xent"]

OBJECTIVES = ("predictive", "contrastive")
#: ``group_period``: the paper's task (cross-entropy on group and period of masked atoms).
#: ``element_vector``: the authors' checkpoint layout, a 92-way head over the whole CGCNN vector (cross-entropy
#: on its group and period one-hot blocks plus binary cross-entropy on the remaining property bits).
ATOM_TARGETS = ("group_period", "element_vector")


def sample_atom_mask(batch_vec: torch.Tensor, rate: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Mask ``int(n·rate) + 1`` distinct atoms of every graph (at least one, as the authors do).

    Parameters
    ----------
    batch_vec : torch.Tensor
        Graph index of each node (PyG ``batch``), sorted.
    rate : float
        Fraction of atoms to mask.
    generator : torch.Generator, optional
        Random source (seeded for reproducible validation masks).
    """
    n_graphs = int(batch_vec.max()) + 1 if batch_vec.numel() else 0
    counts = torch.bincount(batch_vec, minlength=n_graphs)
    n_mask = torch.minimum((counts.float() * rate).long() + 1, counts)
    keys = torch.rand(batch_vec.shape[0], generator=generator, device="cpu").to(batch_vec.device)
    # Sort by (graph, random key): each node's rank inside its graph is uniform, then keep rank < n_mask.
    order = torch.argsort(batch_vec.double() * 2.0 + keys.double())
    starts = torch.cumsum(counts, 0) - counts
    rank = torch.empty_like(batch_vec)
    rank[order] = torch.arange(batch_vec.shape[0], device=batch_vec.device) - starts[batch_vec[order]]
    return rank < n_mask[batch_vec]


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Normalised-temperature cross entropy (SimCLR) over two views; returns (loss, top-1 accuracy)."""
    z = F.normalize(torch.cat([z1, z2]), dim=-1)
    n = z1.shape[0]
    sim = z @ z.T / temperature
    sim.fill_diagonal_(float("-inf"))
    target = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device)
    loss = F.cross_entropy(sim, target)
    acc = (sim.argmax(dim=1) == target).float().mean()
    return loss, acc


class SSLPretrainer(L.LightningModule):
    """Pretrain a :class:`~ase_negnn.encoder.CGCNNEncoder` without labels.

    Parameters
    ----------
    encoder : CGCNNEncoder
        The encoder being trained (passed in; its constructor args are recorded as ``encoder_args``).
    objective : {"predictive", "contrastive"}
        *predictive*: mask ``mask_rate`` of the atoms (element vector → 0) and the edges touching them
        (distance features → 0); predict the masked atoms' group and period from their last-layer embedding,
        and each masked edge's distance bin from the sum of its two endpoint embeddings.
        *contrastive*: two views per structure (atom masking at ``mask_rate``, edge dropping at
        ``edge_drop_rate``), mean-pooled last layer → 2-layer projection → NT-Xent.
    atom_target : {"group_period", "element_vector"}
        Atom head target for the predictive objective, see ``ATOM_TARGETS``.
    mask_rate : float
        Fraction of atoms masked per structure (the paper: 0.15).
    mask_edges : bool
        Also mask (and predict the distance bin of) the edges of masked atoms.
    edge_drop_rate : float
        Fraction of edges dropped in each contrastive view.
    temperature : float
        NT-Xent temperature.
    lr, weight_decay : float
        Adam settings; the learning rate follows a cosine decay over ``max_epochs`` when that is given.
    max_epochs : int or None
        Length of the cosine schedule.
    val_seed : int
        Seed of the (fixed) validation masks, so validation accuracies are comparable across epochs.
    """

    def __init__(
        self,
        encoder: CGCNNEncoder,
        objective: Literal["predictive", "contrastive"] = "predictive",
        atom_target: Literal["group_period", "element_vector"] = "group_period",
        mask_rate: float = 0.15,
        mask_edges: bool = True,
        edge_drop_rate: float = 0.15,
        temperature: float = 0.2,
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        max_epochs: int | None = None,
        val_seed: int = 12345,
    ):
        super().__init__()
        if objective not in OBJECTIVES:
            raise ValueError(f"objective must be one of {OBJECTIVES}, got {objective!r}")
        if atom_target not in ATOM_TARGETS:
            raise ValueError(f"atom_target must be one of {ATOM_TARGETS}, got {atom_target!r}")
        if not 0.0 < mask_rate < 1.0:
            raise ValueError(f"mask_rate must be in (0, 1), got {mask_rate!r}")
        if not 0.0 <= edge_drop_rate < 1.0:
            raise ValueError(f"edge_drop_rate must be in [0, 1), got {edge_drop_rate!r}")
        self.save_hyperparameters(ignore=["encoder"])
        self.hparams["encoder_args"] = dict(encoder._init_args)
        self.encoder = encoder
        width = encoder.width
        if objective == "predictive":
            n_atom_out = N_GROUP_CLASSES + N_PERIOD_CLASSES if atom_target == "group_period" else 92
            self.atom_head = nn.Linear(width, n_atom_out)
            self.edge_head = nn.Linear(width, encoder.expansion.n_features)
        else:
            self.projection = nn.Sequential(nn.Linear(width, width), nn.ReLU(), nn.Linear(width, width))
        self.register_buffer("group_of_z", torch.from_numpy(group_labels().copy()), persistent=False)
        self.register_buffer("period_of_z", torch.from_numpy(period_labels().copy()), persistent=False)

    # -- objectives -------------------------------------------------------------------------------------------
    def _predictive(self, batch, generator=None) -> tuple[dict, int]:
        hp = self.hparams
        node_mask = sample_atom_mask(batch.batch, hp.mask_rate, generator)
        src, dst = batch.edge_index
        edge_mask = (node_mask[src] | node_mask[dst]) if hp.mask_edges else None
        h = self.encoder(batch, node_mask=node_mask, edge_mask=edge_mask)[-1]
        logits = self.atom_head(h[node_mask])
        z = batch.z[node_mask]
        g_true, p_true = self.group_of_z[z], self.period_of_z[z]
        if hp.atom_target == "group_period":
            g_logit, p_logit = logits[:, :N_GROUP_CLASSES], logits[:, N_GROUP_CLASSES:]
            extra = logits.new_zeros(())
        else:
            g_logit, p_logit = logits[:, GROUP_SLICE], logits[:, PERIOD_SLICE]
            rest = slice(PERIOD_SLICE.stop, None)
            target = self.encoder.element_table[z][:, rest]
            extra = F.binary_cross_entropy_with_logits(logits[:, rest], target)
        loss_g = F.cross_entropy(g_logit, g_true)
        loss_p = F.cross_entropy(p_logit, p_true)
        metrics = {
            "loss_group": loss_g,
            "loss_period": loss_p,
            "acc_group": (g_logit.argmax(1) == g_true).float().mean(),
            "acc_period": (p_logit.argmax(1) == p_true).float().mean(),
        }
        loss = loss_g + loss_p + extra
        if hp.mask_edges and edge_mask.any():
            with torch.no_grad():
                d = self.encoder.edge_distances(batch)[edge_mask]
            e_true = self.encoder.expansion.bin_index(d)
            e_logit = self.edge_head(h[src[edge_mask]] + h[dst[edge_mask]])
            loss_e = F.cross_entropy(e_logit, e_true)
            metrics["loss_edge"] = loss_e
            metrics["acc_edge"] = (e_logit.argmax(1) == e_true).float().mean()
            loss = loss + loss_e
        metrics["loss"] = loss
        return metrics, int(batch.num_graphs)

    def _view(self, batch, generator=None):
        view = copy.copy(batch)
        node_mask = sample_atom_mask(batch.batch, self.hparams.mask_rate, generator)
        if self.hparams.edge_drop_rate > 0:
            keep = torch.rand(batch.edge_index.shape[1], generator=generator).to(batch.z.device)
            keep = keep >= self.hparams.edge_drop_rate
            view.edge_index = batch.edge_index[:, keep]
            view.edge_shift = batch.edge_shift[keep]
        h = self.encoder(view, node_mask=node_mask)[-1]
        pooled = scatter(h, batch.batch, dim=0, dim_size=batch.num_graphs, reduce="mean")
        return self.projection(pooled)

    def _contrastive(self, batch, generator=None) -> tuple[dict, int]:
        loss, acc = nt_xent(self._view(batch, generator), self._view(batch, generator), self.hparams.temperature)
        return {"loss": loss, "acc_contrastive": acc}, int(batch.num_graphs)

    def step(self, batch, generator=None) -> tuple[dict, int]:
        """Loss and metrics of one batch: ``(metrics, batch_size)``."""
        if self.hparams.objective == "predictive":
            return self._predictive(batch, generator)
        return self._contrastive(batch, generator)

    # -- Lightning hooks --------------------------------------------------------------------------------------
    def training_step(self, batch, batch_idx):
        # Masks depend only on (val_seed, epoch, batch): a resumed run draws exactly the uninterrupted run's masks.
        gen = torch.Generator().manual_seed(int(self.hparams.val_seed) * 1_000_003 + 7919 * self.current_epoch + batch_idx + 1)
        metrics, n = self.step(batch, gen)
        self.log_dict({f"train_{k}": v for k, v in metrics.items()}, batch_size=n, on_step=False, on_epoch=True,
                      prog_bar=False, sync_dist=True)
        self.log("loss", metrics["loss"], batch_size=n, prog_bar=True, on_step=True, on_epoch=False)
        return metrics["loss"]

    def validation_step(self, batch, batch_idx):
        gen = torch.Generator().manual_seed(int(self.hparams.val_seed) + batch_idx)
        metrics, n = self.step(batch, gen)
        self.log_dict({f"val_{k}": v for k, v in metrics.items()}, batch_size=n, on_step=False, on_epoch=True,
                      prog_bar=True, sync_dist=True)

    def configure_optimizers(self):
        opt = torch.optim.Adam(self.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)
        if not self.hparams.max_epochs:
            return opt
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=int(self.hparams.max_epochs), eta_min=0.0)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "epoch"}}

