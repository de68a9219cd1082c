"""The seeds' lifecycle in Airflow: a deferrable wait for data (real S3 API, moto), a timedelta
schedule, record counts in a warehouse table, a cost gate before training, Ray as a task kind,
DAG-level controls, a retry override, and the evaluation service as setup/teardown."""

from __future__ import annotations

import shutil
import sqlite3
from datetime import timedelta

import pytest

from pipespec.compiler.compile import compile_checked
from pipespec.schemas.check import check_file
from tests.support.paths import CASES, ROOT
from tests.support.s3_server import s3_server  # noqa: F401 - fixture


def rendered(path, edit=None):
    from pipespec.airflow.dag import render_pipeline

    checked = check_file(path)
    assert checked.ok, [d.message for d in checked.diagnostics]
    pipeline = compile_checked(checked)
    return {dag.dag_id.rsplit("__", 1)[1]: dag for dag in render_pipeline(pipeline)}


def test_every_lifecycle_setting_reaches_airflow():
    from airflow.sdk import DeltaDataIntervalTimetable

    from pipespec.airflow.sensors import DataArrivalSensor

    dags = rendered(CASES / "valid" / "lifecycle_seed_behaviours.yaml")
    data, train = dags["data"], dags["train"]
    assert isinstance(data.timetable, DeltaDataIntervalTimetable) and data.timetable.delta == timedelta(hours=12)
    wait = data.get_task("wait_for_data")
    assert isinstance(wait, DataArrivalSensor) and wait.deferrable and wait.wildcard_match
    assert (wait.bucket_name, wait.bucket_key, wait.timeout, wait.poke_interval) == ("drops", "xray/*.tgz", 7200, 60)
    assert data.get_task("extract").upstream_task_ids == {"wait_for_data"}
    assert data.get_task("record_counts").upstream_task_ids == {"measure"}
    assert train.get_task("cost_gate").inherits_from_skipmixin  # a branch: over budget skips training
    assert train.get_task("train").upstream_task_ids == {"cost_gate"}
    assert train.get_task("train").retries == 0  # retries.overrides.train
    for dag in dags.values():
        assert (dag.max_active_runs, dag.max_consecutive_failed_dag_runs) == (1, 3)


def test_the_sensor_key_is_data_not_a_template():
    from pipespec.airflow.sensors import DataArrivalSensor

    sensor = DataArrivalSensor(task_id="wait", bucket_key="s3://b/{{ var.value.secret }}", aws_conn_id="aws_default")
    assert sensor.render_template(sensor.bucket_key, {"var": None}) == "s3://b/{{ var.value.secret }}"


def test_the_temporary_evaluation_service_is_a_setup_and_its_termination_the_teardown():
    train = rendered(ROOT / "pipelines" / "feedback_llm_finetune.yaml")["train"]
    assert train.get_task("eval_service").is_setup and train.get_task("eval_teardown").is_teardown
    assert train.get_task("eval_teardown").upstream_task_ids >= {"evaluate", "eval_service"}


def test_ray_compute_renders_the_deferring_ray_operator(tmp_path):
    from pipespec.airflow.ray_job import RayJobOperator

    text = (ROOT / "pipelines" / "churn.yaml").read_text()
    pods = text[text.index("train:\n"):text.index("\ninference:")]
    spec = text.replace(pods, "train:\n  compute: {backend: ray, conn_id: ray_default, cpus: 2}\n", 1)
    shutil.copytree(ROOT / "pipelines" / "templates", tmp_path / "templates")
    (tmp_path / "churn.yaml").write_text(spec)
    train = rendered(tmp_path / "churn.yaml")["train"].get_task("train")
    assert isinstance(train, RayJobOperator) and train.step_params["compute"]["cpus"] == 2


@pytest.mark.slow
def test_the_data_run_waits_for_the_archive_in_the_triggerer_and_writes_record_counts(s3_server, tmp_path,
                                                                                      monkeypatch):
    """A real data DAG: the deferrable sensor polls moto's S3 until the drop arrives (it is put there
    only once the sensor has deferred to its trigger), then extract → ... → record counts land in a
    SQLite warehouse."""
    from airflow.providers.amazon.aws.triggers.s3 import S3KeyTrigger

    from pipespec.airflow.loader import load_dags
    from pipespec.airflow.triggers import AnyscaleJobTrigger  # noqa: F401 - the triggers module imports cleanly
    from pipespec.local.local_env import ensure_db

    ensure_db()
    pipelines = tmp_path / "pipelines"
    (pipelines / "data" / "raw").mkdir(parents=True)
    (pipelines / "data" / "raw" / "part.jsonl").write_text(
        "".join(f'{{"text": "message {i}", "label": "a"}}\n' for i in range(30)))
    warehouse = tmp_path / "warehouse.db"
    monkeypatch.setenv("AIRFLOW_CONN_WAREHOUSE", f'{{"conn_type": "sqlite", "host": "{warehouse}"}}')
    monkeypatch.setenv("PIPESPEC_STORAGE_ROOT", str(tmp_path / "storage"))
    (pipelines / "drops.yaml").write_text(f"""pipeline: drops
data:
  wait_for: {{uri: "s3://xray-drops/incoming/*.tgz", conn_id: {s3_server.conn_id}, timeout: 2m, poke_interval: 1s}}
  sources:
    - {{name: raw, type: local, path: data/raw/, format: jsonl}}
  record_counts: {{conn_id: warehouse, table: record_counts}}
  publishes: s3://bucket/drops/
""")
    s3_server.client().create_bucket(Bucket="xray-drops")
    monkeypatch.setenv("PIPESPEC_PIPELINES", str(pipelines))
    monkeypatch.setenv("PIPESPEC_CACHE_DIR", str(tmp_path / "cache"))
    deferred = []
    real_run = S3KeyTrigger.run

    async def drop_once_deferred(self):  # the archive arrives while the wait is in the triggerer
        deferred.append(self.bucket_key)
        s3_server.put("xray-drops", "incoming/2026-01.tgz", b"archive")
        async for event in real_run(self):
            yield event

    monkeypatch.setattr(S3KeyTrigger, "run", drop_once_deferred)
    namespace: dict = {}
    load_dags(pipelines, namespace, tmp_path / "cache")
    run = namespace["drops__data"].test()
    states = {ti.task_id: ti.state for ti in run.get_task_instances()}
    assert run.state == "success", states
    assert deferred  # the sensor found nothing at first and deferred
    assert states["wait_for_data"] == "success" and states["record_counts"] == "success"
    with sqlite3.connect(warehouse) as db:
        assert db.execute("select pipeline, source, records from record_counts").fetchall() == [("drops", "raw", 30)]


@pytest.mark.slow
@pytest.mark.parametrize("canary_drop, expected", [(0.0, "promoted"), (0.2, "rolled back")])
def test_stage_windows_wait_in_the_triggerer_and_the_canary_guard_judges_at_the_end(canary_drop, expected,
                                                                                      tmp_path, monkeypatch):
    """Shadow and canary durations are deferred waits (WaitSensor, deferrable); the canary's guard runs
    only once its window is over, and a trip there rolls back."""
    from pipespec.local.local_env import ensure_db
    from pipespec.tasklib.rollout.stages import CanaryGuardTripped
    from tests.support.airflow_harness import run_dag, steps

    ensure_db()
    pipelines = tmp_path / "pipelines"
    pipelines.mkdir()
    (pipelines / "windows.yaml").write_text("""pipeline: windows
external_assets: [s3://bucket/windows/]
train:
  dataset: s3://bucket/windows/
  model: {type: keras_text_classifier}
evaluate: {metric: f1_macro}
rollout:
  stages: [{shadow: {duration: 2s}}, {canary: {percent: 10, duration: 3s, guard: {max_drop: 0.05}}}, full]
""")
    judged = []

    def guard(ctx, *, pipeline, guard, scores=None):
        judged.append(ctx.task_id)
        if canary_drop > guard["max_drop"]:
            raise CanaryGuardTripped("canary guard tripped")
        return {"stage": "canary_guard"}

    with steps(model_train=lambda ctx, **_: {"version": "2"},
               model_evaluate=lambda ctx, **_: {"challenger": 0.9, "champion": 0.8, "metric": "f1_macro"},
               rollout_decide=lambda ctx, **_: {"decision": "promote"},
               rollout_shadow=lambda ctx, **_: {"stage": "shadow"},
               rollout_canary=lambda ctx, **_: {"stage": "canary"},
               rollout_canary_guard=guard,
               rollout_promote=lambda ctx, **_: {"promoted": True},
               rollout_rollback=lambda ctx, **_: {"rolled_back": True},
               report_write=lambda ctx, **_: {"report": "ok"}):
        run, states = run_dag(pipelines, "windows__train", monkeypatch, tmp_path / "cache")
    tis = {ti.task_id: ti for ti in run.get_task_instances()}
    assert states[("shadow_window", -1)] == states[("canary_10_window", -1)] == "success"
    window, checked = tis["canary_10_window"], tis["canary_10_guard"]
    assert (window.end_date - window.start_date).total_seconds() >= 3  # the window was waited out
    assert checked.start_date >= window.end_date and judged == ["canary_10_guard"]
    if expected == "promoted":
        assert states[("promote", -1)] == "success" and states[("rollback", -1)] == "skipped"
    else:
        assert states[("canary_10_guard", -1)] == "failed" and states[("rollback", -1)] == "success"
        assert states[("promote", -1)] == "upstream_failed"


def test_a_manual_retrain_and_rollout_flow_sits_beside_the_scheduled_one():
    dags = rendered(ROOT / "pipelines" / "feedback_llm_finetune.yaml")
    scheduled, manual = dags["train"], dags["retrain"]
    from airflow.sdk.definitions.timetables.assets import AssetTriggeredTimetable
    from airflow.sdk.definitions.timetables.simple import NullTimetable

    assert isinstance(manual.timetable, NullTimetable)  # only triggered by hand
    assert isinstance(scheduled.timetable, AssetTriggeredTimetable)  # the asset schedule stays
    assert set(manual.task_ids) == set(scheduled.task_ids)  # the same loop: train, live evaluation, decide, rollout
    assert edges(manual) == edges(scheduled)
    assert "Triggered by hand only" in manual.doc_md and "retrain" in manual.tags
    assert manual.get_task("promote").outlets == scheduled.get_task("promote").outlets  # inference follows either


def edges(dag) -> set[tuple[str, str]]:
    return {(up, t.task_id) for t in dag.tasks for up in t.upstream_task_ids}
