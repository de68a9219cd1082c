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
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from pipespec.schemas.diagnostics import Diagnostic, Loc, SpecError

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
_STR = f"{_TAG}str"
_MAYBE_SPECIAL = set("-+.0123456789tTfFnN~<")  # first characters of bools, numbers, nulls and `<<`


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
        info = path.stat()
        if not stat.S_ISREG(info.st_mode):  # a FIFO would block the parse, a device never end
            raise _error(name, 1, 1, "cannot read file: not a regular file (a directory, pipe or device)",
                         "specs and templates are plain files")
        if info.st_size > max_bytes:
            raise _error(name, 1, 1, f"file is {info.st_size:,} bytes; specs are limited to {max_bytes:,} bytes",
                         "split the pipeline, or move data out of the spec and reference it by URI")
        with path.open("rb") as handle:
            raw = handle.read(max_bytes + 1)  # a file growing after the check is still cut off
    except OSError as exc:
        raise _error(name, 1, 1, f"cannot read file: {exc.strerror or exc}", "check the path and permissions") from None
    return load_bytes(raw, name, max_bytes)


def load_bytes(raw: bytes, name: str, max_bytes: int = MAX_BYTES) -> Node:
    """The YAML tree of a file's bytes; SpecError for oversized, binary or non-UTF-8 input."""
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
    """The YAML tree of one document, which must be a mapping; SpecError otherwise."""
    loader = _SpecLoader(text)
    try:
        root = _Builder(loader, name).document()
    except yaml.YAMLError as exc:
        raise _syntax_error(exc, name, text) from None
    finally:
        loader.dispose()
    if root is None:
        raise _error(name, 1, 1, "the file is empty", "a spec is a mapping that starts with `pipeline: <name>`")
    if not isinstance(root.value, dict):
        kind = "a list" if isinstance(root.value, list) else "a single value"
        raise _error(name, root.loc.line, root.loc.col, f"a spec must be a mapping, but this document is {kind}",
                     "start the file with `pipeline: <name>`")
    return root


class _Frame:
    """An open mapping or sequence while building; `key` holds a mapping key awaiting its value."""

    __slots__ = ("node", "anchor", "key", "key_loc", "size", "mapping")

    def __init__(self, node: Node, anchor: str | None):
        self.node, self.anchor = node, anchor
        self.key: str | None = None
        self.key_loc: Loc | None = None
        self.size = 1
        self.mapping: dict | None = node.value if isinstance(node.value, dict) else None


class _Builder:
    """Builds `Node`s from libyaml's event stream with an explicit stack.

    Composing with libyaml's own (recursive, C) composer crashes the
    interpreter on deeply nested input, and expands aliases unboundedly;
    here depth and expanded size are checked as the events arrive.
    """

    def __init__(self, loader: Any, name: str):
        self.loader, self.name = loader, name
        self.stack: list[_Frame] = []
        self.anchors: dict[str, tuple[Node, int]] = {}  # anchor -> (node, expanded size)
        self.open_anchors: set[str] = set()
        self.total = 0

    def document(self) -> Node | None:
        loader = self.loader
        loader.get_event()  # stream start
        if loader.check_event(yaml.StreamEndEvent):
            return None
        loader.get_event()  # document start
        root = None
        # The loop runs once per event (~200 per spec): plain scalars, most of them, take the inlined
        # path below; everything else, and every error, goes through `_event`.
        get_event, stack, name, scalar_event = loader.get_event, self.stack, self.name, yaml.ScalarEvent
        while root is None:
            event = get_event()
            if type(event) is not scalar_event or event.anchor is not None or not stack:
                root = self._event(event)
                continue
            frame = stack[-1]
            mark = event.start_mark
            loc = Loc(name, mark.line + 1, mark.column + 1)
            text, mapping = event.value, frame.mapping
            if mapping is not None and frame.key is None:  # a key
                if text in mapping or (text == "<<" and event.implicit[0] and event.tag in (None, "!")):
                    root = self._scalar(event, loc)  # the duplicate and merge-key errors
                    continue
                frame.key, frame.key_loc = text, loc  # raw text: `on`, `1`, `null` are keys as written
                continue
            tag = event.tag
            if tag is None and event.implicit[0] and text and text[0] not in _MAYBE_SPECIAL:
                value = text  # a plain word: no resolver can make it anything but a string
            else:
                if tag in (None, "!"):
                    tag = _STR if tag == "!" else loader.resolve(yaml.ScalarNode, text, event.implicit)
                value = _scalar_value(tag, text, name, loc)
            self.total += 1
            if self.total > MAX_NODES:
                self._count(0, loc)
            frame.size += 1
            if mapping is not None:
                mapping[frame.key] = Node(value, loc, frame.key_loc)
                frame.key = frame.key_loc = None
            else:
                frame.node.value.append(Node(value, loc))
        loader.get_event()  # document end
        if not loader.check_event(yaml.StreamEndEvent):
            mark = loader.peek_event().start_mark
            raise _error(self.name, mark.line + 1, mark.column + 1, "the file holds more than one YAML document",
                         "one spec per file: remove the `---` separator or split the file")
        return root

    def _event(self, event: Any) -> Node | None:
        """Consume one event; returns the root node once the document is complete."""
        kind = type(event)
        if kind is yaml.ScalarEvent:  # most events: test first
            return self._scalar(event, self._loc(event))
        if kind is yaml.MappingEndEvent or kind is yaml.SequenceEndEvent:
            frame = self.stack.pop()
            if frame.anchor:
                self.open_anchors.discard(frame.anchor)
                self.anchors[frame.anchor] = (frame.node, frame.size)
            return self._attach(frame.node, frame.size)
        loc = self._loc(event)
        if kind is yaml.MappingStartEvent or kind is yaml.SequenceStartEvent:
            is_map = kind is yaml.MappingStartEvent
            if event.tag not in (None, "!", f"{_TAG}{'map' if is_map else 'seq'}"):
                raise _error(self.name, loc.line, loc.col, f"YAML tag `{_short_tag(event.tag)}` is not allowed",
                             "specs are plain data: remove the tag")
            self._key_must_be_scalar(loc)
            if len(self.stack) >= MAX_DEPTH:
                raise _error(self.name, loc.line, loc.col,
                             f"document is nested too deeply (limit {MAX_DEPTH} levels)", "flatten the structure")
            self._count(1, loc)
            self.stack.append(_Frame(Node({} if is_map else [], loc), event.anchor))
            if event.anchor:
                self.open_anchors.add(event.anchor)
            return None
        if kind is yaml.AliasEvent:
            self._key_must_be_scalar(loc)  # `? *alias` as a key
            if event.anchor in self.open_anchors:
                raise _error(self.name, loc.line, loc.col, "recursive alias: a value contains itself",
                             "anchors may be reused, not nested inside themselves")
            if event.anchor not in self.anchors:
                raise _error(self.name, loc.line, loc.col, f"undefined alias `*{event.anchor}`",
                             "every `*alias` needs an `&anchor` defined earlier in the file")
            target, size = self.anchors[event.anchor]
            self._count(size, loc)
            # A fresh Node per use (its key position differs) that points at where the value is written.
            return self._attach(Node(target.value, target.loc), size)
        raise _error(self.name, loc.line, loc.col, "unexpected YAML structure", "check the file's syntax")

    def _loc(self, event: Any) -> Loc:
        mark = event.start_mark
        return Loc(self.name, mark.line + 1, mark.column + 1)

    def _scalar(self, event: Any, loc: Loc) -> Node | None:
        frame = self.stack[-1] if self.stack else None
        if frame is not None and isinstance(frame.node.value, dict) and frame.key is None:
            plain = event.implicit[0] and event.tag in (None, "!")
            if plain and event.value == "<<":
                raise _error(self.name, loc.line, loc.col, "YAML merge keys (`<<`) are not supported",
                             "use `extends:` to inherit from a template, or repeat the keys")
            if event.value in frame.node.value:
                first = frame.node.value[event.value].key_loc
                raise _error(self.name, loc.line, loc.col,
                             f"duplicate key `{event.value}` (first defined on line {first.line if first else '?'})",
                             "remove one of them; YAML would silently keep only the last")
            frame.key, frame.key_loc = event.value, loc  # raw text: `on`, `1`, `null` are keys as written
            return None
        tag, text = event.tag, event.value
        if tag is None and event.implicit[0] and text and text[0] not in _MAYBE_SPECIAL:
            tag = _STR  # a plain word: no resolver can make it anything but a string
        elif tag in (None, "!"):
            tag = _STR if tag == "!" else self.loader.resolve(yaml.ScalarNode, text, event.implicit)
        self._count(1, loc)
        node = Node(_scalar_value(tag, event.value, self.name, loc), loc)
        if event.anchor:
            self.anchors[event.anchor] = (node, 1)
        return self._attach(node, 1)

    def _attach(self, node: Node, size: int) -> Node | None:
        if not self.stack:
            return node
        frame = self.stack[-1]
        frame.size += size
        if isinstance(frame.node.value, dict):
            node.key_loc = frame.key_loc
            frame.node.value[frame.key] = node  # type: ignore[index]
            frame.key = frame.key_loc = None
        else:
            frame.node.value.append(node)
        return None

    def _key_must_be_scalar(self, loc: Loc) -> None:
        frame = self.stack[-1] if self.stack else None
        if frame is not None and isinstance(frame.node.value, dict) and frame.key is None:
            raise _error(self.name, loc.line, loc.col, "mapping keys must be plain strings",
                         "write the key as a single word such as `name:`")

    def _count(self, size: int, loc: Loc) -> None:
        self.total += size
        if self.total > MAX_NODES:
            raise _error(self.name, loc.line, loc.col,
                         f"document expands to more than {MAX_NODES:,} values (an alias bomb?)",
                         "avoid deeply repeated `*alias` references")


def _scalar_value(tag: str, text: str, name: str, loc: Loc) -> Any:
    if tag not in _SCALAR_TAGS:
        raise _error(name, loc.line, loc.col, f"YAML tag `{_short_tag(tag)}` is not allowed",
                     "specs are plain data: remove the tag (`!!python/...` and custom `!tags` never run)")
    if tag == f"{_TAG}str":
        return text
    if tag == f"{_TAG}null" and text in ("", "~", "null", "Null", "NULL"):
        return None
    if tag == f"{_TAG}bool" and text.lower() in ("true", "false"):
        return text.lower() == "true"
    try:
        if tag in (f"{_TAG}null", f"{_TAG}bool"):  # an explicit `!!bool yes` or `!!null team`
            raise ValueError(text)
        if tag == f"{_TAG}int":
            cleaned = text.replace("_", "")
            return int(cleaned, 0) if cleaned.lower().lstrip("+-").startswith(("0x", "0o")) else int(cleaned)
        lowered = text.lower()
        if lowered.endswith(".inf"):
            return -math.inf if lowered.startswith("-") else math.inf
        if lowered == ".nan":
            return math.nan
        return float(text.replace("_", ""))
    except ValueError:
        raise _error(name, loc.line, loc.col, f"`{text}` is not a valid {_short_tag(tag)}",
                     "quote it to keep it as a string") from None


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
