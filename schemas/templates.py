"""`extends:` — specs inherit from templates under `templates/`.

Merge rules (also in the README):
- mappings merge key by key, the extending file wins;
- scalars and lists are replaced as a whole;
- `key+: [...]` appends to the inherited list instead (`tags+: [nlp]`);
- `key: null` removes an inherited key (`inference: null`).
Several parents merge left to right, then the spec on top. Every merged value
keeps the `Loc` of the file that supplied it, so errors point into templates.
"""

from __future__ import annotations

from pathlib import Path

from .diagnostics import Diagnostic, Loc, SpecError
from .yamlload import Node, load_file

TEMPLATES_DIR = "templates"


def resolve(node: Node, file: Path, display, chain: tuple[Path, ...] = ()) -> tuple[Node, list[Path]]:
    """Merge `node` over its parents; returns the merged tree and every file it read."""
    extends = node.value.get("extends")
    if extends is None:
        return node, [file]
    entries = extends.value if isinstance(extends.value, list) else [extends]
    own = Node({k: v for k, v in node.value.items() if k != "extends"}, node.loc, node.key_loc)
    merged: Node | None = None
    files = [file]
    for entry in entries:
        parent_file = _target(entry, file)
        if parent_file in chain or parent_file == file:
            trail = (*chain, file)
            cycle = " → ".join(p.name for p in (*trail[trail.index(parent_file):], parent_file))
            raise _at(entry.loc, f"`extends` makes a cycle: {cycle}", "a template cannot extend itself, directly or not")
        parent = _load_template(parent_file, display(parent_file))
        if not isinstance(parent.value, dict):  # pragma: no cover - load_file guarantees a mapping
            raise _at(entry.loc, "template is not a mapping", "")
        parent, parent_files = resolve(parent, parent_file, display, (*chain, file))
        files += parent_files
        merged = parent if merged is None else merge(merged, parent)
    if merged is None:  # `extends: []`
        return own, files
    return merge(merged, own), files


_parsed: dict[tuple, Node] = {}  # templates are shared by many specs: parse each version once


def _load_template(path: Path, display: str) -> Node:
    stat = path.stat()
    key = (str(path), display, stat.st_mtime_ns, stat.st_size)
    if key not in _parsed:
        _parsed[key] = load_file(path, display)  # merging builds new nodes; cached trees are never mutated
    return _parsed[key]


def _target(entry: Node, file: Path) -> Path:
    if not isinstance(entry.value, str) or not entry.value.strip():
        raise _at(entry.loc, "`extends` takes a template path or a list of them",
                  "for example `extends: templates/text_classifier.yaml`")
    root = _templates_root(file)
    if root is None:
        raise _at(entry.loc, f"no `{TEMPLATES_DIR}/` directory found above {file.name}",
                  f"put templates in a `{TEMPLATES_DIR}/` directory next to the specs")
    candidate = (file.parent / entry.value).resolve()
    if not candidate.is_relative_to(root):
        raise _at(entry.loc, f"`{entry.value}` is outside {root.name}/",
                  f"templates must live under `{TEMPLATES_DIR}/`, e.g. `extends: templates/base.yaml`")
    if not candidate.is_file():
        available = sorted(p.relative_to(root.parent).as_posix() for p in root.glob("*.y*ml"))
        raise _at(entry.loc, f"template `{entry.value}` not found",
                  f"available: {', '.join(available)}" if available else "create the template first")
    return candidate


def _templates_root(file: Path) -> Path | None:
    for directory in file.resolve().parents:
        if directory.name == TEMPLATES_DIR:
            return directory
        if (directory / TEMPLATES_DIR).is_dir():
            return (directory / TEMPLATES_DIR).resolve()  # a symlinked templates/ is common in monorepos
    return None


def merge(base: Node, over: Node) -> Node:
    if not (isinstance(base.value, dict) and isinstance(over.value, dict)):
        return over
    out = dict(base.value)
    for key, value in over.value.items():
        if key.endswith("+"):
            name = key[:-1]
            inherited = out.get(name)
            if inherited is not None and isinstance(inherited.value, list) and isinstance(value.value, list):
                value = Node(inherited.value + value.value, value.loc, value.key_loc)
            out[name] = value
        elif value.value is None:
            out.pop(key, None)
        elif key in out:
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return Node(out, over.loc, over.key_loc)


def _at(loc: Loc, message: str, hint: str) -> SpecError:
    return SpecError(Diagnostic(loc.file, loc.line, loc.col, "extends", message, hint, code="extends"))
