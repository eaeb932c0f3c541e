"""Atomic file writes (temp file + rename) and small output helpers shared by the library and the CLI."""

from __future__ import annotations

import contextlib
import csv
import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

__all__ = ["atomic_directory", "atomic_open", "directory_mode", "quiet_lightning", "run_checkpoint", "run_stamp", "structure_id", "db_structure_id", "structure_ids", "write_json_atomic", "write_table"]


def _umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask


def _default_mode() -> int:
    return 0o666 & ~_umask()


def directory_mode() -> int:
    """Mode of a new directory under the process's umask (``mkdtemp`` makes 0o700 whatever the umask says)."""
    return 0o777 & ~_umask()


@contextlib.contextmanager
def atomic_directory(path: str | Path):
    """Yield a fresh sibling directory to fill; on success it replaces ``path`` in one rename (a reader sees the old
    directory or the complete new one), on an exception it is removed and ``path`` is left as it was. The new
    directory gets the umask's mode (``mkdtemp`` alone would make it 0o700)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        tmp.chmod(directory_mode())
        yield tmp
        if path.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{path.name}.old.", dir=path.parent))
            os.replace(path, old / "d")
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


@contextlib.contextmanager
def atomic_open(path: str | Path, mode: str = "w", **kwargs):
    """Open a temporary file next to ``path``; on success fsync and rename it over ``path``.

    A reader never sees half a file: either the previous content or the complete new one. On an exception
    the temporary file is removed and ``path`` is untouched. The file gets the usual permissions (umask),
    not ``mkstemp``'s 0600.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode, **kwargs) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, _default_mode())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json_atomic(obj, path: str | Path) -> None:
    """Write ``obj`` as indented JSON, atomically."""
    with atomic_open(path, "w") as fh:
        fh.write(json.dumps(obj, indent=2, default=str) + "\n")


def structure_id(atoms, position: int) -> str:
    """The id of one structure: ``info["mp_id"]``, else ``info["id"]``, else its position in the input."""
    return str(atoms.info.get("mp_id", atoms.info.get("id", position)))


def structure_ids(images) -> list[str]:
    """An id per structure (see :func:`structure_id`)."""
    return [structure_id(a, i) for i, a in enumerate(images)]


def db_structure_id(sid: str):
    """``sid`` as a value an ASE database accepts for the ``structure_id`` key.

    ASE refuses strings that read as a number or a boolean (``"0"``, ``"1.5"``, ``"True"``: the default ids of
    structures without ``info["id"]``, or the row ids of an input database). Those are stored as that number when it
    prints back as the same text (``str(value) == sid``), otherwise (``"007"``, ``"1e3"``) as the text ``"id:" + sid``;
    other ids are stored unchanged. ``str()`` of the stored value is what resumed runs compare.
    """
    from ase.db.core import convert_str_to_int_float_bool_or_str

    sid = str(sid)
    value = convert_str_to_int_float_bool_or_str(sid)
    if isinstance(value, str):
        return sid
    return value if str(value) == sid else f"id:{sid}"


def write_table(path: str | Path, values: np.ndarray, columns: list[str], index: list[tuple], index_names: tuple) -> None:
    """Write ``values`` atomically: ``.npy`` → the array alone; ``.csv`` → index columns then ``columns``."""
    path = Path(path)
    if path.suffix == ".npy":
        with atomic_open(path, "wb") as fh:
            np.save(fh, values)
        return
    with atomic_open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow([*index_names, *columns])
        for key, row in zip(index, values):
            writer.writerow([*key, *(f"{v:.8g}" for v in row)])


def run_checkpoint(out: str | Path, resume: bool) -> Path:
    """``out/checkpoints/last.ckpt`` of a Lightning run directory, after checking it against ``resume``.

    Raises ``FileNotFoundError`` when resuming a run that has no checkpoint and ``FileExistsError`` when a new run
    would overwrite one, so a finished or interrupted run is never clobbered by mistake.
    """
    last = Path(out) / "checkpoints" / "last.ckpt"
    if resume and not last.exists():
        raise FileNotFoundError(f"--resume given but {last} does not exist")
    if not resume and last.exists():
        raise FileExistsError(f"{out} already holds a run ({last}); pass resume=True/--resume or choose another --out")
    return last


def run_stamp(trainer=None) -> dict:
    """``date`` (UTC), ``hardware`` and package ``versions`` for a run card; with a Lightning ``trainer``, its
    accelerator and device count too. The same fields in every card (pretraining, training, kernel models)."""
    import datetime as _dt
    import platform

    import torch

    hardware = f"{platform.processor() or platform.machine()}, torch threads {torch.get_num_threads()}"
    versions = {"torch": torch.__version__, "numpy": np.__version__}
    if trainer is not None:
        import lightning

        hardware += f", accelerator {trainer.accelerator.__class__.__name__}, devices {trainer.num_devices}"
        versions["lightning"] = lightning.__version__
    return {"date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"), "hardware": hardware,
            "versions": versions}


#: Lightning's loggers that print its start-up banner ("GPU available: …") and tips at INFO level.
LIGHTNING_BANNER_LOGGERS = ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero")


@contextlib.contextmanager
def quiet_lightning():
    """Silence, for the block, Lightning's banner and tips and its known-harmless ``LeafSpec`` deprecation warning
    (Lightning vs torch 2.13); real warnings and errors still show. Logger levels are restored afterwards."""
    import logging
    import warnings

    loggers = [logging.getLogger(name) for name in LIGHTNING_BANNER_LOGGERS]
    levels = [logger.level for logger in loggers]
    try:
        for logger in loggers:
            logger.setLevel(max(logger.getEffectiveLevel(), logging.WARNING))
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\).*")
            yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)
