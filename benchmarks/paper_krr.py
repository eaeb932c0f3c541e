"""Paper claim 1–2: SSMR + kernel ridge vs hand-made descriptors, and our encoder vs the authors' checkpoints.

For each of the paper's four property sets (``paper/formation_4k``, ``hse``, ``bulk_modulus``, ``shear_modulus``;
joined with ``mp/mp36k.extxyz`` by mp-id, the join counts are reported) and the same 80/20 split
(``train_test_split(test_size=0.2, random_state=0)`` over the joined rows in CSV order):

* SSMR of our bundled encoder (``--encoder``, default ``default``), layers 0–5 concatenated (6 × 64 features), pooled
  by sum, mean and mean+max+min (``--pooling``; the headline row is the pooling with the lowest CV MAE);
* the same SSMR from the authors' checkpoints ``paper/cgcnn_60k_pred.pth`` and ``cgcnn_60k_contra.pth``, converted by
  ``ase_negnn.convert.load_authors_checkpoint`` (same architecture, their weights);
* hand-made baselines: matminer ``OrbitalFieldMatrix(period_tag=False)`` (1,024 features, site average; it builds a
  3×3×3 supercell and runs symmetry analysis and Voronoi on it, ~1 s of CPU per structure, so with
  ``--ofm-cached-only`` OFM is computed only for the first ``--ofm-subset`` joined structures of each property and
  otherwise taken from the cache — properties not fully covered get no OFM row — and all descriptors are compared
  once more on those first ``--ofm-subset`` structures of each property, 80/20 within them), dscribe
  ``SineMatrix(permutation="eigenspectrum")`` (n_atoms_max = 200, the largest mp36k cell) and dscribe ``SOAP``
  averaged over atoms (r_cut 5 Å, n_max 3, l_max 3, "crossover" compression, species = all elements of the joined
  structures), dscribe run through ``benchmarks/_dscribe_compat.py`` (ASE ≥ 3.27);
* the mean predictor (mean of the training labels).

Every descriptor gets the same regressor: ``Pipeline([StandardScaler(), KernelRidge()])`` with kernel ∈ {rbf,
laplacian}, alpha and gamma ∈ logspace(-10, 0, 11) chosen by cross-validated MAE on the training split (the paper's
grid), refitted and scored on the test split. ``--cv loo`` (default) selects by exact leave-one-out CV, ``--cv 10`` by
the paper's 10-fold CV (≈ 10× slower; see ``benchmarks/_paper.py``). The best single layer and best cumulative layer
combination of our encoder come from ``paper_multiscale.py`` (chosen there by CV MAE, never by test MAE) and are added
to the table when its CSV covers the same structures (run it first for the full table); the target check then also
reports the best of all our SSMR rows by CV MAE.

Target (issue 8): SSMR + KRR ≥ 50 % lower test MAE than the best of OFM / sine / SOAP + KRR on each property, i.e. a
ratio ours / best baseline ≤ 0.5.

Writes ``benchmarks/results/paper_krr.csv``, ``paper_krr.md`` and ``paper_krr.png``. Descriptor matrices are cached
in ``benchmarks/cache/`` (per mp-id; OFM, ~0.5 s per structure, dominates a cold run).

Command (from the repository root)::

    python benchmarks/paper_krr.py --data ../shared/data

The paper's own 10-fold CV as a cross-check of the LOO selection on the issue's reference property (sum pooling
only, ~18 min per descriptor on one core; writes the same three files under ``results/paper_krr_cv10/``)::

    python benchmarks/paper_krr.py --cv 10 --properties formation_4k --descriptors ssmr,authors,sine \
        --pooling sum --ofm-subset 0 --out benchmarks/results/paper_krr_cv10
"""

from __future__ import annotations

import csv
import platform
import sys
import time
from pathlib import Path

import _paper as P
import numpy as np
from _bench import parser, report_header, save_figure, write_markdown

BASELINES = ("ofm", "sine", "soap")
BASELINE_LABEL = {"ofm": "OFM (matminer)", "sine": "sine matrix eigenspectrum (dscribe)",
                  "soap": "SOAP average (dscribe)"}
#: Learned peer descriptors: compared with ours, not counted among the hand-made baselines of the ratio.
PEERS = ("chgnet", "chgnet-atom")
PEER_LABEL = {"chgnet": "CHGNet 0.3.0 crystal features (last layer, LayerNorm), mean over atoms (trained on MP "
                        "energies: formation energy leaks)",
              "chgnet-atom": "CHGNet 0.3.0 atom features (penultimate layer, its magmom head's input), mean over "
                             "atoms (trained on MP energies: formation energy leaks)"}


def main(argv=None):
    ap = parser(__doc__, "data", "encoder", "out")
    ap.add_argument("--cv", default="loo", help="'loo' (exact leave-one-out) or a number of folds (paper: 10)")
    ap.add_argument("--properties", default=",".join(P.PROPERTIES))
    ap.add_argument("--descriptors", default="ssmr,authors,chgnet,chgnet-atom,ofm,sine,soap",
                    help="subset of ssmr (ours), authors, chgnet / chgnet-atom (CHGNet's crystal / atom features), "
                         "ofm, sine, soap")
    ap.add_argument("--ofm-cached-only", action="store_true",
                    help="compute OFM only for the --ofm-subset structures of each property, use cached rows "
                         "elsewhere (OFM takes ~0.5-1 s per structure); a property whose structures are not all "
                         "cached gets no OFM row")
    ap.add_argument("--cached-fits-only", action="store_true",
                    help="report only the full-set fits already cached by earlier (possibly parallel) runs; the "
                         "others are listed as not run (the cheap --ofm-subset fits are always computed)")
    ap.add_argument("--ofm-subset", type=int, default=1000,
                    help="also compare every descriptor on the first N joined structures of each property, where "
                         "OFM is affordable (0 = off)")
    ap.add_argument("--pooling", default="sum,mean,mean+max+min",
                    help="comma list of SSMR poolings for ours and the authors' encoders, each a statistic or several "
                         "joined by '+' (ase_negnn.descriptor.POOLINGS; a cheaper --cv 10 run: 'sum')")
    ap.add_argument("--layer-weights", default="ours,authors-pred,authors-contra",
                    help="SSMR encoders (ours, authors-pred, authors-contra; '' = none), or ENCODER:POOLING for one "
                         "pooling only, also fitted with a weight per layer chosen by leave-one-out (the library's "
                         "train --method krr --layer-weights loo; --cv loo only)")
    args = ap.parse_args(argv)
    args.data = Path(args.data)
    poolings = [q for q in args.pooling.split(",") if q]
    from ase_negnn.descriptor import parse_pooling

    try:
        for q in poolings or [""]:
            parse_pooling(q)
    except ValueError as ex:
        sys.exit(f"--pooling: {ex}")
    args.poolings = poolings
    cv = args.cv if args.cv == "loo" else int(args.cv)
    props = [p for p in args.properties.split(",") if p]
    for p in props:
        if p not in P.PROPERTIES:
            sys.exit(f"unknown property {p!r}; choose from {', '.join(P.PROPERTIES)}")
    wanted_desc = set(args.descriptors.split(","))
    t_start = time.perf_counter()

    every = {p: P.read_label_csv(args.data / "paper" / f"{p}.csv") for p in P.PROPERTIES}
    labels = {p: every[p] for p in props}
    print("reading mp36k …", flush=True)
    S = P.read_mp36k(args.data, set().union(*every.values()))
    joined = {p: P.join(labels[p], S) for p in props}
    all_ids = list(dict.fromkeys(i for p in props for i in joined[p][0]))
    # SOAP species and sine-matrix size from all four property sets, whatever --properties says, so that runs on
    # different properties produce the same descriptor columns (and share the fit cache).
    every_ids = {i for p in P.PROPERTIES for i in P.join(every[p], S)[0]}
    species = sorted({s for i in every_ids for s in S[i].get_chemical_symbols()})
    n_atoms_max = max(len(S[i]) for i in every_ids)
    print(f"{len(all_ids)} structures in the union, {len(species)} elements, ≤ {n_atoms_max} atoms", flush=True)

    # ---- descriptor matrices over the union of ids
    feats: dict[str, tuple[np.ndarray, str]] = {}
    weighted: dict[str, tuple[int, int]] = {}  # SSMR rows also fitted with layer weights: (layers, width)
    timing = {}
    encoders = P.load_encoders(args.data, args.encoder) if wanted_desc & {"ssmr", "authors"} else {}
    for name, enc in encoders.items():
        if (name == "ours" and "ssmr" not in wanted_desc) or (name != "ours" and "authors" not in wanted_desc):
            continue
        for pooling in poolings:
            t0 = time.perf_counter()
            X = P.ssmr_all_layers(enc, name, pooling, S, all_ids)
            timing[f"{name}-{pooling}"] = time.perf_counter() - t0
            feats[f"{name} SSMR {pooling}"] = (X, f"{name} encoder, layers 0-5 concatenated, {pooling} pooling")
            lw = args.layer_weights.split(",")
            if (name in lw or f"{name}:{pooling}" in lw) and cv == "loo":
                weighted[f"{name} SSMR {pooling}"] = (enc.n_layers + 1, enc.width)
    subset_ids = list(dict.fromkeys(i for p in props for i in joined[p][0][: args.ofm_subset]))
    if "ofm" in wanted_desc and args.ofm_cached_only and subset_ids:  # computed (and cached) for the subsets only
        P.baseline_features("ofm", S, subset_ids, species, n_atoms_max)
    for b in PEERS:
        if b in wanted_desc:
            X, spent, n = P.baseline_features(b, S, all_ids, species, n_atoms_max)
            timing[b] = spent / n if n else float("nan")
            feats[b] = (X, PEER_LABEL[b])
    for b in BASELINES:
        if b in wanted_desc:
            X, spent, n = P.baseline_features(b, S, all_ids, species, n_atoms_max,
                                              cached_only=b == "ofm" and args.ofm_cached_only)
            timing[b] = spent / n if n else float("nan")
            feats[b] = (X, BASELINE_LABEL[b])
    row_of = {i: k for k, i in enumerate(all_ids)}
    for p in list(props) if args.ofm_subset and "ofm" in feats else []:
        ids, y = joined[p]
        sub = ids[: args.ofm_subset]
        if len(sub) == len(ids):
            continue  # the whole set is the subset
        if not np.isnan(feats["ofm"][0][[row_of[i] for i in sub]]).any():
            key = f"{p}:first{len(sub)}"
            label, unit = P.PROPERTIES[p]
            P.PROPERTIES[key] = (f"{label}, first {len(sub)} (OFM subset)", unit)
            joined[key], labels[key] = (sub, y[: len(sub)]), labels[p]
            props.append(key)
        else:
            print(f"OFM subset: the first {args.ofm_subset} {p} structures are not all featurised yet", flush=True)

    # ---- regressions
    rows, missing_notes = [], []
    for p in props:
        ids, y = joined[p]
        idx = np.array([row_of[i] for i in ids])
        train, test = P.split_80_20(len(ids))
        label, unit = P.PROPERTIES[p]
        mean_mae = float(np.mean(np.abs(y[test] - y[train].mean())))
        print(f"\n{p}: {len(ids)} of {len(labels[p])} joined; {len(train)} train, {len(test)} test; "
              f"mean predictor {mean_mae:.4f} {unit}", flush=True)
        rows.append({"property": p, "descriptor": "mean predictor", "n_joined": len(ids), "n_labels": len(labels[p]),
                     "n_train": len(train), "n_test": len(test), "test_mae": mean_mae, "unit": unit})
        for name, (X, desc) in feats.items():
            if np.isnan(X[idx]).any():
                n_miss = int(np.isnan(X[idx]).any(axis=1).sum())
                print(f"  {name:24s} skipped: {n_miss} of {len(ids)} structures not featurised", flush=True)
                why = (f"OFM computed for the first {args.ofm_subset} of each property only (--ofm-cached-only)"
                       if name == "ofm" and args.ofm_cached_only else "not featurised in time")
                missing_notes.append(f"{name} on {p}: {n_miss} of {len(ids)} structures without features: {why}")
                continue
            r = P.krr_evaluate(X[idx], y, train, test, cv=cv, cached_only=args.cached_fits_only and ":first" not in p)
            if r is None:
                print(f"  {name:24s} not cached (not run)", flush=True)
                missing_notes.append(f"{name} on {p}: fit not run in time")
                continue
            r.pop("pred")
            r.pop("cached")
            print(f"  {name:24s} test MAE {r['test_mae']:.4f}  CV {r['cv_mae']:.4f}  {r['kernel']}, "
                  f"α {r['alpha']:.0e}, γ {r['gamma']:.0e}  ({r['fit_seconds']:.0f} s)", flush=True)
            rows.append({"property": p, "descriptor": name, "description": desc, "n_joined": len(ids),
                         "n_labels": len(labels[p]), "n_train": len(train), "n_test": len(test), "unit": unit, **r})
            if name in weighted and not (args.cached_fits_only and ":first" not in p):
                r = P.krr_evaluate_layer_weighted(X[idx], y, train, test, *weighted[name], equal=r)
                lw_, nl = r.pop("layer_weights"), weighted[name][0]
                stats = name.split(" SSMR ")[1].split("+")
                w = "; ".join(f"{st} " + " ".join(f"{v:g}" for v in lw_[k * nl:(k + 1) * nl])
                              for k, st in enumerate(stats))
                r.pop("pred")
                r.pop("cached")
                print(f"  {name + ', layer weights by LOO':24s} test MAE {r['test_mae']:.4f}  CV {r['cv_mae']:.4f} "
                      f"(equal weights {r['cv_mae_equal_weights']:.4f}); weights {w}  ({r['fit_seconds']:.0f} s)",
                      flush=True)
                rows.append({"property": p, "descriptor": f"{name}, layer weights by LOO",
                             "description": f"{desc}; weights of layers 0-{nl - 1} per statistic: {w} (leave-one-out "
                                            "on the training split)",
                             "n_joined": len(ids), "n_labels": len(labels[p]), "n_train": len(train),
                             "n_test": len(test), "unit": unit, **r})
    digest = P.encoder_digest(encoders["ours"]) if "ours" in encoders else None
    ours = encoders.get("ours")
    args.encoder_graph = ("n/a" if ours is None else f"continuous graph, δ = {ours.smooth_width} Å" if ours.smooth
                          else "the paper's hard 12-nearest graph")
    write_outputs(rows, props, args, cv, time.perf_counter() - t_start, timing, len(all_ids), argv, missing_notes,
                  digest)
    return 0


def multiscale_rows(out: Path, props, digest: str | None, notes: list):
    """Best single layer / best cumulative combination of our encoder, chosen by CV in paper_multiscale.py; only rows
    computed with the same encoder (same weights digest) as this run's SSMR."""
    path = out / "paper_multiscale.csv"
    if not path.exists():
        return {}
    best: dict = {}
    other = 0
    with open(path, newline="") as fh:
        for r in csv.DictReader(fh):
            if r["property"] not in props or r["encoder"] != "ours":
                continue
            if digest is None or r.get("encoder_digest") != digest:
                other += 1
                continue
            kind = "best single layer" if r["kind"] == "single" else "best layer combination"
            key = (r["property"], kind)
            if key not in best or float(r["cv_mae"]) < float(best[key]["cv_mae"]):
                best[key] = r
    if other:
        notes.append(f"best single layer / layer combination: paper_multiscale.csv holds {other} rows of another "
                     "encoder (rerun paper_multiscale.py with this one)")
    return best


def verdict(ratio: float) -> str:
    """The ≥ 50 %-below-the-best-hand-made-descriptor target for one ratio (NaN: no hand-made row in this run)."""
    if not np.isfinite(ratio):
        return "not checked (no hand-made descriptor in this run)"
    return "met" if ratio <= 0.5 else "missed"


def write_outputs(rows, props, args, cv, wall, timing, n_union, argv, missing_notes, digest=None):
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    ms = multiscale_rows(out, props, digest, missing_notes)
    for (p, kind), r in ms.items():
        ref = next(x for x in rows if x["property"] == p)
        if int(r["n_structures"]) != ref["n_joined"]:  # a --limit run: other structures, not comparable here
            missing_notes.append(f"{kind} on {p}: paper_multiscale.csv used {r['n_structures']} structures, not "
                                 f"{ref['n_joined']}; see paper_multiscale.md")
            continue
        rows.append({"property": p, "descriptor": f"ours SSMR {kind} ({r['layers']}, {r['pooling']})",
                     "description": f"from paper_multiscale.csv (selected by CV MAE; cv {r['cv']})",
                     "n_joined": ref["n_joined"], "n_labels": ref["n_labels"], "n_train": ref["n_train"],
                     "n_test": ref["n_test"], "unit": ref["unit"], "test_mae": float(r["test_mae"]),
                     "cv_mae": float(r["cv_mae"]), "kernel": r["kernel"], "alpha": float(r["alpha"]),
                     "gamma": float(r["gamma"]), "n_features": int(r["n_features"]),
                     "fit_seconds": float(r.get("fit_seconds") or "nan")})
    for p in props:
        prow = [r for r in rows if r["property"] == p]
        base = [r["test_mae"] for r in prow if r["descriptor"] in BASELINES]
        best_base = min(base) if base else float("nan")
        for r in prow:
            r["ratio_to_best_baseline"] = r["test_mae"] / best_base if base else float("nan")
    keys = ["property", "descriptor", "test_mae", "ratio_to_best_baseline", "cv_mae", "kernel", "alpha", "gamma",
            "n_features", "n_labels", "n_joined", "n_train", "n_test", "unit", "fit_seconds", "description"]

    P.write_rows(out / "paper_krr.csv", [{k: r.get(k, "") for k in keys} for r in rows], keys)

    lines = report_header("Paper reproduction: SSMR + kernel ridge vs hand-made descriptors", f"{wall / 60:.1f} min",
                          argv)
    cv_text = ("exact leave-one-out CV on the training split (scaler fitted once on it)" if cv == "loo"
               else f"{cv}-fold CV (KFold shuffle, random_state 0; scaler per fold)")
    lines += [
        f"- regressor: `Pipeline([StandardScaler(), KernelRidge()])`, kernel ∈ {{rbf, laplacian}}, α, γ ∈ "
        f"logspace(-10, 0, 11), chosen by {cv_text} on MAE; refitted on the training split; test MAE on the 20 % "
        "split (`train_test_split(test_size=0.2, random_state=0)`)",
        f"- our encoder: `{args.encoder}` (weights digest {digest or 'n/a'}; {args.encoder_graph}); authors' checkpoints "
        "converted from `paper/cgcnn_60k_pred.pth` / `cgcnn_60k_contra.pth` (on the paper's hard graph, which they were "
        "trained on); SSMR = layers 0-5 concatenated (384 features) then pooled over atoms",
        f"- {n_union} distinct structures featurised; descriptor time (s, this run's computation only; cached rows "
        "cost 0): " + ", ".join(f"{k} {v:.3g}" + (" s/structure" if k in BASELINES + PEERS else " s")
                                for k, v in timing.items() if np.isfinite(v)),
        f"- machine: {platform.machine()}, 2 CPUs; target: ours / best baseline ≤ 0.5",
        "- chgnet, chgnet-atom: CHGNet 0.3.0's pretrained features mean-pooled over atoms (`crystal_fea`: last layer "
        "after its readout LayerNorm; `atom_fea`: the penultimate layer), learned peers, not hand-made baselines; "
        "CHGNet was trained on MP relaxation energies, so on formation energy their rows have seen the labels' DFT "
        "energies (leak); the fair comparison is the HSE gap, K and G, against the better of the two",
        *[f"- not run: {m}" for m in missing_notes],
        "",
    ]
    names = list(dict.fromkeys(r["descriptor"] for r in rows))
    present = [BASELINE_LABEL[b].split(" (")[0] for b in BASELINES if any(r["descriptor"] == b for r in rows)]
    absent = [b for b in BASELINES if not any(r["descriptor"] == b for r in rows)]
    lines += [f"Test MAE (ratio to the best of {' / '.join(present) or 'no hand-made descriptor'} in brackets"
              + (f"; not in this run: {', '.join(absent)}" if absent else "") + "):", "",
              "| descriptor | " + " | ".join(f"{P.PROPERTIES[p][0]} ({P.PROPERTIES[p][1]})" for p in props) + " |",
              "|---|" + "---:|" * len(props)]
    for n in names:
        cells = []
        for p in props:
            r = next((x for x in rows if x["property"] == p and x["descriptor"] == n), None)
            cells.append("—" if r is None else f"{r['test_mae']:.4f} ({r['ratio_to_best_baseline']:.2f})")
        lines.append(f"| {n} | " + " | ".join(cells) + " |")
    lines += ["", "| property | labels | joined with mp36k | train | test |", "|---|---:|---:|---:|---:|"]
    for p in props:
        r = next(x for x in rows if x["property"] == p)
        lines.append(f"| {p} | {r['n_labels']} | {r['n_joined']} | {r['n_train']} | {r['n_test']} |")
    lines += ["", "Target check (best SSMR row of our encoder vs best baseline):", ""]
    for p in props:
        ours = [r for r in rows if r["property"] == p and r["descriptor"].startswith("ours SSMR")]
        authors = [r for r in rows if r["property"] == p and r["descriptor"].startswith("authors")]
        if not ours:
            continue
        # The headline 'ours' row: layers 0-5, the pooling with the lowest CV MAE (never chosen by test MAE).
        pick = min((r for r in ours if "cv_mae" in r and r["descriptor"] in [f"ours SSMR {q}" for q in args.poolings]),
                   key=lambda r: r["cv_mae"], default=ours[0])
        text = (f"- {p}: {pick['descriptor']} (chosen by CV) test MAE {pick['test_mae']:.4f}, ratio "
                f"{pick['ratio_to_best_baseline']:.2f} → target {verdict(pick['ratio_to_best_baseline'])}")
        peers = [r for r in rows if r["property"] == p and r["descriptor"] in PEERS and "cv_mae" in r]
        peer = min(peers, key=lambda r: r["cv_mae"], default=None)  # the better CHGNet row, chosen by CV MAE
        if peer is not None:
            leak = " (leaks: trained on MP energies)" if p.startswith("formation") else ""
            text += (f"; CHGNet ({peer['descriptor']}, better by CV){leak} {peer['test_mae']:.4f} → ours "
                     f"{'≤' if pick['test_mae'] <= peer['test_mae'] else '>'} CHGNet "
                     f"({pick['test_mae'] / peer['test_mae']:.2f}×)")
        if authors:
            a = min(authors, key=lambda r: r["cv_mae"])
            text += (f"; authors' best by CV ({a['descriptor']}) {a['test_mae']:.4f} → ours "
                     f"{'better' if pick['test_mae'] < a['test_mae'] else 'worse'} ({pick['test_mae'] / a['test_mae']:.2f}×)")
        # The multi-scale rows (best single layer / combination, full set only) are further SSMR variants of the same
        # encoder; choosing among all of them by the same CV MAE is still model selection without the test set.
        any_scale = min((r for r in ours if "cv_mae" in r), key=lambda r: r["cv_mae"], default=pick)
        if any_scale is not pick:
            text += (f"; over every SSMR row of ours (layers, pooling and layer weights chosen by CV): "
                     f"{any_scale['descriptor']} test MAE {any_scale['test_mae']:.4f}, ratio "
                     f"{any_scale['ratio_to_best_baseline']:.2f} → target {verdict(any_scale['ratio_to_best_baseline'])}")
            if peer is not None:
                text += (f", {'≤' if any_scale['test_mae'] <= peer['test_mae'] else '>'} CHGNet "
                         f"({any_scale['test_mae'] / peer['test_mae']:.2f}×)")
            if authors:
                text += (f", {'better' if any_scale['test_mae'] < a['test_mae'] else 'worse'} than the authors' "
                         f"({any_scale['test_mae'] / a['test_mae']:.2f}×)")
        lines.append(text)
    lines += ["", "All fits:", "", "| property | descriptor | features | test MAE | CV MAE | kernel | α | γ | fit s |",
              "|---|---|---:|---:|---:|---|---:|---:|---:|"]
    for r in rows:
        if "kernel" in r:
            lines.append(f"| {r['property']} | {r['descriptor']} | {r['n_features']} | {r['test_mae']:.4f} | "
                         f"{r['cv_mae']:.4f} | {r['kernel']} | {r['alpha']:.0e} | {r['gamma']:.0e} | "
                         f"{r.get('fit_seconds', float('nan')):.0f} |")
    write_markdown(out / "paper_krr.md", lines)
    plot(rows, props, names, out / "paper_krr.png")
    print("\n".join(lines))


def plot(rows, props, names, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ncol = min(4, len(props))
    nrow = -(-len(props) // ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(4.2 * ncol, 4.6 * nrow), squeeze=False)
    for ax in axes.flat[len(props):]:
        ax.set_visible(False)
    for k, (ax, p) in enumerate(zip(axes.flat, props)):
        rs = [next((x for x in rows if x["property"] == p and x["descriptor"] == n), None) for n in names]
        vals = [r["test_mae"] if r else np.nan for r in rs]
        colors = ["tab:gray" if n == "mean predictor" else "tab:orange" if n in BASELINES
                  else "tab:red" if n in PEERS else "tab:green" if n.startswith("authors") else "tab:blue"
                  for n in names]
        ax.barh(range(len(names)), vals, color=colors)
        ax.set_yticks(range(len(names)), names if k % ncol == 0 else [""] * len(names), fontsize=7)
        ax.invert_yaxis()
        ax.set_title(f"{P.PROPERTIES[p][0]}", fontsize=9)
        ax.set_xlabel(f"test MAE ({P.PROPERTIES[p][1]})", fontsize=8)
    fig.suptitle("SSMR + KRR (blue: ours, green: authors' checkpoints) vs hand-made descriptors (orange) and CHGNet "
                 "features (red)", fontsize=9)
    fig.tight_layout()
    save_figure(fig, path, dpi=130)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
