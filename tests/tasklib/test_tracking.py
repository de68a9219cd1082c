"""MLflow's own records of a model version: dataset inputs (mlflow.data), the MLmodel
signature and input example, and per-epoch metric steps, read back through MLflow."""

from __future__ import annotations

import pyarrow as pa
import pytest

from pipespec.tasklib.model import registry, tracking
from tests.tasklib.test_rollout import mlflow_registry, register_version  # noqa: F401

pytestmark = pytest.mark.airflow  # the registry fixture's MLflow


def feedback(rows: int = 9) -> pa.Table:
    return pa.table({"text": [f"message {i}" for i in range(rows)], "label": [["bug", "praise", "billing"][i % 3]
                                                                           for i in range(rows)]})


def test_datasets_are_run_inputs_with_their_context_source_and_digest(mlflow_registry):
    version = register_version("shop")
    run_id = registry.client().get_model_version("shop", version).run_id
    tracking.log_dataset(run_id, feedback(), source="s3://shop/curated/", name="shop training data",
                         context="training", label="label", sha256="0123456789abcdef" * 4)
    tracking.log_dataset(run_id, feedback(4), source="s3://shop/holdout.parquet", name="shop holdout",
                         context="evaluation", label="label", sha256="fedcba9876543210" * 4)
    inputs = registry.client().get_run(run_id).inputs.dataset_inputs
    seen = {i.dataset.name: (i.dataset.digest, i.dataset.source, [t.value for t in i.tags]) for i in inputs}
    assert seen == {"shop training data": ("0123456789abcdef", '{"uri": "s3://shop/curated/"}', ["training"]),
                    "shop holdout": ("fedcba9876543210", '{"uri": "s3://shop/holdout.parquet"}', ["evaluation"])}
    profile = {i.dataset.name: i.dataset.profile for i in inputs}
    assert '"num_rows": 9' in profile["shop training data"]


def test_the_model_directory_carries_signature_and_input_example(tmp_path):
    from mlflow.models import Model

    meta = {"features": ["text"], "label": "label", "model_type": "keras_text_classifier", "task": "classification"}
    tracking.describe_model(tmp_path, feedback(), meta, ["bug", "praise", "billing", "bug", "bug"])
    model = Model.load(str(tmp_path / "MLmodel"))
    assert model.signature.inputs.input_names() == ["text"] and model.signature.outputs.input_names() == ["label"]
    assert model.load_input_example(str(tmp_path))["text"].tolist() == [f"message {i}" for i in range(5)]
    assert model.metadata == {"pipespec_model_type": "keras_text_classifier", "pipespec_task": "classification"}


def test_image_bytes_are_in_the_signature_not_the_example(tmp_path):
    from mlflow.models import Model

    table = pa.table({"image": [b"\x89PNG" * 4] * 6, "label": [0, 1] * 3})
    meta = {"features": ["image"], "label": "label", "model_type": "keras_image_classifier", "task": "classification"}
    tracking.describe_model(tmp_path, table, meta, [0, 1, 0, 1, 0])
    model = Model.load(str(tmp_path / "MLmodel"))
    assert model.signature.inputs.to_dict() == [{"type": "binary", "name": "image", "required": True}]
    assert model.saved_input_example_info is None and not (tmp_path / "input_example.json").exists()


def test_history_becomes_metric_steps(mlflow_registry):
    version = register_version("shop")
    run_id = registry.client().get_model_version("shop", version).run_id
    tracking.log_history(run_id, {"loss": [1.2, 0.8, 0.5], "accuracy": [0.4, 0.6, 0.8]})
    steps = [(m.step, m.value) for m in registry.client().get_metric_history(run_id, "epoch_loss")]
    assert steps == [(1, 1.2), (2, 0.8), (3, 0.5)]
    assert registry.client().get_run(run_id).data.metrics["epoch_accuracy"] == 0.8
