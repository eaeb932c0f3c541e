"""Shared header of the benchmark reports: title, date, wall time and the exact command that made them."""

from __future__ import annotations

import datetime as _dt
import sys


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


def save_figure(fig, path, **kwargs) -> None:
    """``fig.savefig`` to ``path`` atomically; the format comes from the suffix."""
    from pathlib import Path

    with atomic_open(path, "wb") as fh:
        fig.savefig(fh, format=Path(path).suffix.lstrip(".") or "png", **kwargs)


def write_results(out, stem: str, rows: list[dict], lines: list[str]) -> None:
    """``out/stem.csv`` (one row per dict, atomically), ``out/stem.md`` from ``lines``, and the report on stdout."""
    import csv
    from pathlib import Path

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    with atomic_open(out / f"{stem}.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    write_markdown(out / f"{stem}.md", lines)
    print("\n".join(lines))
