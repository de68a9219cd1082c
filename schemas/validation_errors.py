"""Turn pydantic validation errors into Diagnostics a person can act on."""

from __future__ import annotations

import difflib
import re
from typing import Any

from pydantic import BaseModel, ValidationError

from pipespec.schemas.diagnostics import Diagnostic, at
from pipespec.schemas.locate import allowed_keys, field_at, key_loc, locate
from pipespec.schemas.secrets import looks_like_secret
from pipespec.schemas.yamlload import Node

_KIND = {
    "string_type": "a string", "int_type": "an integer", "int_parsing": "an integer",
    "float_type": "a number", "float_parsing": "a number", "bool_type": "true or false",
    "bool_parsing": "true or false", "list_type": "a list", "dict_type": "a mapping",
    "model_type": "a mapping", "model_attributes_type": "a mapping", "int_from_float": "a whole number",
}


def did_you_mean(word: str, options: list[str]) -> str:
    """A hint naming the closest option, or listing them all."""
    close = difflib.get_close_matches(str(word), options, n=1, cutoff=0.6)
    if close:
        return f"did you mean `{close[0]}`?"
    return f"expected one of: {', '.join(f'`{o}`' for o in options)}" if options else ""


_HIDDEN = "a value that looks like a secret (not shown)"


def quote(value: Any) -> str:
    """A value in backticks, shortened, or hidden when it looks like a secret."""
    text = str(value)
    if looks_like_secret(text):  # even a prefix of a secret must not be echoed
        return _HIDDEN
    return f"`{text if len(text) <= 40 else text[:37] + '...'}`"


def describe(value: Any) -> str:
    """What a value is, in words for a message (`a list`, `nothing (null)`), never a secret."""
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return f"`{str(value).lower()}` (a boolean)"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if looks_like_secret(str(value)):
        return _HIDDEN
    text = str(value)
    text = text if len(text) <= 40 else text[:37] + "..."
    return f"`{text}` ({'a string' if isinstance(value, str) else 'a number'})"


def from_validation_error(exc: ValidationError, root: Node, model: type[BaseModel],
                          ignore_missing: bool = False) -> list[Diagnostic]:
    """One Diagnostic per distinct pydantic error, placed on the YAML it is about."""
    data = root.to_plain()
    out: list[Diagnostic] = []
    seen: set[tuple] = set()
    for error in exc.errors(include_url=False):
        if ignore_missing and error["type"] == "missing":
            continue
        diagnostic = _one(error, root, model, data)
        key = (diagnostic.file, diagnostic.line, diagnostic.col, diagnostic.message)
        if key not in seen:  # unions can report one mistake once per member
            seen.add(key)
            out.append(diagnostic)
    return out


def _plugin_params(model: type[BaseModel], path: tuple, data: Any) -> tuple[type[BaseModel], tuple, Any]:
    """Inside a plugin's params (a model's, gate's, source's, transform's, serving target's or alert
    channel's), the plugin's params model, the path within it and its data, so hints name the
    plugin's keys; else what was given."""
    from pipespec.schemas import plugins

    return plugins.params_at(path, data) or (model, path, data)


def _one(error: dict, root: Node, model: type[BaseModel], data: Any) -> Diagnostic:
    kind, loc, value = error["type"], tuple(error["loc"]), error.get("input")
    node, path, exact = locate(root, loc)
    last = loc[-1] if loc else ""
    if kind == "unknown_plugin":  # a name no installed plugin has: say what to install
        return at(node.loc, path, error["msg"], error["ctx"]["hint"], code="unknown-plugin")
    full_path = path
    model, path, data = _plugin_params(model, path, data)

    if kind == "missing":
        where = key_loc(node) if full_path else node.loc
        _, info = field_at(model, path + (last,), data)
        hint = info.description if info and info.description else f"add `{last}:` here"
        return at(where, full_path + (last,), f"missing required key `{last}`", hint, code="missing")

    if kind == "extra_forbidden":
        options = allowed_keys(model, path[:-1], data)
        return at(key_loc(node), full_path, f"unknown key `{last}`", did_you_mean(str(last), options), code="unknown-key")

    _, info = field_at(model, path, data)
    hint = info.description if info and info.description else ""
    if kind == "literal_error":
        options = re.findall(r"'([^']*)'", error["ctx"]["expected"])
        return at(node.loc, full_path, f"{quote(value)} is not allowed here",
                  did_you_mean(str(value), options), code="invalid-value")
    if kind == "union_tag_invalid":
        # A discriminator such as `type: snowflak`: point at that key's value, suggest the closest tag.
        ctx = error["ctx"]
        key = ctx["discriminator"].strip("'")
        options = re.findall(r"'([^']*)'", ctx["expected_tags"])
        where = node.value[key].loc if isinstance(node.value, dict) and key in node.value else node.loc
        return at(where, full_path, f"unknown {key} {quote(ctx['tag'])}", did_you_mean(str(ctx["tag"]), options),
                  code="invalid-value")
    if kind == "unknown_variant":
        # Our own one-key unions (transforms, stages, asset expressions); the message lists the choices.
        options = re.findall(r"`([^`]+)`", error["msg"])
        word = next(iter(value)) if isinstance(value, dict) and value else value
        if isinstance(word, str) and word in options:
            return at(node.loc, full_path, f"{quote(word)} needs settings", f"write it as `{{{word}: ...}}`",
                      code="invalid-value")
        return at(node.loc, full_path, f"{quote(word) if isinstance(word, str) else describe(word)} is not valid here: "
                  f"{error['msg']}", did_you_mean(str(word), options) if isinstance(word, str) else "",
                  code="invalid-value")
    if kind in _KIND:
        return at(node.loc, full_path, f"expected {_KIND[kind]}, got {describe(value)}", hint, code="type")
    if kind == "string_pattern_mismatch":
        return at(node.loc, full_path, f"{quote(value)} has the wrong format", hint or error["msg"], code="format")
    if kind == "value_error":  # our validators write complete messages, which may quote the value
        message = error["msg"].removeprefix("Value error, ")
        if looks_like_secret(message):
            message = f"{_HIDDEN} is not valid here"
        return at(node.loc, full_path, message, "", code="invalid-value")
    message = error["msg"].removeprefix("Input should be ").removeprefix("Value error, ")
    if kind in {"too_short", "too_long"} and isinstance(value, (list, dict)):
        ctx = error.get("ctx") or {}
        bound = f"at least {ctx['min_length']}" if kind == "too_short" else f"at most {ctx['max_length']}"
        return at(node.loc, full_path, f"{bound} item(s) here, not {len(value)}", hint, code="invalid-value")
    if kind in {"greater_than", "greater_than_equal", "less_than", "less_than_equal", "too_short", "too_long"}:
        message = f"must be {message} (got {quote(value)})"
    return at(node.loc, full_path, message, hint, code="invalid-value")
