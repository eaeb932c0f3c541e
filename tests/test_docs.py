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


def test_every_example_has_a_page_rendered_from_its_current_script():
    """docs/examples/NAME.md (scripts/render_examples.py) exists for every example, names the sha256 of the script
    as it is now, and every output and figure it shows is committed. Fails when an example is edited, added or
    renamed without rendering its page again, or when a figure of the page is missing."""
    import hashlib

    scripts = sorted(p for p in (ROOT / "examples").glob("*.py") if not p.name.startswith("_"))
    toctree = (ROOT / "docs" / "examples.md").read_text(encoding="utf-8")
    assert scripts
    for script in scripts:
        page = ROOT / "docs" / "examples" / f"{script.stem}.md"
        assert page.is_file(), f"{page} missing: run python scripts/render_examples.py {script.stem}"
        text = page.read_text(encoding="utf-8")
        digest = hashlib.sha256(script.read_bytes()).hexdigest()
        assert f"sha256 `{digest}`" in text, f"{script.name} changed since {page.name} was rendered: rerun " \
                                             f"python scripts/render_examples.py {script.stem}"
        assert f"examples/{script.stem}\n" in toctree, f"{page.name} is not in the toctree of docs/examples.md"
        output = page.parent / script.stem / "output.txt"
        assert output.is_file() and output.read_text(encoding="utf-8").strip(), f"{output} missing or empty"
        for figure in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text):
            assert (page.parent / figure).is_file(), f"{page.name} shows {figure}, which is not committed"
