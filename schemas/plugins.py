"""The plugin contract: what a spec can name (model types, sources, transforms, gates, serving
targets, alert channels) and where each comes from.

A distribution registers plugins through the entry point group `pipespec.plugins`; each entry
point names a list of `Plugin` values. pipespec's own built-ins are such a list too
(`pipespec.schemas.plugins_builtin`), read by the same code: there is no second path.

Each plugin declares a pydantic params model (what `pipespec check` validates and the JSON Schema
shows) and, by name only, its implementation: a `module:attribute` string that the task library
imports at run time. Loading a plugin list therefore imports pydantic models, never the heavy step
code (scikit-learn, TensorFlow), and never Airflow. A spec names a plugin by its registered name;
no YAML string is ever imported.

Names that are not installed: the platform policy may declare which distribution provides a name
(`plugins:` in the policy file). Such a name is an error that says what to install, unless the
check runs in `declared` mode (`pipespec check --plugins=declared`, or $PIPESPEC_PLUGINS=declared),
made for CI without the platform package: then the name is accepted, its params are not checked,
and the check lists it as a warning. A name nobody declares is an error in every mode.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

from pydantic import BaseModel, Field, ValidationError
from pydantic_core import PydanticCustomError

ENTRY_POINT_GROUP = "pipespec.plugins"
BUILTIN = "pipespec.schemas.plugins_builtin:PLUGINS"
MODE_ENV = "PIPESPEC_PLUGINS"

Kind = Literal["model", "source", "transform", "gate", "serving_target", "alert_channel"]
KINDS: tuple[str, ...] = get_args(Kind)
Mode = Literal["installed", "declared"]
Task = Literal["classification", "regression", "structured_generation"]

# What a spec key names, per kind, for messages ("unknown model type `x`").
_WHAT = {"model": "model type", "source": "source type", "transform": "transform", "gate": "gate",
         "serving_target": "serving target", "alert_channel": "alert channel"}
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
PluginName = Annotated[str, Field(pattern=_NAME.pattern)]  # how a spec names a plugin
_IMPLEMENTATION = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")


@dataclass(frozen=True)
class Plugin:
    """One thing a spec can name: its kind, registered name, params model and implementation.

    `implementation` is `module:attribute`, imported only when a step runs. Model types also say
    which task they solve (it decides the metrics) and which compute backends can train them.
    """

    kind: Kind
    name: str
    params: type[BaseModel]
    implementation: str
    description: str = ""
    task: Task | None = None  # model types only
    backends: frozenset[str] = frozenset({"local"})  # model types only

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise PluginError(f"plugin `{self.name}`: kind `{self.kind}` is not one of {', '.join(KINDS)}")
        if not _NAME.match(self.name):
            raise PluginError(f"plugin name `{self.name}` must be lower_snake_case (it is written in specs)")
        if not (isinstance(self.params, type) and issubclass(self.params, BaseModel)):
            raise PluginError(f"plugin `{self.name}`: `params` must be a pydantic model class")
        if not _IMPLEMENTATION.match(self.implementation):
            raise PluginError(f"plugin `{self.name}`: implementation `{self.implementation}` is not `module:attr`")
        if self.kind == "model" and self.task is None:
            raise PluginError(f"model plugin `{self.name}` must declare its task")


@dataclass(frozen=True)
class Installed:
    """A plugin and the distribution (with its version) that registered it."""

    plugin: Plugin
    distribution: str
    version: str


@dataclass
class Registry:
    """Every installed plugin by (kind, name), and the problems met while loading them."""

    plugins: dict[tuple[str, str], Installed] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def names(self, kind: str) -> list[str]:
        return sorted(name for k, name in self.plugins if k == kind)


class PluginError(Exception):
    """A plugin list that breaks the contract (bad name, no params model, a clash)."""


# --- discovery (cached: entry points are read once per process) ----------------------------------

@lru_cache(maxsize=1)
def registry() -> Registry:
    """The built-ins, then every distribution's `pipespec.plugins` entry points.

    A plugin list that cannot be loaded or breaks the contract is left out and reported in
    `problems` (shown by `pipespec plugins` and `pipespec check`); a name two distributions
    register is kept from the first and reported."""
    from pipespec import __version__

    found = Registry()
    _add(found, BUILTIN, lambda: _load_object(BUILTIN), "pipespec", __version__)
    for entry in sorted(_entry_points(), key=lambda e: (e.dist.name if e.dist else "", e.name)):
        dist = entry.dist.name if entry.dist else "?"
        _add(found, entry.value, entry.load, dist, entry.dist.version if entry.dist else "?")
    return found


def _entry_points() -> list[Any]:
    """The `pipespec.plugins` entry points of the installed distributions.

    What importlib.metadata.entry_points(group=...) returns, found faster: it parses every
    distribution's entry points (a fifth of a second with a few hundred installed, paid by every
    `pipespec check`); this reads only the entry_points.txt files that mention the group, and asks
    importlib.metadata about those distributions alone. The first distribution of a name on
    sys.path wins, as importlib.metadata has it."""
    from importlib.metadata import PathDistribution

    marker, seen, found = f"[{ENTRY_POINT_GROUP}]", set(), []
    for folder in sys.path:
        try:
            names = os.listdir(folder or ".")
        except OSError:
            continue
        for name in sorted(names):
            if not name.endswith(".dist-info"):
                continue
            normalized = re.sub(r"[-_.]+", "_", name[: -len(".dist-info")].rsplit("-", 1)[0]).lower()
            if normalized in seen:
                continue
            seen.add(normalized)
            try:
                with open(os.path.join(folder or ".", name, "entry_points.txt"), encoding="utf-8") as handle:
                    if marker not in handle.read():
                        continue
            except OSError:
                continue
            dist = PathDistribution(Path(folder or ".", name))
            found += [e for e in dist.entry_points if e.group == ENTRY_POINT_GROUP]
    return found


def _load_object(path: str) -> Any:
    import importlib

    module, _, attr = path.partition(":")
    return getattr(importlib.import_module(module), attr)


def _add(found: Registry, where: str, load: Any, dist: str, version: str) -> None:
    try:
        plugins = load()
        plugins = list(plugins)
        for plugin in plugins:
            if not isinstance(plugin, Plugin):
                raise PluginError(f"{type(plugin).__name__} is not a pipespec.schemas.plugins.Plugin")
    except Exception as exc:  # noqa: BLE001 - one broken package must not hide the others
        found.problems.append(f"{dist} {version}: cannot load `{where}`: {exc}")
        return
    for plugin in plugins:
        key = (plugin.kind, plugin.name)
        if key in found.plugins:
            first = found.plugins[key]
            found.problems.append(f"{dist} {version}: {_WHAT[plugin.kind]} `{plugin.name}` is already registered "
                                  f"by {first.distribution}; ignored")
            continue
        found.plugins[key] = Installed(plugin, dist, version)


def lookup(kind: str, name: str) -> Installed | None:
    """The installed plugin of that kind and name, or None."""
    return registry().plugins.get((kind, name))


def get(kind: str, name: str) -> Plugin:
    """The installed plugin, or a PluginError that says what to install."""
    found = lookup(kind, name)
    if found is None:
        message, hint = unknown(kind, name)
        raise PluginError(f"{message} ({hint})")
    return found.plugin


def listing() -> Iterator[Installed]:
    """Every installed plugin, by kind then name."""
    yield from (found for _, found in sorted(registry().plugins.items()))


# --- names that are not installed: declared by the platform policy, and the mode -------------------

_mode_override: Mode | None = None
_declared_override: dict[str, str] | None = None
unverified: set[tuple[str, str, str]] = set()  # (kind, name, distribution) accepted in declared mode


def set_mode(mode: Mode | None) -> None:
    """`installed` (default): every name must be installed. `declared`: names the policy declares
    are accepted unchecked and listed as warnings. None: back to $PIPESPEC_PLUGINS."""
    global _mode_override
    _mode_override = mode


def mode() -> Mode:
    """The mode in force: set_mode's, else $PIPESPEC_PLUGINS, else `installed`."""
    if _mode_override is not None:
        return _mode_override
    return "declared" if os.environ.get(MODE_ENV) == "declared" else "installed"


def use_declarations(declared: dict[str, str] | None) -> None:
    """Which distribution provides each name (from the policy `check` applies); None: the active policy's."""
    global _declared_override
    _declared_override = declared


def declarations() -> dict[str, str]:
    """name -> distribution, as the platform policy declares them."""
    if _declared_override is not None:
        return _declared_override
    from pipespec.schemas.policy import PolicyFileError, active_policy  # the policy imports the models

    try:
        return active_policy().declared_plugins()
    except PolicyFileError:
        return {}  # the broken policy is reported by the policy check itself


def unknown(kind: str, name: str) -> tuple[str, str]:
    """(message, hint) for a name no installed plugin has: what to install, or the closest name."""
    from pipespec.schemas.validation_errors import did_you_mean

    what = _WHAT[kind]
    dist = declarations().get(name)
    if dist:
        return (f"{what} `{name}` comes from the plugin package `{dist}`, which is not installed here",
                f"install it (`pip install {dist}`), or check without it: `pipespec check --plugins=declared`")
    close = did_you_mean(name, registry().names(kind))
    if close in (f"did you mean `{n}`?" for n in plugin_names(kind, builtin=True)):  # a typo of a built-in
        return f"unknown {what} `{name}`", close
    return (f"unknown {what} `{name}`",
            f"{close} A plugin's {what} needs its package installed (`pipespec plugins` lists what is).")


def require(kind: str, name: str) -> str:
    """`name` if it is installed, or accepted in declared mode; else a pydantic error for check."""
    if lookup(kind, name) is not None:
        return name
    dist = declarations().get(name)
    if dist and mode() == "declared":
        unverified.add((kind, name, dist))
        return name
    message, hint = unknown(kind, name)
    raise PydanticCustomError("unknown_plugin", message, {"hint": hint})


def validate_params(kind: str, name: str, params: Any) -> Any:
    """Validate `params` against the plugin's model; pydantic errors keep their paths under `params`.

    Returns `params` as given: specs and IR carry what the author wrote; the step fills defaults."""
    found = lookup(kind, name)
    if found is None:  # reported on the name (or accepted unchecked in declared mode)
        return params
    found.plugin.params.model_validate(params)  # a ValidationError here nests under the params' location
    return params


def check_params(kind: str, name: str, params: Any) -> BaseModel:
    """The validated params model (run time: steps call this with the IR's params). A value the
    data-access rules refuse raises PermissionError; any other mistake ValueError."""
    try:
        return get(kind, name).params.model_validate(params)
    except ValidationError as exc:
        refused = [e["msg"] for e in exc.errors() if e["type"] == "data_access"]
        if refused:  # the data-access rules (a path outside the spec's folder, ...): a refusal, not a typo
            raise PermissionError(f"{_WHAT[kind]} `{name}`: {refused[0]}") from None
        raise ValueError(f"{_WHAT[kind]} `{name}`: invalid params: {exc}") from None


def is_unverified(kind: str, name: str) -> bool:
    """Whether `name` was accepted unchecked (declared mode)."""
    return any(k == kind and n == name for k, n, _ in unverified)


def params_model(kind: str, name: str) -> type[BaseModel] | None:
    """The params model of an installed plugin, or None."""
    found = lookup(kind, name)
    return found.plugin.params if found else None


def model_task(name: str, params: Any = None) -> str | None:
    """The task of a model type; a `container` declares its own in its params."""
    found = lookup("model", name)
    if found is None:
        return None
    if isinstance(params, dict) and isinstance(params.get("task"), str) and "task" in found.plugin.params.model_fields:
        return params["task"]
    return found.plugin.task


# --- plugins whose params sit inline in a spec mapping (sources, transforms, targets, alert channels) ---

def validate_inline(kind: str, name: str, params: Any, at: tuple[str | int, ...] = ()) -> BaseModel | None:
    """Validate the params a spec writes inline (a source's keys beside `name` and `type`; a
    transform's or alert channel's value under its name) against the plugin's params model.

    Errors keep pydantic's types and land on the key they are about (`at` + their path), so check
    reports them with file:line:col; an unknown key names the plugin's closest key (the locator
    cannot see a plugin's fields). None when the name is not installed (reported on the name)."""
    found = lookup(kind, name)
    if found is None:
        return None
    try:
        return found.plugin.params.model_validate(params)
    except ValidationError as exc:
        raise _relocated(exc, at, kind, name, found.plugin.params) from None


def _relocated(exc: ValidationError, at: tuple[str | int, ...], kind: str, name: str,
               model: type[BaseModel]) -> ValidationError:
    from pydantic_core import InitErrorDetails

    from pipespec.schemas.validation_errors import did_you_mean

    details: list[InitErrorDetails] = []
    for error in exc.errors(include_url=False):
        loc, ctx = (*at, *error["loc"]), error.get("ctx") or {}
        if error["type"] == "extra_forbidden":
            key = str(error["loc"][-1])
            hint = did_you_mean(key, [k for k in _fields_at(model, error["loc"][:-1])])
            kind_error: Any = PydanticCustomError(
                "unknown_plugin_key", "unknown key `{key}` for {what} `{name}`: {hint}",
                {"key": key, "what": _WHAT[kind], "name": name, "hint": hint or "it takes no settings"})
        elif error["type"] == "missing":  # the locator would describe a built-in's key of that name
            key = str(error["loc"][-1])
            field_info = _field(model, error["loc"])
            kind_error = PydanticCustomError(
                "missing_plugin_key", "missing required key `{key}` of {what} `{name}`{about}",
                {"key": key, "what": _WHAT[kind], "name": name,
                 "about": f": {field_info.description}" if field_info and field_info.description else ""})
        elif error["type"] in _ERROR_TYPES:
            kind_error = error["type"]
        else:  # a custom error of the plugin's own validators: keep its message
            kind_error = PydanticCustomError(error["type"], error["msg"].replace("{", "{{").replace("}", "}}"))
            ctx = {}
        details.append(InitErrorDetails(type=kind_error, loc=loc, input=error.get("input"), ctx=ctx))
    return ValidationError.from_exception_data(exc.title, details)


def _field(model: type[BaseModel], path: tuple) -> Any:
    from pipespec.schemas.locate import field_at

    return field_at(model, tuple(path), None)[1]


def _fields_at(model: type[BaseModel], path: tuple) -> list[str]:
    """The keys the params model accepts at `path` (a nested model's, for a nested mistake)."""
    from pipespec.schemas.locate import allowed_keys

    return allowed_keys(model, tuple(path), None) if path else list(model.model_fields)


def _error_types() -> frozenset[str]:
    from pydantic_core.core_schema import ErrorType

    return frozenset(get_args(ErrorType))


_ERROR_TYPES = _error_types()


def params_json_schema(kind: str, name: str) -> dict[str, Any]:
    """The params model's JSON Schema with its `$defs` inlined, so it can sit anywhere in the spec's."""
    params = registry().plugins[(kind, name)].plugin.params
    schema = params.model_json_schema(mode="validation")
    defs = schema.pop("$defs", {})

    def inline(node: Any, seen: tuple[str, ...] = ()) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/") and ref[8:] not in seen:
                return inline({**defs[ref[8:]], **{k: v for k, v in node.items() if k != "$ref"}}, (*seen, ref[8:]))
            return {k: inline(v, seen) for k, v in node.items()}
        if isinstance(node, list):
            return [inline(v, seen) for v in node]
        return node

    return inline(schema)


def plugin_names(kind: str, builtin: bool | None = None) -> list[str]:
    """Installed names of `kind`; builtin=False: only those installed packages add."""
    return sorted(name for (k, name), found in registry().plugins.items()
                  if k == kind and (builtin is None or (found.distribution == "pipespec") == builtin))


def type_tag(builtins: Collection[str]) -> Callable[[Any], str]:
    """The discriminator of a union of built-in models and a plugin model, keyed by `type`: the
    built-in's name, else "plugin" (an unknown name, or a value that is not a name at all, goes
    to the plugin model, whose checks then say what is wrong)."""
    def tag(value: Any) -> str:
        kind = value.get("type") if isinstance(value, dict) else getattr(value, "type", None)
        return kind if isinstance(kind, str) and kind in builtins else "plugin"
    return tag


def inline_plugin_schema(kind: str, under_name: bool) -> Callable[[dict[str, Any]], None]:
    """JSON Schema of a spec mapping that names an installed plugin: the names installed packages add,
    and per name (if/then) its params model's keys, beside `type` or (`under_name`) under the name."""
    def extend(schema: dict[str, Any]) -> None:
        names = plugin_names(kind, builtin=False)
        if not under_name:
            schema["properties"]["type"]["enum"] = names
            schema.pop("additionalProperties", None)
            schema["unevaluatedProperties"] = False
        branches = []
        for name in names:
            params = params_json_schema(kind, name)
            if not under_name:
                then = {"properties": params.get("properties", {}), "required": params.get("required", [])}
                when: dict[str, Any] = {"properties": {"type": {"const": name}}, "required": ["type"]}
            else:
                then, when = {"properties": {name: params}}, {"required": [name]}
            branches.append({"if": when, "then": then})
        if under_name:
            schema.update({"propertyNames": {"enum": names}, "minProperties": 1, "maxProperties": 1})
        if branches:
            schema["allOf"] = branches
    return extend


def named(spec: Any) -> Iterator[tuple[tuple[str | int, ...], str, str]]:
    """(YAML path of the name, kind, name) of every plugin a checked spec names, built-in or not:
    what `pipespec check --plugins=declared` lists when a name was accepted unchecked."""
    if spec.data:
        for index, source in enumerate(spec.data.sources):
            yield ("data", "sources", index, "type"), "source", source.type
        for index, transform in enumerate(spec.data.transforms):
            name = next(iter(transform.model_dump()))
            yield ("data", "transforms", index, name), "transform", name
    if spec.train:
        yield ("train", "model", "type"), "model", spec.train.model.type
    for index, gate in enumerate(spec.evaluate.gates if spec.evaluate else []):
        yield ("evaluate", "gates", index, "type"), "gate", gate.type
    if spec.rollout:
        yield ("rollout", "target", "type"), "serving_target", spec.rollout.target.type
    for index, alert in enumerate(spec.alerts):
        name, _ = alert.channel()
        yield ("alerts", index, name), "alert_channel", name


def params_at(path: tuple, data: Any) -> tuple[type[BaseModel], tuple, Any] | None:
    """For a YAML path inside a plugin's params, (its params model, the path within them, their
    data), so check's hints name the plugin's own keys; None elsewhere. Where each kind's params sit:
    train.model.params, evaluate.gates[i].params, beside a source's or the rollout target's `type`,
    under a transform's or an alert channel's name."""
    def at(*keys: Any) -> Any:
        value = data
        for key in keys:
            value = value.get(key) if isinstance(value, dict) else (
                value[key] if isinstance(value, list) and isinstance(key, int) and key < len(value) else None)
        return value

    def found(kind: str, name: Any, rest: tuple, params: Any) -> tuple[type[BaseModel], tuple, Any] | None:
        model = params_model(kind, name) if isinstance(name, str) else None
        if model is None or (kind not in ("model", "gate") and lookup(kind, name).distribution == "pipespec"):
            return None  # pipespec's own sources, transforms, targets and channels have typed spec classes
        return model, rest, params

    if path[:3] == ("train", "model", "params"):
        return found("model", at("train", "model", "type"), path[3:], at("train", "model", "params"))
    if path[:2] == ("evaluate", "gates") and len(path) > 3 and path[3] == "params":
        return found("gate", at(*path[:3], "type"), path[4:], at(*path[:4]))
    from pipespec.schemas.models.data import SOURCE_KEYS

    if path[:2] == ("data", "sources") and len(path) > 3 and path[3] not in SOURCE_KEYS:
        source = at(*path[:3])
        params = {k: v for k, v in source.items() if k not in SOURCE_KEYS} if isinstance(source, dict) else None
        return found("source", at(*path[:3], "type"), path[3:], params)
    if path[:2] == ("rollout", "target") and len(path) > 2 and path[2] != "type":
        target = at("rollout", "target")
        params = {k: v for k, v in target.items() if k != "type"} if isinstance(target, dict) else None
        return found("serving_target", at("rollout", "target", "type"), path[2:], params)
    if path[:2] == ("data", "transforms") and len(path) > 3:
        return found("transform", path[3], path[4:], at(*path[:4]))
    if path[:1] == ("alerts",) and len(path) > 2 and path[2] not in ("on", "slack", "email", "webhook"):
        return found("alert_channel", path[2], path[3:], at(*path[:3]))
    return None


def where(kind: str, name: str) -> str:
    """Where a spec writes a plugin's params, in words for the reference."""
    return {"model": f"`train.model.params` when `type: {name}`",
            "gate": f"`evaluate.gates[].params` when `type: {name}`",
            "source": f"beside `type: {name}` in a `data.sources[]` item",
            "transform": f"under `{name}:` in a `data.transforms[]` item",
            "serving_target": f"beside `type: {name}` in `rollout.target`",
            "alert_channel": f"under `{name}:` in an `alerts[]` item"}[kind]
