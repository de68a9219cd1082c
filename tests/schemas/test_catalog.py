"""The checker's catalog (schemas/catalog.py) and the task library agree: every model
type the checker accepts can be trained somewhere, every metric it accepts is computed."""

from __future__ import annotations

import numpy as np

from pipespec.schemas.catalog import METRICS, MODEL_TYPES
from pipespec.tasklib.model import keras_models, metrics
from pipespec.tasklib.steps import STEPS, resolve


def test_every_locally_trainable_model_type_has_a_keras_builder():
    local = {name for name, model in MODEL_TYPES.items() if "local" in model.backends}
    assert local == set(keras_models.DEFAULTS) == set(keras_models._BUILDERS)


def test_every_metric_is_computed_for_its_task():
    labels, predicted = ["a", "b", "a", "b"], ["a", "b", "b", "b"]
    scores = np.array([[0.9, 0.1], [0.2, 0.8], [0.4, 0.6], [0.3, 0.7]])
    computed = {
        **metrics.classification_scores(labels, predicted, scores, ["a", "b"]),
        **metrics.regression_scores([1.0, 2.0], [1.5, 2.0]),
        **metrics.structured_scores(["f(a[1])"], ["f(a[1])"]),
    }
    assert set(METRICS) <= set(computed)
    assert all(value is not None for name, value in computed.items() if name in METRICS)


def test_every_registered_step_resolves():
    for name in STEPS:
        assert callable(resolve(name)), name
