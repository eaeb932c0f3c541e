"""Scaling of graph building, embedding and energy + forces from 8 to 10,000 atoms: time, peak memory, exponent.

What it does
------------
For rock-salt NaCl supercells (the 8-atom cubic cell repeated up to 10,000 atoms) and for each of three stages,
a **fresh child process** (``multiprocessing`` spawn) imports everything, builds the models, warms up on the 8-atom
cell, records its resident memory (``VmRSS``), runs the stage, and reports its time and the process's peak resident
memory (``VmHWM`` from ``/proc/self/status``), so each stage's memory is measured on its own:

* ``graph``: ``CrystalGraphConverter`` for the encoder graph (8 Å, 12 nearest neighbours) and for the potential's
  smooth graph (5 Å, every neighbour);
* ``embed``: the default encoder's forward pass (all layers, ``torch.inference_mode``) on the prebuilt graph, and the
  whole ``SSAR(layers='all').create(atoms)`` (graph + encoder);
* ``energy_forces``: the NEGNN potential (untrained, n_conv 3, width 64, cutoff 5 Å — the architecture of
  ``runs/mlearn-si/model``) forward + autograd forces on the prebuilt graph, and the whole calculator call
  ``atoms.get_potential_energy(); atoms.get_forces()`` (graph + model).

Times are the best of ``--repeats`` runs (fewer above 1,000 atoms). The exponent ``b`` of ``t ∝ N^b`` is a
least-squares line through log t vs log N (``numpy.polyfit``), over all sizes ≥ ``--fit-from`` atoms (fixed per-call
costs flatten the small sizes), and over all sizes for reference. Peak memory is reported as the increase of peak
RSS over the RSS before the stage (and the absolute peak).

Output: ``benchmarks/results/perf_scaling{suffix}.{csv,md,png}``.

Command (from the repository root)::

    OMP_NUM_THREADS=1 python benchmarks/perf_scaling.py
"""

from __future__ import annotations

import multiprocessing as mp
import os
import platform
import time
from pathlib import Path

import numpy as np
from _bench import parser, report_header, save_figure, write_csv, write_markdown

REPEATS = ((1, 1, 1), (2, 2, 2), (3, 3, 3), (4, 4, 4), (5, 5, 5), (6, 6, 6), (8, 8, 8), (10, 10, 10), (5, 10, 25))
STAGES = ("graph", "embed", "energy_forces")


def _status_kib(key: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise KeyError(key)


def _best(fn, repeats: int) -> float:
    best = np.inf
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def _structure(rep):
    from ase.build import bulk

    return bulk("NaCl", "rocksalt", a=5.64, cubic=True).repeat(rep)


def worker(stage: str, rep, repeats: int, threads: int, queue) -> None:
    """One stage on one supercell in this (fresh) process; puts a dict of results on ``queue``."""
    import warnings

    warnings.filterwarnings("ignore")
    import torch

    torch.set_num_threads(threads)
    from ase_negnn.calculator import NEGNNCalculator
    from ase_negnn.descriptor import SSAR
    from ase_negnn.graph import CrystalGraphConverter
    from ase_negnn.models import NEGNN

    small, atoms = _structure((1, 1, 1)), _structure(rep)
    out = {"stage": stage, "n_atoms": len(atoms), "repeat": "x".join(map(str, rep))}
    enc_graph, pot_graph = CrystalGraphConverter(8.0, 12), CrystalGraphConverter(5.0, None)
    if stage == "graph":
        for g in (enc_graph, pot_graph):
            g(small)
        rss0 = _status_kib("VmRSS")
        out["t_encoder_graph_s"] = _best(lambda: enc_graph(atoms), repeats)
        out["t_potential_graph_s"] = _best(lambda: pot_graph(atoms), repeats)
        out["edges_encoder_graph"] = int(enc_graph(atoms).num_edges)
        out["edges_potential_graph"] = int(pot_graph(atoms).num_edges)
        out["t_main_s"] = out["t_encoder_graph_s"] + out["t_potential_graph_s"]
    elif stage == "embed":
        ssar = SSAR(layers="all")
        ssar.create(small)
        enc = ssar.encoder
        rss0 = _status_kib("VmRSS")
        graph = enc_graph(atoms)

        def forward():
            with torch.inference_mode():
                return enc(graph)

        out["t_model_s"] = _best(forward, repeats)
        out["t_main_s"] = _best(lambda: ssar.create(atoms), repeats)
    else:
        torch.manual_seed(0)
        model = NEGNN(encoder="default", task="potential", n_conv=3, width=64, hidden=128, cutoff=5.0).eval()
        calc = NEGNNCalculator(potential=model)
        s = small.copy()
        s.calc = calc
        s.get_forces()
        rss0 = _status_kib("VmRSS")
        graph = pot_graph(atoms)

        def forward():
            res = model(graph, compute_forces=True, compute_stress=False)
            return float(res["energy"].sum()), res["forces"].shape

        out["t_model_s"] = _best(forward, repeats)

        def full():
            a = atoms.copy()
            calc.reset()  # never reuse the previous call's results for the same positions
            a.calc = calc
            return a.get_potential_energy(), a.get_forces()

        out["t_main_s"] = _best(full, repeats)
    out["rss_before_mib"] = rss0 / 1024
    out["peak_rss_mib"] = _status_kib("VmHWM") / 1024
    out["peak_increase_mib"] = out["peak_rss_mib"] - out["rss_before_mib"]
    queue.put(out)


def run_child(stage, rep, repeats, threads) -> dict:
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    proc = ctx.Process(target=worker, args=(stage, rep, repeats, threads, q))
    proc.start()
    res = q.get()
    proc.join()
    return res


def fit_exponent(n, t, n_min) -> float:
    n, t = np.asarray(n, float), np.asarray(t, float)
    keep = n >= n_min
    return float(np.polyfit(np.log(n[keep]), np.log(t[keep]), 1)[0])


def main(argv=None):
    p = parser(__doc__, "threads", "suffix", "out")
    p.add_argument("--repeats", type=int, default=3, help="timed runs per stage up to 1,000 atoms (1 above 4,000)")
    p.add_argument("--max-atoms", type=int, default=10_000)
    p.add_argument("--fit-from", type=int, default=500, help="smallest size in the exponent fit")
    p.add_argument("--memory-limit-gib", type=float, default=24.0)
    args = p.parse_args(argv)
    t_start = time.perf_counter()
    load_before = os.getloadavg()
    reps = [r for r in REPEATS if 8 * int(np.prod(r)) <= args.max_atoms]
    rows = []
    for rep in reps:
        n = 8 * int(np.prod(rep))
        repeats = args.repeats if n <= 1000 else (2 if n <= 4096 else 1)
        for stage in STAGES:
            r = run_child(stage, rep, repeats, args.threads)
            rows.append(r)
            print(f"{n:6d} atoms {stage:14s} {r['t_main_s']:.4f} s  peak +{r['peak_increase_mib']:.0f} MiB", flush=True)
    load_after = os.getloadavg()

    out = Path(args.out)
    stem = f"perf_scaling{args.suffix}"
    write_csv(out / f"{stem}.csv",
              [{k: (round(v, 5) if isinstance(v, float) else v) for k, v in r.items()} for r in rows])

    series = {
        "encoder graph (8 Å, 12-NN)": ("graph", "t_encoder_graph_s"),
        "potential graph (5 Å, all)": ("graph", "t_potential_graph_s"),
        "encoder forward (all layers)": ("embed", "t_model_s"),
        "SSAR create (graph + encoder)": ("embed", "t_main_s"),
        "potential energy + forces (model)": ("energy_forces", "t_model_s"),
        "calculator energy + forces (graph + model)": ("energy_forces", "t_main_s"),
    }
    fits = {}
    for name, (stage, key) in series.items():
        rr = [r for r in rows if r["stage"] == stage]
        n, t = [r["n_atoms"] for r in rr], [r[key] for r in rr]
        fits[name] = (fit_exponent(n, t, args.fit_from), fit_exponent(n, t, 0), n, t)
    mem = {s: ([r["n_atoms"] for r in rows if r["stage"] == s], [r["peak_increase_mib"] for r in rows if r["stage"] == s])
           for s in STAGES}
    mem_fit = {s: fit_exponent(*mem[s], args.fit_from) for s in STAGES}

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.8))
    for name, (b, _, n, t) in fits.items():
        ax1.loglog(n, t, "o-", label=f"{name}: N^{b:.2f}")
    nn = np.array([8, args.max_atoms], float)
    ref = fits["calculator energy + forces (graph + model)"][3][-1]
    ax1.loglog(nn, ref * nn / nn[-1], "k:", label="∝ N (reference)")
    ax1.set_xlabel("atoms")
    ax1.set_ylabel("time (s, best of runs)")
    ax1.legend(fontsize=7)
    ax1.set_title(f"time (exponent fitted for N ≥ {args.fit_from})")
    for s in STAGES:
        ax2.loglog(*mem[s], "o-", label=f"{s}: N^{mem_fit[s]:.2f}")
    ax2.set_xlabel("atoms")
    ax2.set_ylabel("peak RSS increase over the stage (MiB)")
    ax2.legend(fontsize=8)
    ax2.set_title("peak memory")
    fig.suptitle("NEGNN scaling, NaCl supercells, 1 CPU thread")
    fig.tight_layout()
    save_figure(fig, out / f"{stem}.png", dpi=120)

    total = time.perf_counter() - t_start
    biggest = max(r["n_atoms"] for r in rows)
    ef_big = next(r for r in rows if r["stage"] == "energy_forces" and r["n_atoms"] == biggest)
    worst = max(fits[k][0] for k in series)
    import torch

    md = [*report_header(f"Scaling from 8 to {biggest:,} atoms", f"{total:.0f} s", argv),
          f"- structures: rock-salt NaCl, 8-atom cubic cell (a = 5.64 Å) repeated {', '.join('×'.join(map(str, r)) for r in reps)}",
          f"- machine: {platform.machine()}, {os.cpu_count()} CPUs; torch threads {args.threads}, "
          f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}; load average "
          f"{', '.join(f'{v:.2f}' for v in load_before)} before and {', '.join(f'{v:.2f}' for v in load_after)} after "
          "(other jobs were running; best-of-runs times)",
          f"- versions: python {platform.python_version()}, torch {torch.__version__}",
          "- each stage of each size in a fresh process; peak memory = VmHWM − VmRSS before the stage",
          "",
          f"| stage | exponent (N ≥ {args.fit_from}) | exponent (all N) | time at 8 atoms (s) | time at {biggest:,} atoms (s) |",
          "|---|---:|---:|---:|---:|"]
    for name, (b, b_all, n, t) in fits.items():
        md.append(f"| {name} | {b:.3f} | {b_all:.3f} | {t[0]:.4f} | {t[-1]:.3f} |")
    md += ["", "| atoms | edges (8 Å, 12-NN) | edges (5 Å, all) | graph s | encoder fwd s | SSAR create s | "
           "potential E+F s | calculator E+F s | peak +MiB graph | peak +MiB embed | peak +MiB E+F | peak RSS E+F (MiB) |",
           "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for rep in reps:
        n = 8 * int(np.prod(rep))
        g, e, f = (next(r for r in rows if r["stage"] == s and r["n_atoms"] == n) for s in STAGES)
        md.append(f"| {n} | {g['edges_encoder_graph']} | {g['edges_potential_graph']} | {g['t_main_s']:.4f} | "
                  f"{e['t_model_s']:.4f} | {e['t_main_s']:.4f} | {f['t_model_s']:.4f} | {f['t_main_s']:.4f} | "
                  f"{g['peak_increase_mib']:.0f} | {e['peak_increase_mib']:.0f} | {f['peak_increase_mib']:.0f} | "
                  f"{f['peak_rss_mib']:.0f} |")
    md += ["", f"Memory exponents (N ≥ {args.fit_from}): " + ", ".join(f"{s} {mem_fit[s]:.2f}" for s in STAGES), "",
           "## Goals", "", "| goal | measured | met |", "|---|---:|---|",
           f"| scaling exponent ≤ 1.1 up to {biggest:,} atoms (worst stage, N ≥ {args.fit_from}) | {worst:.3f} | "
           f"{'yes' if worst <= 1.1 else 'no'} |",
           f"| {biggest:,}-atom energy + forces within {args.memory_limit_gib:g} GiB (peak RSS of the process) | "
           f"{ef_big['peak_rss_mib'] / 1024:.2f} GiB | {'yes' if ef_big['peak_rss_mib'] / 1024 <= args.memory_limit_gib else 'no'} |",
           "", f"Plot: `{stem}.png`."]
    write_markdown(out / f"{stem}.md", md)
    print("\n".join(md))


if __name__ == "__main__":
    main()
