"""Issue 13: the production topology in miniature (pipespec/local/cluster), and faults in it.

One cluster for the module (it takes minutes to start on two cores): PostgreSQL, Redis, an S3
server, the MLflow server, the Airflow control plane and two Celery workers sharing no disk. The
S3 server is moto behind a gate (tests/support/gated_s3.py), so a test can stop a worker at an
exact write. The tests run in order and build on each other: the first run crowns v1.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import shutil
import tempfile
import time
from pathlib import Path

import pytest

from pipespec.local.cluster import demo
from pipespec.local.cluster.services import DAGS, PIPELINE, WORKERS, Cluster, cluster, wait_until
from pipespec.local.sinks import AlertSinks
from tests.support.gated_s3 import GatedS3

pytestmark = pytest.mark.slow  # a dozen real services and TensorFlow training on two cores

DATA, TRAIN, INFERENCE = DAGS


@pytest.fixture(scope="module")
def s3() -> GatedS3:
    server = GatedS3().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def running(s3) -> Cluster:
    # Not under pytest's tmp_path: every pytest session (other test runs on this machine) makes
    # pytest-of-<user> 0700 again, and PostgreSQL runs as another user (pgserver, under root).
    workspace = demo.fresh_workspace(Path(tempfile.mkdtemp(prefix="pipespec-cluster-")) / "workspace")
    try:
        with AlertSinks() as sinks, cluster(workspace, s3_endpoint=s3.endpoint,
                                            extra_env=demo.alert_connections(sinks)) as live:
            live.wait_for_dags()
            yield live
    finally:
        shutil.rmtree(workspace.parent, ignore_errors=True)


def task(running: Cluster, run: dict, task_id: str) -> dict | None:
    return next((ti for ti in running.task_instances(run["dag_id"], run["dag_run_id"]) if ti["task_id"] == task_id),
                None)


def s3_keys(running: Cluster, bucket: str, prefix: str = "") -> list[str]:
    paginator = running.s3_client().get_paginator("list_objects_v2")
    return [o["Key"] for page in paginator.paginate(Bucket=bucket, Prefix=prefix) for o in page.get("Contents", [])]


def published(running: Cluster, asset: str) -> tuple[str, dict] | None:
    """(run prefix, manifest) of what `<asset>/_LATEST` names: what readers see."""
    client = running.s3_client()
    try:
        pointer = client.get_object(Bucket="feedback", Key=f"{asset}/_LATEST")["Body"].read()
    except client.exceptions.NoSuchKey:
        return None
    key = pointer.decode().strip().removeprefix("s3://feedback/")
    return key, json.loads(client.get_object(Bucket="feedback", Key=f"{key}/manifest.json")["Body"].read())


def assert_complete(running: Cluster, asset: str) -> str:
    """What readers see under `asset` is whole: each data file's sha256 and rows are the manifest's. Its prefix."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    key, manifest = published(running, asset)
    client = running.s3_client()
    for part in manifest.get("parts") or [manifest["data"]]:  # predictions: parts; a dataset: one file
        data = client.get_object(Bucket="feedback", Key=part["uri"].removeprefix("s3://feedback/"))["Body"].read()
        assert hashlib.sha256(data).hexdigest() == part["sha256"]
        assert pq.read_table(pa.BufferReader(data)).num_rows == part["rows"]
    return key


def champion_loads(running: Cluster) -> str:
    """The champion's version; its model artifacts download from the server (which reads S3)."""
    from mlflow import MlflowClient

    best = demo.champion(running)
    assert best is not None
    client = MlflowClient(tracking_uri=running.mlflow_url)
    assert {f.path for f in client.list_artifacts(best["run_id"], "model")} >= {"model/pipespec.json"}
    return best["version"]


def test_pipeline_runs_end_to_end_across_two_workers(running):
    demo.seed(running, drop=0, zendesk=0, slack=160)
    started = time.monotonic()
    runs = running.run_pipeline()
    print(f"\npipeline on the cluster: {time.monotonic() - started:.0f}s")
    assert [r["run_type"] for r in runs] == ["manual", "asset_triggered", "asset_triggered"]
    counts = running.tasks_per_worker(runs)
    assert set(counts) == set(WORKERS) and all(counts[w] > 0 for w in WORKERS), counts

    assert champion_loads(running) == "1"
    assert any("/model/" in key for key in s3_keys(running, "mlflow-artifacts"))  # the server put it in S3
    _, predictions = published(running, "predictions")
    assert predictions["model_version"] == "1" and predictions["data"]["rows"] == 1200
    assert_complete(running, "predictions")
    assert_complete(running, "curated")
    assert any(key.endswith(".html") for key in s3_keys(running, "pipespec-work"))  # the report
    assert s3_keys(running, "airflow-logs", "logs/")  # task logs, uploaded by the workers
    for worker in WORKERS:  # nothing a step wrote stayed on a worker's disk
        home = running.workspace / worker
        assert not (home / "pipespec-data").exists() and not any((home / "work").iterdir())


def test_worker_killed_during_training_retries_on_the_other(running):
    before = {dag_id: {r["dag_run_id"] for r in running.runs(dag_id)} for dag_id in DAGS}
    demo.seed(running, drop=1, zendesk=600, slack=300)
    running.trigger(DATA)
    running.wait_for_run(DATA, before[DATA], 600)

    def training() -> dict | None:
        runs = [r for r in running.runs(TRAIN) if r["dag_run_id"] not in before[TRAIN]]
        ti = task(running, runs[0], "train") if runs else None
        return ti if ti and ti["state"] == "running" and ti.get("hostname") else None

    ti = wait_until(training, "the train task to run", 600, every_s=2)
    # Inside the training job: the task process starts in well under a second (its worker preloads
    # pipespec) and the whole task can end ~10 s after it runs, so the kill comes 3 s in.
    time.sleep(3)
    victim = ti["hostname"]
    running.kill_worker(victim)
    killed_at = time.monotonic()
    assert champion_loads(running) == "1"  # serving is untouched while training is lost
    try:
        run = running.wait_for_run(TRAIN, before[TRAIN], 900)
    finally:
        running.start_worker(victim)
    retried = task(running, run, "train")
    survivor = next(w for w in WORKERS if w != victim)
    assert retried["try_number"] >= 2 and retried["hostname"] == survivor
    print(f"\ntrain retried on {survivor} and finished {time.monotonic() - killed_at:.0f}s after the kill")
    assert champion_loads(running) in ("1", "2")


def test_worker_killed_during_publish_leaves_the_last_publication_whole(running, s3):
    before = {dag_id: {r["dag_run_id"] for r in running.runs(dag_id)} for dag_id in DAGS}
    old_prefix = assert_complete(running, "curated")
    champion_before = champion_loads(running)
    # Hold the write that makes this run's manifest appear: its data file is in place, _LATEST not moved.
    s3.gate.arm("PUT", r"^/feedback/curated/runs/.+/manifest\.json$")
    demo.seed(running, drop=2, zendesk=300, slack=100)
    running.trigger(DATA)
    assert s3.gate.held.wait(600), "publish never wrote its manifest"
    run = next(r for r in running.runs(DATA) if r["dag_run_id"] not in before[DATA])
    victim = task(running, run, "publish")["hostname"]
    running.kill_worker(victim)
    s3.gate.drop()  # the request died with its worker
    assert assert_complete(running, "curated") == old_prefix  # readers still see the last whole publication
    try:
        run = running.wait_for_run(DATA, before[DATA], 600)
    finally:
        running.start_worker(victim)
    publish = task(running, run, "publish")
    assert publish["try_number"] >= 2 and publish["hostname"] != victim
    run_key = "".join(c if c.isalnum() or c in "-_." else "_" for c in run["dag_run_id"])
    assert assert_complete(running, "curated").endswith(f"/{run_key}")
    assert champion_loads(running) == champion_before  # (the Asset it published starts training: next test)


def test_mlflow_server_stopped_during_a_run_the_step_retries(running):
    finished = {r["dag_run_id"] for r in running.runs(TRAIN) if r["state"] in ("success", "failed")}
    if all(r["dag_run_id"] in finished for r in running.runs(TRAIN)):
        running.trigger(TRAIN)  # else: the run the last publication triggered

    def training() -> dict | None:
        pending = [r for r in running.runs(TRAIN) if r["dag_run_id"] not in finished]
        ti = task(running, pending[-1], "train") if pending else None
        return pending[-1] if ti and ti["state"] == "running" else None

    run = wait_until(training, "the train task to run", 900, every_s=2)
    running.stop_mlflow()
    stopped_at = time.monotonic()

    def failed_once() -> bool:
        return any(ti["try_number"] >= 2 or ti["state"] == "up_for_retry"
                   for ti in running.task_instances(TRAIN, run["dag_run_id"]))

    try:
        wait_until(failed_once, "a step to fail on the missing MLflow server", 900, every_s=3)
    finally:
        running.start_mlflow()
    print(f"\nMLflow down for {time.monotonic() - stopped_at:.0f}s")
    done = running.wait_for_run(TRAIN, {r["dag_run_id"] for r in running.runs(TRAIN)} - {run["dag_run_id"]}, 900)
    assert done["dag_run_id"] == run["dag_run_id"]
    assert any(ti["try_number"] >= 2 for ti in running.task_instances(TRAIN, run["dag_run_id"]))
    champion_loads(running)


def test_two_promoters_on_two_workers_race_and_the_better_model_wins(running, monkeypatch, tmp_path):
    """Two promote steps in two processes, each with a worker's HOME and TMPDIR, against the MLflow server
    over HTTP. (Two runs of one train DAG never overlap: max_active_runs=1. The lease is what holds when
    they do anyway, e.g. a promote cleared in an old run, or two deployments of one pipeline.)"""
    from tests.tasklib import test_guard_champion as guard

    monkeypatch.setenv("MLFLOW_TRACKING_URI", running.mlflow_url)
    monkeypatch.chdir(tmp_path)
    for first in ("worse", "better"):
        pipeline = f"race_{first}_first"
        runs = guard.contenders(pipeline, tmp_path, monkeypatch)
        second = "worse" if first == "better" else "better"
        marks, gate = tmp_path / f"marks-{first}", tmp_path / f"gate-{first}"
        marks.mkdir()
        spawn = multiprocessing.get_context("spawn")
        processes = {name: spawn.Process(target=guard._promote_in_process, args=(
            pipeline, runs[name], f"run-{name}", str(gate) if name == first else None, str(marks)))
            for name in (first, second)}

        def start_on(name: str, worker: str) -> None:  # the child inherits the worker's HOME and TMPDIR
            monkeypatch.setenv("HOME", str(running.workspace / worker))
            monkeypatch.setenv("TMPDIR", str(running.workspace / worker / "tmp"))
            processes[name].start()

        try:
            start_on(first, WORKERS[0])
            guard._wait_for(marks / f"run-{first}.read", 120)
            start_on(second, WORKERS[1])
            time.sleep(8)
            assert not (marks / f"run-{second}.read").exists()  # waiting on the lease, across processes
            gate.touch()
            for process in processes.values():
                process.join(180)
                assert process.exitcode == 0
        finally:
            for process in processes.values():
                if process.is_alive():
                    process.kill()
        assert (marks / f"run-{second}.read").read_text() == runs[first]["challenger_version"]
        assert guard.aliases(pipeline)["champion"] == runs["better"]["challenger_version"]
