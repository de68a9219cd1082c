"""The training report: Markdown + HTML with a metrics table and an inline SVG chart,
written to the run's work area and logged on the challenger's MLflow run."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from urllib.parse import urlparse

import pytest

from pipespec.tasklib import alerts, report
from pipespec.tasklib.context import RunContext
from pipespec.local.sinks import AlertSinks
from pipespec.tasklib.model import registry
from tests.tasklib.test_rollout import full_rollout, mlflow_registry, register_version, scores_for  # noqa: F401

pytestmark = pytest.mark.airflow  # Airflow's hooks and connections

SVG = "{http://www.w3.org/2000/svg}svg"


def ctx() -> RunContext:
    return RunContext(dag_id="shop__train", task_id="report", run_id="manual__r2")


def read(uri: str) -> str:
    return open(urlparse(uri).path, encoding="utf-8").read()


def table_rows(page: ET.Element) -> list[list[str]]:
    body = page.find(".//table[@id='metrics']/tbody")
    return [["".join(cell.itertext()) for cell in row] for row in body]


def two_versions(challenger: float, champion: float) -> dict:
    v1 = register_version("shop")
    full_rollout("shop", scores_for(v1, champion, None), run_id="r1")
    v2 = register_version("shop")
    scores = scores_for(v2, challenger, champion, v1)
    full_rollout("shop", scores, run_id="r2")
    return scores


def test_promoted_report(mlflow_registry):
    scores = two_versions(challenger=0.9, champion=0.8)
    result = report.write(ctx(), pipeline="shop", metric="f1_macro", scores=scores)

    page = ET.fromstring(read(result["report_uri"]))  # the whole page is well-formed
    assert table_rows(page) == [["f1_macro", "0.8000", "0.9000", "+0.1000"],
                                ["accuracy", "0.8500", "0.9000", "+0.0500"]]
    svg = page.find(f".//{SVG}")
    assert svg is not None
    bars = [r for r in svg.iter("{http://www.w3.org/2000/svg}rect") if r.find("{*}title") is not None]
    assert [r.find("{*}title").text for r in bars] == ["champion: 0.8000", "challenger: 0.9000",
                                                       "champion: 0.8500", "challenger: 0.9000"]
    assert float(bars[1].get("width")) > float(bars[0].get("width")) > 0  # one 0..1 scale for all metrics
    ET.fromstring(report.bar_chart(report.metric_rows(scores, "f1_macro")))  # the SVG alone parses too
    assert "version 2 is now `champion`" in "".join(page.itertext())

    markdown = read(result["markdown_uri"])
    assert "| **f1_macro** | 0.8000 | 0.9000 | +0.1000 better |" in markdown
    assert "- Improvement over the champion: +0.1000" in markdown
    assert result["markdown"] == "f1_macro: challenger 0.9000 vs champion 0.8000 (+0.1000 improvement); promoted"
    # Stored next to the model: artifacts of the challenger version's run.
    run_id = registry.client().get_model_version("shop", scores["challenger_version"]).run_id
    assert result["mlflow_run_id"] == run_id
    logged = {a.path for a in registry.client().list_artifacts(run_id, "report")}
    assert logged == {"report/report.md", "report/report.html"}


def test_rejected_report_says_why(mlflow_registry):
    scores = two_versions(challenger=0.7, champion=0.8)
    result = report.write(ctx(), pipeline="shop", metric="f1_macro", scores=scores)
    text = "".join(ET.fromstring(read(result["report_uri"])).itertext())
    assert "version 2 was rejected: f1_macro 0.7000 vs champion 0.8000" in text
    assert result["outcome"] == "rejected" and result["markdown"].endswith("; rejected")


def test_first_model_and_lower_is_better_metrics(mlflow_registry):
    v1 = register_version("prices")
    scores = {"metric": "rmse", "direction": "min", "challenger": 1.5, "champion": None, "challenger_version": v1,
              "champion_version": None, "holdout_rows": 12,
              "scores": {"rmse": {"challenger": 1.5, "champion": None}, "mae": {"challenger": 1.1, "champion": 1.4},
                         "r2": 0.8}}
    rows = report.metric_rows(scores, "rmse")
    assert [(r["metric"], r["better"]) for r in rows] == [("rmse", None), ("mae", True), ("r2", None)]
    result = report.write(RunContext("prices__train", "report", "r1"), pipeline="prices", metric="rmse",
                          scores=scores)
    page = ET.fromstring(read(result["report_uri"]))
    assert table_rows(page)[0] == ["rmse", "—", "1.5000", "—"]
    widths = [float(r.get("width")) for r in page.find(f".//{SVG}").iter("{http://www.w3.org/2000/svg}rect")
              if r.find("{*}title") is not None]
    assert widths[0] == 0.0 and widths[1] > 0  # no champion bar; values above 1 get their own scale
    assert result["markdown"] == "rmse: challenger 1.5000 (no champion before); not promoted"


def test_alert_details_link_the_report(mlflow_registry, monkeypatch):
    scores = two_versions(challenger=0.9, champion=0.8)
    written = report.write(ctx(), pipeline="shop", metric="f1_macro", scores=scores)
    with AlertSinks() as sinks:
        monkeypatch.setenv("AIRFLOW_CONN_HTTP_ALERTS", sinks.connections()["AIRFLOW_CONN_HTTP_ALERTS"])
        alerts.notify(RunContext("shop__train", "notify_promoted", "manual__r2"), pipeline="shop", event="promoted",
                      channels=[{"kind": "webhook", "conn_id": "http_alerts"}], scores=scores, report=written)
    details = sinks.received[0].body["details"]
    assert details["report_uri"] == written["report_uri"] and details["outcome"] == "promoted"


@pytest.mark.parametrize("name", ['<script>alert("x")</script>', "a & b"])
def test_metric_names_are_escaped(name):
    rows = [{"metric": name, "champion": 0.5, "challenger": 0.6, "change": 0.1, "direction": "max", "better": True}]
    svg = ET.fromstring(report.bar_chart(rows))
    assert name in "".join(svg.itertext())  # parsed back verbatim: it was escaped, not injected
