"""Sphinx configuration for the ase-negnn API reference.

Build (warnings are errors; no network needed)::

    python -m sphinx -W --keep-going -b html docs docs/_build/html
"""

from __future__ import annotations

import ase_negnn

project = "ase-negnn"
author = "ase-negnn contributors"
copyright = "ase-negnn contributors"
release = ase_negnn.__version__
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx.ext.viewcode",
    "sphinx_click",
    "myst_parser",
]

# The user guide, results, robustness, design and examples pages are Markdown (MyST), shared with GitHub's rendering:
# their links to files outside docs/ (benchmark reports, scripts) are plain relative links, not Sphinx documents.
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
myst_heading_anchors = 3
suppress_warnings = ["myst.xref_missing"]

# No intersphinx: the build must work offline (CI reaches only the package registries).

# Objects are listed explicitly in api.rst; autosummary only renders summary tables, it writes no stub files.
autosummary_generate = False

autodoc_default_options = {
    "show-inheritance": True,
}
autodoc_member_order = "bysource"
autodoc_typehints = "signature"
# Methods overriding Lightning / torch / scikit-learn hooks without a docstring of their own are left out rather than
# shown with the base class's text (written for those projects' own Sphinx setups).
autodoc_inherit_docstrings = False
# Optional dependencies that are absent are handled in the code itself (adapters.py falls back when matminer is
# missing), so nothing is mocked.
autodoc_mock_imports: list[str] = []

napoleon_google_docstring = False
napoleon_numpy_docstring = True
napoleon_use_rtype = False

exclude_patterns = ["_build"]
templates_path: list[str] = []

html_theme = "furo"
html_title = f"ase-negnn {release}"
html_static_path: list[str] = []
smartquotes = False  # keep "--option" and quotes as written (CLI examples are copied from here)


# Constants and attributes are documented with plain ``#:`` comments, not numpy sections. napoleon would read a
# first line such as "Group classes: 0 = f-block, ..." as "type: description", so their text is kept verbatim.
_VERBATIM = {"data", "attribute", "property"}
_verbatim_lines: dict[str, list[str]] = {}


def _before_napoleon(app, what, name, obj, options, lines):
    if what not in _VERBATIM:
        return
    # A constant without a ``#:`` comment would show its type's docstring (``str``, ``tuple``, ...): drop it.
    type_doc = (type(obj).__doc__ or "").strip()
    if lines and type_doc and lines[0].strip() == type_doc.splitlines()[0].strip():
        lines[:] = []
    _verbatim_lines[name] = list(lines)


def _after_napoleon(app, what, name, obj, options, lines):
    if what in _VERBATIM and name in _verbatim_lines:
        lines[:] = _verbatim_lines.pop(name)


def setup(app):
    # napoleon's handler has the default priority, 500; lower numbers run first.
    app.connect("autodoc-process-docstring", _before_napoleon, priority=100)
    app.connect("autodoc-process-docstring", _after_napoleon, priority=900)
