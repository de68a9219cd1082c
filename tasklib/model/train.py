"""`model.train`: train a challenger on the published dataset and register it.

The worker side (`train`) checks the spec, reads and splits the data (it holds
the storage connections) and hands the training rows to a separate process
(`runner`), so TensorFlow never loads in the worker. The process side
(`fit_and_register`) trains with fixed seeds, logs the model with its lineage
to MLflow and points the `challenger` alias at the new version.

Retries: a retry of the same run with the same data, spec and params finds the
version its earlier try registered (tag `pipespec.train_key`) and reuses it
instead of training again; anything else registers a new version. Either way
`challenger` ends on the version this run returns.
"""

from __future__ import annotations

import hashlib
import json
import logging
import tempfile
from pathlib import Path
from typing import Any

from pipespec.tasklib.context import RunContext

log = logging.getLogger(__name__)

HOLDOUT_FRACTION = 0.2
MANIFEST_TAG_LIMIT = 7000  # MLflow run tags hold 8000 characters


def train(ctx: RunContext, *, pipeline: str, dataset: str, model: dict[str, Any], compute: dict[str, Any],
          holdout: str | None = None, holdout_fraction: float = HOLDOUT_FRACTION,
          spec_hash: str | None = None) -> dict[str, Any]:
    """Train locally in a subprocess. `holdout`/`holdout_fraction` must match the evaluate section."""
    import pyarrow.parquet as pq

    from pipespec.tasklib.model import model_types, runner
    from pipespec.tasklib.model.data import training_data

    backend = compute.get("backend", "local")
    if backend != "local":
        raise ValueError(f"model.train trains on the worker; compute backend `{backend}` runs as its own operator")
    if model["type"] == "llm_finetune":
        raise ValueError("`llm_finetune` trains on Anyscale only: set train.compute.backend to anyscale")
    if model["type"] == "container":  # the team's own code, under the container contract
        from pipespec.tasklib.model import container

        return container.train(ctx, pipeline=pipeline, dataset=dataset, model=model, holdout=holdout,
                               holdout_fraction=holdout_fraction, spec_hash=spec_hash)
    implementation = model_types.implementation(model["type"])  # the built-in Keras types or a plugin's
    params = implementation.resolve_params(model)
    data = training_data(dataset, model, holdout, holdout_fraction)
    implementation.check_columns(model, params, data.train, f"dataset {dataset}")  # fail here, not in the process
    with tempfile.TemporaryDirectory(prefix="pipespec-train-") as workdir:
        train_path = Path(workdir) / "train.parquet"
        pq.write_table(data.train, train_path)
        job = job_params(ctx.run_id, ctx.dag_id, pipeline=pipeline, dataset=dataset, model=model, holdout=holdout,
                         holdout_fraction=holdout_fraction, spec_hash=spec_hash)
        # The worker already holds the rows (and the storage connection): hand them over as a local file.
        job.update(train_path=str(train_path), holdout_rows=data.holdout_rows, manifest=data.manifest)
        job.update(_holdout_to_predict(dataset, model, holdout, holdout_fraction, Path(workdir)))
        return runner.run("train", job, Path(workdir), what=f"train {model['type']}")


def _holdout_to_predict(dataset: str, model: dict[str, Any], holdout: str | None, holdout_fraction: float,
                        workdir: Path) -> dict[str, str]:
    """The holdout evaluate will score on, as a local file and its content hash, for the training
    process to predict while the model is in memory (evaluate.HOLDOUT_PREDICTION): evaluate then
    needs no second TensorFlow process to score the challenger. {} when there is no usable holdout
    yet; evaluate reports that."""
    import pyarrow.parquet as pq

    from pipespec.tasklib.model.data import holdout_data
    from pipespec.tasklib.storage import table_hash

    try:
        held = holdout_data(dataset, model, holdout, holdout_fraction)
    except ValueError as error:
        log.info("no holdout predictions from training (%s): evaluate scores the challenger itself", error)
        return {}
    path = workdir / "holdout.parquet"
    pq.write_table(held.table, path)
    return {"holdout_path": str(path), "holdout_sha256": table_hash(held.table)}


def job_params(run_id: str, dag_id: str, *, pipeline: str, dataset: str, model: dict[str, Any],
               holdout: str | None = None, holdout_fraction: float = HOLDOUT_FRACTION,
               spec_hash: str | None = None) -> dict[str, Any]:
    """The params of `python -m pipespec.tasklib.model.runner train`, for any compute backend.

    With only these, the process reads the published dataset itself (a pod or a
    job); the local step adds `train_path`, `holdout_rows` and `manifest`.
    """
    return {"pipeline": pipeline, "dataset": dataset, "model": model, "holdout": holdout,
            "holdout_fraction": holdout_fraction, "spec_hash": spec_hash, "run_id": run_id, "dag_id": dag_id}


def fit_and_register(job: dict[str, Any]) -> dict[str, Any]:
    """The training process: fit, register with lineage, move `challenger`. Returns the step result.

    `job` is `job_params(...)`, plus, from the local step, the rows it already read.
    """
    import pyarrow.parquet as pq

    from pipespec.tasklib.model import model_types, registry
    from pipespec.tasklib.model.data import training_data

    model, pipeline = job["model"], job["pipeline"]
    implementation = model_types.implementation(model["type"])
    if job.get("train_path"):
        table, manifest, holdout_rows = pq.read_table(job["train_path"]), job["manifest"], job["holdout_rows"]
    else:  # a Kubernetes pod or an Anyscale job reads the dataset itself
        data = training_data(job["dataset"], model, job.get("holdout"), job.get("holdout_fraction", HOLDOUT_FRACTION))
        table, manifest, holdout_rows = data.train, data.manifest, data.holdout_rows
    params = implementation.check_columns(model, implementation.resolve_params(model), table,
                                          f"dataset {job['dataset']}")
    tags = lineage_tags(job, manifest, params)
    result = {"model_type": model["type"], "dataset_run": manifest.get("run_id"),
              "rows_train": table.num_rows, "rows_holdout": holdout_rows}

    registered = _registered_by_earlier_try(pipeline, tags["pipespec.train_key"]) \
        or _fit_and_log(job, params, table, tags)
    registry.set_alias(pipeline, registry.CHALLENGER, registered["version"])
    return {**registered, **result}


def _fit_and_log(job: dict[str, Any], params: dict[str, Any], table: Any, tags: dict[str, str]) -> dict[str, str]:
    """Train, score the training rows, and register the model directory as a new version."""
    from pipespec.tasklib.model import model_types, registry, tracking
    from pipespec.tasklib.model.evaluate import score_prediction

    model = job["model"]
    implementation = model_types.implementation(model["type"])
    network, classes, meta = implementation.fit(model, params, table)
    meta.update(dataset=job["dataset"], dataset_sha256=tags["pipespec.dataset_sha256"], rows_train=table.num_rows)
    loaded = model_types.Loaded(network, meta, classes)
    prediction = implementation.predict(loaded, table)
    scores = score_prediction(loaded, prediction, table.column(model["label"]).to_pylist())
    train_metrics = {f"train_{name}": value for name, value in scores.items() if value is not None}
    with tempfile.TemporaryDirectory(prefix="pipespec-model-") as directory:
        implementation.save(network, classes, meta, Path(directory))
        saved_meta = json.loads((Path(directory) / model_types.META_FILE).read_text())  # what `load` will read
        tracking.describe_model(Path(directory), table, meta, prediction.values)  # MLmodel: signature, example
        registered = registry.register(
            job["pipeline"], Path(directory), tags=tags,
            run_name=f"{job.get('dag_id') or job['pipeline']} {job['run_id']}",
            params={**params, "features": model["features"], "label": model["label"], "model_type": model["type"],
                    "rows_train": table.num_rows},
            metrics={**train_metrics, **({"train_loss": meta["final_loss"]} if "final_loss" in meta else {})})
    tracking.log_dataset(registered["run_id"], table, source=job["dataset"], context="training",
                         name=f"{job['pipeline']} training data", label=model["label"],
                         sha256=tags["pipespec.dataset_sha256"] or None)
    tracking.log_history(registered["run_id"], meta.get("history") or {})
    if job.get("holdout_path"):
        _log_holdout_prediction(job, registered["run_id"], model_types.Loaded(network, saved_meta, classes))
    log.info("registered %s version %s (%s)", job["pipeline"], registered["version"],
             ", ".join(f"{k}={v:.4f}" for k, v in train_metrics.items()))
    return registered


def _log_holdout_prediction(job: dict[str, Any], run_id: str, loaded: Any) -> None:
    """Predict the holdout with the model still in memory and log it on the version's run, for
    evaluate to score the challenger without loading it again (evaluate.cached_prediction)."""
    import pyarrow.parquet as pq

    from pipespec.tasklib.model import evaluate, model_types, registry

    holdout = pq.read_table(job["holdout_path"])
    prediction = model_types.implementation(job["model"]["type"]).predict(loaded, holdout)
    with tempfile.TemporaryDirectory(prefix="pipespec-holdout-") as directory:
        written = evaluate.write_holdout_prediction(Path(directory), prediction, loaded, job["holdout_sha256"],
                                                    holdout.num_rows)
        if written:
            registry.client().log_artifacts(run_id, directory, artifact_path=evaluate.HOLDOUT_PREDICTION)


def lineage_tags(job: dict[str, Any], manifest: dict[str, Any], params: dict[str, Any]) -> dict[str, str]:
    """What anyone needs to tell which data, spec and run produced a model version."""
    data_sha = str((manifest.get("data") or {}).get("sha256", ""))
    spec_hash = job.get("spec_hash") or manifest.get("spec_hash") or ""
    key = hashlib.sha256(json.dumps(
        [job["pipeline"], job["run_id"], data_sha, spec_hash, job["model"], params, job.get("holdout"),
         job.get("holdout_fraction")], sort_keys=True, default=str).encode()).hexdigest()
    return {
        "pipespec.run_id": job["run_id"], "pipespec.dag_id": job.get("dag_id") or "",
        "pipespec.dataset": job["dataset"], "pipespec.dataset_sha256": data_sha,
        "pipespec.dataset_run": str(manifest.get("run_id", "")), "pipespec.spec_hash": str(spec_hash),
        "pipespec.manifest": manifest_tag(manifest), "pipespec.model_type": job["model"]["type"],
        "pipespec.train_key": key,
    }


def manifest_tag(manifest: dict[str, Any], limit: int = MANIFEST_TAG_LIMIT) -> str:
    """The manifest as JSON that fits an MLflow tag: whole if it fits, else its scalars and data ref."""
    text = json.dumps(manifest, sort_keys=True, separators=(",", ":"), default=str)
    if len(text) <= limit:
        return text
    summary = {k: v for k, v in manifest.items() if v is None or isinstance(v, (str, int, float, bool))}
    summary.update(data=manifest.get("data"), sources=sorted(manifest.get("sources") or {}), truncated=True)
    text = json.dumps(summary, sort_keys=True, separators=(",", ":"), default=str)
    if len(text) <= limit:
        return text
    data = manifest.get("data") or {}
    return json.dumps({"run_id": str(manifest.get("run_id", ""))[:200], "data_sha256": str(data.get("sha256", "")),
                       "data_uri": str(data.get("uri", ""))[:1000], "truncated": True}, sort_keys=True)


def _registered_by_earlier_try(pipeline: str, train_key: str) -> dict[str, str] | None:
    from mlflow.exceptions import MlflowException

    from pipespec.tasklib.model import registry

    try:
        found = registry.client().search_model_versions(
            f"name = '{pipeline}' and tags.`pipespec.train_key` = '{train_key}'")
    except MlflowException:
        return None  # no registered model yet: nothing to reuse
    ready = [v for v in found if v.status == "READY"]
    if not ready:
        return None
    latest = max(ready, key=lambda v: int(v.version))
    log.info("version %s was registered by an earlier try of this run with the same data and params: reusing it",
             latest.version)
    return {"version": str(latest.version), "run_id": latest.run_id}
