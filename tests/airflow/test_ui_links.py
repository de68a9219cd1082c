"""Extra links and lineage naming, without a run: what a step's result turns into.

A link is built from pipespec's config and checked parts of a step's result; a spec
string never becomes a URL scheme (tests/airflow/test_ui_browser.py clicks them for real).
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from pipespec.airflow import lineage
from pipespec.airflow.links import (STEP_LINKS, DatasetLink, MlflowRunLink, ModelVersionLink, ReportLink,
                                    safe_link)
from pipespec.airflow.step_operators import BranchStepOperator, StepOperator

RUN = "0123456789abcdef0123456789abcdef"


def operator(step: str, result, pipeline="feedback", **inputs):
    return SimpleNamespace(step_result=result,
                           op_kwargs={"step": step, "step_params": {"pipeline": pipeline}, "inputs": inputs})


@pytest.fixture
def mlflow_ui(monkeypatch):
    monkeypatch.setenv("AIRFLOW__PIPESPEC__MLFLOW_UI_URL", "https://mlflow.example.com/")
    monkeypatch.setenv("AIRFLOW__API__BASE_URL", "https://airflow.example.com")


def link(cls, op) -> str:
    return cls().get_link(op, ti_key=None)


def test_a_task_declares_the_links_its_step_can_fill(tmp_path):
    """Airflow stores every declared link of a task instance (an XCom each): a gate or an alert declares none."""
    from pipespec.airflow.loader import load_dags
    from tests.support.paths import EXAMPLES

    namespace: dict = {}
    load_dags(EXAMPLES, namespace, tmp_path / "cache")
    declared = {task.task_id: [l.name for l in task.operator_extra_links]
                for dag_id in ("user_feedback__data", "user_feedback__train") for task in namespace[dag_id].tasks}
    assert declared["train"] == ["MLflow run", "Model version"]
    assert declared["report"] == ["MLflow run", "Model version", "Report"]
    assert declared["publish"] == ["Dataset"]
    assert declared["decide"] == declared["measure"] == declared["notify_promoted"] == []
    # A mapped task is serialized with its class's links; each instance fills what its step returned.
    assert declared["extract"] == [l.name for l in STEP_LINKS]
    assert not BranchStepOperator.operator_extra_links


def test_links_point_at_the_run_the_version_the_report_and_the_dataset(mlflow_ui):
    trained = operator("model.train", {"version": "3", "run_id": RUN})
    assert link(MlflowRunLink, trained) == f"https://mlflow.example.com/#/runs/{RUN}"
    assert link(ModelVersionLink, trained) == "https://mlflow.example.com/#/models/feedback/versions/3"
    assert link(ReportLink, trained) == ""  # the report is the report task's
    report = operator("report.write", {"mlflow_run_id": RUN, "report_uri": "file:///x/report.html"},
                      scores={"challenger_version": "3"})
    assert link(ReportLink, report) == f"https://airflow.example.com/pipespec/reports/{RUN}"
    assert link(ModelVersionLink, report).endswith("/versions/3")
    published = operator("data.publish", {"uri": "s3://feedback/curated/runs/x/data.parquet", "rows": 4})
    assert link(DatasetLink, published) == "https://airflow.example.com/pipespec/pipelines#pipeline-feedback"


def test_no_mlflow_ui_no_mlflow_links_and_no_base_url_gives_same_origin_paths(monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:////tmp/mlflow.db")
    monkeypatch.delenv("AIRFLOW__PIPESPEC__MLFLOW_UI_URL", raising=False)
    monkeypatch.setenv("AIRFLOW__API__BASE_URL", "")
    assert link(MlflowRunLink, operator("model.train", {"version": "3", "run_id": RUN})) == ""
    assert link(ReportLink, operator("report.write", {"mlflow_run_id": RUN})) == f"/pipespec/reports/{RUN}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow:5000")  # a tracking server is its own UI
    assert link(MlflowRunLink, operator("model.train", {"run_id": RUN})) == f"http://mlflow:5000/#/runs/{RUN}"


@pytest.mark.parametrize("hostile", ["javascript:alert(1)", "x\"><script>alert(1)</script>", "../../admin",
                                     "1 OR 1=1", "//evil.example.com"])
def test_hostile_values_never_become_links(mlflow_ui, hostile):
    ops = [operator("model.train", {"version": hostile, "run_id": hostile}),
           operator("report.write", {"mlflow_run_id": hostile}, scores={"challenger_version": hostile}),
           operator("inference.predict", {"model_version": hostile, "uri": "s3://b/k"})]
    for op in ops:
        for cls in (MlflowRunLink, ModelVersionLink, ReportLink):
            assert link(cls, op) == ""
    # A pipeline name is an identifier in a checked spec; anything else is quoted into the path.
    url = link(DatasetLink, operator("data.publish", {"uri": "s3://b/k"}, pipeline=hostile))
    assert url.startswith("https://airflow.example.com/pipespec/pipelines#pipeline-") and "<" not in url


def test_config_that_is_not_http_gives_no_link(monkeypatch):
    monkeypatch.setenv("AIRFLOW__PIPESPEC__MLFLOW_UI_URL", "javascript:alert(1)//")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:////tmp/mlflow.db")
    assert link(MlflowRunLink, operator("model.train", {"run_id": RUN})) == ""


@pytest.mark.parametrize("url,ok", [("https://a.example/x", True), ("/pipespec/x", True), ("//evil/x", False),
                                    ("javascript:alert(1)", False), ("data:text/html,x", False),
                                    ("https://user:pw@a.example/", False), ("https://a.example/\nx", False)])
def test_safe_link(url, ok):
    assert safe_link(url) is ok


def test_lineage_names_follow_the_openlineage_naming_spec(monkeypatch, tmp_path):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "https://user:secret@mlflow.example.com:8443/")
    assert lineage.uri_data("s3://feedback/curated/") == lineage.Data("s3://feedback", "curated")
    assert lineage.uri_data((tmp_path / "a.parquet").as_uri()).namespace == "file"
    assert lineage.model_data("feedback", 3) == lineage.Data("mlflow://mlflow.example.com:8443",
                                                             "models:/feedback/3")
    postgres = SimpleNamespace(conn_type="postgres", host="db.internal", port=5432, schema="warehouse",
                               login="reader", password="hunter2", extra_dejson={})
    found = lineage.source_data({"name": "orders", "type": "sql", "conn_id": "wh",
                                 "query": "select * from sales.orders o join sales.customers c on o.c = c.id"},
                                ".", lambda conn_id: postgres)
    assert sorted(d.name for d in found) == ["warehouse.sales.customers", "warehouse.sales.orders"]
    assert {d.namespace for d in found} == {"postgres://db.internal:5432"}
    snowflake = SimpleNamespace(conn_type="snowflake", host=None, port=None, schema=None,
                                extra_dejson={"account": "acme-eu", "database": "FEEDBACK"})
    assert lineage.source_data({"name": "s", "type": "snowflake", "conn_id": "sf",
                                "query": "select text from PUBLIC.SLACK"}, ".", lambda _: snowflake) == \
        [lineage.Data("snowflake://acme-eu", "FEEDBACK.PUBLIC.SLACK")]


def test_a_gate_or_an_alert_reports_no_datasets():
    assert lineage.step_lineage("rollout.decide", {}, "pass", lambda _: None) == lineage.StepLineage()
    assert lineage.step_lineage("alert.notify", {"pipeline": "p"}, None, lambda _: None) == lineage.StepLineage()


def test_lineage_is_off_without_a_transport(monkeypatch):
    """The provider is installed everywhere; without a transport it stays off (and pipespec computes nothing)."""
    from airflow.providers.openlineage import conf

    cached = [f for f in (conf.is_disabled, conf.transport, conf.config_path, conf.config_conn_id)
              if hasattr(f, "cache_clear")]
    for key in ("AIRFLOW__OPENLINEAGE__TRANSPORT", "OPENLINEAGE_URL", "AIRFLOW__OPENLINEAGE__CONFIG_PATH"):
        monkeypatch.delenv(key, raising=False)
    for function in cached:
        function.cache_clear()
    try:
        assert lineage.enabled() is False
        monkeypatch.setenv("AIRFLOW__OPENLINEAGE__TRANSPORT", '{"type": "console"}')
        for function in cached:
            function.cache_clear()
        assert lineage.enabled() is True
    finally:
        for function in cached:
            function.cache_clear()
