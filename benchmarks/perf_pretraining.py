"""Pretraining throughput on the CPU with cached graphs, split into data loading and compute.

What it does
------------
1. Loads the mp36k crystal-graph cache with ``ase_negnn.data.load_graph_dataset`` (``--cache-dir``; on a miss it
   reads ``mp/mp36k.extxyz`` once and writes the cache) and keeps the first ``--n`` structures, as
   ``pretrain(max_structures=n)`` does.
2. **Loading alone**: iterates one epoch of the training ``DataLoader`` that ``pretrain`` builds (same split,
   sampler, batch size, ``num_workers``), doing nothing with the batches: the cost of indexing the cache and
   collating PyG batches.
3. **Compute alone**: the same batches, collated beforehand and held in memory, through the predictive SSL step
   (``SSLPretrainer.step``: masking, encoder, heads, loss), ``backward`` and an Adam step; forward and
   backward + optimiser are timed separately.
4. **The real run**: ``ase_negnn.pretraining.pretrain`` for ``--max-epochs`` epochs on the same structures in a
   temporary run directory (Lightning ``Trainer``, checkpoints, metrics CSV, encoder export); seconds per epoch from its
   ``metrics.csv`` (an epoch there includes the validation pass over the held-out 5 % and the callbacks).

Structures/s = training structures / seconds. ``loading share`` = loading alone / (loading + compute).

Output: ``benchmarks/results/perf_pretraining{suffix}.{csv,md}``.

Command (from the repository root)::

    OMP_NUM_THREADS=1 python benchmarks/perf_pretraining.py --data ../shared/data --n 4000 --max-epochs 2
"""

from __future__ import annotations

import csv
import logging
import os
import platform
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
from _bench import mp36k_path, parser, report_header, write_csv, write_markdown


def main(argv=None):
    p = parser(__doc__, "data", "n", "max_epochs", "threads", "suffix", "out", n=4000, max_epochs=2)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--num-workers", type=int, default=0)
    p.add_argument("--cache-dir", default="runs/cache", help="graph cache directory (shared with pretraining runs)")
    args = p.parse_args(argv)
    t_start = time.perf_counter()
    warnings.filterwarnings("ignore")
    logging.getLogger("lightning").setLevel(logging.ERROR)
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)

    import torch
    from torch.utils.data import Subset

    from ase_negnn.data import load_graph_dataset
    from ase_negnn.encoder import CGCNNEncoder
    from ase_negnn.pretraining import _loaders, pretrain
    from ase_negnn.ssl import SSLPretrainer

    torch.set_num_threads(args.threads)
    src = mp36k_path(args.data)
    load_before = os.getloadavg()
    t0 = time.perf_counter()
    dataset = load_graph_dataset(src, CGCNNEncoder().graph_converter(), args.cache_dir, progress=False)
    t_cache = time.perf_counter() - t0
    subset = Subset(dataset, list(range(min(args.n, len(dataset)))))
    train, _, n_train, n_val = _loaders(subset, 0.05, args.batch_size, 0, args.num_workers)
    train.sampler.set_epoch(0)

    # 2. loading alone
    t0 = time.perf_counter()
    batches = list(train)
    t_load = time.perf_counter() - t0
    n_seen = sum(b.num_graphs for b in batches)
    n_atoms = sum(b.num_nodes for b in batches)
    n_edges = sum(b.num_edges for b in batches)

    # 3. compute alone
    torch.manual_seed(0)
    module = SSLPretrainer(CGCNNEncoder(), objective="predictive", max_epochs=args.max_epochs)
    opt = module.configure_optimizers()["optimizer"]
    module.train()
    t_fwd = t_bwd = 0.0
    for i, batch in enumerate(batches[:1]):  # warm-up (PyG's compiled propagate, allocator)
        module.step(batch, torch.Generator().manual_seed(i))[0]["loss"].backward()
    opt.zero_grad()
    for i, batch in enumerate(batches):
        gen = torch.Generator().manual_seed(i + 1)
        t0 = time.perf_counter()
        metrics, _ = module.step(batch, gen)
        t1 = time.perf_counter()
        opt.zero_grad()
        metrics["loss"].backward()
        opt.step()
        t2 = time.perf_counter()
        t_fwd += t1 - t0
        t_bwd += t2 - t1
    t_compute = t_fwd + t_bwd

    # 4. the real run
    with tempfile.TemporaryDirectory(prefix="perf-pretrain-") as tmp:
        t0 = time.perf_counter()
        pretrain(src, Path(tmp) / "run", epochs=args.max_epochs, batch_size=args.batch_size, cache_dir=args.cache_dir,
                 max_structures=args.n, progress=False, accelerator="cpu", devices=1, num_workers=args.num_workers)
        t_run = time.perf_counter() - t0
        with open(Path(tmp) / "run" / "metrics.csv", newline="") as fh:
            epochs = [float(r["epoch_seconds"]) for r in csv.DictReader(fh)]
    load_after = os.getloadavg()

    rows = [
        {"measure": "graph cache load (all mp36k graphs)", "seconds": t_cache, "structures_per_s": len(dataset) / t_cache},
        {"measure": "loading alone (1 epoch of the training DataLoader)", "seconds": t_load,
         "structures_per_s": n_seen / t_load},
        {"measure": "compute alone: forward (masking, encoder, heads, loss)", "seconds": t_fwd,
         "structures_per_s": n_seen / t_fwd},
        {"measure": "compute alone: backward + Adam step", "seconds": t_bwd, "structures_per_s": n_seen / t_bwd},
        {"measure": "compute alone: total", "seconds": t_compute, "structures_per_s": n_seen / t_compute},
        *({"measure": f"pretrain() epoch {i + 1} (Lightning, incl. validation)", "seconds": s,
           "structures_per_s": n_train / s} for i, s in enumerate(epochs)),
        {"measure": f"pretrain() whole call ({args.max_epochs} epochs, incl. cache load, set-up, export)",
         "seconds": t_run, "structures_per_s": n_train * args.max_epochs / t_run},
    ]
    share = t_load / (t_load + t_compute)
    out = Path(args.out)
    stem = f"perf_pretraining{args.suffix}"
    write_csv(out / f"{stem}.csv",
              [*({k: (round(v, 3) if isinstance(v, float) else v) for k, v in r.items()} for r in rows),
               {"measure": "loading share of loading + compute", "seconds": round(share, 4), "structures_per_s": ""}])
    total = time.perf_counter() - t_start
    overhead = float(np.mean(epochs)) - (t_load + t_compute)
    md = [*report_header(f"Pretraining throughput on {len(subset)} mp36k structures (CPU, cached graphs)",
                         f"{total:.0f} s", argv),
          f"- data: first {len(subset)} structures of the mp36k graph cache in `{args.cache_dir}` "
          f"({n_train} training, {n_val} validation); one training epoch = {len(batches)} batches of "
          f"{args.batch_size}, {n_atoms / n_seen:.1f} atoms and {n_edges / n_seen:.0f} edges per structure",
          "- objective: predictive (group/period + distance bins), default encoder architecture (5 layers, width 64)",
          f"- machine: {platform.machine()}, {os.cpu_count()} CPUs; torch threads {torch.get_num_threads()}, "
          f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}, DataLoader workers {args.num_workers}; "
          f"load average {', '.join(f'{v:.2f}' for v in load_before)} before and "
          f"{', '.join(f'{v:.2f}' for v in load_after)} after (other jobs were running)",
          f"- versions: python {platform.python_version()}, torch {torch.__version__}",
          "",
          "| measure | seconds | structures/s |", "|---|---:|---:|",
          *(f"| {r['measure']} | {r['seconds']:.2f} | {r['structures_per_s']:.0f} |" for r in rows),
          "",
          f"**Data loading share** (loading alone / (loading + compute)): {100 * share:.1f} % — "
          f"{'not the bottleneck' if share < 0.25 else 'a bottleneck'}. "
          f"The Lightning epoch's remaining {overhead:.2f} s (mean epoch − loading − compute) is the validation pass, "
          "logging and the per-epoch checkpoint and encoder export."]
    write_markdown(out / f"{stem}.md", md)
    print("\n".join(md))


if __name__ == "__main__":
    main()
