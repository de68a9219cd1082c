"""End to end against the real scheduler: trigger only the data DAG through the
REST API; the Asset-triggered train DAG and then the inference DAG must run to
success on their own, leaving a champion in the registry and predictions in
storage. Components run as one process group, killed also when the test fails."""

from __future__ import annotations

import json
import os

import pytest

from pipespec.local.demo import drop, fresh_workspace
from pipespec.local.sinks import AlertSinks
from tests.support.airflow_server import airflow_server

pytestmark = pytest.mark.slow  # a real scheduler and API server, three training rounds

DAGS = ("user_feedback__data", "user_feedback__train", "user_feedback__inference")


@pytest.fixture(scope="module")
def e2e(tmp_path_factory):
    workspace = fresh_workspace(tmp_path_factory.mktemp("e2e") / "workspace")
    storage = workspace / "storage"
    env = {
        "PIPESPEC_PIPELINES": str(workspace / "pipelines"),
        "PIPESPEC_STORAGE_ROOT": str(storage),
        "PIPESPEC_CACHE_DIR": str(workspace / "cache"),
        "MLFLOW_TRACKING_URI": f"sqlite:///{storage / 'mlflow.db'}",
        "AIRFLOW_CONN_FEEDBACK_DB": json.dumps({"conn_type": "sqlite", "host": str(workspace / "slack.db")}),
    }
    os.environ.update({k: v for k, v in env.items() if k.startswith("PIPESPEC_STORAGE")})
    drop(workspace, 0, 160, noise=0.0)
    with AlertSinks() as sinks:
        env.update(sinks.connections())
        with airflow_server(workspace / "airflow", env) as server:
            yield server, workspace, env, sinks


def successful_run(server, dag_id):
    return next((r for r in server.runs(dag_id) if r["state"] == "success" and r["run_type"] != "scheduled"),
                None) or _fail_fast(server, dag_id)


def _fail_fast(server, dag_id):
    # A clock-scheduled inference run before the first champion fails by design ("no champion yet");
    # runs started by us or by an Asset must not fail.
    failed = [r for r in server.runs(dag_id) if r["state"] == "failed" and r["run_type"] != "scheduled"]
    if failed:
        raise AssertionError(f"{dag_id} failed: run {failed[0]['dag_run_id']}")
    return None


def test_data_run_triggers_training_then_inference_without_anyone_else(e2e, monkeypatch):
    server, workspace, env, sinks = e2e
    server.wait_for(lambda: all(server.api(f"/dags/{d}") for d in DAGS), "the DAGs to be parsed", 240)
    server.api("/dags/user_feedback__data/dagRuns", {"logical_date": None})
    for dag_id, budget in zip(DAGS, (300, 600, 300)):
        run = server.wait_for(lambda: successful_run(server, dag_id), f"{dag_id} to succeed", budget)
        assert run["state"] == "success"
    assert server.runs("user_feedback__train")[0]["run_type"] == "asset_triggered"
    inference_runs = {r["run_type"]: r["state"] for r in server.runs("user_feedback__inference")}
    assert inference_runs.get("asset_triggered") == "success"

    for key, value in env.items():
        monkeypatch.setenv(key, value)
    from pipespec.tasklib.model import registry
    from pipespec.tasklib.published import latest

    assert registry.version_for("user_feedback", "champion") == "1"
    predictions = latest("s3://feedback/predictions/")
    assert predictions is not None and predictions.data.rows == 1200 and predictions.manifest["model_version"] == "1"
    assert ("email", "promoted") in sinks.events()


CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.mark.browser
def test_browser_sees_documented_dags_and_mapped_instances_by_source(e2e, tmp_path):
    """Headless Debian Chromium (no browser download) logs in, finds the pipespec DAGs by tag,
    opens one, reads the doc generated from the spec, and sees the extract instances named by source."""
    from playwright.sync_api import sync_playwright

    from tests.support.airflow_server import PASSWORD, USER

    server, _, _, _ = e2e
    data_run = server.wait_for(lambda: successful_run(server, "user_feedback__data"), "a data run", 300)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_FLAGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        try:
            page.goto(f"{server.url}/", wait_until="networkidle")
            page.wait_for_selector("input[name=username]", timeout=30_000)  # the login page renders client-side
            page.fill("input[name=username]", USER)
            page.fill("input[name=password]", PASSWORD)
            page.keyboard.press("Enter")
            page.wait_for_url(lambda url: "/auth/login" not in url, timeout=30_000)  # the redirect is asynchronous
            page.wait_for_load_state("networkidle")

            page.goto(f"{server.url}/dags?tags=pipespec", wait_until="networkidle")
            page.get_by_text("user_feedback__train").first.wait_for(timeout=30_000)
            for dag_id in DAGS:
                assert page.get_by_text(dag_id).count() > 0
            page.screenshot(path=str(tmp_path / "dag_list.png"))

            page.goto(f"{server.url}/dags/user_feedback__data", wait_until="networkidle")
            page.get_by_role("button", name="Dag Docs").click()
            page.get_by_text("Generated by pipespec from the spec").wait_for(timeout=30_000)
            assert page.get_by_text("user_feedback.yaml").count() > 0
            page.screenshot(path=str(tmp_path / "dag_docs.png"))

            page.goto(f"{server.url}/dags/user_feedback__data/runs/{data_run['dag_run_id']}/tasks/extract/mapped",
                      wait_until="networkidle")
            page.get_by_text("zendesk").first.wait_for(timeout=30_000)
            assert page.get_by_text("slack").count() > 0
            page.screenshot(path=str(tmp_path / "mapped_extract.png"))
        finally:
            page.screenshot(path=str(tmp_path / "last_page.png"))
            browser.close()
    assert (tmp_path / "mapped_extract.png").stat().st_size > 10_000
