"""Offline screening of mp36k structures with the bundled models: killed mid-run, resumed, checked, timed.

What it does
------------
1. Writes the first ``--n`` structures of ``mp/mp36k.extxyz`` (positions and cell only, no labels) to a temporary
   extxyz, the screening input.
2. Runs ``ase-negnn screen INPUT --models mp-eform,mp-gap --out screen.db`` as a subprocess and, once the database
   holds at least ``--kill-after`` rows, kills it with SIGKILL (no clean-up possible).
3. Runs the same command again: it resumes (ids already in the database are skipped).
4. Checks that every input id is in the database exactly once, that every row is complete, and compares the
   predictions with the mp36k DFT labels (MAE; most of these structures were in the models' training split, so this
   is a sanity check, not a test score — see ``bundled_models.md`` for that).

Throughput (structures/s) is reported for the resumed run (from the command's own summary) and for the whole
wall time including both process start-ups.

Output: ``benchmarks/results/screen_mp36k.{csv,md}``.

Command (from the repository root)::

    OMP_NUM_THREADS=1 python benchmarks/screen_mp36k.py --data ../shared/data --n 1200
"""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from itertools import islice
from pathlib import Path

import numpy as np
from _bench import mp36k_path, parser, report_header, write_csv, write_markdown


def _rows(db: Path) -> int:
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1) as con:
            return int(con.execute("select count(*) from systems").fetchone()[0])
    except sqlite3.Error:
        return 0


def main(argv=None):
    p = parser(__doc__, "data", "n", "out", n=1200)
    p.add_argument("--kill-after", type=int, default=400, help="SIGKILL the first run once this many rows exist")
    p.add_argument("--models", default="mp-eform,mp-gap")
    args = p.parse_args(argv)

    import ase.io
    from ase import Atoms
    from ase.db import connect

    work = Path(tempfile.mkdtemp(prefix="screen-bench-"))
    src = mp36k_path(args.data)
    images = list(islice(ase.io.iread(src, index=":"), args.n))
    labels = {a.info["mp_id"]: (a.info["formation_energy_per_atom"], a.info["band_gap"]) for a in images}
    bare = []
    for a in images:
        b = Atoms(a.numbers, positions=a.positions, cell=a.cell, pbc=a.pbc)
        b.info["mp_id"] = a.info["mp_id"]
        bare.append(b)
    inp = work / "candidates.extxyz"
    ase.io.write(inp, bare, format="extxyz")
    db = work / "screen.db"
    cmd = ["ase-negnn", "screen", str(inp), "--models", args.models, "--out", str(db), "--chunk-size", "64", "--no-progress"]
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}

    t0 = time.perf_counter()
    first = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    while first.poll() is None and _rows(db) < args.kill_after:
        time.sleep(0.2)
    rows_at_kill = _rows(db)
    killed = first.poll() is None
    if killed:
        first.send_signal(signal.SIGKILL)
    first.wait()
    t_kill = time.perf_counter() - t0
    second = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if second.returncode != 0:
        sys.exit(f"resumed run failed:\n{second.stdout}\n{second.stderr}")
    summary = second.stdout.strip().splitlines()[-1]
    match = re.search(r"screened (\d+) new structure\(s\) \((\d+) already done, (\d+) errors\) at ([0-9.]+) structures/s", summary)
    n_new, n_done, n_err, rate = (int(match[1]), int(match[2]), int(match[3]), float(match[4])) if match else (0, 0, 0, float("nan"))

    with connect(db) as con:
        found = [(r.structure_id, r.get("status"), r.get("formation_energy_per_atom"), r.get("band_gap")) for r in con.select()]
    ids = [f[0] for f in found]
    exactly_once = sorted(ids) == sorted(labels) and len(ids) == len(set(ids))
    ok = [f for f in found if f[1] == "ok"]
    complete = all(f[2] is not None and f[3] is not None for f in ok)
    e_mae = float(np.mean([abs(f[2] - labels[f[0]][0]) for f in ok]))
    g_mae = float(np.mean([abs(f[3] - labels[f[0]][1]) for f in ok]))

    result = {"n_structures": args.n, "rows_when_killed": rows_at_kill, "killed": killed,
              "seconds_until_kill": round(t_kill, 1), "resumed_new": n_new, "resumed_skipped": n_done,
              "errors": n_err, "rows_in_db": len(ids), "unique_ids": len(set(ids)), "each_id_exactly_once": exactly_once,
              "all_ok_rows_complete": complete, "resumed_structures_per_second": rate,
              "overall_structures_per_second": round(args.n / wall, 2), "wall_seconds": round(wall, 1),
              "eform_mae_vs_dft": round(e_mae, 4), "gap_mae_vs_dft": round(g_mae, 4)}
    out = Path(args.out)
    write_csv(out / "screen_mp36k.csv", [{"quantity": k, "value": v} for k, v in result.items()])
    md = [*report_header(f"Screening {args.n} mp36k structures offline, killed and resumed", f"{wall:.0f} s", argv),
          f"- models: {args.models} (bundled); input: first {args.n} structures of mp36k (labels stripped)",
          f"- first run SIGKILLed after {t_kill:.1f} s with {rows_at_kill} rows committed; the resumed run added "
          f"{n_new} and skipped {n_done}",
          "",
          "| quantity | value |", "|---|---|", *(f"| {k} | {v} |" for k, v in result.items()), "",
          "The MAEs against the mp36k DFT labels mix training and test structures of the bundled models (sanity check "
          "only; test-set MAEs are in `bundled_models.md`)."]
    write_markdown(out / "screen_mp36k.md", md)
    print("\n".join(md))
    if not (exactly_once and complete):
        sys.exit("FAILED: ids missing/duplicated or incomplete rows")


if __name__ == "__main__":
    main()
