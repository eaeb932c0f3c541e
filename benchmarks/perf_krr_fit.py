"""Issue 19: wall time of ``fit_kernel_model`` (= ``ase-negnn train --method krr`` without reading and SSMR) on the
first ``--n`` structures of the paper's formation-energy set, with the full grid (2 kernels × 11 γ × 11 α, prior mean
0 or the label mean), at the BLAS thread count of the process. Target: 2,500 structures in under a minute.

SSMR (bundled encoder, layers 0-5, mean) comes from ``benchmarks/cache`` (computed and cached when missing). Writes
``benchmarks/results/perf_krr_fit.{csv,md}``.

Command (from the repository root, nothing else running)::

    python benchmarks/perf_krr_fit.py --data ../shared/data
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from _bench import parser, report_header, target_lines, write_results

TARGET_N, TARGET_S = 2500, 60.0


def main(argv=None):
    ap = parser(__doc__, "data", "out")
    ap.add_argument("--n", default="1000,2500", help="comma list of training-set sizes")
    ap.add_argument("--layer-weights", default="equal,loo",
                    help="comma list of equal (the default fit: the paper's equal layer weights) and loo (a weight per "
                         "SSMR layer chosen by leave-one-out, train --method krr --layer-weights loo)")
    args = ap.parse_args(argv)
    args.data = Path(args.data)
    argv = sys.argv[1:] if argv is None else argv
    import threadpoolctl
    from krr_uncertainty import load_sets

    from ase_negnn.kernel import fit_kernel_model
    from ase_negnn.pretrained import load_encoder

    encoder = load_encoder("default")
    ids, X, y = load_sets(args.data, ["formation_4k"], encoder)["formation_4k"]
    threads = threadpoolctl.threadpool_info()[0]["num_threads"]
    rows = []
    variants = [v for v in args.layer_weights.split(",") if v]
    if not variants or any(v not in ("equal", "loo") for v in variants):
        sys.exit(f"--layer-weights: a comma list of equal, loo; got {args.layer_weights!r}")
    for weights in variants:
        for n in (int(v) for v in args.n.split(",") if v):
            n = min(n, len(y))
            t = time.perf_counter()
            _, rep = fit_kernel_model(X[:n], y[:n], encoder, "formation_energy_per_atom",
                                      layer_weights=None if weights == "equal" else weights)
            rows.append({"layer_weights": weights, "n_structures": n, "seconds": round(time.perf_counter() - t, 1),
                         "blas_threads": threads, "kernel": rep["kernel"], "gamma": rep["gamma"],
                         "alpha": rep["alpha"], "approximation": rep["approximation"]})
            print(rows[-1], flush=True)
    lines = [*report_header("Kernel-model fit time (full grid)", f"{sum(r['seconds'] for r in rows):.0f} s", argv),
             f"- `fit_kernel_model` on SSMR rows of `paper/formation_4k.csv` ⋈ mp36k; grid: 2 kernels × 11 γ × 11 α × "
             f"2 prior means, exact leave-one-out, then the scale model and the 5-fold cross-fitted calibration; "
             f"{threads} BLAS threads; load average at the end {os.getloadavg()[0]:.1f}", "",
             "| layer weights | structures | seconds | chosen | exact / Nyström |",
             "|---|---:|---:|---|---|"]
    lines += [f"| {r['layer_weights']} | {r['n_structures']} | {r['seconds']} | {r['kernel']}, γ {r['gamma']:.0e}, "
              f"α {r['alpha']:.0e} | {r['approximation']} |" for r in rows]
    for weights in variants:
        big = [r for r in rows if r["layer_weights"] == weights and r["n_structures"] >= TARGET_N]
        if big:
            lines += target_lines(19, f"{TARGET_N} structures in under {TARGET_S:.0f} s ({weights} layer weights)",
                                  big[0]["seconds"] < TARGET_S, f"{big[0]['seconds']} s")
    write_results(args.out, "perf_krr_fit", rows, lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())
