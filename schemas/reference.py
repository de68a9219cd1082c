"""The spec reference (docs/spec-reference.md), generated from the pydantic models.

It walks `PipelineSpec` through `model_fields` (annotation, metadata, default,
description), so every field the checker accepts is documented with its type,
default and constraints, and nothing else is. The JSON Schema is a second view
of the same models; this one is for people. `pipespec reference` writes it and
`--check` fails when the committed file is stale. No Airflow is imported.
"""

from __future__ import annotations

import importlib
import inspect
import json
import pkgutil
import re
import types
import typing
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, Union

import yaml
from annotated_types import Ge, Gt, Le, Lt, MaxLen, MinLen, MultipleOf
from pydantic import BaseModel, BeforeValidator, Discriminator
from pydantic.fields import FieldInfo

from pipespec.schemas import models, plugins, templates
from pipespec.schemas.catalog import METRICS, metrics_for
from pipespec.schemas.models import PipelineSpec
from pipespec.schemas.models.common import StrictModel

OUTPUT = "docs/spec-reference.md"
SHORT_FORMS_ANCHOR = "short-forms"
CATALOG_HEADING = "Model types and metrics"
EXTENDS_HEADING = "`extends:` merge rules"

# Named aliases whose meaning is clearer than their structure (a Duration is a pattern-checked string).
FRIENDLY = {
    "Duration": "duration (`90s`, `5m`, `2h`)",
    "Cron": "cron",
    "AssetUri": "Asset URI",
    "DataUri": "data URI (`s3://bucket/prefix/`)",
    "ParamValue": "string, number, boolean, or a list or mapping of them",
    "ModelTypeName": "a [model type](#model-types-and-metrics)",
}


@dataclass(frozen=True)
class ShortForm:
    """A short form a BeforeValidator expands; `tests/schemas/test_reference.py` validates both sides."""

    fields: tuple[str, ...]  # "Model.field" that accept it; the "where" column comes from these
    at: tuple[str | int, ...]  # where `short`/`long` sit in a spec (for the test)
    short: str  # YAML
    long: str  # YAML: what the short form means
    implemented: str


# Hand-written on purpose: the expansion lives in validator functions, not in data we could walk.
SHORT_FORMS = (
    ShortForm(("DataSection.schedule", "TrainSection.schedule", "InferenceSection.schedule"), ("data",),
              'schedule: "@daily"', 'schedule: {cron: "@daily"}',
              "`schemas/models/common.py`: `Schedule` (`_cron_shorthand`)"),
    ShortForm(("DataSection.join",), ("data",), "join: union", "join: {type: union}",
              "`schemas/models/data.py`: `_join_shorthand`"),
    ShortForm(("DedupeArgs.key", "DropEmpty.drop_empty", "Select.select", "RedactPii.redact_pii",
               "NormalizeArgs.columns"), ("data",), "transforms: [{drop_empty: text}]",
              "transforms: [{drop_empty: [text]}]", "`schemas/models/data.py`: `Columns`"),
    ShortForm(("NormalizeText.normalize_text",), ("data",), "transforms: [{normalize_text: [text]}]",
              "transforms: [{normalize_text: {columns: [text]}}]", "`schemas/models/data.py`: `NormalizeText`"),
    ShortForm(("RolloutSection.stages", "Canary.canary"), ("rollout",),
              "stages: [shadow, {canary: 10}, approval, full]",
              "stages: [{shadow: null}, {canary: {percent: 10}}, {approval: null}, {full: null}]",
              "`schemas/models/rollout.py`: `Stage` (`single_key_union(shorthand=True)`), `Canary`"),
    ShortForm(("RolloutSection.target",), ("rollout",), "target: registry_alias", "target: {type: registry_alias}",
              "`schemas/models/rollout.py`: `_target_shorthand`"),
    ShortForm(("Alert.email",), ("alerts", 0), "email: [ml@example.com]", "email: {to: [ml@example.com]}",
              "`schemas/models/operations.py`: `Alert.email`"),
    ShortForm(("Alert.email",), ("alerts", 0), "email: ml@example.com", "email: {to: [ml@example.com]}",
              "`schemas/models/operations.py`: `Alert.email`"),
)


# --- types -------------------------------------------------------------------------------------

def _unwrap(tp: Any, meta: list) -> tuple[Any, list]:
    """`Annotated[X, a, Field(ge=0)]` → (X, [a, Ge(0)]): FieldInfo constraints flattened."""
    meta = list(meta)
    while typing.get_origin(tp) is Annotated:
        meta = list(tp.__metadata__) + meta
        tp = tp.__origin__
    flat: list = []
    for item in meta:
        flat += item.metadata if isinstance(item, FieldInfo) else [item]
    return tp, flat


def _same(a: Any, b: Any) -> bool:
    # pydantic's pattern metadata has no __eq__: compare its attributes.
    return a is b or a == b or (type(a) is type(b) and hasattr(a, "__dict__") and vars(a) == vars(b))


def _members(tp: Any) -> list:
    return [a for a in typing.get_args(tp) if a is not type(None)] if _is_union(tp) else []


def _is_union(tp: Any) -> bool:
    return typing.get_origin(tp) in (Union, types.UnionType)


def _is_model(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, BaseModel)


def _model_union(tp: Any) -> bool:
    """A union with a model among its members: named ones get a section of their own."""
    return any(_is_model(_unwrap(m, [])[0]) for m in _members(tp))


def _named_aliases() -> list[tuple[str, Any, list]]:
    """Module-level type aliases of `pipespec.schemas.models` (Source, Duration, ...), most specific first."""
    found: dict[str, tuple[str, Any, list]] = {}
    for info in sorted(pkgutil.iter_modules(models.__path__), key=lambda i: i.name):
        module = importlib.import_module(f"{models.__name__}.{info.name}")
        for name, value in vars(module).items():
            if name.startswith("_") or name in found or isinstance(value, type):
                continue
            if typing.get_origin(value) is Annotated or _is_union(value) or typing.get_origin(value) is Literal:
                base, markers = _unwrap(value, [])
                found[name] = (name, base, markers if typing.get_origin(value) is Annotated else [])
    return sorted(found.values(), key=lambda a: -len(a[2]))


_ALIASES = _named_aliases()


def _alias(tp: Any, meta: list) -> str | None:
    """The alias a type was written with, recognised by its base type and its validators/constraints."""
    for name, base, markers in _ALIASES:
        if not markers and name not in FRIENDLY and not _model_union(base):
            continue  # plain Literal/Union aliases read better spelled out
        if base == tp and all(any(_same(m, x) for x in meta) for m in markers):
            return name
    return None


def _limits(meta: list, noun: str) -> str:
    """Constraints as words: ` ≥ 0, ≤ 50`, ` matching `re``, ` (at least 1 item)`."""
    bounds = {Ge: ("≥", "ge"), Gt: (">", "gt"), Le: ("≤", "le"), Lt: ("<", "lt")}
    values, sizes = [], []
    for item in meta:
        if type(item) in bounds:
            sign, attr = bounds[type(item)]
            values.append(f"{sign} {getattr(item, attr)}")
        elif isinstance(item, MultipleOf):
            values.append(f"multiple of {item.multiple_of}")
        elif getattr(item, "pattern", None):
            values.append(f"matching `{item.pattern}`")
        elif isinstance(item, MinLen):
            sizes.append(f"at least {_count(item.min_length, noun)}")
        elif isinstance(item, MaxLen):
            sizes.append(f"at most {_count(item.max_length, noun)}")
    return (" " + ", ".join(values) if values else "") + (f" ({', '.join(sizes)})" if sizes else "")


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {_PLURAL.get(noun, noun + 's')}"


_PLURAL = {"entry": "entries"}
_SCALARS = {str: "string", int: "integer", float: "number", bool: "boolean", type(None): "null", Any: "any value"}


def type_text(tp: Any, meta: list = ()) -> str:
    """Human-readable type: `integer ≥ 0`, `list of [Source](#source) (at least 1 item)`, ..."""
    tp, meta = _unwrap(tp, list(meta))
    name = _alias(tp, meta)
    if name in FRIENDLY:
        return FRIENDLY[name]
    if name and _model_union(tp):
        return link(name)
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if _is_union(tp):
        members = _members(tp)  # `None` is left out: the default column says `null`
        return " or ".join(type_text(m, meta) for m in members) if members else "null"
    if origin is Literal:
        values = [f"`{v}`" for v in args]
        return values[0] if len(values) == 1 else "one of " + " | ".join(values)
    if origin is list:
        item = type_text(args[0])
        head = f"list, each {item}" if item.startswith("one of ") else f"list of {item}"  # not "list of one of"
        return head + _limits(meta, "item")
    if origin is dict:
        return f"mapping of {type_text(args[0])} → {type_text(args[1])}" + _limits(meta, "entry")
    if _is_model(tp):
        return link(tp.__name__)
    if tp in _SCALARS:
        return _SCALARS[tp] + _limits(meta, "character")
    # A new kind of type: teach this function its name rather than print Python's.
    raise TypeError(f"the reference cannot describe {tp!r}")


def has_short_form(tp: Any, meta: list) -> bool:
    """A BeforeValidator in the field's type (not inside nested models) whose declared input
    differs from the validated type accepts a short form; one declaring the same type is a no-op."""
    tp, meta = _unwrap(tp, meta)
    if any(isinstance(m, BeforeValidator) and m.json_schema_input_type != tp for m in meta):
        return True
    return any(has_short_form(arg, []) for arg in typing.get_args(tp))


def link(name: str) -> str:
    """A Markdown link to a type's section."""
    return f"[{name}](#{slug(name)})"


def slug(heading: str) -> str:
    """GitHub's heading anchor: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")


# --- defaults ----------------------------------------------------------------------------------

def _plain(value: Any) -> Any:
    """Defaults as a user would write them: models as mappings without unset (None/empty) keys."""
    if isinstance(value, BaseModel):
        names = list(type(value).model_fields)
        out = {k: _plain(getattr(value, k)) for k in names}
        if len(names) == 1:  # a one-key form such as `{full: null}` keeps its key
            return out
        return {k: v for k, v in out.items() if v is not None and v != [] and v != {}}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


_BARE = re.compile(r"^\w[\w./:-]*$")


def yaml_flow(value: Any) -> str:
    """A value in YAML flow style, as a spec would write it."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        # Bare where YAML reads it back as this string (`5m`, `2Gi`), quoted where not (`"1"`, `"@daily"`).
        return value if _BARE.match(value) and yaml.safe_load(value) == value else json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(yaml_flow(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {yaml_flow(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"cannot render default {value!r}")


def default_text(info: FieldInfo) -> str:
    """A field's default for the reference table: `required`, or the value in YAML."""
    if info.is_required():
        return "required"
    return f"`{yaml_flow(_plain(info.get_default(call_default_factory=True, validated_data={})))}`"


# --- the walk ----------------------------------------------------------------------------------

@dataclass
class TypeEntry:
    """A model or a named union with models among its members: one section of the reference.

    Named apart from `yamlload.Node` (a YAML value with its position): this is a type the
    reference documents, with the YAML paths where it is used."""

    name: str
    model: type[BaseModel] | None = None
    union: Any = None
    paths: list[str] = field(default_factory=list)  # YAML paths such as `data.sources[]`
    tags: dict[str, str] = field(default_factory=dict)  # path → `type: s3` where a discriminator picks it
    sections: set[str] = field(default_factory=set)


class _Walk:
    """Depth first, in field order; `stack` holds the models and unions being expanded, so a
    recursive type (an Asset expression inside an Asset expression) is recorded once."""

    def __init__(self) -> None:
        self.nodes: dict[str, TypeEntry] = {}

    def node(self, name: str, path: str, tag: str | None = None, **kind: Any) -> None:
        node = self.nodes.setdefault(name, TypeEntry(name, **kind))
        if path and path not in node.paths:
            node.paths.append(path)
            node.sections.add(re.split(r"[.\[]", path)[0])
        if tag:
            node.tags[path] = tag

    def model(self, model: type[BaseModel], path: str, stack: tuple = (), tag: str | None = None) -> None:
        if model.__name__ in stack:
            return
        self.node(model.__name__, path, tag, model=model)
        for name, info in model.model_fields.items():
            self.type(info.annotation, info.metadata, f"{path}.{name}" if path else name, (*stack, model.__name__))

    def type(self, tp: Any, meta: list, path: str, stack: tuple) -> None:
        tp, meta = _unwrap(tp, meta)
        name = _alias(tp, meta)
        if name and name not in FRIENDLY and _model_union(tp):
            if name in stack:
                return
            self.node(name, path, union=(tp, meta))
            stack = (*stack, name)
        discriminator = next((m.discriminator for m in meta if isinstance(m, Discriminator)), None)
        if _is_union(tp):
            for member in _members(tp):
                member_tp, _ = _unwrap(member, [])
                if isinstance(discriminator, str) and _is_model(member_tp):
                    self.model(member_tp, path, stack, _tag(member_tp, discriminator))
                else:
                    self.type(member, [], path, stack)
        elif typing.get_origin(tp) is list:
            self.type(typing.get_args(tp)[0], [], f"{path}[]", stack)
        elif typing.get_origin(tp) is dict:
            self.type(typing.get_args(tp)[1], [], f"{path}.<key>", stack)
        elif _is_model(tp):
            self.model(tp, path, stack)


def _tag(model: type[BaseModel], discriminator: str) -> str:
    return f"{discriminator}: {typing.get_args(model.model_fields[discriminator].annotation)[0]}"


def walk() -> dict[str, TypeEntry]:
    """Every model and named union reachable from `PipelineSpec`, in first-seen order."""
    w = _Walk()
    w.model(PipelineSpec, "")
    return w.nodes


# --- rendering ---------------------------------------------------------------------------------

def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    """A Markdown table, one line per row."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]


def _where(paths: list[str], tags: dict[str, str] | None = None, limit: int = 6) -> str:
    tags = tags or {}
    shown = ", ".join(f"`{p}`" + (f" (`{tags[p]}`)" if p in tags else "") for p in paths[:limit])
    return shown + (f" and {len(paths) - limit} more" if len(paths) > limit else "")


def _model_section(node: TypeEntry) -> list[str]:
    model = node.model
    assert model is not None
    out = [f"### {node.name}", ""]
    doc = model.__dict__.get("__doc__")
    if doc:
        out += [inspect.cleandoc(doc), ""]
    out += [f"Used at {_where(node.paths, node.tags)}." if node.paths else "The top of a spec file.", ""]
    rows = []
    for name, info in model.model_fields.items():
        kind = type_text(info.annotation, info.metadata)
        if has_short_form(info.annotation, info.metadata):
            kind += f" · [short form](#{SHORT_FORMS_ANCHOR})"
        rows.append([f"`{info.alias or name}`", kind, default_text(info), info.description or ""])
    return out + table(["field", "type", "default", "description"], rows) + [""]


def _union_section(node: TypeEntry) -> list[str]:
    tp, meta = node.union
    discriminator = next((m.discriminator for m in meta if isinstance(m, Discriminator)), None)
    how = f", chosen by `{discriminator}`" if isinstance(discriminator, str) else ""
    out = [f"### {node.name}", "", f"Used at {_where(node.paths)}. One of{how}:", ""]
    for member in _members(tp):
        member_tp, _ = _unwrap(member, [])
        line = f"- {type_text(member)}"
        if isinstance(discriminator, str):
            line += f" (`{_tag(member_tp, discriminator)}`)"
        elif _is_model(member_tp) and list(member_tp.model_fields) == ["root"]:
            line += " (`<plugin name>:`)"  # a plugin's one-key form, such as `{acme_clip: ...}`
        elif _is_model(member_tp) and len(member_tp.model_fields) == 1:
            line += f" (`{next(iter(member_tp.model_fields))}:`)"  # a one-key form such as `{dedupe: ...}`
        out.append(line)
    return out + [""]


def _groups(nodes: dict[str, TypeEntry]) -> list[tuple[str, list[TypeEntry]]]:
    """Root first, then one group per top-level section in spec order, then what sections share."""
    root = nodes[PipelineSpec.__name__]
    groups = [("Pipeline (root)", [root])]
    for section in PipelineSpec.model_fields:
        members = [n for n in nodes.values() if n.sections == {section}]
        if members:
            groups.append((f"`{section}:` section", members))
    shared = [n for n in nodes.values() if len(n.sections) > 1]
    if shared:
        groups.append(("Shared by several sections", shared))
    return groups


def _field_paths(nodes: dict[str, TypeEntry], ref: str) -> list[str]:
    model, name = ref.split(".")
    return [f"{p}.{name}" for p in nodes[model].paths]


def _short_forms(nodes: dict[str, TypeEntry]) -> list[str]:
    rows = []
    for form in SHORT_FORMS:
        where = [p for ref in form.fields for p in _field_paths(nodes, ref)]
        rows.append([_where(where, limit=len(where)), f"`{form.short}`", f"`{form.long}`", form.implemented])
    return (["## Short forms", "", "Fields marked *short form* also accept a shorter spelling; each expands "
             "to the long form before validation.", ""]
            + table(["where", "short form", "same as", "implemented in"], rows) + [""])


def _catalog() -> list[str]:
    installed = [found for found in plugins.listing() if found.plugin.kind == "model"]
    types_rows = [[f"`{f.plugin.name}`", f.plugin.task or "", ", ".join(f"`{b}`" for b in sorted(f.plugin.backends)),
                   ", ".join(f"`{m}`" for m in metrics_for(f.plugin.name)), f.distribution, f.plugin.description]
                  for f in installed]
    metric_rows = [[f"`{name}`", f"`{m.direction}` ({'higher' if m.direction == 'max' else 'lower'} is better)",
                    ", ".join(sorted(m.tasks))] for name, m in METRICS.items()]
    return ([f"## {CATALOG_HEADING}", "",
             "`train.model.type` names a registered model type: pipespec's own or an installed plugin "
             "package's (`pipespec plugins`; this page lists what was installed when it was generated). "
             "`evaluate.metric` must apply to its task, and `train.compute.backend` must be one that can train it.",
             ""]
            + table(["model type", "task", "compute backends", "metrics", "from", "description"], types_rows) + [""]
            + table(["metric", "direction", "applies to"], metric_rows) + [""] + _plugin_params())


def _plugin_params() -> list[str]:
    """One table per plugin: what its params may hold (`train.model.params`, `evaluate.gates[].params`,
    a plugin source's or serving target's keys, a plugin transform's or alert channel's settings)."""
    out = []
    for found in plugins.listing():
        plugin = found.plugin
        if plugin.kind not in ("model", "gate") and found.distribution == "pipespec":
            continue  # pipespec's own sources, transforms, targets and channels have sections above
        # A plugin's nested models have no section of their own here: their names stay plain text.
        rows = [[f"`{name}`", re.sub(r"\[([^\]]+)\]\(#[^)]*\)", r"\1", type_text(info.annotation, info.metadata)),
                 default_text(info), info.description or ""] for name, info in plugin.params.model_fields.items()]
        out += [f"### `{plugin.name}` params", "", f"{plugins.where(plugin.kind, plugin.name)} ({plugin.kind}, from "
                f"{found.distribution}).", ""]
        out += (table(["field", "type", "default", "description"], rows) if rows else ["No params."]) + [""]
    return out


def _extends() -> list[str]:
    # The module docstring, word for word; only a blank line is added where a list ends,
    # so Markdown does not fold the next sentence into the last bullet.
    lines: list[str] = []
    for line in (templates.__doc__ or "").strip().splitlines():
        if lines and lines[-1].startswith("- ") and line and not line.startswith(("- ", " ")):
            lines.append("")
        lines.append(line)
    return [f"## {EXTENDS_HEADING}", ""] + lines + [""]


def render_reference() -> str:
    """The whole reference, as Markdown."""
    nodes = walk()
    groups = _groups(nodes)
    out = ["<!-- Generated by `pipespec reference` from schemas/models; edit the models, not this file. -->",
           "# Spec reference", "",
           "Every key of a pipespec spec, generated from the models that `pipespec check` validates with. "
           + inspect.cleandoc(StrictModel.__doc__ or ""), "",
           "- " + "\n- ".join(f"[{title}](#{slug(title)})" for title, _ in groups),
           f"- [Short forms](#{SHORT_FORMS_ANCHOR})",
           f"- [{CATALOG_HEADING}](#{slug(CATALOG_HEADING)})",
           f"- [{EXTENDS_HEADING}](#{slug(EXTENDS_HEADING)})", ""]
    for title, members in groups:
        out += [f"## {title}", ""]
        for node in members:
            out += _model_section(node) if node.model is not None else _union_section(node)
        if title == groups[0][0]:
            out += ["A spec may also start with `extends:` (a template path or a list of them) and use "
                    f"`key+:` to append to an inherited list: see [{EXTENDS_HEADING}](#{slug(EXTENDS_HEADING)}).",
                    ""]
    out += _short_forms(nodes) + _catalog() + _extends()
    return "\n".join(out).rstrip("\n") + "\n"
