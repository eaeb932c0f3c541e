"""The README demo runs offline on the bundled encoder and bundled structures, printing SSMR and saving a figure."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from ase_negnn import available_encoders, encoder_card
from ase_negnn.pretrained import encoder_dir

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _load(name):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_default_encoder_is_bundled_with_its_card():
    assert "default" in available_encoders()
    card = encoder_card("default")
    assert card["objective"] == "predictive"
    assert card["n_structures"] > 30_000
    assert {"val_acc_group", "val_acc_period", "val_acc_edge"} <= set(card["heldout_metrics"])
    size = sum(f.stat().st_size for f in Path(str(encoder_dir("default"))).iterdir())
    assert size < 10 * 2**20


def test_demo_prints_ssmr_and_writes_figure(tmp_path, capsys):
    figure = _load("demo").main(tmp_path)
    out = capsys.readouterr().out
    assert "SSMR: 14 structures x 384 features" in out
    assert "mp-22862" in out and "NaCl" in out
    # predictions beside the labels, under a header that says which is which; conventional formulas
    assert "Materials Project label | bundled model prediction" in out and "mp-eform" in out and "mp-gap" in out
    rows = {line.split()[0]: line.split() for line in out.splitlines() if line.strip().startswith("mp-")}
    nacl = rows["mp-22862"]
    assert float(nacl[2]) == pytest.approx(-2.105, abs=1e-3) and abs(float(nacl[3]) - float(nacl[2])) < 0.5
    assert rows["mp-19717"][1] == "PbTe"
    assert figure.exists() and figure.stat().st_size > 10_000
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    "name, expected",
    [
        ("01_descriptors", "SSMR layers  0-5: (40, 384)"),
        ("02_property_model", "same GNN from scratch: test MAE"),
        ("03_calculator_relax_screen", "relaxed in"),
        ("04_phonons", "Γ frequencies (THz)"),
        ("05_magnetic_moments", "test sites: MAE"),
    ],
)
def test_examples_run_in_reduced_mode(name, expected, tmp_path, capsys):
    """Every example runs offline in its reduced mode and writes its figure (so the examples never rot)."""
    figure = _load(name).main(tmp_path, quick=True)
    out = capsys.readouterr().out
    assert expected in out
    assert figure.exists() and figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
