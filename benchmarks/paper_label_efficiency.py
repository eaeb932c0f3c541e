"""Label efficiency (issue 8): NEGNN vs the identical GNN from scratch vs matgl's MEGNet from scratch.

What it measures
----------------
Test MAE against the number of training labels, for

* ``negnn``   — ``ase_negnn.training.train(..., from_scratch=False)``: the pretrained encoder (``--encoder``, default
  the bundled ``default``) frozen, its SSAR fed to the trainable CGConv layers and head;
* ``scratch`` — the identical network, ``train(..., from_scratch=True)``: random, trainable encoder;
* ``ssmr-krr`` — an extra reference line, not in the issue's grid: SSMR of the same encoder (layers 0-5, mean pooling)
  + kernel ridge on the paper's grid, chosen by leave-one-out CV on the training labels (``_paper.krr_evaluate``;
  the "val MAE" column holds that CV MAE, and no validation labels are used);
* ``finetune`` — an extra line: NEGNN with the pretrained encoder trainable (``freeze_encoder=False``), i.e. the
  pretrained weights as the initialisation of the same network ``scratch`` starts from random;
* ``transfer-eform`` — an extra line: ``train(init_from=--transfer-from)``, i.e. the whole trained bundled
  ``mp-eform`` NEGNN (fine-tuned encoder + GNN, trained on 29,390 mp36k formation energies) as the initialisation,
  fine-tuned on the target: supervised transfer, not the self-supervised encoder alone. Not run for
  ``formation_energy`` (its labels are mp-eform's own training labels);
* ``megnet``  — matgl's ``MEGNet`` (matgl's default hyper-parameters: 3 blocks, 4 Å cutoff, 100 Gaussians, Set2Set
  readout; ``element_types = matgl.config.DEFAULT_ELEMENTS``) from scratch, trained with matgl's
  ``ModelLightningModule`` (MSE loss, Adam, cosine decay to 1 % over ``--max-epochs``), ``MGLDataset`` +
  ``Atoms2Graph`` + ``MGLDataLoader``/``collate_fn_graph`` and a Lightning ``Trainer`` with the same epoch budget,
  early stopping (validation MAE) and best-validation checkpoint as ours.

Targets (``--targets``):

* ``formation_energy`` — ``atoms.info['formation_energy_per_atom']`` (eV/atom) of ``mp/mp36k.extxyz``;
* ``band_gap``         — ``atoms.info['band_gap']`` (PBE, eV) of ``mp/mp36k.extxyz``;
* ``log_K`` / ``log_G`` — ``paper/bulk_modulus.csv`` / ``shear_modulus.csv`` (no header: ``mp_id,value``,
  log10 GPa; the first occurrence of an id wins), joined with mp36k by ``atoms.info['mp_id']`` in CSV order.

Splits (identical for every method, size and seed)
    Each target's structures are split once by ``ase_negnn.training.split_three(n, "0.8,0.1,0.1", seed=0)``, the
    split ``train(data, split="0.8,0.1,0.1", seed=0)`` makes: for mp36k this is *the* fixed mp36k test split
    (3,674 structures). ``--n-val`` (default 500) structures of the validation split (a fixed random subset,
    ``default_rng(0)``; 0 = all) are used for early stopping and checkpoint selection, and ``--n-test`` (default 0 =
    all) structures of the test split for the reported MAE. Validation labels are therefore *extra* labels on top of
    the ``n_train`` ones, the same for all methods.

Sizes and seeds
    For seed ``r`` the training subset of size ``N`` is the first ``N`` structures of
    ``default_rng(1000 + r).permutation(training split)``: nested across sizes for one seed, different between seeds;
    ``all`` is the whole training split. The seed also seeds the model initialisation and the batch order
    (``train(seed=r)``; MEGNet: ``L.seed_everything(r)`` and the loader's generator). ``train``'s own ``seed`` also
    draws its train/validation split, so the script hands ``train`` the list ``train + validation`` arranged so that
    ``split_three(N + V, (N, V) / (N + V), seed=r, with_test=False)`` puts exactly our training subset in training
    and our validation subset in validation, and the test structures as ``test_data`` (checked after every run from
    the card's split sizes). Error bars are the standard deviation over seeds, which therefore include the
    variation of the training subset as well as of initialisation and batch order.

Reading mp36k
    ASE's extxyz reader needs 7 min for the 36,738 frames on the contended CPU, so the file is indexed once (frame
    offsets, ``mp_id`` and labels read from the comment lines) and only the frames a run needs become ``Atoms``
    (species, positions, ``Lattice``, ``pbc``, ``info`` = mp_id and the two labels); 25 random frames are compared
    with ``ase.io.read`` of the same text at start-up (``MP36k.check``).

Graph memo
    ``train`` builds the crystal graphs of a list of ``Atoms`` on every call (~37 ms per structure on the contended
    CPU, most of it for the fixed test set). The script passes one ``ase_negnn.data.GraphMemo`` (keyed by the
    structure's content and the graph settings) to every ``train(graph_memo=...)`` call of the process, so each
    structure is converted once; ``--no-graph-memo`` turns it off. MEGNet's validation and test
    ``MGLDataset`` are likewise built once per process and target.

Output (incremental)
    One row per finished run is appended to ``benchmarks/results/paper_label_efficiency.csv``; a restart skips every
    (target, method, n_train, seed, protocol) already there, and an interrupted ``negnn``/``scratch`` run resumes from
    its ``last.ckpt`` (run directories under ``runs/label-efficiency/``). After every run ``paper_label_efficiency.md``
    (MAE mean ± std per method and size, ratio NEGNN / scratch, the issue's target check, wall times, command) and
    ``paper_label_efficiency.png`` (learning curves, log x, error bars = std over seeds) are regenerated from the CSV.
    ``paper_label_efficiency.summary.csv`` (``ase_negnn.io.write_table``) holds the per-cell means and stds.
    ``--report-only`` only regenerates them.

Target (issue 8): NEGNN ≥ 25 % lower test MAE than from-scratch at ≤ 1000 labels, i.e. mean MAE ratio
NEGNN / scratch ≤ 0.75 at every size ≤ 1000, for each target.

Full study of the issue (4 targets × 5 sizes × 3 seeds × 3 methods, plus the two extra lines finetune and ssmr-krr,
which skips sizes above 5,000; days on a 2-core CPU)::

    python benchmarks/paper_label_efficiency.py --data ../shared/data

Reduced configuration of the committed results (the ``.md`` lists what finished and every run's time; rerunning a
command continues where it stopped, and several processes may append to the CSV at once)::

    P="--max-epochs 30 --early-stopping 10 --batch-size 32 --n-val 250 --n-test 1000"
    python benchmarks/paper_label_efficiency.py $P --sizes 250,500,1000 --seeds 0,1,2 --methods negnn,scratch
    python benchmarks/paper_label_efficiency.py $P --sizes 250,500,1000 --seeds 0,1,2 --methods megnet,finetune
    python benchmarks/paper_label_efficiency.py $P --sizes 250,500,1000,2000 --seeds 0,1,2 --methods ssmr-krr
    python benchmarks/paper_label_efficiency.py $P --sizes 2000,all --seeds 0,1,2 --targets log_K,log_G
    python benchmarks/paper_label_efficiency.py $P --sizes 2000 --seeds 0 --methods negnn,scratch \
        --targets formation_energy,band_gap
    python benchmarks/paper_label_efficiency.py $P --report-only
"""

from __future__ import annotations

import csv
import datetime as _dt
import os
import platform
import re
import shlex
import shutil
import sys
import time
import traceback
from pathlib import Path

import numpy as np
from _bench import mp36k_path, parser, report_header, save_figure, write_markdown

TARGETS = {  # name -> label key, source, description, units
    "formation_energy": {"key": "formation_energy_per_atom", "csv": None, "label": "formation energy",
                         "units": "eV/atom"},
    "band_gap": {"key": "band_gap", "csv": None, "label": "PBE band gap", "units": "eV"},
    "log_K": {"key": "log10_K", "csv": "paper/bulk_modulus.csv", "label": "bulk modulus, log10 K", "units": "log10 GPa"},
    "log_G": {"key": "log10_G", "csv": "paper/shear_modulus.csv", "label": "shear modulus, log10 G", "units": "log10 GPa"},
}
METHODS = {"negnn": "NEGNN (pretrained SSAR, frozen)", "scratch": "same GNN from scratch",
           "megnet": "matgl MEGNet from scratch", "ssmr-krr": "SSMR (pretrained, frozen) + KRR",
           "finetune": "NEGNN, encoder fine-tuned (default train)",
           "finetune-slow": "NEGNN, encoder fine-tuned at 0.1× lr (train encoder_lr_scale=0.1)",
           "finetune-fast": "NEGNN, encoder fine-tuned at 3× lr (train encoder_lr_scale=3)",
           "chgnet-krr": "CHGNet atom features (mean) + KRR",
           "transfer-eform": "NEGNN started from the trained mp-eform (train init_from)"}
#: the fine-tuning recipes' encoder learning-rate multipliers (train(encoder_lr_scale=))
ENCODER_LR_SCALE = {"finetune": 1.0, "finetune-slow": 0.1, "finetune-fast": 3.0}
ISSUE_METHODS = ("negnn", "scratch", "megnet")  # the issue's grid; ssmr-krr and finetune are extra lines
COLORS = {"negnn": "tab:blue", "scratch": "tab:gray", "megnet": "tab:orange", "ssmr-krr": "tab:green",
          "finetune": "tab:purple", "finetune-slow": "tab:pink", "finetune-fast": "tab:brown", "chgnet-krr": "tab:red",
          "transfer-eform": "tab:olive"}
FIELDS = ["target", "method", "size", "n_train", "seed", "protocol", "test_mae", "test_rmse", "test_r2", "n_test",
          "val_mae", "n_val", "epochs_run", "max_epochs", "early_stopping", "train_seconds", "run_seconds",
          "units", "run_dir", "date", "hardware"]
TITLE = "Label efficiency: pretrained NEGNN vs the same GNN from scratch vs KRR baselines (issues 8, 16)"
TARGET_RATIO = 0.75  # NEGNN / scratch MAE ratio that meets issue 8's "≥ 25 % lower"
TARGET_MAX_LABELS = 1000
V2_TARGET_LABELS, V2_TARGET_COUNT = 250, 2  # issue 16: default train ≥ 25 % below scratch at 250 labels, ≥ 2 targets
KRR_MAX_TRAIN = 5000  # ssmr-krr: n × n kernel matrices and their eigendecomposition (5,000: 0.2 GB, ~1 min)


def _encoder_digest(name) -> str:
    from _paper import encoder_digest

    from ase_negnn.pretrained import load_encoder

    return encoder_digest(load_encoder(name))


def log(msg: str) -> None:
    print(f"[{_dt.datetime.now().strftime('%H:%M:%S')}] {msg}", flush=True)


# --------------------------------------------------------------------------------------------------- data


_PROPERTIES = "species:S:1:pos:R:3"
_INFO_KEYS = ("mp_id", "formation_energy_per_atom", "band_gap")


def _comment_value(comment: str, key: str):
    m = re.search(rf'(?:^|\s){key}=("[^"]*"|\S+)', comment)
    return None if m is None else m.group(1).strip('"')


class MP36k:
    """mp36k.extxyz, indexed once; ``Atoms`` are built only for the frames a run needs.

    ASE's extxyz reader needs ~12–18 ms per frame on the contended CPU (7 min for all 36,738); a frame of mp36k is
    ``natoms``, a comment line (``Lattice``, ``Properties=species:S:1:pos:R:3:...``, ``mp_id``, labels, ``pbc``) and
    one line per atom, so the needed frames are parsed directly: species, positions, cell, pbc and
    ``info`` = mp_id + the two labels. :meth:`check` compares frames with ``ase.io.read`` of the same text.
    """

    def __init__(self, data: Path):
        path = mp36k_path(data)
        t0 = time.perf_counter()
        self.path = path
        self.lines = path.read_text().split("\n")
        self.frames = []  # (first line, natoms)
        i = 0
        while i < len(self.lines) and self.lines[i].strip():
            n = int(self.lines[i])
            self.frames.append((i, n))
            i += n + 2
        self.ids = [_comment_value(self.lines[s + 1], "mp_id") for s, _ in self.frames]
        log(f"indexed {len(self.frames)} frames of {path} in {time.perf_counter() - t0:.0f} s")

    def __len__(self) -> int:
        return len(self.frames)

    def value(self, i: int, key: str) -> float:
        v = _comment_value(self.lines[self.frames[i][0] + 1], key)
        return float("nan") if v is None else float(v)

    def atoms(self, i: int):
        from ase import Atoms

        s, n = self.frames[i]
        comment = self.lines[s + 1]
        if not (_comment_value(comment, "Properties") or "").startswith(_PROPERTIES):
            raise ValueError(f"frame {i}: unexpected Properties in {comment[:200]}")
        cell = np.array(_comment_value(comment, "Lattice").split(), float).reshape(3, 3)
        pbc = [p == "T" for p in (_comment_value(comment, "pbc") or "T T T").split()]
        rows = [self.lines[s + 2 + k].split() for k in range(n)]
        atoms = Atoms(symbols=[r[0] for r in rows], positions=np.array([r[1:4] for r in rows], float), cell=cell,
                      pbc=pbc)
        for key in _INFO_KEYS:
            v = _comment_value(comment, key)
            if v is not None:
                atoms.info[key] = v if key == "mp_id" else float(v)
        return atoms

    def check(self, indices) -> None:
        """``atoms(i)`` agrees with ``ase.io.read`` of the frame's text (numbers, positions, cell, pbc, info)."""
        import io

        import ase.io

        for i in indices:
            s, n = self.frames[i]
            ref = ase.io.read(io.StringIO("\n".join(self.lines[s : s + n + 2]) + "\n"), format="extxyz")
            a = self.atoms(i)
            same = (np.array_equal(a.numbers, ref.numbers) and np.allclose(a.positions, ref.positions, atol=1e-12)
                    and np.allclose(a.cell.array, ref.cell.array, atol=1e-12) and list(a.pbc) == list(ref.pbc)
                    and all(a.info[k] == ref.info[k] for k in _INFO_KEYS if k in ref.info))
            if not same:
                raise RuntimeError(f"frame {i} of {self.path} parsed differently from ase.io.read")


class Labelled:
    """The labelled structures of one target: mp36k frame ``rows[i]`` with its label in ``atoms.info[key]``; the
    ``Atoms`` are built on first access and kept."""

    def __init__(self, mp36k: MP36k, key: str, rows: list[int], values: list[float]):
        self.mp36k, self.key, self.rows, self.values = mp36k, key, rows, values
        self._atoms: dict = {}

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int):
        i = int(i)
        if i not in self._atoms:
            a = self.mp36k.atoms(self.rows[i])
            a.info[self.key] = self.values[i]
            self._atoms[i] = a
        return self._atoms[i]


def target_structures(name: str, mp36k: MP36k, data: Path) -> tuple[Labelled, dict]:
    """The labelled structures of a target and a note on where they came from."""
    spec = TARGETS[name]
    key = spec["key"]
    if spec["csv"] is None:
        values = [mp36k.value(i, key) for i in range(len(mp36k))]
        rows = [i for i, v in enumerate(values) if np.isfinite(v)]
        return (Labelled(mp36k, key, rows, [values[i] for i in rows]),
                {"source": "mp/mp36k.extxyz", "n_source": len(mp36k), "n": len(rows)})
    from _paper import read_label_csv

    labels = read_label_csv(data / spec["csv"])
    by_id: dict = {}
    for i, mp_id in enumerate(mp36k.ids):
        by_id.setdefault(mp_id, i)
    ids = [mp_id for mp_id in labels if mp_id in by_id]
    return (Labelled(mp36k, key, [by_id[i] for i in ids], [labels[i] for i in ids]),
            {"source": f"{spec['csv']} ⋈ mp36k by mp_id (CSV order)", "n_source": len(labels), "n": len(ids)})


class Splits:
    """The fixed train pool / validation / test indices of one target."""

    def __init__(self, n: int, n_val: int, n_test: int):
        from ase_negnn.training import split_three

        self.pool, val, test = split_three(n, "0.8,0.1,0.1", seed=0)
        rng = np.random.default_rng(0)
        self.val = val[rng.permutation(len(val))[:n_val]] if n_val else val
        self.test = test[rng.permutation(len(test))[:n_test]] if n_test else test
        self.n_val_split, self.n_test_split = len(val), len(test)

    def train(self, size: int, seed: int) -> np.ndarray:
        return np.random.default_rng(1000 + seed).permutation(self.pool)[:size]


# --------------------------------------------------------------------------------------------------- graph memo


# --------------------------------------------------------------------------------------------------- runs


def arrange(train_atoms: list, val_atoms: list, seed: int) -> tuple[list, tuple[float, float]]:
    """``train_atoms + val_atoms`` ordered so that ``train(split=fractions, seed=seed, test_data=...)`` puts exactly
    ``train_atoms`` in training and ``val_atoms`` in validation."""
    from ase_negnn.training import split_three

    n_tr, n_va = len(train_atoms), len(val_atoms)
    n = n_tr + n_va
    fractions = (n_tr / n, n_va / n)
    tr, va, _ = split_three(n, fractions, seed, with_test=False)
    if len(tr) != n_tr or len(va) != n_va:
        raise RuntimeError(f"split_three({n}, {fractions}) gives {len(tr)}/{len(va)}, not {n_tr}/{n_va}")
    out = [None] * n
    for k, i in enumerate(tr):
        out[i] = train_atoms[k]
    for k, i in enumerate(va):
        out[i] = val_atoms[k]
    return out, fractions


def run_negnn(method, target, train_atoms, val_atoms, test_atoms, seed, out: Path, args) -> dict:
    from ase_negnn.training import train

    spec = TARGETS[target]
    resume = (out / "checkpoints" / "last.ckpt").exists()
    data, fractions = arrange(train_atoms, val_atoms, seed)
    transfer = {"init_from": args.transfer_from} if method == "transfer-eform" else {"encoder": args.encoder}
    card = train(data, spec["key"], task="graph", out=out, split=fractions, seed=seed, max_epochs=args.max_epochs,
                 graph_memo=args.graph_memo, **transfer,
                 early_stopping=args.early_stopping, from_scratch=method == "scratch",
                 freeze_encoder=method not in ("finetune", "finetune-slow", "finetune-fast", "transfer-eform"),
                 encoder_lr_scale=ENCODER_LR_SCALE.get(method, 1.0),
                 units=spec["units"], batch_size=args.batch_size, lr=args.lr, test_data=test_atoms, resume=resume,
                 progress=False, plot=False)
    expect = (len(train_atoms), len(val_atoms), len(test_atoms))
    got = (card["n_train"], card["n_validation"], card["n_test"])
    if got != expect:
        raise RuntimeError(f"train() used {got} train/validation/test structures, expected {expect}")
    return {"test_mae": card["test_metrics"]["mae"], "test_rmse": card["test_metrics"]["rmse"],
            "test_r2": card["test_metrics"]["r2"], "val_mae": card["validation_metrics"]["mae"],
            "epochs_run": card["epochs_run"], "train_seconds": card["train_seconds_this_session"]}


_ENCODERS: dict = {}


def _krr_run(target, train_atoms, test_atoms, features) -> dict:
    """KRR on the paper's grid, chosen by leave-one-out CV on the training labels only (no validation labels
    needed; the "val MAE" column holds that CV MAE), scored on the test structures. ``features(atoms, ids)`` gives
    the rows (cached per mp-id in benchmarks/cache)."""
    from _paper import krr_evaluate

    from ase_negnn.metrics import regression_metrics

    key = TARGETS[target]["key"]
    t0 = time.perf_counter()
    atoms = train_atoms + test_atoms
    X = features(atoms, [a.info["mp_id"] for a in atoms])
    y = np.array([float(a.info[key]) for a in atoms])
    n = len(train_atoms)
    r = krr_evaluate(X, y, np.arange(n), np.arange(n, len(y)), cv="loo")
    m = regression_metrics(r["pred"], y[n:])
    return {"test_mae": m["mae"], "test_rmse": m["rmse"], "test_r2": m["r2"], "val_mae": r["cv_mae"],
            "epochs_run": "", "train_seconds": round(time.perf_counter() - t0, 1)}


def run_ssmr_krr(target, train_atoms, test_atoms, args) -> dict:
    """SSMR (``--encoder``, layers 0-5, mean pooling; the same cache as paper_krr.py's "ours SSMR mean") + KRR."""
    from _paper import ssmr_all_layers

    from ase_negnn.pretrained import load_encoder

    if args.encoder not in _ENCODERS:
        _ENCODERS[args.encoder] = load_encoder(args.encoder)
    return _krr_run(target, train_atoms, test_atoms, lambda atoms, ids: ssmr_all_layers(
        _ENCODERS[args.encoder], "ours", "mean", dict(zip(ids, atoms)), ids, log=log))


def run_chgnet_krr(target, train_atoms, test_atoms, args) -> dict:
    """The peer descriptor of issue 16: CHGNet's pretrained atom features (``atom_fea``, mean over atoms; the
    better of its two feature sets by CV in ``paper_krr``) + the same KRR as ``run_ssmr_krr``. CHGNet was trained
    on MP energies: on formation energy its features have seen the labels' own DFT energies (leak)."""
    from _paper import chgnet_features

    return _krr_run(target, train_atoms, test_atoms,
                    lambda atoms, ids: chgnet_features(dict(zip(ids, atoms)), ids, "atom", log=log)[0])


_MEGNET_SETS: dict = {}


def _mgl_dataset(atoms_list, key):
    from matgl.config import DEFAULT_ELEMENTS
    from matgl.ext.ase import Atoms2Graph
    from matgl.graph.data import MGLDataset

    converter = Atoms2Graph(element_types=DEFAULT_ELEMENTS, cutoff=4.0)
    labels = {key: [float(a.info[key]) for a in atoms_list]}
    return MGLDataset(structures=atoms_list, converter=converter, labels=labels, save_cache=False,
                      root=str(Path(os.environ.get("TMPDIR", "/tmp")) / f"mgl-unused-{os.getpid()}"))


def run_megnet(target, train_atoms, val_atoms, test_atoms, seed, out: Path, args) -> dict:
    """matgl MEGNet from scratch with matgl's Lightning module; same epochs, early stopping and checkpointing."""
    import contextlib
    import io

    import lightning as L
    import torch
    from matgl.graph.data import MGLDataLoader, collate_fn_graph
    from matgl.models import MEGNet
    from matgl.utils.training import ModelLightningModule

    from ase_negnn.io import write_json_atomic
    from ase_negnn.training import regression_metrics

    key = TARGETS[target]["key"]
    if out.exists():  # no resume for the baseline: start the interrupted run again
        shutil.rmtree(out)
    out.mkdir(parents=True)
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):  # tqdm bars
        for part, atoms_list in (("val", val_atoms), ("test", test_atoms)):
            k = (target, part, len(atoms_list), id(atoms_list[0]))
            if k not in _MEGNET_SETS:
                _MEGNET_SETS[k] = _mgl_dataset(atoms_list, key)
        val_ds = _MEGNET_SETS[(target, "val", len(val_atoms), id(val_atoms[0]))]
        test_ds = _MEGNET_SETS[(target, "test", len(test_atoms), id(test_atoms[0]))]
        train_ds = _mgl_dataset(train_atoms, key)
    y = np.array([float(a.info[key]) for a in train_atoms])
    L.seed_everything(seed, workers=True, verbose=False)
    model = MEGNet(cutoff=4.0)
    module = ModelLightningModule(model=model, data_mean=float(y.mean()), data_std=float(max(y.std(), 1e-6)),
                                  lr=args.lr, decay_steps=args.max_epochs, decay_alpha=0.01, loss="mse_loss")
    train_loader, val_loader, test_loader = MGLDataLoader(
        train_data=train_ds, val_data=val_ds, test_data=test_ds, collate_fn=collate_fn_graph,
        batch_size=args.batch_size, num_workers=0, generator=torch.Generator().manual_seed(seed))
    best = L.pytorch.callbacks.ModelCheckpoint(dirpath=out / "checkpoints", filename="best", monitor="val_MAE",
                                               mode="min", save_top_k=1)
    callbacks = [best]
    if args.early_stopping:
        callbacks.append(L.pytorch.callbacks.EarlyStopping(monitor="val_MAE", mode="min",
                                                           patience=args.early_stopping))
    trainer = L.Trainer(max_epochs=args.max_epochs, accelerator="cpu", devices=1, logger=False, callbacks=callbacks,
                        enable_progress_bar=False, enable_model_summary=False, default_root_dir=out,
                        num_sanity_val_steps=0)
    t0 = time.perf_counter()
    trainer.fit(module, train_loader, val_loader)
    t_train = time.perf_counter() - t0
    if best.best_model_path:
        module.load_state_dict(torch.load(best.best_model_path, map_location="cpu", weights_only=True)["state_dict"])
    module.eval()

    def predict(loader):
        pred, true = [], []
        with torch.inference_mode():
            for g, lat, state_attr, labels in loader:
                p = module(g=g, lat=lat, state_attr=state_attr) * module.data_std + module.data_mean
                pred.append(p.reshape(-1).numpy())
                true.append(labels.reshape(-1).numpy())
        return regression_metrics(np.concatenate(pred), np.concatenate(true))

    val_m, test_m = predict(val_loader), predict(test_loader)
    card = {"model": "matgl MEGNet", "init_args": {k: v for k, v in model._init_args.items() if k != "element_types"}
            if hasattr(model, "_init_args") else None, "seed": seed, "n_train": len(train_atoms),
            "n_validation": len(val_atoms), "n_test": len(test_atoms), "max_epochs": args.max_epochs,
            "epochs_run": trainer.current_epoch, "validation_metrics": val_m, "test_metrics": test_m,
            "train_seconds": round(t_train, 1)}
    write_json_atomic(card, out / "card.json")
    return {"test_mae": test_m["mae"], "test_rmse": test_m["rmse"], "test_r2": test_m["r2"], "val_mae": val_m["mae"],
            "epochs_run": trainer.current_epoch, "train_seconds": round(t_train, 1)}


# --------------------------------------------------------------------------------------------------- results


def read_rows(path: Path) -> list[dict]:
    if not path.exists():
        return []
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def append_row(path: Path, row: dict) -> None:
    new = not path.exists()
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=FIELDS)
        if new:
            w.writeheader()
        w.writerow({k: row.get(k, "") for k in FIELDS})
        fh.flush()
        os.fsync(fh.fileno())


def summarise(rows: list[dict]) -> dict:
    """(protocol, target) -> {method: {n_train: [mae, ...]}} plus run times."""
    out: dict = {}
    for r in rows:
        d = out.setdefault((r["protocol"], r["target"]), {})
        d.setdefault(r["method"], {}).setdefault(int(r["n_train"]), []).append(float(r["test_mae"]))
    return out


def coverage(rows: list[dict]) -> str:
    """What the CSV holds compared with the issue's grid (4 targets × 5 sizes × 3 seeds × 3 methods)."""
    targets = sorted({r["target"] for r in rows})
    methods = [m for m in ISSUE_METHODS if any(r["method"] == m for r in rows)]
    sizes = sorted({int(r["n_train"]) for r in rows})
    seeds = sorted({int(r["seed"]) for r in rows})
    protocols = sorted({r["protocol"] for r in rows})
    cells = {}
    for r in rows:
        cells.setdefault((r["target"], r["method"], int(r["n_train"])), set()).add(r["seed"])
    thin = sorted(f"{t}/{m}/{n}: {len(v)}" for (t, m, n), v in cells.items() if len(v) < 3)
    parts = [f"{len(rows)} runs; targets {', '.join(targets)}"
             + ("" if set(targets) == set(TARGETS) else f" (issue: {', '.join(TARGETS)})"),
             f"methods {', '.join(methods)}" + ("" if len(methods) == len(ISSUE_METHODS) else
                                               f" (not run: {', '.join(m for m in ISSUE_METHODS if m not in methods)})"),
             f"sizes {', '.join(map(str, sizes))} (issue: 250, 500, 1000, 2000, all)",
             f"seeds {', '.join(map(str, seeds))}" + (f"; cells with fewer than 3 seeds: {'; '.join(thin)}"
                                                     if thin else ""),
             "protocol(s): " + " | ".join(protocols) + " (issue: the library's defaults, ≤ 100 epochs, patience 20)"]
    return "; ".join(parts)


def _ms(values) -> tuple[float, float]:
    v = np.asarray(values, float)
    return float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else 0.0


def write_report(csv_path: Path, md_path: Path, png_path: Path, argv, wall: float, notes: list[str]) -> None:
    from ase_negnn.io import write_table

    rows = read_rows(csv_path)
    if not rows:
        lines = [*report_header(TITLE,
                                f"{wall / 60:.1f} min (this invocation)", [shlex.quote(a) for a in argv]), *notes, "",
                 (f"**No run has finished yet**: `{csv_path.name}` holds no rows, so there are no numbers, no "
                  "target check and no plot.")]
        write_markdown(md_path, lines)
        return
    summary = summarise(rows)
    total_run = sum(float(r["run_seconds"]) for r in rows)
    lines = [*report_header(TITLE,
                            f"{wall / 60:.1f} min (this invocation); sum of all run times in the CSV "
                            f"{total_run / 60:.1f} min", [shlex.quote(a) for a in argv]), *notes, "- in the CSV vs issue 8: " + coverage(rows),
             "- validation / test structures per target (the whole split where it is smaller than asked): " + "; ".join(
                 f"{t} {v} / {n}" for t, v, n in sorted({(r["target"], r["n_val"], r["n_test"]) for r in rows})),
             ""]
    verdicts = []
    table_rows, table_index = [], []
    order = list(TARGETS)
    for (protocol, target), by_method in sorted(summary.items(), key=lambda kv: (
            order.index(kv[0][1]) if kv[0][1] in order else len(order), kv[0])):
        spec = TARGETS.get(target, {"label": target, "units": ""})
        sizes = sorted({n for d in by_method.values() for n in d})
        methods = [m for m in METHODS if m in by_method]
        lines += [f"## {spec['label']} ({spec['units']}) — {protocol}", "",
                  "| n_train | " + " | ".join(f"{METHODS[m]}: test MAE mean ± std (seeds)" for m in methods)
                  + " | NEGNN / scratch | target ≤ 0.75 | fine-tuned / scratch | fine-tuned 0.1× lr / scratch |",
                  "|---:|" + "---:|" * len(methods) + "---:|---|---:|---:|"]
        for n in sizes:
            cells, stats = [], {}
            for m in methods:
                v = by_method[m].get(n)
                if v:
                    stats[m] = _ms(v)
                    cells.append(f"{stats[m][0]:.4f} ± {stats[m][1]:.4f} ({len(v)})" if len(v) > 1
                                 else f"{stats[m][0]:.4f} (1, no spread)")
                else:
                    cells.append("—")
            ratio, verdict = float("nan"), "—"
            if "negnn" in stats and "scratch" in stats:
                ratio = stats["negnn"][0] / stats["scratch"][0]
                if n <= TARGET_MAX_LABELS:
                    met = ratio <= TARGET_RATIO
                    verdict = "met" if met else "not met"
                    verdicts.append((target, n, ratio, met))
                else:
                    verdict = "(n > 1000)"
            ft, fts = (stats[m][0] / stats["scratch"][0] if m in stats and "scratch" in stats else np.nan
                       for m in ("finetune", "finetune-slow"))
            lines.append(f"| {n} | " + " | ".join(cells) + f" | {ratio:.3f} | {verdict} | {ft:.3f} | {fts:.3f} |")
            table_index.append((protocol, target, n))
            table_rows.append([stats.get(m, (np.nan, np.nan))[k] for m in METHODS for k in (0, 1)] + [ratio, ft, fts])
        lines.append("")
    if verdicts:
        ok = all(v[3] for v in verdicts)
        each = "; ".join(f"{t} n={n}: ratio {r:.3f} ({100 * (1 - r):.0f} % lower)" if r < 1 else
                         f"{t} n={n}: ratio {r:.3f} ({100 * (r - 1):.0f} % higher)" for t, n, r, _ in verdicts)
        lines += ["## Target (issue 8): NEGNN ≥ 25 % lower test MAE than from scratch at ≤ 1000 labels", "",
                  f"**{'MET' if ok else 'NOT MET'}** on the sizes run: {each}.", ""]
    for method, what in (("finetune", "default `train` (fine-tuned)"),
                         ("finetune-slow", "`train(encoder_lr_scale=0.1)` (fine-tuned at 0.1× lr; a candidate default)"),
                         ("finetune-fast", "`train(encoder_lr_scale=3)` (fine-tuned at 3× lr; a candidate default)"),
                         ("transfer-eform", "`train(init_from='mp-eform')` (supervised transfer; not the default)")):
        lines += _v2_target(summary, method, what)
    lines += ["## All runs", "", ("| target | method | n_train | seed | test MAE | test R² | val MAE | epochs | "
                                  "train s | run s |"), "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        epochs = f"{r['epochs_run']}/{r['max_epochs']}" if r["epochs_run"] else "—"  # none for KRR
        lines.append(f"| {r['target']} | {r['method']} | {r['n_train']} | {r['seed']} | {float(r['test_mae']):.4f} | "
                     f"{float(r['test_r2']):.3f} | {float(r['val_mae']):.4f} | {epochs} | "
                     f"{float(r['train_seconds']):.0f} | {float(r['run_seconds']):.0f} |")
    lines += ["", f"![learning curves]({png_path.name})"]
    write_markdown(md_path, lines)
    summary_csv = md_path.with_suffix(".summary.csv")
    write_table(summary_csv, np.array(table_rows, float),
                [f"{m}_{k}" for m in METHODS for k in ("mae_mean", "mae_std")] + [
                    "ratio_negnn_scratch", "ratio_finetune_scratch", "ratio_finetune-slow_scratch"],
                table_index, ("protocol", "target", "n_train"))
    plot(summary, png_path)


def _v2_target(summary: dict, method: str, what: str) -> list[str]:
    """Issue 16's target for one fine-tuning recipe: ≥ 25 % below scratch at V2_TARGET_LABELS labels on ≥
    V2_TARGET_COUNT targets (Markdown lines; none when the recipe was not run at that size)."""
    v2 = [(target, by_method[method][V2_TARGET_LABELS], by_method["scratch"][V2_TARGET_LABELS])
          for (_, target), by_method in sorted(summary.items())
          if V2_TARGET_LABELS in by_method.get(method, {}) and V2_TARGET_LABELS in by_method.get("scratch", {})]
    if not v2:
        return []
    ratios = [(t, float(np.mean(f)) / float(np.mean(sc)), len(f), len(sc)) for t, f, sc in v2]
    n_met = sum(r <= TARGET_RATIO for _, r, _, _ in ratios)
    each = "; ".join(f"{t}: {r:.3f} ({100 * (1 - r):.0f} % lower; seeds {nf}/{ns})" for t, r, nf, ns in ratios)
    return [(f"## Target (issue 16): {what} ≥ 25 % below scratch at {V2_TARGET_LABELS} labels on ≥ "
             f"{V2_TARGET_COUNT} targets"), "",
            (f"**{'MET' if n_met >= V2_TARGET_COUNT else 'NOT MET'}** ({n_met} of {len(ratios)} targets): "
             f"{method} / scratch MAE ratio {each}."), ""]


def plot(summary: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    order = list(TARGETS)
    keys = sorted(summary, key=lambda k: (order.index(k[1]) if k[1] in order else len(order), k))
    fig, axes = plt.subplots(1, len(keys), figsize=(4.6 * len(keys), 4.0), squeeze=False)
    for ax, (protocol, target) in zip(axes[0], keys):
        spec = TARGETS.get(target, {"label": target, "units": ""})
        by_method = summary[(protocol, target)]
        for m, d in sorted(by_method.items(), key=lambda kv: list(METHODS).index(kv[0]) if kv[0] in METHODS else 99):
            n = sorted(d)
            stats = [_ms(d[k]) for k in n]
            ax.errorbar(n, [s[0] for s in stats], yerr=[s[1] for s in stats], marker="o", capsize=3,
                        color=COLORS.get(m), label=f"{METHODS.get(m, m)} (seeds: {min(len(d[k]) for k in n)})")
        ax.set_xscale("log")
        ticks = sorted({n for d in summary[(protocol, target)].values() for n in d})
        ax.set_xticks(ticks, [str(t) for t in ticks])
        ax.minorticks_off()
        ax.set_xlabel("training labels")
        ax.set_ylabel(f"test MAE ({spec['units']})")
        ax.set_title(f"{spec['label']}\n{protocol}", fontsize=8)
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, path, dpi=130)
    plt.close(fig)


# --------------------------------------------------------------------------------------------------- main


def main(argv=None):
    ap = parser(__doc__, "data", "encoder", "max_epochs", "early_stopping", "runs", "out", max_epochs=100,
                early_stopping=20, runs="runs/label-efficiency")
    ap.add_argument("--targets", default=",".join(TARGETS), help=f"comma list of {', '.join(TARGETS)}")
    ap.add_argument("--sizes", default="250,500,1000,2000,all", help="training-label counts; 'all' = whole split")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--methods", default=",".join(METHODS), help=f"comma list of {', '.join(METHODS)}")
    ap.add_argument("--n-val", type=int, default=500, help="validation structures (fixed subset; 0 = whole split)")
    ap.add_argument("--n-test", type=int, default=0, help="test structures (fixed subset; 0 = whole test split)")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--transfer-from", default="mp-eform",
                    help="trained NEGNN (bundled name or directory) that the transfer-eform method starts from")
    ap.add_argument("--no-graph-memo", action="store_true", help="let train() rebuild every graph on every run")
    ap.add_argument("--note", action="append", default=[], help="a line for the report (e.g. why a method was left out)")
    ap.add_argument("--report-only", action="store_true", help="only regenerate the .md/.png from the CSV")
    args = ap.parse_args(argv)
    args.data, args.runs = Path(args.data), Path(args.runs)
    argv = sys.argv[1:] if argv is None else argv

    csv_path = args.out / "paper_label_efficiency.csv"
    md_path, png_path = csv_path.with_suffix(".md"), csv_path.with_suffix(".png")
    targets = [t.strip() for t in args.targets.split(",") if t.strip()]
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    seeds = [int(s) for s in args.seeds.split(",")]
    bad = [t for t in targets if t not in TARGETS] + [m for m in methods if m not in METHODS]
    if bad:
        sys.exit(f"unknown target(s)/method(s): {bad}")
    protocol = (f"epochs ≤ {args.max_epochs}, patience {args.early_stopping}, batch {args.batch_size}, "
                f"val {args.n_val or 'all'}, test {args.n_test or 'all'}")
    t_start = time.perf_counter()
    notes = [] if args.report_only else [
        (f"- protocol of this invocation: {protocol}; lr {args.lr}; pretrained encoder `{args.encoder}` "
         f"(digest {_encoder_digest(args.encoder)}; frozen in `negnn`, trained in `finetune`, its SSMR in `ssmr-krr`); "
         "MEGNet: matgl defaults, cutoff 4 Å")]
    notes += [
        ("- splits: `split_three(n, '0.8,0.1,0.1', seed=0)` per target; validation and test subsets fixed across "
         "methods, sizes and seeds; seed r = training subset (first n of the `default_rng(1000 + r)` permutation of "
         "the training split, nested across sizes) + initialisation + batch order"),
        (f"- machine: {platform.machine()}, {os.cpu_count()} CPUs shared with other jobs (load average at start "
         f"{os.getloadavg()[0]:.1f}), OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}"),
        *(f"- note: {n}" for n in args.note),
    ]
    if args.report_only:
        write_report(csv_path, md_path, png_path, argv, time.perf_counter() - t_start, notes)
        print(md_path.read_text())
        return 0

    import torch

    done = {(r["target"], r["method"], r["n_train"], r["seed"], r["protocol"]) for r in read_rows(csv_path)}
    from ase_negnn.data import GraphMemo

    args.graph_memo = None if args.no_graph_memo else GraphMemo()
    mp36k = MP36k(args.data)
    if len(set(mp36k.ids)) != len(mp36k.ids):
        sys.exit("mp36k mp_ids are not unique: the graph memo and the label joins assume they are")
    mp36k.check(np.random.default_rng(0).choice(len(mp36k), 25, replace=False))
    for target in targets:
        images, source = target_structures(target, mp36k, args.data)
        splits = Splits(len(images), args.n_val, args.n_test)
        notes.append(f"- {target}: {source['source']}: {source['n']} labelled structures of {source['n_source']}; "
                     f"split {len(splits.pool)} train / {splits.n_val_split} validation / {splits.n_test_split} test; "
                     f"used validation {len(splits.val)}, test {len(splits.test)}")
        val_atoms = [images[i] for i in splits.val]
        test_atoms = [images[i] for i in splits.test]
        sizes = []
        for s in args.sizes.split(","):
            s = s.strip()
            n = len(splits.pool) if s == "all" else int(s)
            if n > len(splits.pool):
                log(f"{target}: size {n} > training split {len(splits.pool)}; skipped")
                continue
            sizes.append((s, n))
        for seed in seeds:
            for size_label, n in sizes:
                for method in methods:
                    key = (target, method, str(n), str(seed), protocol)
                    if key in done:
                        continue
                    if method == "transfer-eform" and target == "formation_energy":
                        log(f"{target} {method}: skipped, {args.transfer_from} was trained on these labels")
                        continue
                    if method in ("ssmr-krr", "chgnet-krr") and n > KRR_MAX_TRAIN:
                        log(f"{target} {method} n={n}: skipped, exact KRR needs an n × n eigendecomposition "
                            f"(limit {KRR_MAX_TRAIN})")
                        continue
                    run_dir = args.runs / (f"{target}-{method}-n{n}-s{seed}-e{args.max_epochs}-p{args.early_stopping}"
                                           f"-v{args.n_val}-t{args.n_test}")
                    train_atoms = [images[i] for i in splits.train(n, seed)]
                    log(f"start {target} {method} n={n} seed={seed} -> {run_dir}")
                    t0 = time.perf_counter()
                    try:
                        if method == "megnet":
                            res = run_megnet(target, train_atoms, val_atoms, test_atoms, seed, run_dir, args)
                        elif method == "ssmr-krr":
                            res = run_ssmr_krr(target, train_atoms, test_atoms, args)
                        elif method == "chgnet-krr":
                            res = run_chgnet_krr(target, train_atoms, test_atoms, args)
                        else:
                            res = run_negnn(method, target, train_atoms, val_atoms, test_atoms, seed, run_dir, args)
                    except Exception:  # noqa: BLE001 - record the failure, go on with the other runs
                        log(f"FAILED {target} {method} n={n} seed={seed}:\n{traceback.format_exc()}")
                        continue
                    dt = time.perf_counter() - t0
                    row = {"target": target, "method": method, "size": size_label, "n_train": n, "seed": seed,
                           "protocol": protocol, "n_test": len(test_atoms), "n_val": len(val_atoms),
                           "max_epochs": args.max_epochs, "early_stopping": args.early_stopping,
                           "run_seconds": round(dt, 1), "units": TARGETS[target]["units"], "run_dir": str(run_dir),
                           "date": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
                           "hardware": f"{platform.machine()}, torch threads {torch.get_num_threads()}", **res}
                    append_row(csv_path, row)
                    done.add(key)
                    log(f"done  {target} {method} n={n} seed={seed}: test MAE {res['test_mae']:.4f} "
                        + (f"({res['epochs_run']} epochs, {dt:.0f} s)" if res["epochs_run"] != "" else f"({dt:.0f} s)")
                        + (f"; graph memo {args.graph_memo.hits} hits, {args.graph_memo.built} built"
                           if args.graph_memo is not None else ""))
                    write_report(csv_path, md_path, png_path, argv, time.perf_counter() - t_start, notes)
    write_report(csv_path, md_path, png_path, argv, time.perf_counter() - t_start, notes)
    log(f"finished in {(time.perf_counter() - t_start) / 60:.1f} min; wrote {csv_path}, {md_path}, {png_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
