"""Training on Ray: the exact Ray Jobs request, and a real local Ray cluster on 127.0.0.1 that
runs the job, streams its log into the task log, and stops it on kill or timeout."""

from __future__ import annotations

import asyncio
import hashlib
import copy
import json
import shlex
import time

import pytest

from pipespec.tasklib.compute import kubernetes, ray as ray_compute
from tests.support.airflow_server import free_port
from tests.support.paths import ROOT
from tests.support.ray_cluster import ray_cluster

RUN = {"dag_id": "churn__train", "task_id": "train", "run_id": "manual__2026-01-05T10:00:00+00:00",
       "map_index": -1, "try_number": 2, "owner": "ml-growth"}
HOSTILE = "x' $(touch pwned) `id` {{ conn.aws_default.password }}"


@pytest.fixture(scope="module")
def train_params() -> dict:
    from pipespec.compiler.compile import compile_checked
    from pipespec.schemas.check import check_file

    checked = check_file(ROOT / "pipelines" / "churn.yaml")
    assert checked.ok, [d.message for d in checked.diagnostics]
    task = next(t for dag in compile_checked(checked).dags for t in dag.tasks
                if dag.dag_id == "churn__train" and t.task_id == "train")
    params = copy.deepcopy(task.params)
    params["compute"] = {"backend": "ray", "conn_id": "ray_default", "cpus": 1, "gpus": 0, "timeout": "1h",
                         "env": {"TF_CPP_MIN_LOG_LEVEL": "2"}}
    return params


def test_the_request_runs_the_anyscale_entrypoint_and_quotes_every_word(train_params, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow:5000")
    monkeypatch.delenv("PIPESPEC_STORAGE_ROOT", raising=False)
    params = copy.deepcopy(train_params)
    params["model"]["params"]["note"] = HOSTILE
    request = ray_compute.job_request("train", params, run=RUN)
    argv = shlex.split(request.pop("entrypoint"))
    assert argv[:5] == [*kubernetes.RUNNER, "train", "--params-json"]
    assert json.loads(argv[5]) == {**kubernetes.runner_job(params, RUN)} and HOSTILE in argv[5]
    assert request == {
        "submission_id": f"pipespec-churn-train-{hashlib.sha256(RUN['run_id'].encode()).hexdigest()[:12]}-try2",
        "runtime_env": {"py_modules": [str(ray_compute.package_folder())],
                        "env_vars": {"TF_CPP_MIN_LOG_LEVEL": "2", "MLFLOW_TRACKING_URI": "http://mlflow:5000"}},
        "entrypoint_num_cpus": 1.0, "entrypoint_num_gpus": 0.0,
        "metadata": {"app": "pipespec", "pipeline": "churn", "run_id": RUN["run_id"]},
    }


def test_the_llm_fine_tune_is_not_sent_to_ray(train_params):
    params = copy.deepcopy(train_params)
    params["model"]["type"] = "llm_finetune"
    with pytest.raises(ValueError, match="backend: anyscale"):
        ray_compute.job_request("train", params, run=RUN)


@pytest.fixture(scope="module")
def cluster():
    with ray_cluster(free_port()) as running:
        yield running


def submit(cluster, entrypoint: str, job_id: str) -> None:
    from ray.job_submission import JobSubmissionClient

    client = JobSubmissionClient(cluster.address, headers={"Authorization": f"Bearer {cluster.token}"})
    client.submit_job(entrypoint=entrypoint, submission_id=job_id)


def status(cluster, job_id: str) -> str:
    from ray.job_submission import JobSubmissionClient

    client = JobSubmissionClient(cluster.address, headers={"Authorization": f"Bearer {cluster.token}"})
    return str(client.get_job_status(job_id))


def trigger(cluster, monkeypatch, job_id: str, deadline_s: float = 300):
    from pipespec.airflow.triggers import RayJobTrigger

    for name, value in cluster.connection_env().items():
        monkeypatch.setenv(name, value)
    return RayJobTrigger(address=cluster.address, job_id=job_id, conn_id="ray_default",
                         deadline=time.time() + deadline_s, poll_interval=0.5)


async def first_event(waiting):
    async for event in waiting.run():
        return event.payload


@pytest.mark.slow
def test_the_trigger_waits_for_the_job_and_copies_its_log(cluster, monkeypatch, capfd):
    submit(cluster, "python -c 'print(\"PIPESPEC_RESULT {\\\"version\\\": \\\"4\\\"}\")'", "quick-1")
    waiting = trigger(cluster, monkeypatch, "quick-1")
    event = asyncio.run(first_event(waiting))
    assert event == {"status": "SUCCEEDED", "job_id": "quick-1", "message": event["message"]}
    assert '[ray quick-1] PIPESPEC_RESULT {"version": "4"}' in capfd.readouterr().out  # the task log
    assert waiting.serialize() == ("pipespec.airflow.triggers.RayJobTrigger", {
        "address": cluster.address, "job_id": "quick-1", "conn_id": "ray_default", "deadline": waiting.deadline,
        "poll_interval": 0.5})  # no token in what Airflow stores


@pytest.mark.slow
def test_killing_the_task_stops_the_ray_job(cluster, monkeypatch):
    submit(cluster, "sleep 120", "slow-1")
    waiting = trigger(cluster, monkeypatch, "slow-1")
    asyncio.run(waiting.on_kill())
    deadline = time.monotonic() + 30
    while status(cluster, "slow-1") != "STOPPED":
        assert time.monotonic() < deadline
        time.sleep(0.5)


@pytest.mark.slow
def test_the_spec_timeout_stops_the_job(cluster, monkeypatch):
    submit(cluster, "sleep 120", "slow-2")
    event = asyncio.run(first_event(trigger(cluster, monkeypatch, "slow-2", deadline_s=1)))
    assert event["status"] == "TIMED_OUT"
    deadline = time.monotonic() + 30
    while status(cluster, "slow-2") != "STOPPED":
        assert time.monotonic() < deadline
        time.sleep(0.5)


@pytest.mark.slow
def test_a_model_trains_on_ray_and_returns_what_a_local_train_returns(cluster, train_params, tmp_path, monkeypatch):
    """The whole path: RayJobOperator submits, dag.test() runs the trigger, the runner on Ray trains
    and registers the model in the same MLflow, and the task returns the registered version."""
    import pyarrow as pa
    from airflow.sdk import DAG

    from pipespec.airflow.ray_job import RayJobOperator
    from pipespec.local.sample_data import tabular_rows
    from pipespec.tasklib.model import registry
    from pipespec.tasklib.published import mark_latest, run_prefix, write_manifest
    from pipespec.tasklib.storage import write_table

    monkeypatch.setenv("PIPESPEC_STORAGE_ROOT", str(tmp_path / "storage"))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    for name, value in cluster.connection_env().items():
        monkeypatch.setenv(name, value)
    prefix = run_prefix(train_params["dataset"], "scheduled__2026-01-04", "churn")
    rows = [{**row, "f3": row["f0"] * 0.5} for row in tabular_rows(400, seed=3, features=3)]
    ref = write_table(pa.Table.from_pylist(rows), f"{prefix}/data.parquet")
    write_manifest(prefix, {"data": ref.to_dict(), "run_id": "scheduled__2026-01-04"})
    mark_latest(train_params["dataset"], prefix)
    params = copy.deepcopy(train_params)
    params["model"]["params"]["epochs"] = 2

    with DAG("churn__train", schedule=None, owner_links={}) as dag:
        RayJobOperator(task_id="train", step_params=params, poll_interval=1, owner="ml-growth")
    run = dag.test()
    train = run.get_task_instance("train")
    assert train.state == "success"
    result = train.xcom_pull(task_ids="train")
    assert result["ray_job_id"].startswith("pipespec-churn-train-")
    assert str(registry.client().get_model_version_by_alias("churn", registry.CHALLENGER).version) == result["version"]


def test_remote_training_reports_its_lineage_like_a_local_train(train_params, monkeypatch):
    """The Ray (and lazy Kubernetes/Anyscale) train task tells OpenLineage what it read and wrote."""
    from pipespec.airflow import lineage
    from pipespec.airflow.ray_job import RayJobOperator

    monkeypatch.setattr(lineage, "enabled", lambda: True)
    operator = RayJobOperator(task_id="train", step_params=copy.deepcopy(train_params))
    operator.record_lineage({"version": "7", "run_id": "abc", "ray_job_id": "pipespec-churn-train-x-try1"})
    facets = operator.get_openlineage_facets_on_complete(None)
    assert [(d.namespace, d.name) for d in facets.inputs] == [("s3://growth", "churn/training")]
    assert [d.name for d in facets.outputs] == ["models:/churn/7"]  # in the MLflow registry's namespace
