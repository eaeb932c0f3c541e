"""Small output helpers shared by the CLI: structure ids and atomic table writes (.npy / .csv)."""

from __future__ import annotations

import csv
import os
import tempfile
from pathlib import Path

import numpy as np

__all__ = ["structure_ids", "write_table"]


def structure_ids(images) -> list[str]:
    """An id per structure: ``info["mp_id"]``, else ``info["id"]``, else the position in the input."""
    return [str(a.info.get("mp_id", a.info.get("id", i))) for i, a in enumerate(images)]


def write_table(path: str | Path, values: np.ndarray, columns: list[str], index: list[tuple], index_names: tuple) -> None:
    """Write ``values`` atomically: ``.npy`` → the array alone; ``.csv`` → index columns then ``columns``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=path.suffix, dir=path.parent)
    try:
        with os.fdopen(fd, "wb" if path.suffix == ".npy" else "w", **({} if path.suffix == ".npy" else {"newline": ""})) as fh:
            if path.suffix == ".npy":
                np.save(fh, values)
            else:
                writer = csv.writer(fh)
                writer.writerow([*index_names, *columns])
                for key, row in zip(index, values):
                    writer.writerow([*key, *(f"{v:.8g}" for v in row)])
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
