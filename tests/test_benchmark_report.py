"""The benchmarks' shared report writers (benchmarks/_report.py) write complete files or leave the old ones."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
import _report  # noqa: E402


def test_write_markdown_replaces_the_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "results" / "table.md"
    _report.write_markdown(path, ["# old"])
    _report.write_markdown(path, ["# title", "", "| a | b |", "|---|---|", "| 1 | 2 |"])
    assert path.read_text() == "# title\n\n| a | b |\n|---|---|\n| 1 | 2 |\n"
    assert [p.name for p in path.parent.iterdir()] == ["table.md"]


def test_atomic_open_keeps_the_old_csv_when_the_writer_fails(tmp_path):
    path = tmp_path / "rows.csv"
    path.write_text("a,b\n1,2\n")
    with pytest.raises(RuntimeError, match="killed"):
        with _report.atomic_open(path, "w", newline="") as fh:
            fh.write("a,b\n3,")
            raise RuntimeError("killed half-way")
    assert path.read_text() == "a,b\n1,2\n"
    assert [p.name for p in tmp_path.iterdir()] == ["rows.csv"]


def test_save_figure_writes_the_format_of_the_suffix(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    _report.save_figure(fig, tmp_path / "curve.png", dpi=50)
    _report.save_figure(fig, tmp_path / "curve.svg")
    plt.close(fig)
    assert (tmp_path / "curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert b"<svg" in (tmp_path / "curve.svg").read_bytes()[:500]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["curve.png", "curve.svg"]


def test_report_header_names_the_command_and_wall_time():
    lines = _report.report_header("Study", "12 s", argv=["--data", "d"])
    assert lines[0] == "# Study"
    assert "wall time 12 s" in lines[2]
    assert lines[3].endswith("--data d`")
