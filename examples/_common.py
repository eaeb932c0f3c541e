"""Shared helpers of the examples: reduced mode, output folder, data folder."""

from __future__ import annotations

import os
from pathlib import Path

HERE = Path(__file__).resolve().parent
DATA = HERE / "data"
OUTPUT = HERE / "output"

#: ``ASE_NEGNN_QUICK=1`` (or ``quick=True``) runs every example in seconds on fewer structures and epochs: the test
#: suite does this so the examples never rot. The full mode reproduces the numbers quoted in each docstring.
QUICK_ENV = "ASE_NEGNN_QUICK"


def quick_mode(quick: bool | None) -> bool:
    return os.environ.get(QUICK_ENV) == "1" if quick is None else bool(quick)


def savefig(fig, out_dir: Path, name: str) -> Path:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / name
    fig.savefig(path, dpi=120)
    print(f"figure: {path}")
    return path
