"""Remote jobs wait in the triggerer, not in a worker slot: the Anyscale fine-tune defers to
pipespec's AnyscaleJobTrigger (the provider only polls in place), and any operator that defers
(the pod operator, deferrable) defers the task with its own trigger and resumes in its method."""

from __future__ import annotations

import copy

import pytest

from pipespec.airflow import lazy
from pipespec.airflow.triggers import AnyscaleJobTrigger
from pipespec.local.sample_data import viggo_rows
from tests.airflow.test_llm_loop import compiled, publish  # noqa: F401 - the compiled feedback spec fixture
from tests.support.fake_anyscale import working_anyscale

pytestmark = pytest.mark.slow


def test_the_anyscale_fine_tune_waits_in_the_triggerer_and_registers_its_adapter(compiled, tmp_path, monkeypatch):
    from airflow.sdk import DAG

    from pipespec.tasklib.model import registry

    monkeypatch.setenv("PIPESPEC_STORAGE_ROOT", str(tmp_path / "storage"))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.chdir(tmp_path)
    params = copy.deepcopy(compiled["train", "train"].params)
    publish(params["dataset"], viggo_rows(100, seed=1), "scheduled__2026-01-01")
    waited = []
    real_run = AnyscaleJobTrigger.run

    async def recorded_run(self):
        waited.append(self.serialize())
        async for event in real_run(self):
            yield event

    monkeypatch.setattr(AnyscaleJobTrigger, "run", recorded_run)
    with working_anyscale(monkeypatch) as anyscale:
        with DAG("feedback_llm_finetune__train", schedule=None) as dag:
            lazy.LazyOperator(task_id="train", operator="anyscale_job", owner="ml-support",
                              builder="pipespec.tasklib.compute.anyscale:job_operator_kwargs", step_params=params)
        run = dag.test()
    train = run.get_task_instance("train")
    assert train.state == "success"
    job_id = anyscale.fake.submitted_job and anyscale.jobs and train.xcom_pull(task_ids="train")["anyscale_job_id"]
    assert waited == [("pipespec.airflow.triggers.AnyscaleJobTrigger", {
        "conn_id": "anyscale_conn", "job_id": job_id, "deadline": waited[0][1]["deadline"], "poll_interval": 60})]
    assert registry.version_for("feedback_llm_finetune", registry.CHALLENGER) == "1"


class DeferringPodOperator:
    """Stands in for KubernetesPodOperator(deferrable=True) without a cluster: it defers in
    `execute` and finishes in `trigger_reentry`, as the real one does."""

    built: list[dict] = []

    def __init__(self, task_id: str, **kwargs) -> None:
        DeferringPodOperator.built.append(kwargs)

    def execute(self, context):
        from airflow.providers.standard.triggers.temporal import TimeDeltaTrigger
        from airflow.sdk.exceptions import TaskDeferred
        from datetime import timedelta

        raise TaskDeferred(trigger=TimeDeltaTrigger(timedelta(seconds=0)), method_name="trigger_reentry",
                           kwargs={"pod_name": "p-1"})

    def trigger_reentry(self, context, event, pod_name):
        return {"pod": pod_name, "event_fired": event is not None}


def test_an_inner_operator_that_defers_defers_the_task_and_resumes_in_its_own_method(monkeypatch):
    from airflow.sdk import DAG

    monkeypatch.setitem(lazy.OPERATORS, "kubernetes_pod", f"{__name__}:DeferringPodOperator")
    monkeypatch.setattr("pipespec.tasklib.compute.kubernetes.pod_operator_kwargs",
                        lambda task_id, params, run: {"image": params["image"]})
    monkeypatch.setattr("pipespec.tasklib.compute.kubernetes.collect_result",
                        lambda params, run, kwargs, returned: {**returned, "collected": True}, raising=False)
    DeferringPodOperator.built.clear()
    with DAG("churn__train", schedule=None) as dag:  # dag.test() runs only DAG ids its bundle defines
        lazy.LazyOperator(task_id="train", operator="kubernetes_pod", step_params={"image": "acme/train:1"},
                          builder="pipespec.tasklib.compute.kubernetes:pod_operator_kwargs")
    run = dag.test()
    ti = run.get_task_instance("train")
    assert ti.state == "success"
    assert ti.xcom_pull(task_ids="train") == {"pod": "p-1", "event_fired": True, "collected": True}
    assert DeferringPodOperator.built == [{"image": "acme/train:1", "deferrable": True}] * 2  # deferrable, rebuilt
