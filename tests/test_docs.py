"""The HTML API reference (docs/) builds with warnings as errors and documents every public name."""

from __future__ import annotations

import importlib
import re
import subprocess
import sys
from pathlib import Path

import ase_negnn

ROOT = Path(__file__).resolve().parent.parent
MODULES = [
    "graph", "elements", "encoder", "ssl", "data", "pretraining", "pretrained", "descriptor", "adapters", "models",
    "labels", "training", "predict", "calculator", "relaxation", "screening", "io", "convert", "plugins", "plugins.phonons",
    "kernel", "splits", "metrics", "deprecation", "readers",
]


def test_docs_build(tmp_path):
    out = tmp_path / "html"
    # The same command as the one in docs/conf.py (plus -q), into a temporary folder; doctrees go under it too.
    proc = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html", str(ROOT / "docs"), str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=900, check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (out / "index.html").is_file()
    api = (out / "api.html").read_text(encoding="utf-8")
    assert "NEGNNCalculator" in api and "SSMR" in api

    # Every public name has its own entry: the lazy top-level names where their modules define them, and each
    # public module's __all__ (a constant needs a ``#:`` comment, or an ``autodata`` line in docs/api.rst).
    anchors = set(re.findall(r'<dt class="sig sig-object py" id="([^"]+)"', api))
    missing = [f"ase_negnn.{module}.{name}" for name, module in ase_negnn._LAZY.items()
               if f"ase_negnn.{module}.{name}" not in anchors]
    for module in MODULES:
        for name in importlib.import_module(f"ase_negnn.{module}").__all__:
            if f"ase_negnn.{module}.{name}" not in anchors:
                missing.append(f"ase_negnn.{module}.{name}")
    assert not missing, f"not in docs/api.rst: {missing}"

    # The CLI reference lists every command.
    from ase_negnn.cli import cli

    cli_html = (out / "cli.html").read_text(encoding="utf-8")
    assert all(f'id="ase-negnn-{name}"' in cli_html for name in cli.commands), sorted(cli.commands)
