"""Imports point one way: pipelines -> indexers -> operators; nothing in operators imports Ray."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FORBIDDEN = {
    "operators": {"ray", "indexers", "pipelines"},
    "indexers": {"ray", "pipelines"},
}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_imports_only_point_down(package):
    offenders = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        bad = _imports(path) & FORBIDDEN[package]
        if bad:
            offenders[str(path.relative_to(ROOT))] = sorted(bad)
    assert offenders == {}, f"upward or Ray imports: {offenders}"


def test_the_walker_sees_imports(tmp_path):
    # The check above must be able to fail: a planted Ray import is found.
    planted = tmp_path / "m.py"
    planted.write_text("import os\nfrom ray.util import ActorPool\nif True:\n    import indexers.store\n")
    assert {"ray", "indexers"} <= _imports(planted)


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def test_importing_every_operator_module_loads_no_ray():
    modules = sorted(module_name(p) for p in (ROOT / "operators").rglob("*.py"))
    assert "operators.media.decode" in modules and "operators.models.visual" in modules  # the walk goes down
    code = "import sys\n" + "".join(f"import {m}\n" for m in modules) + "print('ray' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def project_imports() -> dict[str, set[str]]:
    """Each project module -> the project modules it imports, anywhere in it (lazy imports too)."""
    modules = {module_name(p): p for package in ("operators", "indexers", "pipelines") for p in (ROOT / package).rglob("*.py")}
    graph = {}
    for name, path in modules.items():
        found = set()
        tree = ast.parse(path.read_text())
        typing_only = {id(n) for block in ast.walk(tree) if isinstance(block, ast.If)
                       and getattr(block.test, "id", None) == "TYPE_CHECKING" for n in ast.walk(block)}
        for node in ast.walk(tree):
            if id(node) in typing_only:  # for annotations only: never imported when the code runs
                continue
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                continue
            found |= {t for t in targets if t in modules and t != name}
        graph[name] = found
    return graph


def test_no_import_cycles():
    # Issue 10: vlm <-> its backends and cli <-> demo imported each other (lazily, so it ran, but
    # neither could be read or tested without the other). A package imports its own __init__:
    # those edges are no cycle of modules.
    graph = project_imports()
    assert graph["pipelines.cli"] and graph["operators.models.vlm"]  # the walk sees imports
    cycles, state = [], {}

    def visit(node, path):
        state[node] = "open"
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                cycles.append(path[path.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = "done"

    for start in sorted(graph):
        if start not in state:
            visit(start, [start])
    assert cycles == [], f"import cycles: {cycles}"
