"""pipespec in Airflow's UI, in Chromium, against a real API server (127.0.0.1) on the metadata DB
of a real feedback round (data -> train -> inference, tests/support/feedback_run.py) whose spec
carries a hostile description:

- the train task's extra links point at its MLflow run and model version (built from config);
- the "Pipelines" page (pipespec's plugin) shows the pipeline, its gate and decision, the
  champion history chart and the report, and the spec's markup stays text;
- the report opens, sandboxed.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.support.airflow_server import PASSWORD, USER, AirflowServer
from tests.support.feedback_run import FeedbackRun, feedback_round

pytestmark = [pytest.mark.slow, pytest.mark.browser]

HOSTILE = ('Intents. <script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2">'
           ' javascript:alert(1)')
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


class ApiServer(AirflowServer):
    """Only the API server (and the DAG processor that serializes the DAGs), on the round's DB."""

    def start(self, timeout_s: int = 240) -> "ApiServer":
        log = open(self.home / "components.log", "ab")
        self.process = subprocess.Popen(
            ["bash", "-c", f"airflow api-server --port {self.port} & airflow dag-processor & wait"],
            env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{self.url}/api/v2/monitor/health", timeout=2):
                    return self
            except OSError:
                time.sleep(2)
        raise TimeoutError(f"Airflow API not ready in {timeout_s}s; see {self.home / 'components.log'}")


@pytest.fixture(scope="module")
def ui(tmp_path_factory):
    run = feedback_round(tmp_path_factory.mktemp("ui"), description=HOSTILE)
    env = {k: v for k, v in run.env.items() if k != "AIRFLOW_HOME"}
    server = ApiServer(run.home, env)
    try:
        yield server.start(), run
    finally:
        server.stop()


def train_run(server) -> dict:
    runs = server.runs("user_feedback__train")
    assert runs and runs[0]["state"] == "success"
    return runs[0]


def login(page, server) -> None:
    page.goto(f"{server.url}/", wait_until="networkidle")
    page.wait_for_selector("input[name=username]", timeout=30_000)
    page.fill("input[name=username]", USER)
    page.fill("input[name=password]", PASSWORD)
    page.keyboard.press("Enter")
    page.wait_for_url(lambda url: "/auth/login" not in url, timeout=30_000)
    page.wait_for_load_state("networkidle")


def test_extra_links_are_stored_with_the_task_instance(ui):
    server, _ = ui
    run = train_run(server)
    links = server.api(f"/dags/user_feedback__train/dagRuns/{run['dag_run_id']}/taskInstances/train/links")
    mlflow_run = server.api(f"/dags/user_feedback__train/dagRuns/{run['dag_run_id']}/taskInstances/train/"
                            "xcomEntries/return_value")["value"]
    run_id = re.search(r"'run_id': '([0-9a-f]+)'", str(mlflow_run)).group(1)
    assert links["extra_links"]["MLflow run"] == f"http://127.0.0.1:5000/#/runs/{run_id}"
    assert links["extra_links"]["Model version"] == "http://127.0.0.1:5000/#/models/user_feedback/versions/1"
    assert set(links["extra_links"]) == {"MLflow run", "Model version"}  # the report is the report task's
    report = server.api(f"/dags/user_feedback__train/dagRuns/{run['dag_run_id']}/taskInstances/report/links")
    # Same origin: the run had no `[api] base_url` to build an absolute URL from.
    assert re.fullmatch(r"/pipespec/reports/[0-9a-f]{32}", report["extra_links"]["Report"])


def test_in_chromium_task_links_the_pipelines_page_and_the_report(ui, tmp_path):
    from playwright.sync_api import sync_playwright

    server, feedback = ui
    run = train_run(server)
    shots = feedback.workspace / "screenshots"
    shots.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_FLAGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1100})
        try:
            login(page, server)
            # A task instance: its extra link goes to the MLflow run.
            page.goto(f"{server.url}/dags/user_feedback__train/runs/{run['dag_run_id']}/tasks/train",
                      wait_until="networkidle")
            page.get_by_text("Details", exact=True).click()  # Airflow 3 lists a task's extra links there
            mlflow_link = page.get_by_role("link", name="MLflow run")
            mlflow_link.wait_for(timeout=30_000)
            assert re.fullmatch(r"http://127\.0\.0\.1:5000/#/runs/[0-9a-f]{32}", mlflow_link.get_attribute("href"))
            page.screenshot(path=str(shots / "task_links.png"))

            # The Pipelines page, inside Airflow's UI (an external view in an iframe).
            page.goto(f"{server.url}/plugin/pipespec-pipelines", wait_until="networkidle")
            frame = page.frame_locator("iframe")
            section = frame.locator("#pipeline-user_feedback")
            section.wait_for(timeout=30_000)
            assert section.locator("dd code").first.inner_text() == "pipelines/user_feedback.yaml"  # not a server path
            assert "passed" in section.locator(".gate").inner_text()
            assert "promoted" in section.locator(".decision").inner_text()
            chart = section.locator("img.chart")
            assert chart.evaluate("img => img.complete && img.naturalWidth > 300")
            assert section.locator("table.history td").first.inner_text() == "v1"
            spec = section.locator("pre.spec").inner_text()
            assert "<script>window.__pwned = 1</script>" in spec  # shown as text ...
            assert section.locator("script").count() == 0 and frame.locator("img[src=x]").count() == 0
            page.screenshot(path=str(shots / "pipelines.png"), full_page=True)
            report_href = section.locator("ul.reports a").first.get_attribute("href")
            assert re.fullmatch(r"/pipespec/reports/[0-9a-f]{32}/", report_href)

            # The report, in its own sandboxed page.
            response = page.goto(f"{server.url}{report_href}", wait_until="networkidle")
            assert response.status == 200
            assert "sandbox" in response.headers["content-security-policy"]
            assert "user_feedback" in page.content()
            # Its charts render under the sandbox's policy (images only from the report or data: URIs).
            assert page.evaluate("() => [...document.images].every(i => i.complete && i.naturalWidth > 0)")
            page.screenshot(path=str(shots / "report.png"), full_page=True)
            assert page.evaluate("() => window.__pwned") is None
        finally:
            page.screenshot(path=str(shots / "last_page.png"))
            browser.close()
    assert (shots / "pipelines.png").stat().st_size > 20_000


def test_the_pipelines_page_needs_a_login_and_hides_other_runs(ui):
    server, _ = ui
    for path in ("/pipespec/pipelines", "/pipespec/reports/0123456789abcdef0123456789abcdef/"):
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"{server.url}{path}", timeout=30)
        assert refused.value.code == 401
    request = urllib.request.Request(f"{server.url}/pipespec/reports/0123456789abcdef0123456789abcdef/",
                                     headers={"Authorization": f"Bearer {server.token()}"})
    with pytest.raises(urllib.error.HTTPError) as missing:
        urllib.request.urlopen(request, timeout=30)
    assert missing.value.code == 404
