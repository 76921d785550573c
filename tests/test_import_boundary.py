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


def test_importing_every_operator_module_loads_no_ray():
    modules = sorted(p.stem for p in (ROOT / "operators").glob("*.py") if p.stem != "__init__")
    code = "import sys\n" + "".join(f"import operators.{m}\n" for m in modules) + \
        "print('ray' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
