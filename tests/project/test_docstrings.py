"""Every public module-level function and class in the product has a one-line docstring (issue 11).

Read from the source with `ast` (no import needed). Public means a name without a leading
underscore, defined at the top of a module. For a pydantic model the docstring is also the
JSON Schema `description` and the reference's text, so it is not optional there either.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.support.paths import ROOT

PACKAGES = [
    ROOT / "schemas",
    ROOT / "pipespec" / "compiler",
    ROOT / "pipespec" / "airflow",
    ROOT / "pipespec" / "local",
    ROOT / "pipespec" / "cli.py",
    ROOT / "tasklib",
]


def modules() -> list[Path]:
    """The product's Python files in the packages above, sorted."""
    out: list[Path] = []
    for place in PACKAGES:
        out += [place] if place.is_file() else sorted(place.rglob("*.py"))
    return out


def undocumented(path: Path) -> list[str]:
    """`file:line name` for each public module-level function or class in `path` without a docstring."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    shown = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
    return [f"{shown}:{node.lineno} {node.name}"
            for node in tree.body
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
            and not node.name.startswith("_")
            and not (ast.get_docstring(node) or "").strip()]


def test_the_packages_are_there() -> None:
    # A moved package would otherwise make the check below pass over nothing.
    assert all(place.exists() for place in PACKAGES)
    assert len(modules()) > 50


def test_undocumented_is_found(tmp_path: Path) -> None:
    source = tmp_path / "probe.py"
    source.write_text('def shown():\n    pass\n\n\ndef _hidden():\n    pass\n\n\nclass Told:\n    """Says."""\n',
                      encoding="utf-8")
    assert [line.split()[-1] for line in undocumented(source)] == ["shown"]


@pytest.mark.parametrize("path", modules(), ids=lambda p: str(p.relative_to(ROOT)))
def test_public_names_have_docstrings(path: Path) -> None:
    missing = undocumented(path)
    assert not missing, "public names without a docstring:\n" + "\n".join(missing)
