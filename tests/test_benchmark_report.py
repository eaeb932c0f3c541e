"""The benchmarks' shared helpers (benchmarks/_bench.py): complete report files or the old ones, one set of option
names."""

import importlib
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
_bench = importlib.import_module("_bench")


def test_write_markdown_replaces_the_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "results" / "table.md"
    _bench.write_markdown(path, ["# old"])
    _bench.write_markdown(path, ["# title", "", "| a | b |", "|---|---|", "| 1 | 2 |"])
    assert path.read_text() == "# title\n\n| a | b |\n|---|---|\n| 1 | 2 |\n"
    assert [p.name for p in path.parent.iterdir()] == ["table.md"]


def test_atomic_open_keeps_the_old_csv_when_the_writer_fails(tmp_path):
    path = tmp_path / "rows.csv"
    path.write_text("a,b\n1,2\n")
    with pytest.raises(RuntimeError, match="killed"), _bench.atomic_open(path, "w", newline="") as fh:
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
    _bench.save_figure(fig, tmp_path / "curve.png", dpi=50)
    _bench.save_figure(fig, tmp_path / "curve.svg")
    plt.close(fig)
    assert (tmp_path / "curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert b"<svg" in (tmp_path / "curve.svg").read_bytes()[:500]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["curve.png", "curve.svg"]


def test_report_header_names_the_command_and_wall_time():
    lines = _bench.report_header("Study", "12 s", argv=["--data", "d"])
    assert lines[0] == "# Study"
    assert "wall time 12 s" in lines[2]
    assert lines[3].endswith("--data d`")


def test_write_csv_header_is_the_union_of_the_keys_in_first_appearance_order(tmp_path):
    path = tmp_path / "new" / "rows.csv"  # the folder does not exist yet
    _bench.write_csv(path, [{"b": 1, "a": 2}, {"a": 3, "c": 4}, {"d": 5, "b": 6}])
    assert path.read_text().splitlines() == ["b,a,c,d", "1,2,,", ",3,4,", "6,,,5"]


def test_parser_takes_old_spellings_into_the_new_option_and_refuses_unknown_names(capsys):
    p = _bench.parser(__doc__, "data", "n", "max_epochs", n=300, max_epochs=7)
    args = p.parse_args(["--limit", "5"])
    assert (args.n, args.max_epochs, args.data) == (5, 7, _bench.DATA)
    assert "--limit is now --n" in capsys.readouterr().err
    assert p.parse_args(["--n-structures", "9", "--epochs", "2"]).n == 9
    assert p.parse_args([]).n == 300
    with pytest.raises(ValueError, match="limit"):
        _bench.parser(__doc__, "data", "limit")
    with pytest.raises(ValueError, match="patience"):
        _bench.parser(__doc__, "n", patience=3)


def test_target_lines_say_met_only_when_met():
    """The verdict line the perf reports end with: a swapped or constant verdict would misreport an issue target."""
    assert _bench.target_lines(18, "`embed` ≤ 2.5× `import torch`", False, "2.94×") == [
        "", "**Target** (issue 18): `embed` ≤ 2.5× `import torch`: **NOT met** (2.94×)."]
    assert _bench.target_lines(19, "2500 structures in under 60 s", True, "42.9 s")[1].endswith(": **met** (42.9 s).")


def test_paper_krr_target_verdict_without_hand_made_rows():
    """A run with SSMR rows only (e.g. a candidate encoder) has no ratio to a hand-made descriptor: the target is
    not checked, not 'missed'."""
    import paper_krr

    assert paper_krr.verdict(float("nan")).startswith("not checked")
    assert paper_krr.verdict(0.5) == "met" and paper_krr.verdict(0.51) == "missed"
