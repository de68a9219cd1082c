"""Map a location from pydantic (which mixes data keys with union tags) onto
the YAML `Node` tree, and find which keys a model would have accepted there."""

from __future__ import annotations

import types
import typing
from typing import Any, Union

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from pipespec.schemas.diagnostics import Loc, YamlPath
from pipespec.schemas.yamlload import Node


def locate(root: Node, loc: tuple) -> tuple[Node, YamlPath, bool]:
    """Deepest node along `loc`; returns (node, data path, whether the whole loc exists).

    Elements that are not keys or indexes of the data (union tags such as
    `s3` or `function-after[...]`) are skipped.
    """
    node, path = root, []
    for part in loc:
        value = node.value
        if isinstance(value, dict) and isinstance(part, str) and part in value:
            node = value[part]
        elif isinstance(value, list) and isinstance(part, int) and 0 <= part < len(value):
            node = value[part]
        else:
            continue
        path.append(part)
    last = loc[-1] if loc else None
    return node, tuple(path), bool(path) and path[-1] == last


def key_loc(node: Node) -> Loc:
    """Where a mapping value's key is written; the value's own position when it has no key."""
    return node.key_loc or node.loc


def field_at(model: type[BaseModel], path: YamlPath, data: Any) -> tuple[type[BaseModel] | None, FieldInfo | None]:
    """The model that owns the last element of `path`, and that element's field."""
    annotation: Any = model
    owner, info = None, None
    for part in path:
        annotation = _concrete(annotation, data)
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            owner = annotation
            info = annotation.model_fields.get(str(part))
            if info is None:
                return owner, None
            annotation = info.annotation
        elif typing.get_origin(annotation) is list:
            annotation = typing.get_args(annotation)[0]
            owner, info = None, None
        elif typing.get_origin(annotation) is dict:
            annotation = typing.get_args(annotation)[1]
            owner, info = None, None
        else:
            return None, None
        data = _child(data, part)
    return owner, info


def allowed_keys(model: type[BaseModel], path: YamlPath, data: Any) -> list[str]:
    """Keys accepted by the model at `path` (the path of the mapping itself)."""
    annotation: Any = model
    for part in path:  # through fields, list items and dict values alike
        annotation = _concrete(annotation, data)
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            info = annotation.model_fields.get(str(part))
            if info is None:
                return []
            annotation = info.annotation
        elif typing.get_origin(annotation) in (list, dict):
            annotation = typing.get_args(annotation)[-1]
        else:
            return []
        data = _child(data, part)
    target = _concrete(annotation, data)
    if isinstance(target, type) and issubclass(target, BaseModel):
        return list(target.model_fields)
    return []


def _concrete(annotation: Any, data: Any) -> Any:
    """Strip Annotated/Optional and pick the union member that fits `data` best."""
    while True:
        origin = typing.get_origin(annotation)
        if origin is typing.Annotated:
            annotation = typing.get_args(annotation)[0]
        elif origin in (Union, types.UnionType):
            annotation = _best_member(typing.get_args(annotation), data)
        else:
            return annotation


def _best_member(members: tuple, data: Any) -> Any:
    unwrapped = [_strip(m) for m in members if m is not type(None)]
    models = [m for m in unwrapped if isinstance(m, type) and issubclass(m, BaseModel)]
    if not isinstance(data, dict) or not models:
        containers = [m for m in unwrapped if typing.get_origin(m) in (list, dict)]
        return containers[0] if containers and isinstance(data, (list, dict)) else unwrapped[0]

    def score(model: type[BaseModel]) -> tuple[int, int]:
        literal_match = sum(
            1 for name, f in model.model_fields.items()
            if typing.get_origin(f.annotation) is typing.Literal and data.get(name) in typing.get_args(f.annotation))
        return literal_match, len(set(model.model_fields) & set(data))

    return max(models, key=score)


def _strip(annotation: Any) -> Any:
    while typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
    return annotation


def _child(data: Any, part: Any) -> Any:
    if isinstance(data, dict):
        return data.get(part)
    if isinstance(data, list) and isinstance(part, int) and part < len(data):
        return data[part]
    return None
