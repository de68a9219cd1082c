"""Safe YAML loading that remembers where every value came from.

YAML is data here: only the plain JSON-like tags are accepted (no Python tags,
no custom tags, no merge keys), booleans follow YAML 1.2 (`on`/`no` stay
strings, so `alerts: [{on: ...}]` and country codes behave), dates stay
strings, and the document is bounded in bytes, depth and expanded size so a
hostile file (billion laughs, deep nesting, recursive aliases) fails fast
with a diagnostic instead of a hang or a traceback.

The result is a tree of `Node`s, each with its `Loc`, so any later error
(pydantic, semantic, template merge) can point at the line that supplied
the value, even when that line lives in a template.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from .diagnostics import Diagnostic, Loc, SpecError

MAX_BYTES = 1024 * 1024
MAX_NODES = 100_000  # after alias expansion
MAX_DEPTH = 64

_BaseLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _SpecLoader(_BaseLoader):  # type: ignore[misc, valid-type]
    """Resolver with YAML 1.2 core-schema scalars; composing only, never constructing."""

    yaml_implicit_resolvers: dict = {}


def _resolver(tag: str, pattern: str, first: str | list[str]) -> None:
    _SpecLoader.add_implicit_resolver(tag, re.compile(pattern, re.X), list(first))


_resolver("tag:yaml.org,2002:bool", r"^(?:true|True|TRUE|false|False|FALSE)$", "tTfF")
_resolver("tag:yaml.org,2002:int", r"^[-+]?(?:0|[1-9][0-9_]*)$", "-+0123456789")
_resolver(
    "tag:yaml.org,2002:float",
    r"""^(?:[-+]?(?:[0-9][0-9_]*)?\.[0-9_]+(?:[eE][-+]?[0-9]+)?
         |[-+]?[0-9][0-9_]*(?:\.[0-9_]*)?[eE][-+]?[0-9]+
         |[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$""",
    "-+0123456789.",
)
_resolver("tag:yaml.org,2002:null", r"^(?:~|null|Null|NULL|)$", ["~", "n", "N", ""])
_resolver("tag:yaml.org,2002:merge", r"^<<$", "<")

_TAG = "tag:yaml.org,2002:"
_SCALAR_TAGS = {f"{_TAG}{t}" for t in ("str", "int", "float", "bool", "null")}


@dataclass(slots=True)
class Node:
    """A YAML value with its position; mappings hold Nodes, keyed by str."""

    value: Any
    loc: Loc
    key_loc: Loc | None = None  # for mapping values: where the key is written

    def to_plain(self) -> Any:
        if isinstance(self.value, dict):
            return {k: v.to_plain() for k, v in self.value.items()}
        if isinstance(self.value, list):
            return [v.to_plain() for v in self.value]
        return self.value


def load_file(path: Path, display: str | None = None, max_bytes: int = MAX_BYTES) -> Node:
    """Load one spec file into a `Node` tree or raise `SpecError`."""
    name = display or str(path)
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise _error(name, 1, 1, f"file is {size:,} bytes; specs are limited to {max_bytes:,} bytes",
                         "split the pipeline, or move data out of the spec and reference it by URI")
        raw = path.read_bytes()
    except OSError as exc:
        raise _error(name, 1, 1, f"cannot read file: {exc.strerror or exc}", "check the path and permissions") from None
    return load_bytes(raw, name, max_bytes)


def load_bytes(raw: bytes, name: str, max_bytes: int = MAX_BYTES) -> Node:
    if len(raw) > max_bytes:
        raise _error(name, 1, 1, f"file is {len(raw):,} bytes; specs are limited to {max_bytes:,} bytes",
                     "split the pipeline, or move data out of the spec and reference it by URI")
    if b"\x00" in raw:
        line, col = _line_col(raw, raw.index(b"\x00"))
        raise _error(name, line, col, "file contains NUL bytes: it looks binary, not YAML",
                     "pipespec specs are UTF-8 text files")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line, col = _line_col(raw, exc.start)
        raise _error(name, line, col, f"file is not valid UTF-8 (byte 0x{raw[exc.start]:02x})",
                     "save the file as UTF-8") from None
    return load_text(text.removeprefix("\ufeff"), name)


def load_text(text: str, name: str) -> Node:
    loader = _SpecLoader(text)
    try:
        root = _single_document(loader, name)
    except yaml.YAMLError as exc:
        raise _syntax_error(exc, name, text) from None
    except RecursionError:
        raise _error(name, 1, 1, f"document is nested too deeply (limit {MAX_DEPTH} levels)",
                     "flatten the structure") from None
    finally:
        loader.dispose()
    if root is None:
        raise _error(name, 1, 1, "the file is empty", "a spec is a mapping that starts with `pipeline: <name>`")
    node = _Converter(name).convert(root, 0)
    if not isinstance(node.value, dict):
        kind = "a list" if isinstance(node.value, list) else "a single value"
        raise _error(name, node.loc.line, node.loc.col, f"a spec must be a mapping, but this document is {kind}",
                     "start the file with `pipeline: <name>`")
    return node


def _single_document(loader: Any, name: str) -> yaml.Node | None:
    if not loader.check_node():
        return None
    root = loader.get_node()
    if loader.check_node():
        mark = loader.peek_event().start_mark
        raise _error(name, mark.line + 1, mark.column + 1, "the file holds more than one YAML document",
                     "one spec per file: remove the `---` separator or split the file")
    return root


class _Converter:
    """Turns composed YAML nodes into `Node`s, enforcing the data-only rules."""

    def __init__(self, name: str):
        self.name = name
        self.count = 0
        self.active: set[int] = set()  # node ids on the current path, to catch recursive aliases

    def convert(self, ynode: yaml.Node, depth: int) -> Node:
        loc = Loc(self.name, ynode.start_mark.line + 1, ynode.start_mark.column + 1)
        self.count += 1
        if self.count > MAX_NODES:
            raise _error(self.name, loc.line, loc.col,
                         f"document expands to more than {MAX_NODES:,} values (an alias bomb?)",
                         "avoid deeply repeated `*alias` references")
        if depth > MAX_DEPTH:
            raise _error(self.name, loc.line, loc.col, f"document is nested too deeply (limit {MAX_DEPTH} levels)",
                         "flatten the structure")
        if id(ynode) in self.active:
            raise _error(self.name, loc.line, loc.col, "recursive alias: a value contains itself",
                         "anchors may be reused, not nested inside themselves")
        self.active.add(id(ynode))
        try:
            if isinstance(ynode, yaml.MappingNode):
                return Node(self._mapping(ynode, depth), loc)
            if isinstance(ynode, yaml.SequenceNode):
                self._check_tag(ynode, f"{_TAG}seq", loc)
                return Node([self.convert(item, depth + 1) for item in ynode.value], loc)
            return Node(self._scalar(ynode, loc), loc)
        finally:
            self.active.discard(id(ynode))

    def _mapping(self, ynode: yaml.MappingNode, depth: int) -> dict[str, Node]:
        self._check_tag(ynode, f"{_TAG}map", Loc(self.name, ynode.start_mark.line + 1, ynode.start_mark.column + 1))
        out: dict[str, Node] = {}
        for key_node, value_node in ynode.value:
            key_loc = Loc(self.name, key_node.start_mark.line + 1, key_node.start_mark.column + 1)
            if key_node.tag == f"{_TAG}merge":
                raise _error(self.name, key_loc.line, key_loc.col, "YAML merge keys (`<<`) are not supported",
                             "use `extends:` to inherit from a template, or repeat the keys")
            if not isinstance(key_node, yaml.ScalarNode):
                raise _error(self.name, key_loc.line, key_loc.col, "mapping keys must be plain strings",
                             "write the key as a single word such as `name:`")
            key = key_node.value  # raw text: `on`, `1`, `null` are keys as written
            if key in out:
                first = out[key].key_loc
                raise _error(self.name, key_loc.line, key_loc.col,
                             f"duplicate key `{key}` (first defined on line {first.line if first else '?'})",
                             "remove one of them; YAML would silently keep only the last")
            value = self.convert(value_node, depth + 1)
            value.key_loc = key_loc
            out[key] = value
        return out

    def _scalar(self, ynode: yaml.ScalarNode, loc: Loc) -> Any:
        tag, text = ynode.tag, ynode.value
        if tag not in _SCALAR_TAGS:
            raise _error(self.name, loc.line, loc.col, f"YAML tag `{_short_tag(tag)}` is not allowed",
                         "specs are plain data: remove the tag (`!!python/...` and custom `!tags` never run)")
        if tag == f"{_TAG}str":
            return text
        if tag == f"{_TAG}null":
            return None
        if tag == f"{_TAG}bool":
            return text.lower() == "true"
        try:
            if tag == f"{_TAG}int":
                return int(text.replace("_", ""), 0) if text.lower().startswith(("0x", "0o")) else int(text.replace("_", ""))
            lowered = text.lower()
            if lowered.endswith(".inf"):
                return -math.inf if lowered.startswith("-") else math.inf
            if lowered == ".nan":
                return math.nan
            return float(text.replace("_", ""))
        except ValueError:
            raise _error(self.name, loc.line, loc.col, f"`{text}` is not a valid {_short_tag(tag)}",
                         "quote it to keep it as a string") from None

    def _check_tag(self, ynode: yaml.Node, expected: str, loc: Loc) -> None:
        if ynode.tag != expected:
            raise _error(self.name, loc.line, loc.col, f"YAML tag `{_short_tag(ynode.tag)}` is not allowed",
                         "specs are plain data: remove the tag")


def _short_tag(tag: str) -> str:
    return "!!" + tag[len(_TAG):] if tag.startswith(_TAG) else tag


def _error(name: str, line: int, col: int, message: str, hint: str) -> SpecError:
    return SpecError(Diagnostic(name, line, col, "", message, hint, code="yaml"))


_SYNTAX_HINTS = [
    ("cannot start any token", "YAML forbids tab characters for indentation; indent with spaces"),
    ("tab character", "YAML forbids tab characters for indentation; indent with spaces"),
    ("expected ',' or ']'", "a `[` list is not closed with `]`"),
    ("expected ',' or '}'", "a `{` mapping is not closed with `}`"),
    ("mapping values are not allowed", "a `:` inside a value needs quotes, or the indentation is off"),
    ("could not find expected ':'", "a key is missing its `:`, or a quoted string is not closed"),
    ("found undefined alias", "every `*alias` needs an `&anchor` defined earlier in the file"),
    ("did not find expected key", "check the indentation of this block"),
    ("expected <block end>", "check the indentation of this block"),
    ("found unexpected end of stream", "a quote or bracket is not closed"),
]


def _syntax_error(exc: yaml.YAMLError, name: str, text: str) -> SpecError:
    if isinstance(exc, SpecError):  # pragma: no cover - raised directly, never wrapped
        return exc
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context or "invalid YAML"
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
    else:
        position = getattr(exc, "position", 0) or 0
        line = text.count("\n", 0, position) + 1
        col = position - (text.rfind("\n", 0, position) + 1) + 1
        problem = getattr(exc, "reason", None) or str(exc).splitlines()[0]
    hint = next((h for needle, h in _SYNTAX_HINTS if needle in problem), "fix the YAML syntax at this position")
    return _error(name, line, col, f"invalid YAML: {problem}", hint)


def _line_col(raw: bytes, offset: int) -> tuple[int, int]:
    line = raw.count(b"\n", 0, offset) + 1
    return line, offset - (raw.rfind(b"\n", 0, offset) + 1) + 1
