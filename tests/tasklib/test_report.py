"""The training report: Markdown + HTML with the metrics that apply, matplotlib charts
(PNG), per-class figures, training curves and the data summary, written to the run's
work area and logged on the challenger's MLflow run."""

from __future__ import annotations

import base64
import io
import json
import uuid
import xml.etree.ElementTree as ET
from pathlib import Path
from urllib.parse import urlparse

import pytest

from pipespec.tasklib import alerts, report
from pipespec.tasklib.context import RunContext
from pipespec.local.sinks import AlertSinks
from pipespec.tasklib.model import registry
from tests.tasklib.test_rollout import full_rollout, mlflow_registry, register_version, scores_for  # noqa: F401

pytestmark = pytest.mark.airflow  # Airflow's hooks and connections

MANIFEST = {"pipeline": "shop", "run_id": "scheduled__2026-01-02", "published_at": "2026-01-02T03:04:05+00:00",
            "data": {"uri": "s3://shop/curated/runs/shop/r/data.parquet", "rows": 900, "sha256": "ab" * 32},
            "sources": {"zendesk": {"rows": 600}, "slack": {"rows": 300}},
            "measurement": {"rows": 900, "new_rows": 500, "drift": {"score": 0.031}, "drifted": False,
                            "reason": "all gates passed"}}
HISTORY = {"loss": [1.6, 1.1, 0.7, 0.5], "accuracy": [0.3, 0.55, 0.75, 0.82]}
CLASSES = {"labels": ["billing", "bug", "praise"], "confusion": [[8, 1, 1], [2, 7, 1], [0, 0, 10]],
           "per_class": [{"label": "billing", "precision": 0.8, "recall": 0.8, "f1": 0.8, "support": 10},
                         {"label": "bug", "precision": 0.875, "recall": 0.7, "f1": 0.7778, "support": 10},
                         {"label": "praise", "precision": 0.8333, "recall": 1.0, "f1": 0.9091, "support": 10}]}


def ctx() -> RunContext:
    return RunContext(dag_id="shop__train", task_id="report", run_id="manual__r2")


def read(uri: str) -> str:
    return open(urlparse(uri).path, encoding="utf-8").read()


def table_rows(page: ET.Element) -> list[list[str]]:
    body = page.find(".//table[@id='metrics']/tbody")
    return [["".join(cell.itertext()) for cell in row] for row in body]


def images(page: ET.Element) -> dict[str, bytes]:
    """The embedded PNG charts by element id, decoded."""
    found = {}
    for img in page.iter("img"):
        prefix, _, data = img.get("src").partition(",")
        assert prefix == "data:image/png;base64"
        found[img.get("id")] = base64.b64decode(data)
    return found


def png_size(png: bytes) -> tuple[int, int]:
    from PIL import Image

    with Image.open(io.BytesIO(png)) as image:
        image.verify()  # a whole, valid PNG
    with Image.open(io.BytesIO(png)) as image:
        return image.size


def register_trained(pipeline: str, history: dict | None = HISTORY, manifest: dict | None = MANIFEST) -> str:
    """A version registered the way train does: per-epoch history in pipespec.json, the manifest as a tag."""
    model_dir = Path(f"model-{uuid.uuid4().hex[:8]}")
    model_dir.mkdir()
    meta = {"model_type": "keras_text_classifier", "features": ["text"], "label": "label", "task": "classification"}
    (model_dir / "pipespec.json").write_text(json.dumps({**meta, **({"history": history} if history else {})}))
    tags = {"pipespec.manifest": json.dumps(manifest)} if manifest else {}
    version = registry.register(pipeline, model_dir, params={}, metrics={}, tags=tags, run_name="test")["version"]
    registry.set_alias(pipeline, registry.CHALLENGER, version)
    return version


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
    charts = images(page)
    assert set(charts) == {"metrics"}  # no classes, history or data recorded for these versions
    assert png_size(charts["metrics"])[0] > 400
    assert "version 2 is now `champion`" in "".join(page.itertext())

    markdown = read(result["markdown_uri"])
    assert "| **f1_macro** | 0.8000 | 0.9000 | +0.1000 better |" in markdown
    assert "- Improvement over the champion: +0.1000" in markdown
    assert result["markdown"] == "f1_macro: challenger 0.9000 vs champion 0.8000 (+0.1000 improvement); promoted"
    # Stored next to the model: artifacts of the challenger version's run.
    run_id = registry.client().get_model_version("shop", scores["challenger_version"]).run_id
    assert result["mlflow_run_id"] == run_id
    logged = {a.path for a in registry.client().list_artifacts(run_id, "report")}
    assert logged == {"report/report.md", "report/report.html", "report/metrics.png"}
    assert result["report_artifact"] == f"runs:/{run_id}/report/report.html"


def test_a_train_only_flow_reports_the_version_its_training_metrics_and_curves(mlflow_registry):
    from pipespec.tasklib.rollout import stages

    version = register_trained("plain")
    run_id = registry.client().get_model_version("plain", version).run_id
    for name, value in {"train_accuracy": 0.875, "train_f1_macro": 0.8, "train_loss": 0.31}.items():
        registry.client().log_metric(run_id, name, value)
    trained = {"version": version, "run_id": run_id, "rows_train": 320}
    stages.promote(ctx(), pipeline="plain", target={"type": "registry_alias", "alias": "champion"}, trained=trained)

    result = report.write(ctx(), pipeline="plain", metric="accuracy", trained=trained)
    page = ET.fromstring(read(result["report_uri"]))
    text = "".join(page.itertext())
    assert table_rows(page) == [["accuracy", "—", "0.8750", "—"], ["f1_macro", "—", "0.8000", "—"],
                                ["loss", "—", "0.3100", "—"]]
    assert "Training metrics" in text and "Champion vs challenger" not in text
    assert f"Version {version}, trained on 320 rows; a train-only flow (no evaluation)" in text
    assert "No champion/challenger decision" in text and f"version {version} is now `champion`" in text
    assert {"metrics", "training-curves", "drift"} == set(images(page))  # curves and the data it was trained on
    assert result["markdown"] == "accuracy on the training rows: 0.8750; promoted"
    assert result["mlflow_run_id"] == run_id


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
    assert "metrics" in images(page)  # one bar for the challenger only: still drawn
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


@pytest.mark.parametrize("name", ['<script>alert("x")</script>', "a & b", "$x^2$"])
def test_metric_names_are_escaped(name):
    rows = [{"metric": name, "champion": 0.5, "challenger": 0.6, "change": 0.1, "direction": "max", "better": True}]
    scores = {"challenger": 0.6, "champion": 0.5, "direction": "max"}
    page = ET.fromstring(report.render_html("p", name, scores, rows, {"outcome": "promoted", "text": "ok"},
                                            images={"metrics.png": report.charts.metric_bars(rows)}))
    assert page.find(".//script") is None and name in "".join(page.find(".//table").itertext())
    assert png_size(images(page)["metrics"])[0] > 400  # matplotlib drew the label as text, mathtext off


def test_metrics_that_do_not_apply_are_left_out():
    scores = {"challenger": 0.7, "champion": 0.6, "direction": "max",
              "scores": {"challenger": {"f1_macro": 0.7, "accuracy": 0.72, "precision": None, "recall": None,
                                        "f1": None, "roc_auc": 0.9},
                         "champion": {"f1_macro": 0.6, "accuracy": 0.65, "precision": None, "recall": None,
                                      "f1": None, "roc_auc": 0.85}}}
    assert [r["metric"] for r in report.metric_rows(scores, "f1_macro")] == ["f1_macro", "accuracy", "roc_auc"]


def test_full_report_shows_classes_curves_and_data(mlflow_registry):
    v1 = register_trained("shop")
    full_rollout("shop", scores_for(v1, 0.8, None), run_id="r1")
    v2 = register_trained("shop")
    scores = {**scores_for(v2, 0.86, 0.8, v1), "min_improvement": 0.01,
              "classes": {"challenger": CLASSES, "champion": {**CLASSES, "per_class": [
                  {**c, "f1": c["f1"] - 0.1} for c in CLASSES["per_class"]]}}}
    full_rollout("shop", scores, run_id="r2")
    result = report.write(ctx(), pipeline="shop", metric="f1_macro", scores=scores)
    page = ET.fromstring(read(result["report_uri"]))
    charts = images(page)
    assert set(charts) == {"metrics", "confusion-challenger", "confusion-champion", "training-curves", "drift"}
    for png in charts.values():
        width, height = png_size(png)
        assert width > 300 and height > 150
    per_class = [["".join(cell.itertext()) for cell in row] for row in page.find(".//table[@id='per-class']/tbody")]
    assert per_class[1] == ["bug", "0.8750", "0.7000", "0.7778", "0.6778", "10"]
    sources = [["".join(c.itertext()) for c in row] for row in page.find(".//table[@id='sources']/tbody")]
    assert sources == [["zendesk", "600"], ["slack", "300"]]
    data = "".join(page.find(".//ul[@id='data']").itertext())
    assert "Gate: passed: all gates passed" in data and "New rows since the last publication: 500" in data
    text = "".join(page.itertext())
    assert "4 epochs; last epoch: loss 0.5000, accuracy 0.8200." in text and "Required improvement: 0.01" in text
    markdown = read(result["markdown_uri"])
    assert "| bug | 0.8750 | 0.7000 | 0.7778 | 0.6778 | 10 |" in markdown and "| 4 | 0.5000 | 0.8200 |" in markdown
    run_id = registry.client().get_model_version("shop", v2).run_id
    logged = {a.path for a in registry.client().list_artifacts(run_id, "report")}
    assert {"report/confusion_challenger.png", "report/training_curves.png", "report/drift.png"} <= logged


def test_a_cut_manifest_tag_is_completed_from_the_publication(mlflow_registry):
    from pipespec.tasklib.storage import write_text

    prefix = "s3://shop/curated/runs/shop/r"
    write_text(f"{prefix}/manifest.json", json.dumps(MANIFEST))
    cut = {"run_id": "scheduled__2026-01-02", "data": MANIFEST["data"], "sources": ["slack", "zendesk"],
           "truncated": True}
    version = register_trained("shop", history=None, manifest=cut)
    evidence = report.gather("shop", {"challenger_version": version})
    assert evidence.data == MANIFEST and evidence.history == {}
