"""CLI start-up cost (issue 18): ``ase-negnn embed`` of the three CIFs in ``tests/data/cifs`` vs ``import torch``.

What it measures
----------------
Fresh processes, interleaved (``--repeats`` rounds; in each round every command once, in rotating order, so load from
other jobs hits them alike):

* ``python -c "import torch"`` — the floor any torch-based tool pays;
* ``python -c "import ase_negnn.descriptor"`` — what SSAR/SSMR import;
* ``python -c "import ase_negnn.models"`` — what the calculator's property models import;
* ``python -m ase_negnn embed tests/data/cifs --out X.npy --no-progress`` — the whole command (read 3 CIFs, load the
  bundled encoder, graphs, encoder forward, write).

For each: median wall time and its ratio to ``import torch`` (target for ``embed``: ≤ 2.5×), plus, from one
``-X importtime`` run each, whether Lightning, matgl and torch-geometric are imported and their cumulative import
times. Writes ``benchmarks/results/perf_startup.{csv,md}``.

Command (from the repository root)::

    python benchmarks/perf_startup.py
"""

from __future__ import annotations

import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _bench import parser, report_header, target_lines, write_results

ROOT = Path(__file__).resolve().parent.parent
TARGET = 2.5


def commands(out: Path) -> dict[str, list[str]]:
    py = sys.executable
    return {
        "import torch": [py, "-c", "import torch"],
        "import ase_negnn.descriptor": [py, "-c", "import ase_negnn.descriptor"],
        "import ase_negnn.models": [py, "-c", "import ase_negnn.models"],
        "ase-negnn embed (3 CIFs)": [py, "-m", "ase_negnn", "embed", str(ROOT / "tests" / "data" / "cifs"),
                                     "--out", str(out), "--no-progress"],
    }


def imported(cmd: list[str]) -> dict[str, float | None]:
    """Cumulative import time (s) of lightning, matgl and torch_geometric in ``cmd`` (None = not imported)."""
    proc = subprocess.run([cmd[0], "-X", "importtime", *cmd[1:]], capture_output=True, text=True, check=False,
                          cwd=ROOT)
    found: dict[str, float | None] = {"lightning": None, "matgl": None, "torch_geometric": None}
    for line in proc.stderr.splitlines():
        m = re.match(r"import time:\s+\d+ \|\s+(\d+) \|\s*(\S+)$", line)
        if m and m.group(2) in found:
            found[m.group(2)] = int(m.group(1)) / 1e6
    return found


def main(argv=None):
    ap = parser(__doc__, "out")
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args(argv)
    argv = sys.argv[1:] if argv is None else argv
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        cmds = commands(Path(tmp) / "x.npy")
        times: dict[str, list[float]] = {k: [] for k in cmds}
        names = list(cmds)
        for r in range(args.repeats):
            for k in range(len(names)):
                name = names[(k + r) % len(names)]
                t = time.perf_counter()
                proc = subprocess.run(cmds[name], capture_output=True, text=True, check=False, cwd=ROOT)
                times[name].append(time.perf_counter() - t)
                if proc.returncode != 0:
                    sys.exit(f"{name} failed:\n{proc.stderr[-2000:]}")
        imports = {name: imported(cmd) for name, cmd in cmds.items()}
    base = statistics.median(times["import torch"])
    rows = []
    for name in names:
        med = statistics.median(times[name])
        rows.append({"command": name, "median_s": round(med, 3), "min_s": round(min(times[name]), 3),
                     "ratio_to_import_torch": round(med / base, 2),
                     **{f"{m}_import_s": ("" if v is None else round(v, 3)) for m, v in imports[name].items()}})
    embed = next(r for r in rows if r["command"].startswith("ase-negnn embed"))
    lines = [*report_header("CLI start-up: ase-negnn embed vs import torch", f"{time.perf_counter() - t0:.0f} s", argv),
             f"- fresh processes, {args.repeats} interleaved rounds, median wall time; machine {platform.machine()}, "
             f"{os.cpu_count()} CPUs, load average at the end {os.getloadavg()[0]:.1f} (other jobs slow every "
             "command alike; read the ratios)",
             "- import columns: cumulative `-X importtime` of the package in one run (empty = not imported)", "",
             "| command | median s | min s | × import torch | lightning import s | matgl import s | "
             "torch_geometric import s |", "|---|---:|---:|---:|---:|---:|---:|"]
    lines += [f"| `{r['command']}` | {r['median_s']} | {r['min_s']} | {r['ratio_to_import_torch']} | "
              f"{r['lightning_import_s']} | {r['matgl_import_s']} | {r['torch_geometric_import_s']} |" for r in rows]
    lines += target_lines(18, f"`embed` ≤ {TARGET}× `import torch`", embed["ratio_to_import_torch"] <= TARGET,
                          f"{embed['ratio_to_import_torch']}×")
    write_results(args.out, "perf_startup", rows, lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())
