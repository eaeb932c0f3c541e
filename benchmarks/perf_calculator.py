"""Calculator step (energy + forces + stress) and relaxation wall time: NEGNN vs CHGNet and matgl M3GNet.

What it does
------------
1. Reads ``mp/mp36k.extxyz`` once. Draws ``--n`` 8-atom structures (seeded) and builds their 2×2×2
   (64-atom) and 4×4×4 (512-atom) supercells with ``Atoms.repeat``.
2. Three ASE calculators, all on the CPU with the same torch thread count:

   * ours: ``NEGNNCalculator(potential=NEGNN(task='potential', n_conv=3, width=64, hidden=128, cutoff=5 Å))`` —
     the architecture of ``runs/mlearn-si/model``, untrained, every element allowed (timing only);
   * CHGNet's ``CHGNetCalculator`` with the weights shipped in its wheel;
   * matgl's ``PESCalculator`` around ``Potential(M3GNet())`` (default architecture, untrained; ``stress_unit='eV/A3'``).

3. **Step**: each call moves the atoms (a fresh 0.01 Å rattle, so nothing is cached). Calls are
   interleaved: for each repetition and structure the three calculators run one after the other in rotating order.
   The call is what ASE users and optimisers do: ``atoms.get_potential_energy()``, ``atoms.get_forces()``,
   ``atoms.get_stress()`` in a row on the moved atoms (a calculator that computes all three at once pays once).
   One warm-up call per calculator and size is not timed. Reported: median ms per call and the ratio peer / ours.
4. **Relaxation**: ``--n-relax`` structures drawn (seeded) from mlearn ``Si_test`` (DFT MD snapshots, vacancies and
   surfaces of 24-64 atoms), relaxed with ``ase_negnn.relaxation.relax`` (ASE FIRE, positions only, fmax 0.05 eV/Å, at
   most ``--relax-steps`` steps) by each calculator in turn; wall time, steps and ms per step each. Here ours is the
   *trained* Si potential ``--si-model`` (``runs/mlearn-si/model``, from ``mlearn_si_potential.py``) and CHGNet is
   pretrained, so both relax on a real energy surface; matgl's M3GNet is still untrained (its step count means
   nothing, its ms/step does).

Output: ``benchmarks/results/perf_calculator{suffix}.{csv,md}`` and ``perf_relax{suffix}.csv``.

Command (from the repository root)::

    OMP_NUM_THREADS=1 python benchmarks/perf_calculator.py --data ../shared/data
"""

from __future__ import annotations

import os
import platform
import time
import warnings
from pathlib import Path

import numpy as np
from _bench import mp36k_path, parser, report_header, write_csv, write_markdown


def make_calculators(elements: list[str]):
    """Our NEGNN calculator (untrained potential), CHGNet's, and matgl's with an untrained M3GNet."""
    import torch
    from chgnet.model.dynamics import CHGNetCalculator
    from matgl.apps.pes import Potential
    from matgl.ext.ase import PESCalculator
    from matgl.models import M3GNet

    from ase_negnn.calculator import NEGNNCalculator
    from ase_negnn.models import NEGNN

    torch.manual_seed(0)
    negnn = NEGNN(encoder="default", task="potential", n_conv=3, width=64, hidden=128, cutoff=5.0)
    ours = NEGNNCalculator(potential=negnn)
    chgnet = CHGNetCalculator(use_device="cpu")
    m3 = M3GNet(element_types=tuple(elements))
    matgl_calc = PESCalculator(Potential(model=m3, calc_stresses=True), stress_unit="eV/A3")
    n_params = {
        "ours": sum(p.numel() for p in negnn.parameters()),
        "chgnet": sum(p.numel() for p in chgnet.model.parameters()),
        "m3gnet": sum(p.numel() for p in m3.parameters()),
    }
    labels = {
        "ours": "NEGNN potential (ours, untrained, n_conv 3, width 64, cutoff 5 Å)",
        "chgnet": "CHGNet 0.3.0 (pretrained, wheel weights)",
        "m3gnet": "matgl PESCalculator, M3GNet (untrained, default size, cutoff 5 Å)",
    }
    return {"ours": ours, "chgnet": chgnet, "m3gnet": matgl_calc}, n_params, labels


def make_relax_calculators(si_model, chgnet):
    """Our trained Si potential, the same CHGNet, and matgl with an untrained Si-only M3GNet."""
    from matgl.apps.pes import Potential
    from matgl.ext.ase import PESCalculator
    from matgl.models import M3GNet

    from ase_negnn.calculator import NEGNNCalculator

    return {"ours": NEGNNCalculator(potential=si_model), "chgnet": chgnet,
            "m3gnet": PESCalculator(Potential(model=M3GNet(element_types=("Si",)), calc_stresses=True),
                                    stress_unit="eV/A3")}


def step(calc, atoms, rng) -> float:
    atoms.positions += rng.normal(scale=0.01, size=atoms.positions.shape)
    atoms.calc = calc
    t = time.perf_counter()
    e, f, s = atoms.get_potential_energy(), atoms.get_forces(), atoms.get_stress()
    dt = time.perf_counter() - t
    if f.shape != (len(atoms), 3) or s.size not in (6, 9) or not (np.isfinite(f).all() and np.isfinite(e)):
        raise RuntimeError(f"bad results from {type(calc).__name__}: forces {f.shape}, stress {s.shape}")
    return dt


def main(argv=None):
    p = parser(__doc__, "data", "n", "threads", "seed", "suffix", "out", n=5)
    p.add_argument("--reps", default="8:10,64:6,512:3", help="size:repetitions per structure")
    p.add_argument("--n-relax", type=int, default=20)
    p.add_argument("--si-model", default="runs/mlearn-si/model", help="trained NEGNN Si potential for relaxations")
    p.add_argument("--relax-steps", type=int, default=300)
    args = p.parse_args(argv)
    t_start = time.perf_counter()
    warnings.filterwarnings("ignore")

    import ase.io
    import torch

    from ase_negnn.relaxation import relax

    torch.set_num_threads(args.threads)
    src = mp36k_path(args.data)
    everything = ase.io.read(src, ":")
    rng = np.random.default_rng(args.seed)
    eight = [i for i, a in enumerate(everything) if len(a) == 8 and a.pbc.all()]
    base = [everything[i] for i in rng.choice(eight, size=args.n, replace=False)]
    del everything
    si = ase.io.read(Path(args.data) / "mlearn" / "Si_test.extxyz", ":")
    to_relax = [si[i] for i in np.sort(rng.choice(len(si), size=min(args.n_relax, len(si)), replace=False))]
    reps = {int(k): int(v) for k, v in (t.split(":") for t in args.reps.split(","))}
    mult = {8: (1, 1, 1), 64: (2, 2, 2), 512: (4, 4, 4)}
    systems = {n: [b.repeat(mult[n]) for b in base] for n in reps}
    elements = sorted({s for a in base for s in a.get_chemical_symbols()})
    calcs, n_params, labels = make_calculators(elements)
    relax_calcs = make_relax_calculators(args.si_model, calcs["chgnet"])
    names = list(calcs)

    load_before = os.getloadavg()
    times = {(k, n): [] for k in names for n in reps}
    for n in reps:
        for k in names:  # warm-up
            step(calcs[k], systems[n][0].copy(), rng)
        call = 0
        for r in range(reps[n]):
            for j, a in enumerate(systems[n]):
                order = names[call % len(names):] + names[: call % len(names)]
                call += 1
                for k in order:
                    times[(k, n)].append(step(calcs[k], a.copy(), rng))
        print(f"{n} atoms: " + ", ".join(f"{k} {1e3 * np.median(times[(k, n)]):.1f} ms" for k in names), flush=True)

    relax_rows = []
    for i, a0 in enumerate(to_relax):
        a = a0.copy()
        a.calc = None
        order = names[i % len(names):] + names[: i % len(names)]
        for k in order:
            t = time.perf_counter()
            res = relax(a, relax_calcs[k], fmax=0.05, steps=args.relax_steps, optimizer="FIRE")
            dt = time.perf_counter() - t
            relax_rows.append({"structure": f"Si_test[{i}] {a0.info.get('group', '')}", "formula": a0.get_chemical_formula(),
                               "n_atoms": len(a0), "calculator": k, "wall_s": round(dt, 3), "steps": res.steps,
                               "converged": res.converged, "ms_per_step": round(1e3 * dt / max(res.steps, 1), 2)})
        print(f"relaxed {i + 1}/{len(to_relax)} ({len(a0)} atoms): " +
              ", ".join(f"{r['calculator']} {r['wall_s']:.1f}s/{r['steps']}" for r in relax_rows[-len(names):]),
              flush=True)
    load_after = os.getloadavg()

    out = Path(args.out)
    rows = []
    for n in reps:
        ours = float(np.median(times[("ours", n)]))
        for k in names:
            t = np.array(times[(k, n)])
            rows.append({"n_atoms": n, "calculator": k, "calls": len(t), "median_ms": 1e3 * float(np.median(t)),
                         "p10_ms": 1e3 * float(np.percentile(t, 10)), "p90_ms": 1e3 * float(np.percentile(t, 90)),
                         "ratio_peer_over_ours": float(np.median(t)) / ours})
    write_csv(out / f"perf_calculator{args.suffix}.csv",
              [{k: (round(v, 3) if isinstance(v, float) else v) for k, v in r.items()} for r in rows])
    write_csv(out / f"perf_relax{args.suffix}.csv", relax_rows)

    total = time.perf_counter() - t_start
    md = [*report_header("Calculator step and relaxation: NEGNN vs CHGNet and matgl M3GNet", f"{total:.0f} s", argv),
          f"- structures: {args.n} mp36k 8-atom structures (seed {args.seed}: "
          f"{', '.join(b.get_chemical_formula() for b in base)}) and their 2×2×2 and 4×4×4 supercells",
          f"- machine: {platform.machine()}, {os.cpu_count()} CPUs; torch threads {torch.get_num_threads()}, "
          f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}; load average "
          f"{', '.join(f'{v:.2f}' for v in load_before)} before and {', '.join(f'{v:.2f}' for v in load_after)} after "
          "(other jobs were running; calls were interleaved, so compare ratios)",
          f"- versions: python {platform.python_version()}, torch {torch.__version__}, "
          f"ase {ase.__version__}, chgnet {_version('chgnet')}, matgl {_version('matgl')}",
          "- one call = `atoms.get_potential_energy()`, `atoms.get_forces()`, `atoms.get_stress()` after a fresh 0.01 Å "
          "rattle (what ASE optimisers and cell filters do)",
          "",
          "| calculator | parameters |", "|---|---:|", *(f"| {labels[k]} | {n_params[k]:,} |" for k in names), "",
          "## Step time (ms per energy + forces + stress call)", "",
          "| atoms | " + " | ".join(f"{k} median ms (p10–p90)" for k in names) + " | " +
          " | ".join(f"{k} / ours" for k in names if k != "ours") + " |",
          "|---:|" + "---:|" * (2 * len(names) - 1)]
    for n in reps:
        r = {x["calculator"]: x for x in rows if x["n_atoms"] == n}
        md.append(f"| {n} | " + " | ".join(f"{r[k]['median_ms']:.1f} ({r[k]['p10_ms']:.1f}–{r[k]['p90_ms']:.1f})"
                                           for k in names) + " | " +
                  " | ".join(f"{r[k]['ratio_peer_over_ours']:.2f}" for k in names if k != "ours") + " |")
    md += ["", "A ratio above 1 means ours is faster.", "",
           f"## Relaxation of {len(to_relax)} mlearn Si_test structures (FIRE, positions only, fmax 0.05 eV/Å, "
           f"≤ {args.relax_steps} steps)", "",
           f"ours = trained NEGNN Si potential `{args.si_model}`; chgnet = pretrained CHGNet; m3gnet = untrained "
           "M3GNet (Si only; its steps are meaningless, its ms/step is not).", "",
           "| calculator | total wall s | median wall s per structure | total steps | converged | ms/step (all steps) |",
           "|---|---:|---:|---:|---:|---:|"]
    for k in names:
        rr = [x for x in relax_rows if x["calculator"] == k]
        wall, steps = sum(x["wall_s"] for x in rr), sum(x["steps"] for x in rr)
        md.append(f"| {k} | {wall:.1f} | {np.median([x['wall_s'] for x in rr]):.2f} | {steps} | "
                  f"{sum(x['converged'] for x in rr)}/{len(rr)} | {1e3 * wall / max(steps, 1):.1f} |")
    md += ["", "Per structure (wall s / steps):", "",
           "| structure | atoms | " + " | ".join(names) + " |", "|---|---:|" + "---|" * len(names)]
    for i, a0 in enumerate(to_relax):
        rr = {x["calculator"]: x for x in relax_rows[i * len(names):(i + 1) * len(names)]}
        md.append(f"| Si_test[{i}] {a0.info.get('group', '')} | {len(a0)} | " +
                  " | ".join(f"{rr[k]['wall_s']:.2f} / {rr[k]['steps']}{'' if rr[k]['converged'] else ' (not conv.)'}"
                             for k in names) + " |")
    goal = [x for x in rows if x["calculator"] == "chgnet" and x["n_atoms"] in (64, 512)]
    md += ["", "## Goal", "", "| goal | measured (CHGNet ms / ours ms) | met |", "|---|---:|---|"]
    md += [f"| step ≤ CHGNet's at {x['n_atoms']} atoms | {x['ratio_peer_over_ours']:.2f} | "
           f"{'yes' if x['ratio_peer_over_ours'] >= 1 else 'no'} |" for x in goal]
    write_markdown(out / f"perf_calculator{args.suffix}.md", md)
    print("\n".join(md))


def _version(name: str) -> str:
    from importlib.metadata import version

    return version(name)


if __name__ == "__main__":
    main()
