"""What every benchmark script shares: one set of option names, the data paths, and the report writers.

Scripts run as ``python benchmarks/NAME.py`` from the repository root, so this folder is already on ``sys.path``
and ``import _bench`` needs no path juggling.

The option vocabulary (:data:`OPTIONS`) is the CLI's where they overlap (``--encoder``, ``--max-epochs``,
``--early-stopping``, ``--seed``): ``--data`` the shared data folder, ``--n`` how many structures, ``--runs`` the
folder of resumable training runs, ``--out`` the results folder. The names the scripts used before (``--limit``,
``--n-structures``, ``--epochs``, ``--patience``, ``--run-dir``) are still accepted, with a note on stderr.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
DATA = "../shared/data"

#: The shared options: name -> (argparse keyword arguments, old spellings still accepted).
OPTIONS: dict[str, tuple[dict, tuple[str, ...]]] = {
    "data": (dict(default=DATA, help="shared data folder (mp/, paper/, mlearn/, phonopy/, magndata/); "
                                     "default %(default)s"), ()),
    "encoder": (dict(default="default", help="encoder: a bundled name or a saved directory (default %(default)s)"),
                ()),
    "n": (dict(type=int, default=None, help="number of structures (default %(default)s)"),
          ("--limit", "--n-structures")),
    "seed": (dict(type=int, default=0, help="random seed (default %(default)s)"), ()),
    "threads": (dict(type=int, default=1, help="torch threads (default %(default)s)"), ()),
    "max_epochs": (dict(type=int, default=None, help="maximum training epochs (default %(default)s)"),
                   ("--epochs",)),
    "early_stopping": (dict(type=int, default=None, help="early-stopping patience in epochs (default %(default)s)"),
                       ("--patience",)),
    "runs": (dict(default=None, help="folder of the training runs (checkpoints; a rerun resumes them)"),
             ("--run-dir",)),
    "suffix": (dict(default="", help="appended to the output file names (e.g. _before)"), ()),
    "out": (dict(type=Path, default=RESULTS, help="results folder (default benchmarks/results)"), ()),
}


class _OldSpelling(argparse.Action):
    """An option's former name: stores into the new destination and says the new name once on stderr."""

    def __init__(self, option_strings, dest, new_name=None, **kwargs):
        self.new_name = new_name
        super().__init__(option_strings, dest, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        print(f"{parser.prog}: {option_string} is now {self.new_name}", file=sys.stderr)
        setattr(namespace, self.dest, values)


def parser(doc: str | None, *options: str, **defaults) -> argparse.ArgumentParser:
    """An ``ArgumentParser`` described by the first paragraph of ``doc`` with the shared ``options`` (names from
    :data:`OPTIONS`, in that order); ``defaults`` overrides a default, e.g. ``parser(__doc__, "data", "n", n=300)``.
    Script-specific options are added to the returned parser as usual."""
    unknown = [o for o in (*options, *defaults) if o not in OPTIONS]
    if unknown:
        raise ValueError(f"not shared benchmark options: {unknown}; known: {sorted(OPTIONS)}")
    p = argparse.ArgumentParser(description=(doc or "").strip().split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    for name in options:
        kwargs, old = OPTIONS[name]
        kwargs = dict(kwargs)
        if name in defaults:
            kwargs["default"] = defaults[name]
        flag = "--" + name.replace("_", "-")
        p.add_argument(flag, dest=name, **kwargs)
        for spelling in old:
            p.add_argument(spelling, dest=name, action=_OldSpelling, new_name=flag, type=kwargs.get("type"),
                           help=argparse.SUPPRESS)
    return p


def mp36k_path(data) -> Path:
    """``DATA/mp/mp36k.extxyz``, or exit naming the missing file and the option that sets it."""
    path = Path(data) / "mp" / "mp36k.extxyz"
    if not path.is_file():
        sys.exit(f"not found: {path} (give --data, the folder holding mp/mp36k.extxyz)")
    return path


def report_header(title: str, wall_text: str, argv=None) -> list[str]:
    """First Markdown lines of a results file; ``argv`` is what ``main`` received (``None`` = ``sys.argv``)."""
    cmd = "python " + " ".join([sys.argv[0], *(argv if argv is not None else sys.argv[1:])])
    return [
        f"# {title}",
        "",
        f"- date: {_dt.datetime.now().astimezone().isoformat(timespec='seconds')}; wall time {wall_text}",
        f"- command: `{cmd}`",
    ]


def atomic_open(path, mode: str = "w", **kwargs):
    """``ase_negnn.io.atomic_open`` (imported on use, like the library in the scripts): a CSV or table is written to a
    temporary file and renamed over ``path`` only once complete."""
    from ase_negnn.io import atomic_open as _atomic_open

    return _atomic_open(path, mode, **kwargs)


def write_markdown(path, lines: list[str]) -> None:
    """The Markdown report, written atomically (a reader or a killed run never leaves half a table)."""
    with atomic_open(path, "w") as fh:
        fh.write("\n".join(lines) + "\n")


def write_csv(path, rows: list[dict]) -> None:
    """One row per dict, atomically; the columns are every key in order of first appearance (rows may differ)."""
    import csv

    if not rows:
        raise ValueError(f"no rows to write to {path}")
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with atomic_open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(dict.fromkeys(k for r in rows for k in r)))
        w.writeheader()
        w.writerows(rows)


def save_figure(fig, path, **kwargs) -> None:
    """``fig.savefig`` to ``path`` atomically; the format comes from the suffix."""
    with atomic_open(path, "wb") as fh:
        fig.savefig(fh, format=Path(path).suffix.lstrip(".") or "png", **kwargs)


def target_lines(issue: int, goal: str, met: bool, measured: str) -> list[str]:
    """The report's verdict on one acceptance target: a blank line and ``**Target** (issue N): goal: **met** (...)``."""
    return ["", f"**Target** (issue {issue}): {goal}: **{'met' if met else 'NOT met'}** ({measured})."]


def write_results(out, stem: str, rows: list[dict], lines: list[str]) -> None:
    """``out/stem.csv`` (one row per dict, atomically), ``out/stem.md`` from ``lines``, and the report on stdout."""
    out = Path(out)
    write_csv(out / f"{stem}.csv", rows)
    write_markdown(out / f"{stem}.md", lines)
    print("\n".join(lines))
