"""Phonons from ML potentials through our phonopy glue, against phonopy's DFT ``FORCE_SETS`` references.

What it does
------------
For each material (Si, NaCl, MgO from ``phonopy/``: VASP PBE force sets of phonopy's examples), the reference is
``phonopy.load`` of the unit cell, the 2×2×2 supercell and the DFT ``FORCE_SETS`` (with ``BORN`` for the polar ones).
Each calculator then gives forces on **exactly the same displaced supercells** (same displacement dataset, same
DFT geometry, no relaxation) through ``ase_negnn.plugins.phonons.compute_phonons``; phonopy builds the force
constants, and for polar solids the non-analytical correction uses the same DFT ``BORN`` file. Compared: frequencies
along phonopy's automatic (seekpath) band path — RMSE and max |Δ| over all bands and q-points (THz) — and the
frequencies at Γ and X.

Calculators:

* **NEGNN (ours)** for Si: the potential trained by ``benchmarks/mlearn_si_potential.py`` on mlearn's Si DFT data
  (energies + forces of 193 bulk/strained/AIMD/vacancy/surface structures; never on these force sets). Na, Cl, Mg and O
  have no energy/force training data offline (mp36k has relaxed energies only, and the FORCE_SETS carry no energies),
  so there is no NEGNN potential for NaCl and MgO: those rows say so instead of showing a number.
* **CHGNet** (the universal potential whose weights ship inside the ``chgnet`` wheel, trained on MPtrj), when
  installed (``pip install chgnet``, in the ``bench`` extra): the peer a user would pick, and a check that the glue works with any ASE calculator.

Output: ``benchmarks/results/phonons_vs_dft.{csv,md}`` and ``phonons_<material>.png`` (band structures overlaid).

Command (from the repository root)::

    OMP_NUM_THREADS=1 python benchmarks/phonons_vs_dft.py --data ../shared/data --si-model runs/mlearn-si/model
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from _bench import parser, report_header, save_figure, write_csv, write_markdown

MATERIALS = ("Si", "NaCl", "MgO")


def _reference(folder: Path):
    import phonopy

    natoms_super = int((folder / "FORCE_SETS").read_text().split()[0])
    import ase.io

    unit = ase.io.read(folder / "POSCAR-unitcell", format="vasp")
    mult = round((natoms_super / len(unit)) ** (1 / 3))
    born = folder / "BORN"
    kw = {"born_filename": str(born)} if born.exists() else {"is_nac": False}
    ref = phonopy.load(supercell_matrix=[mult] * 3, primitive_matrix="auto", unitcell_filename=str(folder / "POSCAR-unitcell"),
                       force_sets_filename=str(folder / "FORCE_SETS"), produce_fc=True, log_level=0, **kw)
    ours = phonopy.load(supercell_matrix=[mult] * 3, primitive_matrix="auto",
                        unitcell_filename=str(folder / "POSCAR-unitcell"),
                        force_sets_filename=str(folder / "FORCE_SETS"), produce_fc=False, log_level=0, is_nac=False)
    return unit, ref, ours, (born if born.exists() else None), mult


def _bands(ph):
    ph.auto_band_structure(npoints=41, write_yaml=False)
    d = ph.get_band_structure_dict()
    return d, np.concatenate(d["frequencies"])


def _special(ph, q) -> np.ndarray:
    ph.run_qpoints([q])
    return np.sort(ph.get_qpoints_dict()["frequencies"][0])


def main(argv=None):
    p = parser(__doc__, "data", "out")
    p.add_argument("--si-model", default="runs/mlearn-si/model", help="NEGNN Si potential directory")
    p.add_argument("--materials", default=",".join(MATERIALS))
    args = p.parse_args(argv)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from ase_negnn.plugins.phonons import compute_phonons

    from ase_negnn.calculator import NEGNNCalculator
    from ase_negnn.models import model_card

    t0 = time.perf_counter()
    calculators = {}
    if Path(args.si_model).exists():
        calculators["NEGNN (ours)"] = ("Si", lambda: NEGNNCalculator(potential=args.si_model))
        si_card = model_card(args.si_model)
    else:
        si_card = None
        print(f"no NEGNN Si potential at {args.si_model}; run benchmarks/mlearn_si_potential.py first")
    try:
        import chgnet
        from chgnet.model import CHGNet, CHGNetCalculator

        chg_version = chgnet.__version__
        calculators["CHGNet"] = (None, lambda: CHGNetCalculator(CHGNet.load(verbose=False), use_device="cpu"))
    except ImportError:
        chg_version = None
        print("chgnet not installed: CHGNet rows skipped (pip install chgnet)")
    rows, lines = [], []
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for material in [m for m in args.materials.split(",") if m]:
        unit, ref, template, born, mult = _reference(Path(args.data) / "phonopy" / material)
        ref_bands, ref_freq = _bands(ref)
        x_point = [0.5, 0.0, 0.5] if material == "Si" or len(ref.primitive) == 2 else [0.5, 0.5, 0.0]
        ref_g, ref_x = _special(ref, [0, 0, 0]), _special(ref, x_point)
        fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
        for seg_d, seg_f in zip(ref_bands["distances"], ref_bands["frequencies"]):
            ax.plot(seg_d, seg_f, color="k", lw=1.0)
        ax.plot([], [], color="k", lw=1.0, label="DFT (phonopy FORCE_SETS)")
        for (name, (only, make)), color in zip(calculators.items(), ("tab:red", "tab:blue")):
            if only is not None and only != material:
                rows.append({"material": material, "calculator": name, "status": "no potential for these elements"})
                lines.append(f"| {material} | {name} | – | – | – | – | no training data with {material}'s elements offline |")
                continue
            import copy

            ph = copy.deepcopy(template)
            t1 = time.perf_counter()
            compute_phonons(unit, make(), phonopy_obj=ph, born=born)
            seconds = time.perf_counter() - t1
            bands, freq = _bands(ph)
            diff = freq - ref_freq
            g, x = _special(ph, [0, 0, 0]), _special(ph, x_point)
            row = {"material": material, "calculator": name, "status": "ok",
                   "band_rmse_THz": float(np.sqrt(np.mean(diff**2))), "band_max_abs_THz": float(np.abs(diff).max()),
                   "gamma_THz": " ".join(f"{v:.2f}" for v in g), "gamma_ref_THz": " ".join(f"{v:.2f}" for v in ref_g),
                   "x_THz": " ".join(f"{v:.2f}" for v in x), "x_ref_THz": " ".join(f"{v:.2f}" for v in ref_x),
                   "force_seconds": round(seconds, 1), "supercell_atoms": len(ph.supercell)}
            rows.append(row)
            lines.append(f"| {material} | {name} | {row['band_rmse_THz']:.3f} | {row['band_max_abs_THz']:.3f} | "
                         f"{row['gamma_THz']} (DFT {row['gamma_ref_THz']}) | {row['x_THz']} (DFT {row['x_ref_THz']}) | "
                         f"{len(ph.supercell)}-atom supercell, {len(ph.supercells_with_displacements)} displacement(s) |")
            for seg_d, seg_f in zip(bands["distances"], bands["frequencies"]):
                ax.plot(seg_d, seg_f, color=color, lw=1.0, ls="--")
            ax.plot([], [], color=color, ls="--", label=f"{name}: RMSE {row['band_rmse_THz']:.2f} THz")
        labels = getattr(ref.band_structure, "labels", None)
        ax.set_ylabel("frequency (THz)")
        ax.set_title(f"{material}: phonons, DFT vs ML potentials (same displaced supercells)", fontsize=9)
        if labels:
            ticks = [seg[0] for seg in ref_bands["distances"]] + [ref_bands["distances"][-1][-1]]
            ax.set_xticks(ticks[: len(labels)])
            ax.set_xticklabels(labels[: len(ticks)])
        ax.axhline(0, color="grey", lw=0.5)
        ax.legend(fontsize=7)
        fig.tight_layout()
        save_figure(fig, out / f"phonons_{material}.png")
        plt.close(fig)
    write_csv(out / "phonons_vs_dft.csv", rows)
    wall = time.perf_counter() - t0
    si_text = ("none" if si_card is None else
               f"`{args.si_model}`: NEGNN potential trained on mlearn Si_training (energies + forces, "
               f"{si_card['n_train']} fit / {si_card['n_validation']} validation structures, {si_card['epochs_run']} "
               f"epochs, cutoff {si_card['model']['cutoff']} Å; test on mlearn Si_test: energy MAE "
               f"{1000 * si_card['test_metrics']['energy_per_atom_mae']:.1f} meV/atom, force MAE "
               f"{si_card['test_metrics']['force_mae']:.3f} eV/Å)")
    md = [*report_header("Phonons from ML potentials vs DFT force sets (phonopy)", f"{wall / 60:.1f} min", argv),
          f"- NEGNN potential: {si_text}",
          f"- CHGNet: {'version ' + chg_version + ', pretrained weights shipped in the wheel (MPtrj)' if chg_version else 'not installed'}",
          "- same DFT geometry and displaced supercells as the reference (no relaxation); polar solids use the DFT BORN "
          "file for the non-analytical correction with every calculator",
          "",
          "| material | calculator | band RMSE (THz) | band max abs error (THz) | Γ frequencies (THz) | X frequencies (THz) | note |",
          "|---|---|---|---|---|---|---|",
          *lines, "",
          *[f"![{m}](phonons_{m}.png)" for m in args.materials.split(",") if m]]
    write_markdown(out / "phonons_vs_dft.md", md)
    print("\n".join(md))


if __name__ == "__main__":
    main()
