"""What pipespec's built-in model types train and measure, as data the checker can use
without importing the library (which would pull in TensorFlow).

`tests/schemas/test_catalog.py` keeps this in step with `tasklib`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Task = Literal["classification", "regression", "structured_generation"]
Direction = Literal["max", "min"]


@dataclass(frozen=True)
class ModelType:
    """A trainable model type: its task, the backends that can train it, a one-line description."""

    task: Task
    backends: frozenset[str]  # compute backends that can train it
    description: str


MODEL_TYPES: dict[str, ModelType] = {
    "keras_text_classifier": ModelType(
        "classification", frozenset({"local", "kubernetes", "anyscale", "ray"}),
        "Keras text classifier (TextVectorization + embedding) for intents and feedback."),
    "keras_image_classifier": ModelType(
        "classification", frozenset({"local", "kubernetes", "anyscale", "ray"}),
        "Small Keras CNN image classifier."),
    "keras_tabular_classifier": ModelType(
        "classification", frozenset({"local", "kubernetes", "anyscale", "ray"}),
        "Keras dense network over numeric columns, predicting a class."),
    "keras_tabular_regressor": ModelType(
        "regression", frozenset({"local", "kubernetes", "anyscale", "ray"}),
        "Keras dense network over numeric columns, predicting a number."),
    "llm_finetune": ModelType(
        "structured_generation", frozenset({"anyscale"}),
        "LLM fine-tuning job on Anyscale (LoRA), evaluated on structured outputs."),
}


@dataclass(frozen=True)
class Metric:
    """A metric: which way is better, and the tasks it applies to."""

    direction: Direction
    tasks: frozenset[str]


_CLS = frozenset({"classification"})
METRICS: dict[str, Metric] = {
    "accuracy": Metric("max", _CLS),
    "precision": Metric("max", _CLS),
    "recall": Metric("max", _CLS),
    "f1": Metric("max", _CLS),
    "f1_macro": Metric("max", _CLS),
    "f1_weighted": Metric("max", _CLS),
    "roc_auc": Metric("max", _CLS),
    "rmse": Metric("min", frozenset({"regression"})),
    "mae": Metric("min", frozenset({"regression"})),
    "exact_match": Metric("max", frozenset({"structured_generation"})),
    "slot_f1": Metric("max", frozenset({"structured_generation"})),
}


def metrics_for(model_type: str, params: dict | None = None) -> list[str]:
    """The metrics that apply to a model type's task (built-in or a plugin's), sorted."""
    from pipespec.schemas.plugins import model_task  # the registry's built-ins are read from this module

    task = model_task(model_type, params) if model_type not in MODEL_TYPES else MODEL_TYPES[model_type].task
    return sorted(name for name, metric in METRICS.items() if task in metric.tasks)
