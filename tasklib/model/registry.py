"""The model registry: MLflow, SQLite-backed by default, a server URI in production.

One registered model per pipeline (named after it). The aliases carry the state:
`champion` is what inference and serving load, `challenger` is the candidate of
the current run. Moving an alias is a single registry call, so a promotion is
atomic: at every moment `champion` names a complete, registered version.
Deciding *whether* to move it is not (MLflow has no compare-and-set on aliases):
`alias_lease` below makes read-compare-move one critical section.
"""

from __future__ import annotations

import json
import logging
import os
import random
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

CHAMPION = "champion"
CHALLENGER = "challenger"
# On a version: {"sha256", "metric", "value"} of its own evaluation as challenger (see evaluate).
HOLDOUT_SCORE_TAG = "pipespec.holdout_score"


def _local_root() -> Path:
    root = Path(os.environ.get("PIPESPEC_STORAGE_ROOT") or Path(os.environ.get("AIRFLOW_HOME", ".")) / "pipespec-data")
    root.mkdir(parents=True, exist_ok=True)
    return root.resolve()


def tracking_uri() -> str:
    """The MLflow tracking URI: `$MLFLOW_TRACKING_URI`, or a local SQLite file."""
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
    """An MLflow client for the tracking URI, set as MLflow's default too."""
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
    """The model version an alias points at; None when unset."""
    from mlflow.exceptions import MlflowException

    try:
        return str(client().get_model_version_by_alias(pipeline, alias).version)
    except MlflowException:
        return None  # no registered model yet, or the alias is not set


def set_alias(pipeline: str, alias: str, version: str) -> None:
    """Point an alias at a model version."""
    client().set_registered_model_alias(pipeline, alias, version)


def delete_alias(pipeline: str, alias: str) -> None:
    """Remove an alias; nothing if it is already gone."""
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
    """The tags of a model version."""
    return dict(client().get_model_version(pipeline, version).tags)


# --- holdout scores recorded on versions ---------------------------------------------------

def record_holdout_score(pipeline: str, version: str, *, sha256: str, metric: str, value: float) -> None:
    """Remember what `version` scored on the holdout with this content hash, so a later promotion
    can compare it with another version scored on the same rows without loading either model."""
    client().set_model_version_tag(pipeline, version, HOLDOUT_SCORE_TAG,
                                   json.dumps({"sha256": sha256, "metric": metric, "value": value}))


def holdout_score(pipeline: str, version: str, *, sha256: str, metric: str) -> float | None:
    """`version`'s recorded `metric` on exactly that holdout; None if it was never scored on it."""
    try:
        recorded = json.loads(version_tags(pipeline, version).get(HOLDOUT_SCORE_TAG) or "{}")
    except ValueError:
        return None
    if recorded.get("sha256") == sha256 and recorded.get("metric") == metric:
        return float(recorded["value"])
    return None


# --- a lease on an alias: mutual exclusion for read-compare-move ------------------------------
#
# Why a registered model as the lock: a promotion must be atomic against other promoters in other
# processes, on other machines, sharing only the MLflow backend, which may be a SQLite file, a SQL
# database, or an HTTP tracking server we have no database access to. The one atomic test-and-set
# every backend offers is the unique model name: `create_registered_model` fails with
# RESOURCE_ALREADY_EXISTS when the name is taken (a primary key in the SQL store, so also behind a
# server). A tag-based lease (write a token, re-read it) is not mutual exclusion: two writers can
# each read back their own token between the other's write and read. A DB lock (pg_advisory_lock,
# SQLite BEGIN IMMEDIATE) would not cover a tracking server.
#
# The lock model carries its holder, a unique token and an expiry. A holder that died leaves it
# behind: a retry of the same task (same holder) takes it over; anyone else breaks it only after it
# expired, by renaming it to `<lock>.stale.<token>`. That rename is itself a test-and-set (the new
# name is unique per stale token), so of two promoters that both saw the same expired lock only one
# breaks it, and the other cannot break the fresh lock the first then takes. Those tombstones are
# kept for that reason (they only appear after a crash). Before moving anything the holder re-reads
# its token (`Lease.verify`), so a holder whose lease expired under it stops instead of writing.

LOCK_SUFFIX = ".pipespec-lock"
_LOCK_POLL_S = (0.05, 0.5)  # random sleep between tries, so waiting promoters do not move in step


class LeaseLost(RuntimeError):
    """The lock expired and was taken by another promoter while we held it: we must not write."""


class LeaseTimeout(TimeoutError):
    """Another promoter held the lock for longer than we were willing to wait."""


@dataclass(frozen=True)
class Lease:
    """A registry lock held by this promoter until it expires."""

    name: str
    holder: str
    token: str

    def verify(self) -> None:
        tags = _lock_tags(self.name)
        if tags is None or tags.get("token") != self.token:
            raise LeaseLost(f"lost the registry lock {self.name} (held by {(tags or {}).get('holder', 'nobody')} "
                            "now): it expired before the promotion finished; nothing was moved")


def lock_name(pipeline: str, alias: str) -> str:
    """The name of the registry lock on a pipeline's alias."""
    return f"{pipeline}.{alias}{LOCK_SUFFIX}"


@contextmanager
def alias_lease(pipeline: str, alias: str, holder: str, *, ttl_s: float, wait_s: float) -> Iterator[Lease]:
    """Hold the lock on `pipeline`'s `alias` (see above) for the body; released on the way out."""
    lease = _acquire(lock_name(pipeline, alias), holder, ttl_s=ttl_s, wait_s=wait_s)
    try:
        yield lease
    finally:
        _release(lease)


def _acquire(name: str, holder: str, *, ttl_s: float, wait_s: float) -> Lease:
    from mlflow.exceptions import MlflowException

    mlflow_client, deadline = client(), time.monotonic() + wait_s
    while True:
        lease = Lease(name, holder, uuid.uuid4().hex)
        tags = {"holder": holder, "token": lease.token, "expires_at": f"{time.time() + ttl_s:.3f}"}
        try:
            mlflow_client.create_registered_model(
                name, tags=tags, description="pipespec promotion lock: held while an alias is compared and moved")
            return lease
        except MlflowException as exc:
            # RESOURCE_DOES_NOT_EXIST: the holder released the lock while the server was reporting the
            # conflict (seen on an MLflow server with two promoters racing): it is free, so try again.
            if exc.error_code == "RESOURCE_DOES_NOT_EXIST" and time.monotonic() <= deadline:
                continue
            if exc.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
        current = _lock_tags(name)
        if current is not None and current.get("holder") == holder:
            # An earlier try of this same task died holding it: take it over.
            for key, value in tags.items():
                mlflow_client.set_registered_model_tag(name, key, value)
            return lease
        if current is not None and float(current.get("expires_at") or 0) < time.time():
            _break(name, current)
            continue
        if time.monotonic() > deadline:
            raise LeaseTimeout(f"the registry lock {name} is held by {(current or {}).get('holder')}; "
                               f"waited {wait_s:.0f}s")
        time.sleep(random.uniform(*_LOCK_POLL_S))


def _break(name: str, stale: dict[str, str]) -> None:
    from mlflow.exceptions import MlflowException

    try:
        client().rename_registered_model(name, f"{name}.stale.{stale.get('token')}")
        log.warning("broke the expired registry lock %s of %s", name, stale.get("holder"))
    except MlflowException:
        pass  # someone else broke it (or it was released) first


def _release(lease: Lease) -> None:
    from mlflow.exceptions import MlflowException

    tags = _lock_tags(lease.name)
    if tags is None or tags.get("token") != lease.token:
        return  # expired and taken over: it is not ours to delete
    try:
        client().delete_registered_model(lease.name)
    except MlflowException:
        pass


def _lock_tags(name: str) -> dict[str, str] | None:
    from mlflow.exceptions import MlflowException

    try:
        return dict(client().get_registered_model(name).tags)
    except MlflowException:
        return None
