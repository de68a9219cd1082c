"""The layers of the one `pipespec` namespace, and the direction of their imports (DESIGN.md 4).

    cli, local  ->  airflow  ->  compiler  ->  schemas
                    airflow  ->  tasklib   ->  schemas

Read from the source with `ast` (no import needed): a module-level or function-level import of a
layer above its own fails here, as does any import of the old top-level names.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.support.paths import ROOT

# layer -> (folder, layers it may import besides itself)
LAYERS = {
    "schemas": (ROOT / "schemas", set()),
    "compiler": (ROOT / "pipespec" / "compiler", {"schemas"}),
    "tasklib": (ROOT / "tasklib", {"schemas"}),
    "airflow": (ROOT / "pipespec" / "airflow", {"schemas", "compiler", "tasklib"}),
    "local": (ROOT / "pipespec" / "local", {"schemas", "compiler", "tasklib", "airflow"}),
    "cli": (ROOT / "pipespec" / "cli.py", {"schemas", "compiler", "tasklib", "airflow", "local"}),
}
OLD_TOP_LEVEL = {"schemas", "tasklib", "renderer"}  # before one namespace; never again


def imported(path: Path, top_only: bool = False) -> set[str]:
    """Modules `path` imports (`from a import b` counts `a` and `a.b`); only module-level ones with `top_only`."""
    names = set()
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in tree.body if top_only else ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
            names |= {f"{node.module}.{alias.name}" for alias in node.names}
    return names


def files(where: Path) -> list[Path]:
    return [where] if where.is_file() else sorted(where.rglob("*.py"))


def layer_of(name: str) -> str | None:
    parts = name.split(".")
    if parts[0] != "pipespec" or len(parts) < 2:
        return None
    return parts[1] if parts[1] in LAYERS else None


@pytest.mark.parametrize("layer", LAYERS)
def test_imports_point_down(layer):
    where, allowed = LAYERS[layer]
    wrong = {f"{path.relative_to(ROOT)}: {name}" for path in files(where) for name in imported(path)
             if layer_of(name) not in (None, layer, *allowed)}
    assert not wrong, f"{layer} may import only {sorted(allowed) or 'itself'}"


@pytest.mark.parametrize("layer", ["schemas", "compiler"])
def test_spec_language_and_compiler_never_import_airflow_nor_load_heavy_libraries(layer):
    """`pipespec check` runs without Airflow. The filter language's Arrow translation (schemas.expressions)
    imports pyarrow inside the functions a step calls, never when the module loads."""
    where, _ = LAYERS[layer]
    heavy = {"tensorflow", "pyarrow", "mlflow", "anyscale", "anyscale_provider", "kubernetes"}
    wrong = {f"{path.relative_to(ROOT)}: {name}" for path in files(where) for name in imported(path)
             if name.split(".")[0] == "airflow"}
    wrong |= {f"{path.relative_to(ROOT)}: {name}" for path in files(where) for name in imported(path, top_only=True)
              if name.split(".")[0] in heavy}
    assert not wrong


def test_nothing_imports_the_old_top_level_names():
    everywhere = [p for top in ("pipespec", "schemas", "tasklib", "tests", "bench", "dags") for p in files(ROOT / top)]
    wrong = {f"{path.relative_to(ROOT)}: {name}" for path in everywhere for name in imported(path)
             if name.split(".")[0] in OLD_TOP_LEVEL}
    assert not wrong, "import the layers as pipespec.<layer>"
