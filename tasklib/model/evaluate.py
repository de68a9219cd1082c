"""`model.evaluate`: score the challenger and the current champion on one holdout.

Both versions are scored on exactly the same rows (the fixed holdout, or the
seeded hash split of the dataset that training left out), in one process, so
the decision compares like with like. The result carries every metric of the
task for both, the holdout's size, source and content hash; the deciding
metric must be defined for the data (a holdout with one class has no AUC) or
the step fails rather than decide on a meaningless number. The holdout scores
are also logged on the challenger's MLflow run (`holdout_<metric>`).

The champion is whatever version `alias` names: the alias serving and inference
load (`rollout.target.alias`), so a custom alias is compared against, not around.
The result also carries what promotion needs to decide again if that alias moved
in the meantime (see pipespec.tasklib.rollout.stages.promote): the rule (`min_improvement`)
and the job that scores the challenger against another version on the same kind
of holdout (`rescore_job`).
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Any, Literal

from pipespec.tasklib.context import RunContext

log = logging.getLogger(__name__)
MAX_REPORT_CLASSES = 50  # a confusion matrix beyond this is unreadable, and too big for the result


def evaluate(ctx: RunContext, *, pipeline: str, metric: str, direction: Literal["max", "min"],
             holdout: str | None, holdout_fraction: float, dataset: str, model: dict[str, Any],
             trained: dict[str, Any], alias: str = "champion", min_improvement: float = 0.0) -> dict[str, Any]:
    """Score the challenger and the serving `alias`'s version on one holdout with `metric`.

    Returns {"challenger", "champion" (None without one), "champion_version", "metric", "direction",
    "alias", "min_improvement", "classes": per version a classifier's confusion matrix and per-class
    figures, ...} for `decide`, the rollout stages and the report."""
    import pyarrow.parquet as pq

    from pipespec.schemas.catalog import metrics_for

    from pipespec.tasklib.model import keras_models, runner
    from pipespec.tasklib.model.data import holdout_data

    if metric not in metrics_for(model["type"]):
        raise ValueError(f"evaluate.metric `{metric}` does not apply to `{model['type']}`; "
                         f"choose one of {', '.join(metrics_for(model['type']))}")
    if model["type"] not in keras_models.DEFAULTS:
        # An LLM adapter is scored on outputs generated for the holdout (metrics.structured_scores),
        # which needs the model served or a generation job; model.evaluate loads Keras models only.
        raise ValueError(f"model.evaluate scores Keras models; `{model['type']}` needs its outputs generated "
                         "for the holdout on its own compute, which pipespec does not do yet")
    held = holdout_data(dataset, model, holdout, holdout_fraction)
    rescore_job = {"pipeline": pipeline, "metric": metric, "direction": direction, "model": model,
                   "challenger_version": str(trained["version"]), "alias": alias, "dataset": dataset,
                   "holdout": holdout, "holdout_fraction": holdout_fraction}
    with tempfile.TemporaryDirectory(prefix="pipespec-evaluate-") as workdir:
        holdout_path = Path(workdir) / "holdout.parquet"
        pq.write_table(held.table, holdout_path)
        job = {**rescore_job, "holdout_path": str(holdout_path), "holdout_source": held.source, "run_id": ctx.run_id}
        result = runner.run("evaluate", job, Path(workdir), what=f"evaluate {pipeline}")
    return {**result, "min_improvement": min_improvement, "rescore_job": rescore_job}


def rescore(rescore_job: dict[str, Any], champion_version: str) -> dict[str, Any]:
    """Score the challenger of `rescore_job` (an evaluate result's) and `champion_version` on one
    holdout drawn the way evaluate drew it; the result has evaluate's form."""
    from pipespec.tasklib.model import runner

    with tempfile.TemporaryDirectory(prefix="pipespec-rescore-") as workdir:
        return runner.run("evaluate", {**rescore_job, "champion_version": champion_version}, Path(workdir),
                          what=f"rescore {rescore_job['pipeline']} against v{champion_version}")


def score_versions(job: dict[str, Any]) -> dict[str, Any]:
    """The evaluation process: load both versions from the registry and score them on the holdout.

    `job`: pipeline, metric, direction, model, challenger_version, alias (whose version is the
    champion; or an explicit champion_version), and either holdout_path + holdout_source (the
    local step) or dataset, holdout, holdout_fraction.
    """
    import pyarrow.parquet as pq

    from pipespec.tasklib.storage import table_hash
    from pipespec.tasklib.model import registry
    from pipespec.tasklib.model.data import holdout_data

    pipeline, metric, model = job["pipeline"], job["metric"], job["model"]
    if job.get("holdout_path"):
        table, source = pq.read_table(job["holdout_path"]), job["holdout_source"]
    else:
        held = holdout_data(job["dataset"], model, job.get("holdout"), job.get("holdout_fraction", 0.2))
        table, source = held.table, held.source
    challenger_version = job["challenger_version"]
    alias = job.get("alias") or registry.CHAMPION
    champion_version = job["champion_version"] if "champion_version" in job else registry.version_for(pipeline, alias)
    log.info("scoring challenger v%s and champion %s on %d rows of the %s", challenger_version,
             f"v{champion_version}" if champion_version else "(none yet)", table.num_rows, source)
    with tempfile.TemporaryDirectory(prefix="pipespec-models-") as directory:
        challenger, challenger_classes = _score_version(pipeline, challenger_version, table, model, metric,
                                                        Path(directory) / "challenger")
        champion, champion_classes = (
            _score_version(pipeline, champion_version, table, model, metric, Path(directory) / "champion")
            if champion_version else (None, None))
    holdout_sha256 = table_hash(table)
    _log_holdout_scores(pipeline, challenger_version, challenger)
    _log_holdout_dataset(pipeline, challenger_version, table, job, holdout_sha256)
    registry.record_holdout_score(pipeline, challenger_version, sha256=holdout_sha256, metric=metric,
                                  value=challenger[metric])
    return {
        "metric": metric, "direction": job["direction"], "alias": alias,
        "challenger": challenger[metric], "champion": champion[metric] if champion else None,
        "challenger_version": challenger_version, "champion_version": champion_version,
        "holdout_rows": table.num_rows, "holdout_source": source, "holdout_sha256": holdout_sha256,
        "scores": {"challenger": challenger, "champion": champion},
        "classes": {"challenger": challenger_classes, "champion": champion_classes},
    }


def _score_version(pipeline: str, version: str, table: Any, model: dict[str, Any], metric: str,
                   directory: Path) -> tuple[dict[str, float | None], dict[str, Any] | None]:
    """Every metric of one version on the holdout, and for a classifier the confusion matrix and
    per-class figures the report draws (None for other tasks, or beyond MAX_REPORT_CLASSES)."""
    from pipespec.tasklib.model import keras_models, metrics, registry

    loaded = keras_models.load(registry.download(pipeline, version, directory))
    if loaded.meta["label"] != model["label"]:
        raise ValueError(f"{pipeline} v{version} predicts `{loaded.meta['label']}`, the spec's label is "
                         f"`{model['label']}`: the two cannot be compared on one holdout")
    truth = table.column(model["label"]).to_pylist()
    prediction = keras_models.predict(loaded, table)
    scores = score_prediction(loaded, prediction, truth, required=metric)
    classes = None
    if loaded.meta["task"] == "classification" and len(loaded.classes) <= MAX_REPORT_CLASSES:
        classes = metrics.class_report(truth, prediction.values, loaded.classes)
    return scores, classes


def score_prediction(loaded: Any, prediction: Any, truth: list, required: str | None = None) -> dict[str, float | None]:
    """Every metric of the model's task for one prediction (`required` must be defined)."""
    from pipespec.tasklib.model import metrics

    task = loaded.meta["task"]
    if task == "classification":
        return metrics.classification_scores(truth, prediction.values, prediction.scores, loaded.classes,
                                             loaded.meta.get("positive_label"), required=required)
    if task == "regression":
        return metrics.regression_scores(truth, prediction.values, required=required)
    return metrics.structured_scores(truth, prediction.values, required=required)


def _log_holdout_dataset(pipeline: str, version: str, table: Any, job: dict[str, Any], sha256: str) -> None:
    """The holdout as an `mlflow.data` evaluation input of the challenger's run (the MLflow UI lists it)."""
    from pipespec.tasklib.model import registry, tracking

    run_id = registry.client().get_model_version(pipeline, version).run_id
    fixed = job.get("holdout")
    source = fixed or job.get("dataset") or job.get("holdout_source") or "holdout"
    tracking.log_dataset(run_id, table, source=source, context="evaluation",
                         name=f"{pipeline} holdout" if fixed else f"{pipeline} holdout split", sha256=sha256,
                         label=job["model"]["label"])


def _log_holdout_scores(pipeline: str, version: str, scores: dict[str, float | None]) -> None:
    from pipespec.tasklib.model import registry

    mlflow = registry.client()
    run_id = mlflow.get_model_version(pipeline, version).run_id
    for name, value in scores.items():
        if value is not None:
            mlflow.log_metric(run_id, f"holdout_{name}", value)
