"""What the Pipelines page shows, read from the specs, Airflow's metadata DB and the MLflow registry.

- the specs: the project's `pipelines/` (as the DAG file loads them), through the compiler's
  cache, so a pipeline is listed with the file it came from;
- Airflow metadata: the steps' results in XCom (the data gate's measurement, the evaluation,
  the report) and when each `promote` task succeeded, i.e. the champion history;
- MLflow: which version the `champion` alias points at now.

Only pipelines with a DAG the user may read are shown.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from pipespec.airflow.links import RUN_ID, report_path

log = logging.getLogger(__name__)
STAGES = ("data", "train", "inference")


@dataclass
class Promotion:
    """A version that became champion: when, and its score on the decision metric."""

    version: str
    value: float | None
    promoted_at: datetime
    report_url: str | None


@dataclass
class PipelineView:
    """One pipeline on the Pipelines page."""

    name: str
    spec_file: str
    spec_text: str
    dag_ids: list[str]
    metric: str | None = None
    champion: str | None = None
    data_gate: str | None = None
    decision: str | None = None
    history: list[Promotion] = field(default_factory=list)
    reports: list[tuple[str, str]] = field(default_factory=list)  # (label, URL), newest first
    publications: list[dict[str, Any]] = field(default_factory=list)


def pipelines_dir() -> Path:
    """The specs the DAG file loads: $PIPESPEC_PIPELINES, or `pipelines/` beside the DAG file's folder."""
    if os.environ.get("PIPESPEC_PIPELINES"):
        return Path(os.environ["PIPESPEC_PIPELINES"])
    from airflow.configuration import conf

    dags = Path(conf.get("core", "dags_folder"))
    return (dags.parent if dags.suffix == ".py" else dags).parent / "pipelines"


def pipeline_views(session: Any, readable_dag_ids: set[str]) -> list[PipelineView]:
    """Every compiled pipeline the user may read, with its gate, decision and champion history."""
    from pipespec.compiler.build import build_repo

    cache = os.environ.get("PIPESPEC_CACHE_DIR")
    root = pipelines_dir()
    built = build_repo(root, Path(cache) if cache else None)
    views = []
    for pipeline in sorted(built.pipelines, key=lambda p: p.name):
        dag_ids = [dag.dag_id for dag in pipeline.dags]
        if not readable_dag_ids.intersection(dag_ids):
            continue
        spec = Path(pipeline.spec_file)
        # Named as in the repository, not by where the server keeps it.
        shown = spec.relative_to(root.parent) if spec.is_relative_to(root.parent) else Path(spec.name)
        view = PipelineView(pipeline.name, str(shown), _spec_text(spec), dag_ids)
        _fill_from_runs(view, session)
        view.champion = _champion(pipeline.name) if view.history else None
        views.append(view)
    return views


def _spec_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError as error:
        return f"(the spec could not be read: {error.strerror})"


def _fill_from_runs(view: PipelineView, session: Any) -> None:
    name = view.name
    data = _results(session, f"{name}__data", ("measure", "publish"))
    measure = _newest(data, "measure")
    if isinstance(measure, dict):
        view.data_gate = "passed" if measure.get("passed") else f"blocked: {measure.get('reason') or 'see the run'}"
    train: dict[tuple[str, str], dict[str, Any]] = {}
    promoted: dict[tuple[str, str], datetime] = {}
    for dag_id in (f"{name}__train", f"{name}__retrain"):  # the scheduled flow and the one triggered by hand
        train.update({(dag_id, run): r for run, r in _results(session, dag_id, ("evaluate", "report")).items()})
        promoted.update({(dag_id, run): end for run, end in _succeeded(session, dag_id, "promote").items()})
    for run_id, results in sorted(train.items(), key=lambda item: item[1]["_at"]):
        scores, report = results.get("evaluate") or {}, results.get("report") or {}
        view.metric = scores.get("metric") or view.metric
        report_run = report.get("mlflow_run_id")
        url = report_path(report_run) + "/" if isinstance(report_run, str) and RUN_ID.match(report_run) else None
        version = str(scores.get("challenger_version", "?"))
        if url:
            view.reports.insert(0, (f"v{version} · {results['_at']:%Y-%m-%d %H:%M} · {report.get('outcome', '')}",
                                    url))
        if isinstance(report.get("markdown"), str):
            view.decision = report["markdown"]
        if run_id in promoted:
            value = scores.get("challenger")
            view.history.append(Promotion(version, value if isinstance(value, (int, float)) else None,
                                          promoted[run_id], url))
    publications = [_newest(data, "publish"),
                    _newest(_results(session, f"{name}__inference", ("publish_predictions",)), "publish_predictions")]
    view.publications = [p for p in publications if isinstance(p, dict) and p.get("uri")]


def _results(session: Any, dag_id: str, task_ids: tuple[str, ...]) -> dict[str, dict[str, Any]]:
    """{run id: {task id: its result, "_at": when it was stored}} for unmapped tasks of a DAG."""
    from airflow.models.xcom import XComModel
    from sqlalchemy import select

    rows = session.execute(select(XComModel).where(
        XComModel.dag_id == dag_id, XComModel.task_id.in_(task_ids), XComModel.key == "return_value",
        XComModel.map_index == -1)).scalars()
    runs: dict[str, dict[str, Any]] = {}
    for row in rows:
        run = runs.setdefault(row.run_id, {"_at": row.timestamp})
        run[row.task_id] = XComModel.deserialize_value(row)
        run["_at"] = max(run["_at"], row.timestamp)
    return runs


def _newest(runs: dict[str, dict[str, Any]], task_id: str) -> Any:
    having = [run for run in runs.values() if task_id in run]
    return max(having, key=lambda run: run["_at"])[task_id] if having else None


def _succeeded(session: Any, dag_id: str, task_id: str) -> dict[str, datetime]:
    """{run id: end date} of the runs in which `task_id` succeeded."""
    from airflow.models.taskinstance import TaskInstance
    from sqlalchemy import select

    rows = session.execute(select(TaskInstance.run_id, TaskInstance.end_date).where(
        TaskInstance.dag_id == dag_id, TaskInstance.task_id == task_id, TaskInstance.state == "success"))
    return {run_id: end for run_id, end in rows if end is not None}


def _champion(pipeline: str) -> str | None:
    """The version the registry's `champion` alias points at now (None without a registry or a champion)."""
    try:
        from pipespec.tasklib.model import registry

        return registry.version_for(pipeline, registry.CHAMPION)
    except Exception:  # noqa: BLE001 - the page still shows Airflow's history when MLflow is unreachable
        log.warning("pipespec: the MLflow registry could not be read for %s", pipeline, exc_info=True)
        return None


def report_of_run(run_id: str) -> tuple[str, str] | None:
    """(pipeline, MLflow run id) when `run_id` is a run of a pipeline's experiment; None otherwise."""
    from mlflow.exceptions import MlflowException

    from pipespec.tasklib.model import registry

    client = registry.client()
    try:
        run = client.get_run(run_id)
    except MlflowException:
        return None
    return client.get_experiment(run.info.experiment_id).name, run_id


def report_file(run_id: str, name: str) -> bytes | None:
    """A file of the report logged to an MLflow run (`report/<name>`); None when there is none."""
    import tempfile

    from mlflow.exceptions import MlflowException

    from pipespec.tasklib.model import registry
    from pipespec.tasklib.report import ARTIFACT_DIR

    client = registry.client()
    with tempfile.TemporaryDirectory(prefix="pipespec-report-") as directory:
        try:
            path = client.download_artifacts(run_id, f"{ARTIFACT_DIR}/{name}", directory)
        except (MlflowException, OSError):
            return None
        return Path(path).read_bytes() if Path(path).is_file() else None
