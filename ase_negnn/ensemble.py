"""Deep ensembles of NEGNN property models: the mean of independently initialised members, with their spread as a
standard deviation calibrated on the validation split.

``train_ensemble`` trains ``n_members`` NEGNNs with :func:`ase_negnn.training.train` on one split (same ``seed``)
with different initialisations (``init_seed = seed + k``), then scales the members' standard deviation so that 90 %
of the validation residuals of the ensemble mean fall inside the 90 % Gaussian interval (deep ensembles are usually
over-confident; the validation labels already chose each member's best epoch, the test set is untouched). The result
is one model directory: :class:`NEGNNEnsemble` subclasses matgl's ``MatGLModel`` (``load_model`` and
``matgl.load_model`` return it) and answers ``{target, target_std}`` like a kernel model.
"""

from __future__ import annotations

import copy
import json
import time
from pathlib import Path

import numpy as np
import torch
from matgl.models._core import MatGLModel
from torch import nn

from .encoder import load_graph_aware, save_atomic
from .models import NEGNN

__all__ = ["NEGNNEnsemble", "train_ensemble"]


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


def train_ensemble(data, target: str, out: str | Path, n_members: int = 5, *, seed: int = 0,
                   split="0.8,0.1,0.1", test_data=None, calibration_level: float = 0.9, **train_kwargs) -> dict:
    """Train ``n_members`` NEGNNs (``out/members/<k>``, resumable one by one) and save their calibrated ensemble as
    ``out/model`` with ``out/card.json``; returns the card (test metrics and uncertainty metrics of the ensemble)."""
    from .data import read_structures
    from .io import write_json_atomic
    from .kernel import calibrate_scale
    from .labels import extract_labels
    from .metrics import regression_metrics, uncertainty_metrics
    from .models import load_model
    from .splits import split_three
    from .training import train

    if int(n_members) < 2:
        raise ValueError(f"an ensemble needs at least 2 members, got {n_members}")
    if train_kwargs.get("task", "graph") != "graph":
        raise ValueError("ensembles are for graph-task property models (one value per structure)")
    out = Path(out)
    t0 = time.perf_counter()
    train_kwargs.pop("resume", None)  # each member resumes from its own checkpoint
    cards = []
    for k in range(int(n_members)):
        run = out / "members" / str(k)
        done = run / "card.json"
        if done.exists() and (run / "model").is_dir():  # finished before: an interrupted ensemble resumes here
            cards.append(json.loads(done.read_text()))
            continue
        resume = (run / "checkpoints" / "last.ckpt").exists()
        cards.append(train(data, target, out=run, split=split, seed=seed, init_seed=seed + k, test_data=test_data,
                           resume=resume, **{**train_kwargs, "task": "graph"}))
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
            "seconds": round(time.perf_counter() - t0, 1)}
    ens.save(out / "model", metadata={"card": "card.json"})
    write_json_atomic(card, out / "card.json")
    return card
