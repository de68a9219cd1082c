"""The vetted steps. A spec can only run what is registered here, by name;
YAML never names an import path.

Steps are imported lazily (by dotted path held in this module, not in YAML) so
that listing or checking steps never imports pyarrow, TensorFlow or MLflow.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

Step = Callable[..., Any]

STEPS: dict[str, str] = {
    "data.extract": "tasklib.data.extract:extract",
    "data.transform": "tasklib.data.transform:transform",
    "data.join": "tasklib.data.join:join",
    "data.measure": "tasklib.data.measure:measure",
    "data.gate": "tasklib.data.measure:gate",
    "data.publish": "tasklib.data.publish:publish",
    "model.train": "tasklib.model.train:train",
    "model.evaluate": "tasklib.model.evaluate:evaluate",
    "rollout.decide": "tasklib.rollout.decide:decide",
    "rollout.shadow": "tasklib.rollout.stages:shadow",
    "rollout.canary": "tasklib.rollout.stages:canary",
    "rollout.promote": "tasklib.rollout.stages:promote",
    "rollout.reject": "tasklib.rollout.stages:reject",
    "rollout.rollback": "tasklib.rollout.stages:rollback",
    "report.write": "tasklib.report:write",
    "alert.notify": "tasklib.alerts:notify",
    "inference.load_champion": "tasklib.inference:load_champion",
    "inference.plan_shards": "tasklib.inference:plan_shards",
    "inference.predict": "tasklib.inference:predict",
    "inference.publish": "tasklib.inference:publish",
}

_overrides: dict[str, Step] = {}


class UnknownStep(LookupError):
    pass


def resolve(name: str) -> Step:
    if name in _overrides:
        return _overrides[name]
    try:
        module, _, attr = STEPS[name].partition(":")
    except KeyError:
        raise UnknownStep(f"no step `{name}` in the task library") from None
    return getattr(importlib.import_module(module), attr)


def override(name: str, step: Step | None) -> None:
    """Swap a step's implementation (tests, local experiments); None restores it."""
    if name not in STEPS:
        raise UnknownStep(f"no step `{name}` in the task library")
    if step is None:
        _overrides.pop(name, None)
    else:
        _overrides[name] = step
