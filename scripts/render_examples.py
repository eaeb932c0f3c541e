"""Run every example in full mode and write its documentation page from what it really printed and drew.

Usage: python scripts/render_examples.py [NAME ...]      (default: every examples/*.py except _common.py)

For each example ``examples/NAME.py`` this runs ``main(out_dir)`` in a fresh process (full mode, never
``ASE_NEGNN_QUICK``), in one shared output folder and in file order (``04_phonons`` reuses the potential that
``03_calculator_relax_screen`` trained, as when a user runs them in turn), then writes

- ``docs/examples/NAME/output.txt``: everything it printed (stdout and stderr, in order), output paths made
  relative;
- ``docs/examples/NAME/*.png``: every figure it wrote;
- ``docs/examples/NAME.md``: the page (what the example shows, the script, its output, its figures), stamped with
  the date, wall time and the sha256 of the script that produced it.

The examples are too slow to run in the documentation build, so the pages are rendered from this committed output;
``tests/test_docs.py`` fails when an example changes without being rendered again (the stamp no longer matches).
"""

from __future__ import annotations

import ast
import datetime as dt
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
DOCS = ROOT / "docs" / "examples"
RUNNER = """
import inspect, runpy, sys
from pathlib import Path
main = runpy.run_path(sys.argv[1])["main"]
main(Path(sys.argv[2]), **({"quick": False} if "quick" in inspect.signature(main).parameters else {}))
"""


def example_scripts(names=()) -> list[Path]:
    scripts = sorted(p for p in EXAMPLES.glob("*.py") if not p.name.startswith("_"))
    if names:
        wanted = {Path(n).stem for n in names}
        unknown = wanted - {p.stem for p in scripts}
        if unknown:
            sys.exit(f"no such example: {', '.join(sorted(unknown))} (have {', '.join(p.stem for p in scripts)})")
        scripts = [p for p in scripts if p.stem in wanted]
    return scripts


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def summary(script: Path) -> str:
    """The first paragraph of the example's docstring (what it shows)."""
    doc = ast.get_docstring(ast.parse(script.read_text(encoding="utf-8"))) or ""
    return doc.split("\n\n")[0].replace("\n", " ").strip()


def write_text(path: Path, text: str) -> None:
    """Written to a temporary file and renamed over ``path`` (``ase_negnn.io.atomic_open``): never half a page."""
    from ase_negnn.io import atomic_open

    with atomic_open(path, "w", encoding="utf-8") as fh:
        fh.write(text)


def render(script: Path, out_dir: Path) -> None:
    before = {p: p.stat().st_mtime_ns for p in out_dir.rglob("*.png")}
    env = {k: v for k, v in os.environ.items() if k != "ASE_NEGNN_QUICK"}
    env.update(MPLBACKEND="Agg", PYTHONUNBUFFERED="1")  # unbuffered: printed lines and warnings in their order
    t0 = time.perf_counter()
    run = subprocess.run([sys.executable, "-c", RUNNER, str(script), str(out_dir)], cwd=ROOT, env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    wall = time.perf_counter() - t0
    text = run.stdout.replace(str(out_dir), "output").replace(str(ROOT) + "/", "")
    if run.returncode != 0:
        sys.exit(f"{script.name} failed (exit {run.returncode}); nothing written for it:\n{text[-3000:]}")
    figures = sorted(p for p in out_dir.rglob("*.png") if before.get(p) != p.stat().st_mtime_ns)
    page_dir = DOCS / script.stem
    if page_dir.exists():
        shutil.rmtree(page_dir)
    page_dir.mkdir(parents=True)
    write_text(page_dir / "output.txt", text if text.endswith("\n") else text + "\n")
    names = []
    for fig in figures:
        name = fig.relative_to(out_dir).as_posix().replace("/", "_")
        shutil.copyfile(fig, page_dir / name)
        names.append(name)
    stamp = dt.datetime.now().astimezone().isoformat(timespec="seconds")
    lines = [
        f"# `{script.name}`",
        "",
        summary(script),
        "",
        f"Rendered by `python scripts/render_examples.py {script.stem}` on {stamp} (full mode, wall time "
        f"{wall:.0f} s on a 2-core CPU); script sha256 `{sha256(script)}`.",
        "",
        "## Script",
        "",
        f"```{{literalinclude}} ../../examples/{script.name}",
        ":language: python",
        "```",
        "",
        "## Output",
        "",
        f"```{{literalinclude}} {script.stem}/output.txt",
        ":language: text",
        "```",
    ]
    if names:
        lines += ["", "## Figures", ""]
        lines += [f"![{name}]({script.stem}/{name})" + "\n" for name in names]
    write_text(DOCS / f"{script.stem}.md", "\n".join(lines).rstrip("\n") + "\n")
    print(f"{script.name}: {wall:.0f} s, {len(names)} figure(s) -> {DOCS / script.stem}.md", flush=True)


def main(argv=None) -> None:
    names = sys.argv[1:] if argv is None else argv
    DOCS.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="ase-negnn-examples-") as tmp:
        for script in example_scripts(names):
            render(script, Path(tmp))


if __name__ == "__main__":
    main()
