"""The model registry: MLflow, SQLite-backed by default, a server URI in production.

One registered model per pipeline (named after it). The aliases carry the state:
`champion` is what inference and serving load, `challenger` is the candidate of
the current run. Moving an alias is a single registry call, so a promotion is
atomic: at every moment `champion` names a complete, registered version.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

CHAMPION = "champion"
CHALLENGER = "challenger"


def _local_root() -> Path:
    root = Path(os.environ.get("PIPESPEC_STORAGE_ROOT") or Path(os.environ.get("AIRFLOW_HOME", ".")) / "pipespec-data")
    root.mkdir(parents=True, exist_ok=True)
    return root.resolve()


def tracking_uri() -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{_local_root() / 'mlflow.db'}"


def _experiment(pipeline: str) -> str:
    """The pipeline's experiment; with the embedded SQLite backend its artifacts live next to the
    database (MLflow's default would be ./mlruns in whatever directory the worker runs in)."""
    import mlflow

    existing = mlflow.get_experiment_by_name(pipeline)
    if existing is not None:
        return existing.experiment_id
    from mlflow.exceptions import MlflowException

    uri = tracking_uri()
    # With a local SQLite backend, artifacts go next to the database (not ./mlruns of the worker's cwd).
    location = (Path(uri.removeprefix("sqlite:///")).parent / "mlartifacts").as_uri() if uri.startswith("sqlite:///") \
        else None
    try:
        return mlflow.create_experiment(pipeline, artifact_location=location)
    except MlflowException:  # another worker created it first
        return mlflow.get_experiment_by_name(pipeline).experiment_id


def client() -> Any:
    import mlflow
    from mlflow import MlflowClient

    uri = tracking_uri()
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def register(pipeline: str, model_dir: Path, *, params: dict[str, Any], metrics: dict[str, float],
             tags: dict[str, str], run_name: str) -> dict[str, str]:
    """Log a trained model directory as an MLflow run and register it as a new version."""
    import mlflow

    mlflow_client = client()
    with mlflow.start_run(experiment_id=_experiment(pipeline), run_name=run_name) as run:
        mlflow.log_params({k: str(v)[:500] for k, v in params.items()})
        mlflow.log_metrics(metrics)
        mlflow.set_tags(tags)
        mlflow.log_artifacts(str(model_dir), artifact_path="model")
    if pipeline not in {m.name for m in mlflow_client.search_registered_models(filter_string=f"name='{pipeline}'")}:
        mlflow_client.create_registered_model(pipeline)
    version = mlflow_client.create_model_version(pipeline, f"runs:/{run.info.run_id}/model", run.info.run_id, tags=tags)
    return {"version": str(version.version), "run_id": run.info.run_id}


def version_for(pipeline: str, alias: str) -> str | None:
    from mlflow.exceptions import MlflowException

    try:
        return str(client().get_model_version_by_alias(pipeline, alias).version)
    except MlflowException:
        return None  # no registered model yet, or the alias is not set


def set_alias(pipeline: str, alias: str, version: str) -> None:
    client().set_registered_model_alias(pipeline, alias, version)


def delete_alias(pipeline: str, alias: str) -> None:
    from mlflow.exceptions import MlflowException

    try:
        client().delete_registered_model_alias(pipeline, alias)
    except MlflowException:
        pass  # already gone: deleting is idempotent


def download(pipeline: str, version: str, destination: Path) -> Path:
    """The model directory of a version, downloaded to `destination`."""
    mlflow_client = client()
    run_id = mlflow_client.get_model_version(pipeline, version).run_id
    path = mlflow_client.download_artifacts(run_id, "model", str(destination))
    return Path(path)


def version_tags(pipeline: str, version: str) -> dict[str, str]:
    return dict(client().get_model_version(pipeline, version).tags)
