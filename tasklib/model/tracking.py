"""What MLflow's own APIs record about a model version, beyond params and metrics.

- `log_dataset`: the data a run trained or was scored on, as an `mlflow.data`
  dataset input (name, source URI, digest, schema, row count), so the MLflow UI
  lists under each run, and so each model version, which data went into it.
- `describe_model`: MLflow's model metadata for a saved model directory: an
  `MLmodel` file with the signature (feature columns in, label out) and an input
  example, which the MLflow UI shows on the model's artifacts and
  `mlflow.models.get_model_info` reads back.
- `log_history`: the per-epoch training metrics as MLflow metric steps, so the
  MLflow UI draws the training curves as well.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

EXAMPLE_ROWS = 5
DIGEST_CHARS = 16  # MLflow stores short digests; a prefix of the publication's sha256 keeps them traceable


def log_dataset(run_id: str, table: Any, *, source: str, name: str, context: str, label: str | None = None,
                sha256: str | None = None) -> None:
    """Record `table` (a pyarrow Table) as an input of the run: `context` is "training" or "evaluation"."""
    import mlflow
    import mlflow.data

    frame = table.to_pandas()
    dataset = mlflow.data.from_pandas(frame, source=source, name=name,
                                      targets=label if label in frame.columns else None,
                                      digest=sha256[:DIGEST_CHARS] if sha256 else None)
    from mlflow.entities import DatasetInput, InputTag

    from pipespec.tasklib.model import registry

    # MlflowClient.log_inputs takes entities: `_to_mlflow_entity` is how mlflow.log_input converts them.
    registry.client().log_inputs(run_id, [DatasetInput(dataset._to_mlflow_entity(),
                                                       [InputTag("mlflow.data.context", context)])])


def describe_model(directory: Path, table: Any, meta: dict[str, Any], predicted: list) -> Path:
    """Write `MLmodel` (signature and input example) into a saved model directory; its path.

    `meta` names the `features` and the `label`; `predicted` are the model's outputs for the
    table's first rows (at least EXAMPLE_ROWS of them).
    Image bytes are described by the signature but left out of the example (not JSON)."""
    import pandas as pd
    from mlflow.models import Model, infer_signature

    example = table.select(meta["features"]).slice(0, EXAMPLE_ROWS).to_pandas()
    outputs = pd.Series(list(predicted[:len(example)]), name=meta["label"])
    # A plugin's model type may not say its task: the metadata holds what is known.
    model = Model(signature=infer_signature(example, outputs),
                  metadata={f"pipespec_{key}": str(meta[key]) for key in ("model_type", "task") if meta.get(key)})
    if not any(isinstance(value, (bytes, bytearray)) for value in example.head(1).to_numpy().ravel()):
        (directory / "input_example.json").write_text(
            json.dumps({"columns": list(example.columns), "data": example.to_numpy().tolist()}, default=str))
        model.saved_input_example_info = {"artifact_path": "input_example.json", "type": "dataframe",
                                          "pandas_orient": "split"}
    model.save(str(directory / "MLmodel"))
    return directory / "MLmodel"


def log_history(run_id: str, history: dict[str, list[float]]) -> None:
    """Per-epoch values (Keras' `History.history`) as metrics `epoch_<name>`, one step per epoch."""
    import time

    from mlflow.entities import Metric

    from pipespec.tasklib.model import registry

    now = int(time.time() * 1000)
    metrics = [Metric(f"epoch_{name}", float(value), now, step) for name, values in history.items()
               for step, value in enumerate(values, start=1)]
    if metrics:
        registry.client().log_batch(run_id, metrics=metrics)
