"""The run-time side of the model-type contract: what a model plugin's `implementation` provides.

A model type's plugin (pipespec.schemas.plugins) names its implementation as `module:attribute`;
this module imports it when a step runs, never at check time. The implementation is an object
with these methods, the ones pipespec's own Keras types have (tasklib/model/keras_models.py):

    resolve_params(model)                       -> params (defaults filled in, checked)
    check_columns(model, params, table, source) -> params (after looking at the data)
    fit(model, params, table)                   -> (native model, classes, meta)
    save(native, classes, meta, directory)      -> directory (with pipespec.json holding `meta`)
    load(directory)                             -> Loaded(model, meta, classes)
    predict(loaded, table)                      -> Prediction(values, scores)

`meta` carries at least `model_type`, `task`, `features`, `label` (and `positive_label` for
classifiers): evaluation and the report read them. Saving through MLflow's flavours
(`mlflow.sklearn.save_model` into the directory) keeps the model loadable by MLflow tools too.

Evaluation (pipespec.tasklib.model.evaluate) loads and predicts every saved model through `load` and
`predict` here: the Keras built-ins, a plugin's types, and `container` models, whose code trains
outside this contract but leaves an MLflow model that `CONTAINER` loads and predicts with.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from pipespec.schemas import plugins
from pipespec.tasklib.model.keras_models import Loaded, Prediction  # noqa: F401 - the contract's value types

META_FILE = "pipespec.json"


def _keras() -> Any:
    from pipespec.tasklib.model import keras_models as k

    return SimpleNamespace(resolve_params=k.resolve_params, check_columns=k.check_columns, fit=k.fit, save=k.save,
                           load=k.load, predict=k.predict)


class _LazyKeras:
    """The built-in Keras types' implementation (keras_models), as a plugin's would be."""

    def __getattr__(self, name: str) -> Any:
        return getattr(_keras(), name)


KERAS = _LazyKeras()


class _ContainerModel:
    """load/predict for a `container` model: the MLflow model the team's code wrote (container contract
    v1), with the `pipespec.json` its registration added. Training is the team's command, not `fit`."""

    def load(self, directory: Path) -> Loaded:
        import mlflow.pyfunc

        meta = json.loads((directory / META_FILE).read_text())
        # An MLflow model does not record its class labels: evaluation takes the labels it sees.
        return Loaded(mlflow.pyfunc.load_model(str(directory)), meta, [])

    def predict(self, loaded: Loaded, table: Any) -> Prediction:
        predicted = loaded.model.predict(table.select(loaded.meta["features"]).to_pandas())
        values = list(getattr(predicted, "tolist", lambda: predicted)())
        # A one-column frame or 2-d array predicts one-element rows.
        return Prediction([v[0] if isinstance(v, list) and len(v) == 1 else v for v in values], None)


CONTAINER = _ContainerModel()


def implementation(model_type: str) -> Any:
    """The implementation object of an installed model type; ValueError naming what to install."""
    from pipespec.tasklib.steps import plugin_implementation

    return plugin_implementation("model", model_type)


def plugin_params(model: dict[str, Any]) -> dict[str, Any]:
    """A plugin model's params, validated by its params model with defaults filled in (for plugins'
    `resolve_params`)."""
    return plugins.check_params("model", model["type"], model.get("params") or {}).model_dump()


def load(directory: Path) -> Any:
    """Load a saved model directory with the implementation of the model type it records."""
    meta = json.loads((directory / META_FILE).read_text())
    return implementation(meta["model_type"]).load(directory)


def predict(loaded: Any, table: Any) -> Any:
    """Predict with a loaded model through its type's implementation."""
    return implementation(loaded.meta["model_type"]).predict(loaded, table)
