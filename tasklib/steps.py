"""The vetted steps. A spec can only run what is registered here, by name;
YAML never names an import path.

Steps are imported lazily (by dotted path held in this module, not in YAML) so
that listing or checking steps never imports pyarrow, TensorFlow or MLflow.
Plugins' implementations (pipespec.schemas.plugins) are resolved here too, by the
`module:attribute` their installed distribution registered, when a step needs one.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

Step = Callable[..., Any]

STEPS: dict[str, str] = {
    "data.plan_sources": "pipespec.tasklib.data.plan:plan_sources",
    "data.extract": "pipespec.tasklib.data.extract:extract",
    "data.transform": "pipespec.tasklib.data.transform:transform",
    "data.join": "pipespec.tasklib.data.join:join",
    "data.measure": "pipespec.tasklib.data.measure:measure",
    "data.curate": "pipespec.tasklib.data.curate:curate",
    "data.publish": "pipespec.tasklib.data.publish:publish",
    "data.record_counts": "pipespec.tasklib.data.record_counts:write_record_counts",
    "model.train": "pipespec.tasklib.model.train:train",
    "model.evaluate": "pipespec.tasklib.model.evaluate:evaluate",
    "model.gates": "pipespec.tasklib.model.gates:run_gates",
    "model.cost_gate": "pipespec.tasklib.model.cost_gate:cost_gate",
    "model.evaluate_live": "pipespec.tasklib.rollout.live_evaluation:evaluate_live",
    "rollout.deploy_eval_service": "pipespec.tasklib.rollout.live_evaluation:deploy_eval_service",
    "rollout.terminate_eval_service": "pipespec.tasklib.rollout.live_evaluation:terminate_eval_service",
    "rollout.decide": "pipespec.tasklib.rollout.decide:decide",
    "rollout.decide_gated": "pipespec.tasklib.model.gates:decide",
    "rollout.shadow": "pipespec.tasklib.rollout.stages:shadow",
    "rollout.canary": "pipespec.tasklib.rollout.stages:canary",
    "rollout.canary_guard": "pipespec.tasklib.rollout.stages:canary_guard",
    "rollout.promote": "pipespec.tasklib.rollout.stages:promote",
    "rollout.reject": "pipespec.tasklib.rollout.stages:reject",
    "rollout.rollback": "pipespec.tasklib.rollout.stages:rollback",
    "report.write": "pipespec.tasklib.report:write",
    "alert.notify": "pipespec.tasklib.alerts:notify",
    "inference.load_champion": "pipespec.tasklib.inference:load_champion",
    "inference.plan_shards": "pipespec.tasklib.inference:plan_shards",
    "inference.predict": "pipespec.tasklib.inference:predict",
    "inference.publish": "pipespec.tasklib.inference:publish",
    "workspace.prepare": "pipespec.tasklib.workspace:prepare",
    "workspace.clean": "pipespec.tasklib.workspace:clean",
}

_overrides: dict[str, Step] = {}


class UnknownStep(LookupError):
    """No step of that name is registered."""


def resolve(name: str) -> Step:
    """The step registered under `name`; UnknownStep if there is none."""
    if name in _overrides:
        return _overrides[name]
    try:
        module, _, attr = STEPS[name].partition(":")
    except KeyError:
        raise UnknownStep(f"no step `{name}` in the task library") from None
    return getattr(importlib.import_module(module), attr)


def plugin_implementation(kind: str, name: str) -> Any:
    """The implementation an installed plugin registered for `name` (ValueError naming what to install)."""
    from pipespec.schemas import plugins

    try:
        plugin = plugins.get(kind, name)
    except plugins.PluginError as exc:
        raise ValueError(str(exc)) from None
    module, _, attribute = plugin.implementation.partition(":")
    target: Any = importlib.import_module(module)
    for part in attribute.split("."):
        target = getattr(target, part)
    return target


def override(name: str, step: Step | None) -> None:
    """Swap a step's implementation (tests, local experiments); None restores it."""
    if name not in STEPS:
        raise UnknownStep(f"no step `{name}` in the task library")
    if step is None:
        _overrides.pop(name, None)
    else:
        _overrides[name] = step
