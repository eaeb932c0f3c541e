"""Descriptor throughput: SSMR vs dscribe SOAP, dscribe sine matrix and matminer's orbital field matrix.

What it does
------------
1. Reads ``mp/mp36k.extxyz`` once and draws ``--n`` structures (seeded, without replacement).
2. Builds every descriptor once (constructors and a 10-structure warm-up are not timed):

   * ``SSMR(layers='all', pooling='mean')`` — the bundled default encoder, batched ``create(list)`` (384 features);
   * dscribe ``SOAP`` averaged over atoms (``average='outer'``, periodic, r_cut 6 Å), twice: the species-agnostic
     ``mu2`` compression with n_max 8, l_max 9 (360 features, the size of SSMR) and the ``mu1nu1`` compression
     with n_max 4, l_max 3 over every element of the sample (element-resolved, 64 × n_elements features);
   * dscribe ``SOAP`` as issue 16 states it: r_cut 6 Å, n_max 4, l_max 4, ``average='inner'``, no compression,
     over every element of the sample;
   * CHGNet 0.3.0's pretrained crystal features (``predict_structure(..., task='e', return_crystal_feas=True)``,
     batch 32; the ASE → pymatgen conversion is done beforehand and not timed), the learned descriptor users would
     pick instead of SSMR;
   * dscribe ``SineMatrix`` (eigenspectrum, n_atoms_max = largest structure of the sample);
   * matminer ``OrbitalFieldMatrix`` (32 × 32 flattened) on pymatgen ``Structure`` objects (the ASE → pymatgen
     conversion is done beforehand and not timed).

3. Times them **interleaved**: the sample is cut into blocks of ``--block`` structures and each block is run through
   every descriptor in turn, the order rotating from block to block, so that load from other jobs on the machine
   falls on all of them alike. Each call is timed with ``time.perf_counter`` (wall) and ``time.thread_time``
   (CPU of this thread; only meaningful for single-threaded runs).

Everything runs in one process on one thread (``torch.set_num_threads(--threads)``, dscribe ``n_jobs=1``,
matminer called structure by structure). Output: ``benchmarks/results/perf_descriptors{suffix}.{csv,md}``.

``--ofm-every k`` runs OFM on every k-th block only (OFM is ~100× slower than the rest).

Command (from the repository root; OFM on all 2,000 structures takes 10-20 min on an idle CPU)::

    OMP_NUM_THREADS=1 nohup nice python benchmarks/perf_descriptors.py --data ../shared/data > /tmp/perf_desc.log 2>&1 &
"""

from __future__ import annotations

import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
from _bench import mp36k_path, parser, report_header, write_csv, write_markdown


def _versions() -> str:
    import ase
    import chgnet
    import dscribe
    import matminer
    import torch

    return (f"python {platform.python_version()}, torch {torch.__version__}, ase {ase.__version__}, "
            f"chgnet {chgnet.__version__}, "
            f"dscribe {dscribe.__version__ if hasattr(dscribe, '__version__') else '2.1.x'}, "
            f"matminer {matminer.__version__ if hasattr(matminer, '__version__') else '?'}")


def main(argv=None):
    p = parser(__doc__, "data", "n", "seed", "threads", "suffix", "out", n=2000)
    p.add_argument("--block", type=int, default=100, help="structures per interleaved block")
    p.add_argument("--ofm-every", type=int, default=1,
                   help="run OFM only on every k-th block (its ratio then uses SSMR's time on the same blocks)")
    p.add_argument("--skip", default="", help="comma list of methods to leave out (e.g. ofm for a quick run)")
    args = p.parse_args(argv)
    t_start = time.perf_counter()

    import ase.io
    import torch
    from _dscribe_compat import patch_dscribe

    patch_dscribe()
    from dscribe.descriptors import SOAP, SineMatrix
    from matminer.featurizers.structure import OrbitalFieldMatrix
    from pymatgen.io.ase import AseAtomsAdaptor

    from ase_negnn.descriptor import SSMR

    torch.set_num_threads(args.threads)
    src = mp36k_path(args.data)
    t0 = time.perf_counter()
    everything = ase.io.read(src, ":")
    t_read = time.perf_counter() - t0
    rng = np.random.default_rng(args.seed)
    pick = np.sort(rng.choice(len(everything), size=min(args.n, len(everything)), replace=False))
    images = [everything[i] for i in pick]
    del everything
    n_atoms = np.array([len(a) for a in images])
    species = sorted({int(z) for a in images for z in a.numbers})
    structures = [AseAtomsAdaptor.get_structure(a) for a in images]

    ssmr = SSMR(layers="all", pooling="mean")
    soap_mu2 = SOAP(species=species, r_cut=6.0, n_max=8, l_max=9, periodic=True, average="outer",
                    compression={"mode": "mu2"})
    soap_el = SOAP(species=species, r_cut=6.0, n_max=4, l_max=3, periodic=True, average="outer",
                   compression={"mode": "mu1nu1"})
    soap_inner = SOAP(species=species, r_cut=6.0, n_max=4, l_max=4, periodic=True, average="inner")
    sine = SineMatrix(n_atoms_max=int(n_atoms.max()), permutation="eigenspectrum")
    from chgnet.model import CHGNet

    chgnet = CHGNet.load(verbose=False)
    chgnet.eval()

    def chgnet_features(lo, hi):
        out = chgnet.predict_structure(structures[lo:hi], task="e", return_crystal_feas=True, batch_size=32)
        return np.array([q["crystal_fea"] for q in (out if isinstance(out, list) else [out])])
    ofm = OrbitalFieldMatrix(period_tag=False, flatten=True)

    methods = {
        "ssmr": ("SSMR (ours), layers all, mean, batched", lambda lo, hi: ssmr.create(images[lo:hi]),
                 ssmr.get_number_of_features()),
        "soap_mu2": ("dscribe SOAP, averaged, mu2 (r 6 Å, n 8, l 9)", lambda lo, hi: soap_mu2.create(images[lo:hi]),
                     soap_mu2.get_number_of_features()),
        "soap_mu1nu1": (f"dscribe SOAP, averaged, mu1nu1 over {len(species)} elements (r 6 Å, n 4, l 3)",
                        lambda lo, hi: soap_el.create(images[lo:hi]), soap_el.get_number_of_features()),
        "soap_inner": (f"dscribe SOAP, averaged inner, {len(species)} elements (r 6 Å, n 4, l 4)",
                       lambda lo, hi: soap_inner.create(images[lo:hi]), soap_inner.get_number_of_features()),
        "chgnet": ("CHGNet 0.3.0 crystal features (mean over atoms)", chgnet_features, 64),
        "sine": ("dscribe sine matrix (eigenspectrum)", lambda lo, hi: sine.create(images[lo:hi]),
                 sine.get_number_of_features()),
        "ofm": ("matminer OrbitalFieldMatrix", lambda lo, hi: np.array([ofm.featurize(s) for s in structures[lo:hi]]),
                1024),
    }
    for key in [k.strip() for k in args.skip.split(",") if k.strip()]:
        methods.pop(key)
    if "ssmr" not in methods:
        sys.exit("ssmr cannot be skipped")
    names = list(methods)

    for key in names:  # warm-up (imports, JIT-compiled propagate, caches)
        methods[key][1](0, 10)

    wall = {k: 0.0 for k in names}
    cpu = {k: 0.0 for k in names}
    block_rate = {k: [] for k in names}
    block_wall = {k: {} for k in names}
    block_n = {}
    shapes = {}
    load_before = os.getloadavg()
    blocks = list(range(0, len(images), args.block))
    for b, lo in enumerate(blocks):
        hi = min(lo + args.block, len(images))
        order = names[b % len(names):] + names[: b % len(names)]
        for key in order:
            if key == "ofm" and b % args.ofm_every:
                continue
            c0, w0 = time.thread_time(), time.perf_counter()
            x = methods[key][1](lo, hi)
            dw, dc = time.perf_counter() - w0, time.thread_time() - c0
            x = np.asarray(x)
            if x.shape[0] != hi - lo or not np.isfinite(x).all():
                sys.exit(f"{key}: bad output for structures {lo}:{hi}: shape {x.shape}, finite {np.isfinite(x).all()}")
            shapes[key] = x.shape[1]
            wall[key] += dw
            cpu[key] += dc
            block_rate[key].append((hi - lo) / dw)
            block_wall[key][b] = dw
            block_n[b] = hi - lo
        print(f"block {b + 1}/{len(blocks)}: " + ", ".join(f"{k} {wall[k]:.1f}s" for k in names), flush=True)
    load_after = os.getloadavg()

    n_at_block = {b: int(n_atoms[lo: lo + args.block].sum()) for b, lo in enumerate(blocks)}
    rows = []
    for key in names:
        label, _, n_feat = methods[key]
        done = sorted(block_wall[key])  # blocks this method ran on (all, or every k-th for OFM)
        n, n_at = sum(block_n[b] for b in done), sum(n_at_block[b] for b in done)
        ssmr_same = sum(block_wall["ssmr"][b] for b in done)
        rows.append({
            "method": key, "description": label, "features": shapes[key], "structures_timed": n,
            "structures_per_s": n / wall[key], "atoms_per_s": n_at / wall[key],
            "ms_per_structure": 1e3 * wall[key] / n, "cpu_over_wall": cpu[key] / wall[key],
            "block_rate_min": min(block_rate[key]), "block_rate_median": float(np.median(block_rate[key])),
            "block_rate_max": max(block_rate[key]),
            "ssmr_speedup": wall[key] / ssmr_same,
        })
    n, n_at = len(images), int(n_atoms.sum())
    out = Path(args.out)
    stem = f"perf_descriptors{args.suffix}"
    write_csv(out / f"{stem}.csv",
              [{k: (round(v, 4) if isinstance(v, float) else v) for k, v in r.items()} for r in rows])

    by = {r["method"]: r for r in rows}
    goals = []
    if "soap_mu2" in by:
        goals.append(("SSMR ≥ 5× dscribe SOAP (size-matched mu2)", by["soap_mu2"]["ssmr_speedup"], 5.0))
    if "soap_mu1nu1" in by:
        goals.append(("SSMR ≥ 5× dscribe SOAP (element-resolved mu1nu1)", by["soap_mu1nu1"]["ssmr_speedup"], 5.0))
    if "soap_inner" in by:
        goals.append(("SSMR ≥ 5× dscribe SOAP (r 6, n 4, l 4, inner average; issue 16)", by["soap_inner"]["ssmr_speedup"], 5.0))
    if "chgnet" in by:
        goals.append(("SSMR ≥ 20× CHGNet crystal features (issue 16)", by["chgnet"]["ssmr_speedup"], 20.0))
    if "ofm" in by:
        goals.append(("SSMR ≥ 50× matminer OFM", by["ofm"]["ssmr_speedup"], 50.0))
    total = time.perf_counter() - t_start
    md = [*report_header(f"Descriptor throughput on {n} mp36k structures", f"{total:.0f} s", argv),
          f"- data: {n} structures drawn with seed {args.seed} from `{src}` (read once in {t_read:.0f} s); "
          f"{n_at} atoms, {n_atoms.mean():.1f} per structure on average (max {n_atoms.max()}), {len(species)} elements",
          f"- machine: {platform.machine()}, {os.cpu_count()} CPUs; torch threads {torch.get_num_threads()}, "
          f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}, dscribe n_jobs=1; load average "
          f"{', '.join(f'{v:.2f}' for v in load_before)} before and {', '.join(f'{v:.2f}' for v in load_after)} after "
          "the timed loop (other jobs were running; ratios come from interleaved blocks, absolute rates do not transfer)",
          f"- versions: {_versions()}",
          f"- timing: {len(blocks)} blocks of {args.block} structures, each block through every method in rotating "
          "order; one 10-structure warm-up per method; constructors and the ASE → pymatgen conversion for OFM not "
          "timed. `cpu/wall` < 1 means the process waited for the CPU (other jobs)."
          + (f" OFM ran on every {args.ofm_every}-th block only ({len(blocks[::args.ofm_every])} blocks); its speed-up "
             "divides by SSMR's time on those same blocks." if args.ofm_every > 1 and "ofm" in names else ""),
          "",
          "| method | features | structures timed | structures/s | atoms/s | ms/structure | cpu/wall | block rate "
          "min–median–max (struct/s) | SSMR speed-up (peer time / SSMR time, same blocks) |",
          "|---|---:|---:|---:|---:|---:|---:|---|---:|"]
    for r in rows:
        md.append(f"| {r['description']} | {r['features']} | {r['structures_timed']} | {r['structures_per_s']:.1f} | {r['atoms_per_s']:.0f} | "
                  f"{r['ms_per_structure']:.2f} | {r['cpu_over_wall']:.2f} | {r['block_rate_min']:.1f}–"
                  f"{r['block_rate_median']:.1f}–{r['block_rate_max']:.1f} | {r['ssmr_speedup']:.2f}× |")
    md += ["", "## Goals", "", "| goal | measured | met |", "|---|---:|---|"]
    md += [f"| {g} | {v:.2f}× | {'yes' if v >= t else 'no'} |" for g, v, t in goals]
    write_markdown(out / f"{stem}.md", md)
    print("\n".join(md))


if __name__ == "__main__":
    main()
