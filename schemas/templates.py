"""`extends:` — specs inherit from templates: the team's under `templates/`, or pipespec's shipped ones.

- `extends: templates/base.yaml` names a team template, a file under the `templates/` directory
  beside the specs; a team template can itself extend a shipped one.
- `extends: pipespec:tabular@1` names version 1 of the shipped template `tabular` (list them with
  `pipespec templates`). A released version never changes: a new version is a new file, so a spec
  compiles the same until it changes its pin. The version is required: an unpinned name would let
  a pipespec upgrade change what a spec compiles to without a line of the spec changing.

Merge rules (also in the README):
- mappings merge key by key, the extending file wins;
- scalars and lists are replaced as a whole;
- `key+: [...]` appends to the inherited list instead (`tags+: [nlp]`);
- `key: null` removes an inherited key (`inference: null`).
Several parents merge left to right, then the spec on top. Every merged value
keeps the `Loc` of the file that supplied it, so errors point into templates,
shipped ones included (the installed file's path).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from pipespec.schemas.diagnostics import Diagnostic, Loc, SpecError
from pipespec.schemas import shipped
from pipespec.schemas.discover import TEMPLATES_DIR, escapes, templates_home, within
from pipespec.schemas.yamlload import Node, load_file

# Bounds on the template graph of one spec. Real hierarchies are two or three levels of one or two
# parents; each template is resolved once per spec, so the work is at most MAX_TEMPLATES * MAX_PARENTS merges.
MAX_DEPTH = 8  # templates stacked above a spec
MAX_PARENTS = 8  # entries in one `extends` list
MAX_TEMPLATES = 64  # distinct templates one spec reads


def resolve(node: Node, file: Path, display: Callable[[Path], str]) -> tuple[Node, list[Path]]:
    """Merge `node` over its parents; returns the merged tree and every file it read, each once."""
    if node.value.get("extends") is None:
        return node, [file]
    home = templates_home(file)
    resolver = _Resolver(display, home)
    merged, files, _ = resolver.resolve(node, file.resolve(), ())
    return merged, [file, *files[1:]]


class _Resolver:
    """One spec's `extends` graph. Each template is merged once and reused (a diamond or a repeated
    parent would otherwise be re-resolved once per path: 5 levels of 25 parents took 24 s, 6 about 10 min)."""

    def __init__(self, display: Callable[[Path], str], home: Path | None):
        self.display, self.home = display, home
        self.done: dict[Path, tuple[Node, list[Path], int]] = {}  # template -> merged, files, height
        self.loaded = 0

    def resolve(self, node: Node, file: Path, chain: tuple[Path, ...]) -> tuple[Node, list[Path], int]:
        """`file` is a real path; `chain` the files below it. Returns the tree, files read, and height."""
        extends = node.value.get("extends")
        if extends is None:
            return node, [file], 0
        own = Node({k: v for k, v in node.value.items() if k != "extends"}, node.loc, node.key_loc)
        merged: Node | None = None
        files, height = {file: None}, 0  # a dict: ordered and without repeats
        for entry, parent_file in self._parents(extends, file):
            if parent_file in chain or parent_file == file:
                trail = (*chain, file)
                cycle = " → ".join(_label(p) for p in (*trail[trail.index(parent_file):], parent_file))
                raise _at(entry.loc, f"`extends` makes a cycle: {cycle}",
                          "a template cannot extend itself, directly or not")
            parent, parent_files, parent_height = self._template(entry, parent_file, (*chain, file))
            if len(chain) + 1 + parent_height > MAX_DEPTH:  # a template reused here sits deeper than before
                raise _too_deep(entry.loc)
            files.update(dict.fromkeys(parent_files))
            height = max(height, parent_height + 1)
            merged = parent if merged is None else merge(merged, parent)
        files_read = list(files)
        if merged is None:  # `extends: []`
            return own, files_read, height
        return merge(merged, own), files_read, height

    def _parents(self, extends: Node, file: Path) -> list[tuple[Node, Path]]:
        """Each entry with its template, refusing repeats and long lists before anything is read."""
        entries = extends.value if isinstance(extends.value, list) else [extends]
        seen: dict[Path, Node] = {}
        for entry in entries:
            target = self._target(entry, file)
            if target in seen:
                raise _at(entry.loc, f"`{entry.value}` is listed more than once in `extends`",
                          "list each template once; a repeat adds nothing")
            seen[target] = entry
            if len(seen) > MAX_PARENTS:
                raise _at(extends.loc, f"`extends` lists more than {MAX_PARENTS} templates; at most {MAX_PARENTS} "
                          "are allowed", "combine templates into fewer, larger ones")
        return [(entry, target) for target, entry in seen.items()]

    def _template(self, entry: Node, path: Path, chain: tuple[Path, ...]) -> tuple[Node, list[Path], int]:
        if path not in self.done:
            if len(chain) > MAX_DEPTH:  # `chain` ends with the file that extends `path`: its level
                raise _too_deep(entry.loc)
            self.loaded += 1
            if self.loaded > MAX_TEMPLATES:
                raise _at(entry.loc, f"this spec reads more than {MAX_TEMPLATES} templates through `extends`",
                          "combine templates into fewer, larger ones")
            parent = _load_template(path, self.display(path))
            if not isinstance(parent.value, dict):  # pragma: no cover - load_file guarantees a mapping
                raise _at(entry.loc, "template is not a mapping", "")
            self.done[path] = self.resolve(parent, path, chain)
        return self.done[path]

    def _target(self, entry: Node, file: Path) -> Path:
        """The real path of the template `entry` names: a shipped one in the package's templates
        directory, or a team one lexically under `templates/` and really inside the spec tree
        (no symlink out of it, at any level)."""
        if not isinstance(entry.value, str) or not entry.value.strip():
            raise _at(entry.loc, "`extends` takes a template path or a list of them",
                      "for example `extends: templates/text_classifier.yaml` or `extends: pipespec:tabular@1`")
        # The OS refuses these while resolving (NUL, names over NAME_MAX): say so, never crash.
        if any(ord(c) < 32 for c in entry.value) or any(len(part.encode()) > 255 for part in entry.value.split("/")):
            raise _at(entry.loc, "this `extends` path has control characters or a name over 255 bytes",
                      "name a template file under `templates/`, e.g. `extends: templates/base.yaml`")
        if shipped.is_ref(entry.value):
            return _shipped_target(entry)
        if shipped.is_shipped(file):  # a released template must not depend on what a repository holds
            raise _at(entry.loc, "a shipped template can extend only shipped templates (`pipespec:<name>@<version>`)",
                      "this is a pipespec bug, please report it")
        if self.home is None:
            raise _at(entry.loc, f"no `{TEMPLATES_DIR}/` directory found above {file.name}",
                      f"put templates in a `{TEMPLATES_DIR}/` directory next to the specs")
        root = self.home / TEMPLATES_DIR
        if not within(root, self.home):  # before anything under it is listed or read
            raise SpecError(escapes(entry.loc.file, entry.loc.line, entry.loc.col, f"`{TEMPLATES_DIR}/`",
                                    self.home.name, code="extends"))
        written = Path(os.path.normpath(file.parent / entry.value))
        if not (written.is_relative_to(root) or written.is_relative_to(root.resolve())):
            raise _at(entry.loc, f"`{entry.value}` is outside {TEMPLATES_DIR}/",
                      f"templates must live under `{TEMPLATES_DIR}/`, e.g. `extends: templates/base.yaml`")
        if not within(written, self.home):
            raise SpecError(escapes(entry.loc.file, entry.loc.line, entry.loc.col, f"`{entry.value}`",
                                    self.home.name, code="extends"))
        candidate = written.resolve()
        if not candidate.is_file():
            available = sorted(p.relative_to(self.home).as_posix() for p in root.glob("*.y*ml"))
            raise _at(entry.loc, f"template `{entry.value}` not found",
                      f"available: {', '.join(available)}" if available else "create the template first")
        return candidate


def _shipped_target(entry: Node) -> Path:
    """The real path of the shipped template `entry` names; it must really be in the package."""
    try:
        found = shipped.lookup(entry.value)
    except shipped.TemplateRefError as exc:
        raise _at(entry.loc, exc.message, exc.hint) from None
    root = shipped.shipped_root().resolve()
    if not within(found.path, root):  # a symlink planted in the package must not lead elsewhere
        raise SpecError(escapes(entry.loc.file, entry.loc.line, entry.loc.col, f"`{entry.value}`",
                                f"pipespec/{shipped.PACKAGE_DIR}", code="extends"))
    return found.path.resolve()


def _label(path: Path) -> str:
    """How a template is named in a message: shipped ones by reference (all are called v<N>.yaml)."""
    if shipped.is_shipped(path) and path.parent.parent == shipped.shipped_root().resolve():
        return f"{shipped.PREFIX}{path.parent.name}@{path.stem.removeprefix('v')}"
    return path.name


# Templates are shared by many specs: parse each once. One entry per template (its latest version),
# so a long-lived dag-processor does not keep every version it has ever seen.
_parsed: dict[tuple[str, str], tuple[tuple[int, int], Node]] = {}


def _load_template(path: Path, display: str) -> Node:
    stat = path.stat()
    key, version = (str(path), display), (stat.st_mtime_ns, stat.st_size)
    cached = _parsed.get(key)
    if cached is None or cached[0] != version:
        cached = _parsed[key] = (version, load_file(path, display))  # merging never mutates cached trees
    return cached[1]


def _too_deep(loc: Loc) -> SpecError:
    return _at(loc, f"`extends` nests too deep: more than {MAX_DEPTH} levels of templates",
               "flatten the templates: extend fewer layers")


def merge(base: Node, over: Node) -> Node:
    """`over` on top of `base`: mappings merge key by key, `key+:` appends, `key: null` removes, the rest replaces."""
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
