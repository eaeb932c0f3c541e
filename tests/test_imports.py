"""The library's import graph (read with ast, nothing executed): no cycles, no private names across modules, and the
library never imports the CLI or the plugins. Function-level imports count: they hide cycles, they do not remove them.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "ase_negnn"


def import_graph() -> tuple[dict[str, set[str]], list[tuple[str, str, str]]]:
    """``{module: modules it imports}`` over ``ase_negnn/*.py`` and the ``_private`` names imported across modules."""
    graph, private = {}, []
    for path in sorted(PACKAGE.glob("*.py")):
        module = path.stem
        deps = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets = []
            if isinstance(node, ast.ImportFrom):
                if node.level == 1:
                    base = node.module.split(".")[0] if node.module else None
                    # "from . import registry" imports the module registry
                    targets = [base] if base else [a.name for a in node.names]
                elif node.level == 0 and node.module and node.module.split(".")[0] == "ase_negnn":
                    parts = node.module.split(".")
                    targets = [parts[1]] if len(parts) > 1 else [a.name for a in node.names]
                if targets:
                    for alias in node.names:
                        if alias.name.startswith("_") and not alias.name.startswith("__"):
                            private.append((module, node.module or ".", alias.name))
            elif isinstance(node, ast.Import):
                targets = [a.name.split(".")[1] for a in node.names
                           if a.name.startswith("ase_negnn.") and len(a.name.split(".")) > 1]
            deps.update(t for t in targets if t != module)
        graph[module] = deps
    return graph, private


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node):
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_finder_sees_function_level_cycles():
    """The checker itself: a cycle through a function-level import is found."""
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_library_import_graph_has_no_cycle():
    graph, _ = import_graph()
    assert {"graph", "encoder", "models", "registry", "pretrained"} <= set(graph)
    assert find_cycle(graph) is None, f"import cycle: {' -> '.join(find_cycle(graph))}"


def test_no_private_name_is_imported_from_another_module():
    _, private = import_graph()
    assert private == [], private


def test_library_never_imports_the_cli_or_plugins():
    graph, _ = import_graph()
    for module, deps in graph.items():
        if module not in ("cli", "__main__"):
            assert "cli" not in deps and "plugins" not in deps, module


def test_code_runs_on_the_lowest_python_setup_py_allows():
    """vermin finds no construct newer than ``python_requires`` (the lower bound CI tests)."""
    import re
    import subprocess
    import sys

    setup = (PACKAGE.parent / "setup.py").read_text(encoding="utf-8")
    bound = re.search(r'python_requires=">=(3\.\d+)"', setup).group(1)
    assert sys.version_info[:2] >= tuple(int(v) for v in bound.split("."))
    vermin = str(Path(sys.executable).with_name("vermin"))
    proc = subprocess.run([vermin, "--no-tips", f"-t={bound}-", "--violations",
                           str(PACKAGE), str(PACKAGE.parent / "plugins")], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_descriptor_path_does_not_import_training_machinery(tmp_path):
    """SSMR of a structure, an encoder saved and reloaded with our loader, and ``ase-negnn embed``, each in a fresh
    process, never import Lightning, matgl or torch-geometric (matgl's ``__init__`` imports Lightning, PyG's imports
    torch._dynamo and its datasets: seconds of start-up each). Fails if the encoder goes back to subclassing matgl's
    ``IOMixIn`` or PyG's ``CGConv``, the inference path batches with PyG's ``Batch``, or the descriptor module imports
    models/training."""
    import json
    import subprocess
    import sys

    cifs = Path(__file__).resolve().parent / "data" / "cifs"
    script = f"""
import json, sys
from ase.build import bulk
from ase_negnn.descriptor import SSMR
from ase_negnn.encoder import CGCNNEncoder
x = SSMR(layers="0-2").create(bulk("Si", "diamond", 5.43))
CGCNNEncoder.load({str(Path(__file__).resolve().parents[1] / "ase_negnn" / "pretrained" / "default")!r})
from ase_negnn.cli import cli
try:
    cli(["embed", {str(cifs)!r}, "--out", {str(tmp_path / "emb.npy")!r}, "--no-progress"], standalone_mode=False)
finally:
    print(json.dumps({{m: m in sys.modules for m in ("lightning", "pytorch_lightning", "matgl", "torch_geometric")}}))
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert (tmp_path / "emb.npy").is_file()
    loaded = json.loads(out.stdout.strip().splitlines()[-1])
    assert loaded == {"lightning": False, "pytorch_lightning": False, "matgl": False, "torch_geometric": False}, loaded
