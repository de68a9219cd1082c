"""`acme_gradient_boosting`: train, save, load and predict, under pipespec's model-type contract
(pipespec.tasklib.model.model_types). The model is saved in MLflow's sklearn flavour inside the
model directory, next to pipespec.json, so MLflow tools load it too."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pipespec.tasklib.model.model_types import Loaded, Prediction, plugin_params

FORMAT = 1
FLAVOUR_DIR = "mlflow_model"
# skops refuses to load types it cannot vouch for; the tree storage is ours (we trained it), so it is
# named here, the one type this model adds (reviewed: sklearn's own node arrays).
TRUSTED_TYPES = ["sklearn.tree._tree.Tree"]


class GradientBoosting:
    """The implementation object the plugin's `implementation` names."""

    def resolve_params(self, model: dict[str, Any]) -> dict[str, Any]:
        return plugin_params(model)

    def check_columns(self, model: dict[str, Any], params: dict[str, Any], table: Any, source: str) -> dict[str, Any]:
        import pyarrow.types as t

        for name in model["features"]:
            kind = table.schema.field(name).type
            if not (t.is_integer(kind) or t.is_floating(kind) or t.is_boolean(kind)):
                raise TypeError(f"{source}: feature `{name}` has type {kind}; gradient boosting takes numeric columns")
        return params

    def fit(self, model: dict[str, Any], params: dict[str, Any], table: Any) -> tuple[Any, list, dict[str, Any]]:
        from sklearn.ensemble import GradientBoostingClassifier

        labels = table.column(model["label"]).to_pylist()
        classes = sorted(set(labels), key=lambda v: (str(type(v)), v))
        if len(classes) < 2:
            raise ValueError(f"label `{model['label']}` has a single value in the training data: nothing to learn")
        positive = params["positive_label"]
        if positive is not None and positive not in classes:
            raise ValueError(f"positive_label {positive!r} is not a label ({classes})")
        estimator = GradientBoostingClassifier(
            n_estimators=params["n_estimators"], learning_rate=params["learning_rate"], max_depth=params["max_depth"],
            subsample=params["subsample"], random_state=params["seed"])
        estimator.fit(_matrix(table, model["features"]), labels)
        meta = {"format": FORMAT, "model_type": model["type"], "task": "classification",
                "features": list(model["features"]), "label": model["label"], "params": params,
                "positive_label": classes[-1] if positive is None else positive}
        return estimator, [c for c in estimator.classes_.tolist()], meta

    def save(self, estimator: Any, classes: list, meta: dict[str, Any], directory: Path) -> Path:
        import mlflow.sklearn

        directory.mkdir(parents=True, exist_ok=True)
        mlflow.sklearn.save_model(estimator, str(directory / FLAVOUR_DIR), skops_trusted_types=TRUSTED_TYPES)
        (directory / "labels.json").write_text(json.dumps(classes))
        (directory / "pipespec.json").write_text(json.dumps(meta, indent=2, sort_keys=True, default=str))
        return directory

    def load(self, directory: Path) -> Loaded:
        import mlflow.sklearn

        meta = json.loads((directory / "pipespec.json").read_text())
        classes = json.loads((directory / "labels.json").read_text())
        return Loaded(mlflow.sklearn.load_model(str(directory / FLAVOUR_DIR)), meta, classes)

    def predict(self, loaded: Loaded, table: Any) -> Prediction:
        matrix = _matrix(table, loaded.meta["features"])
        return Prediction(loaded.model.predict(matrix).tolist(), loaded.model.predict_proba(matrix))


def _matrix(table: Any, features: list[str]) -> Any:
    import numpy as np

    return np.column_stack([table.column(name).to_numpy(zero_copy_only=False).astype(np.float64)
                            for name in features])


GRADIENT_BOOSTING = GradientBoosting()
