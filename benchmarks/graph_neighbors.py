"""Neighbour-list timing for the crystal-graph backend (what ``ase_negnn.graph`` chose and why).

Measures, on the first N structures of ``mp/mp36k.extxyz`` (default N = 300) at an 8 Å cutoff, the wall time per
structure of

* ``ase.neighborlist.neighbor_list('ijSd', atoms, 8.0)``            (pure-Python/numpy; slow, so by default only
  on the first ``--ase-limit`` = 50 structures),
* ``vesin.ase_neighbor_list('ijSd', atoms, 8.0)``,
* pymatgen's ``pymatgen.optimization.neighbors.find_points_in_spheres``, called exactly as
  ``ase_negnn.graph.CrystalGraphConverter.neighbors`` calls it (search cell from ``ase_negnn.graph._search_cell``,
  tolerance 1e-8; the timed region includes that cell preparation and dropping the zero-shift self pair),
* the full ``ase_negnn.graph.CrystalGraphConverter()(atoms)`` call (validation, pymatgen search, sorting, 12-NN
  selection with ties, building the PyG ``Data``).

It checks that the three raw neighbour lists (ase, vesin, pymatgen without self pairs) give the same pair count per
structure, and the largest difference between their sorted distance lists, and reports ms/structure (best of
``--repeats`` passes over all structures; ase: one pass) and the ratio to the fastest. Each time is also given on
the ase subset, so every method can be compared on the same structures. Reading the structures is not timed; one
warm-up call per method precedes the timing.

Writes ``benchmarks/results/graph_neighbors.csv`` and ``benchmarks/results/graph_neighbors.md``.

Command (from the repository root; ~1-2 min on a busy 2-core CPU)::

    OMP_NUM_THREADS=1 python benchmarks/graph_neighbors.py --data ../shared/data

Options: ``--n 300``, ``--cutoff 8.0``, ``--ase-limit 50`` (0 = all N), ``--repeats 5``, ``--out benchmarks/results``.
"""

from __future__ import annotations

import itertools
import os
import platform
import sys
import time
from pathlib import Path

import ase
import ase.io
import numpy as np
from _bench import mp36k_path, parser, report_header, write_csv, write_markdown
from ase.neighborlist import neighbor_list as ase_neighbor_list


def _pymatgen_pairs(atoms, cutoff):
    """Raw pymatgen neighbour list as ase_negnn.graph calls it, without the zero-shift self pair."""
    from pymatgen.optimization.neighbors import find_points_in_spheres

    from ase_negnn.graph import _search_cell

    search_cell, pbc = _search_cell(atoms)
    pos = np.ascontiguousarray(atoms.positions, dtype=float)
    centers, nbrs, shifts, dists = find_points_in_spheres(pos, pos, cutoff, pbc.astype(np.int64), search_cell, 1e-8)
    shifts = np.asarray(shifts).reshape(-1, 3)
    keep = ~((centers == nbrs) & ~shifts.any(axis=1))
    return centers[keep], nbrs[keep], shifts[keep], np.asarray(dists)[keep]


def make_methods(cutoff):
    import vesin

    from ase_negnn.graph import CrystalGraphConverter

    converter = CrystalGraphConverter(cutoff=cutoff, max_neighbors=12)
    return {
        "ase.neighborlist": lambda a: ase_neighbor_list("ijSd", a, cutoff),
        "vesin": lambda a: vesin.ase_neighbor_list("ijSd", a, cutoff),
        "pymatgen find_points_in_spheres": lambda a: _pymatgen_pairs(a, cutoff),
        "CrystalGraphConverter (full, 12-NN)": converter,
    }


def time_method(fn, structures, repeats):
    """Per-structure times (s) of the pass with the smallest total, and the last pass's outputs."""
    fn(structures[0])  # warm-up (imports, first-call overhead)
    best, outputs = None, None
    for _ in range(repeats):
        times, outs = np.empty(len(structures)), []
        for k, atoms in enumerate(structures):
            t0 = time.perf_counter()
            out = fn(atoms)
            times[k] = time.perf_counter() - t0
            outs.append(out)
        if best is None or times.sum() < best.sum():
            best = times
        outputs = outs
    return best, outputs


def main(argv=None):
    p = parser(__doc__, "data", "n", "out", n=300)
    p.add_argument("--cutoff", type=float, default=8.0, help="cutoff radius in Å")
    p.add_argument("--ase-limit", type=int, default=50, help="time ase.neighborlist on the first N only (0 = all)")
    p.add_argument("--repeats", type=int, default=5, help="passes per fast method (best total kept)")
    args = p.parse_args(argv)

    path = mp36k_path(args.data)
    t_start = time.perf_counter()
    structures = list(itertools.islice(ase.io.iread(path, ":"), args.n))
    n = len(structures)
    n_ase = n if args.ase_limit <= 0 else min(args.ase_limit, n)
    n_atoms = np.array([len(a) for a in structures])
    print(f"read {n} structures from {path} ({n_atoms.mean():.1f} atoms on average, {n_atoms.max()} at most); "
          f"ase.neighborlist on the first {n_ase}", flush=True)

    methods = make_methods(args.cutoff)
    times, outputs = {}, {}
    for name, fn in methods.items():
        subset = structures[:n_ase] if name == "ase.neighborlist" else structures
        reps = 1 if name == "ase.neighborlist" else max(1, args.repeats)
        t0 = time.perf_counter()
        times[name], outputs[name] = time_method(fn, subset, reps)
        print(f"  {name:<38s} {1e3 * times[name].mean():9.3f} ms/structure over {len(subset)} "
              f"(best of {reps}; {time.perf_counter() - t0:.1f} s)", flush=True)

    # Agreement of the three raw neighbour lists: pair count and sorted distances per structure.
    counts = {
        "ase.neighborlist": [len(o[0]) for o in outputs["ase.neighborlist"]],
        "vesin": [len(o[0]) for o in outputs["vesin"]],
        "pymatgen find_points_in_spheres": [len(o[0]) for o in outputs["pymatgen find_points_in_spheres"]],
    }
    dists = {
        "ase.neighborlist": [np.sort(o[3]) for o in outputs["ase.neighborlist"]],
        "vesin": [np.sort(o[3]) for o in outputs["vesin"]],
        "pymatgen find_points_in_spheres": [np.sort(o[3]) for o in outputs["pymatgen find_points_in_spheres"]],
    }

    def agree(a, b, m):
        same = [counts[a][k] == counts[b][k] for k in range(m)]
        dmax = max((float(np.abs(dists[a][k] - dists[b][k]).max(initial=0.0)) for k in range(m) if same[k]),
                   default=float("nan"))
        bad = [k for k in range(m) if not same[k]]
        return sum(same), m, dmax, bad

    checks = [
        ("vesin", "pymatgen find_points_in_spheres", n),
        ("ase.neighborlist", "pymatgen find_points_in_spheres", n_ase),
        ("ase.neighborlist", "vesin", n_ase),
    ]
    agreement = []
    for a, b, m in checks:
        ok, m, dmax, bad = agree(a, b, m)
        agreement.append({"pair": f"{a} vs {b}", "structures": m, "same_pair_count": ok, "max_abs_distance_diff_A": dmax,
                          "mismatches": bad[:10]})
        print(f"  pair counts {a} vs {b}: {ok}/{m} structures agree; max |Δd| {dmax:.2e} Å"
              + (f"; mismatching structures {bad[:10]}" if bad else ""), flush=True)
    n_pairs = np.array(counts["pymatgen find_points_in_spheres"])
    n_edges = np.array([g.edge_index.shape[1] for g in outputs["CrystalGraphConverter (full, 12-NN)"]])

    # Summary table.
    ms_all = {k: 1e3 * v.mean() for k, v in times.items()}
    ms_sub = {k: 1e3 * v[:n_ase].mean() for k, v in times.items()}
    fastest_all = min(v for k, v in ms_all.items() if k != "ase.neighborlist") if n_ase < n else min(ms_all.values())
    fastest_sub = min(ms_sub.values())
    rows = []
    for name in methods:
        on = n_ase if name == "ase.neighborlist" else n
        all_ms = ms_all[name] if on == n else float("nan")
        rows.append({
            "method": name,
            "structures_timed": on,
            "repeats": 1 if name == "ase.neighborlist" else max(1, args.repeats),
            "ms_per_structure_all": all_ms,
            "ratio_to_fastest_all": all_ms / fastest_all if on == n else float("nan"),
            f"ms_per_structure_first{n_ase}": ms_sub[name],
            f"ratio_to_fastest_first{n_ase}": ms_sub[name] / fastest_sub,
        })
    wall = time.perf_counter() - t_start

    out = Path(args.out)
    write_csv(out / "graph_neighbors.csv", rows)
    import pymatgen.core
    import vesin

    env = (f"{platform.machine()} {platform.processor() or ''}".strip() + f", {os.cpu_count()} CPUs, "
           f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}, load average "
           f"{', '.join(f'{x:.2f}' for x in os.getloadavg())} at the end")
    lines = [
        *report_header("Neighbour-list timing (8 Å crystal graphs)", f"{wall:.1f} s", argv),
        f"- data: first {n} structures of `{path}` ({n_atoms.mean():.1f} atoms on average, {n_atoms.max()} max); "
        f"cutoff {args.cutoff} Å; {n_pairs.mean():.0f} pairs per structure on average within the cutoff, "
        f"{n_edges.mean():.0f} edges after the 12-NN selection",
        f"- machine: {env}",
        f"- versions: python {platform.python_version()}, ase {ase.__version__}, vesin {vesin.__version__}, "
        f"pymatgen {pymatgen.core.__version__}, numpy {np.__version__}",
        f"- timing: wall time per structure with `time.perf_counter`, best total of {max(1, args.repeats)} passes "
        f"(ase.neighborlist: one pass, first {n_ase} structures only); one warm-up call per method; reading not timed",
        "",
        f"| method | structures timed | ms/structure (all {n}) | × fastest (all {n}) | "
        f"ms/structure (first {n_ase}) | × fastest (first {n_ase}) |",
        "|---|---:|---:|---:|---:|---:|",
    ]

    def f(x, fmt):
        return "—" if not np.isfinite(x) else format(x, fmt)

    for r in rows:
        lines.append(f"| {r['method']} | {r['structures_timed']} | {f(r['ms_per_structure_all'], '.3f')} | "
                     f"{f(r['ratio_to_fastest_all'], '.1f')} | {f(r[f'ms_per_structure_first{n_ase}'], '.3f')} | "
                     f"{f(r[f'ratio_to_fastest_first{n_ase}'], '.1f')} |")
    lines += [
        "",
        "Pymatgen and CrystalGraphConverter include preparing the search cell; the converter also validates, sorts, "
        "keeps the 12 nearest neighbours (plus ties) and builds the PyG `Data`.",
        "",
        "## Agreement of the raw neighbour lists (self pair with zero shift excluded everywhere)",
        "",
        "| lists compared | structures | same pair count | max abs. difference of sorted distances (Å) |",
        "|---|---:|---:|---:|",
    ]
    for a in agreement:
        lines.append(f"| {a['pair']} | {a['structures']} | {a['same_pair_count']}/{a['structures']} | "
                     f"{a['max_abs_distance_diff_A']:.2e} |")
    if any(a["mismatches"] for a in agreement):
        lines += ["", "Mismatching structures (indices into the first N): "
                  + "; ".join(f"{a['pair']}: {a['mismatches']}" for a in agreement if a["mismatches"])]
    write_markdown(out / "graph_neighbors.md", lines)
    print("\n".join(lines[lines.index("") + 1:]))
    print(f"wrote {out / 'graph_neighbors.csv'} and {out / 'graph_neighbors.md'}; total wall time {wall:.1f} s")
    return 0 if all(a["same_pair_count"] == a["structures"] for a in agreement) else 1


if __name__ == "__main__":
    sys.exit(main())
