"""`model.evaluate_contract`: model.evaluate for model types that are not pipespec's Keras types:
plugin model types (scored through their implementation's load/predict) and `container` models
(the built-in metrics on an MLflow model the code wrote, or the metrics its own evaluate command
reports). Challenger and champion are scored on the same holdout rows and the result has
model.evaluate's form, so `decide`, the rollout stages and the report read it unchanged.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Any, Literal

from pipespec.tasklib.context import RunContext

log = logging.getLogger(__name__)


def evaluate(ctx: RunContext, *, pipeline: str, metric: str, direction: Literal["max", "min"],
             holdout: str | None, holdout_fraction: float, dataset: str, model: dict[str, Any],
             trained: dict[str, Any], alias: str = "champion", min_improvement: float = 0.0) -> dict[str, Any]:
    """Score the challenger and the serving `alias`'s version on one holdout with `metric`."""
    import pyarrow.parquet as pq

    from pipespec.schemas.catalog import metrics_for
    from pipespec.tasklib.model import runner
    from pipespec.tasklib.model.data import holdout_data

    if metric not in metrics_for(model["type"], model.get("params")):
        raise ValueError(f"evaluate.metric `{metric}` does not apply to `{model['type']}`")
    held = holdout_data(dataset, model, holdout, holdout_fraction)
    job = {"pipeline": pipeline, "metric": metric, "direction": direction, "model": model,
           "challenger_version": str(trained["version"]), "alias": alias, "run_id": ctx.run_id}
    if _by_command(model):
        # The team's evaluate command runs here, on the worker (its connections are looked up here).
        result = score_versions({**job, "holdout_table": held.table, "holdout_source": held.source})
    else:
        with tempfile.TemporaryDirectory(prefix="pipespec-evaluate-") as workdir:
            holdout_path = Path(workdir) / "holdout.parquet"
            pq.write_table(held.table, holdout_path)
            result = runner.run("evaluate_contract", {**job, "holdout_path": str(holdout_path),
                                                      "holdout_source": held.source},
                                Path(workdir), what=f"evaluate {pipeline}")
    return {**result, "min_improvement": min_improvement}


def _by_command(model: dict[str, Any]) -> bool:
    return model["type"] == "container" and ((model.get("params") or {}).get("evaluation") or {}).get("by") == "command"


def score_versions(job: dict[str, Any]) -> dict[str, Any]:
    """Score the challenger and the champion (the `alias`'s version) on the holdout; evaluate's result form."""
    import pyarrow.parquet as pq

    from pipespec.tasklib.model import registry
    from pipespec.tasklib.storage import table_hash

    pipeline, metric, model = job["pipeline"], job["metric"], job["model"]
    table = job["holdout_table"] if "holdout_table" in job else pq.read_table(job["holdout_path"])
    challenger_version, alias = job["challenger_version"], job.get("alias") or registry.CHAMPION
    champion_version = registry.version_for(pipeline, alias)
    log.info("scoring challenger v%s and champion %s on %d holdout rows", challenger_version,
             f"v{champion_version}" if champion_version else "(none yet)", table.num_rows)
    with tempfile.TemporaryDirectory(prefix="pipespec-models-") as directory:
        def score(version: str, name: str) -> dict[str, float | None]:
            model_dir = registry.download(pipeline, version, Path(directory) / name)
            return _score(job, version, model_dir, table)

        challenger = score(challenger_version, "challenger")
        champion = score(champion_version, "champion") if champion_version else None
    holdout_sha256 = table_hash(table)
    client = registry.client()
    run_id = client.get_model_version(pipeline, challenger_version).run_id
    for name, value in challenger.items():
        if value is not None:
            client.log_metric(run_id, f"holdout_{name}", value)
    registry.record_holdout_score(pipeline, challenger_version, sha256=holdout_sha256, metric=metric,
                                  value=challenger[metric])  # type: ignore[arg-type]
    return {
        "metric": metric, "direction": job["direction"], "alias": alias,
        "challenger": challenger[metric], "champion": champion[metric] if champion else None,
        "challenger_version": challenger_version, "champion_version": champion_version,
        "holdout_rows": table.num_rows, "holdout_source": job["holdout_source"], "holdout_sha256": holdout_sha256,
        "scores": {"challenger": challenger, "champion": champion},
    }


def _score(job: dict[str, Any], version: str, model_dir: Path, table: Any) -> dict[str, float | None]:
    from pipespec.tasklib.model import container, metrics, model_types
    from pipespec.tasklib.model.evaluate import score_prediction

    model, metric = job["model"], job["metric"]
    truth = table.column(model["label"]).to_pylist()
    if model["type"] != "container":
        loaded = model_types.load(model_dir)
        if loaded.meta["label"] != model["label"]:
            raise ValueError(f"v{version} predicts `{loaded.meta['label']}`, the spec's label is `{model['label']}`")
        return score_prediction(loaded, model_types.predict(loaded, table), truth, required=metric)
    if _by_command(model):
        return dict(container.score_with_command(model, model_dir, table, metric, pipeline=job["pipeline"],
                                                 run_id=job["run_id"], version=version))
    # An MLflow model the code wrote: predict the holdout's feature columns, compute the metrics here.
    import mlflow.pyfunc

    predicted = mlflow.pyfunc.load_model(str(model_dir)).predict(table.select(model["features"]).to_pandas())
    values = list(getattr(predicted, "tolist", lambda: predicted)())
    values = [v[0] if isinstance(v, list) and len(v) == 1 else v for v in values]
    if (model.get("params") or {}).get("task") == "regression":
        return metrics.regression_scores(truth, values, required=metric)
    classes = sorted(set(truth) | set(values), key=metrics.label_order_key)
    return metrics.classification_scores(truth, values, None, classes, required=metric)
