"""A source that times out is retried, and the retry reads it (dag.test(), real S3 server).

The source's S3 connection goes through a proxy that hangs until the first retry
alert arrives, like an endpoint that is overloaded for a while. The spec's source
`timeout` bounds every S3 request (pyarrow's C++ calls cannot be interrupted by
Airflow's execution-timeout signal), so the first try fails in seconds rather
than hanging, Airflow retries it as the spec says, and the run publishes.
"""

from __future__ import annotations

import json
import threading
import time
from urllib.parse import urlparse

import pytest

from pipespec.local.local_env import ensure_db
from pipespec.local.sinks import AlertSinks
from pipespec.tasklib.published import latest
from tests.support.airflow_harness import run_dag
from tests.support.s3_server import s3_server  # noqa: F401
from tests.support.stalling_proxy import StallingProxy

pytestmark = pytest.mark.slow  # waits out a stalled S3 and a retry

SPEC = """\
pipeline: slow_source
data:
  sources:
    - {name: events, type: s3, uri: s3://landing/events/, format: jsonl, conn_id: aws_slow, timeout: 3s}
  threshold: {min_records: 2}
  publishes: s3://curated/events/
retries: {count: 2, delay: 1s}
alerts:
  - {on: [retry], webhook: {conn_id: http_alerts}}
"""


@pytest.fixture
def alerts(monkeypatch):
    with AlertSinks() as sinks:
        for key, value in sinks.connections().items():
            monkeypatch.setenv(key, value)
        yield sinks


def release_on_first_retry(proxy: StallingProxy, alerts: AlertSinks) -> threading.Thread:
    def watch() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not any(event == "retry" for _, event in alerts.events()):
            time.sleep(0.05)
        proxy.release()

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def test_a_source_that_times_out_is_retried_and_then_read(s3_server, alerts, monkeypatch, tmp_path):  # noqa: F811
    ensure_db()
    s3_server.put("landing", "events/1.jsonl", b'{"id": 1}\n{"id": 2}\n{"id": 3}\n')
    s3_server.client().create_bucket(Bucket="curated")
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", s3_server.connection_json())  # where it publishes
    moto = urlparse(s3_server.endpoint)
    pipelines = tmp_path / "pipelines"
    pipelines.mkdir()
    (pipelines / "slow_source.yaml").write_text(SPEC)

    with StallingProxy(moto.hostname, moto.port) as proxy:
        slow = json.loads(s3_server.connection_json())
        slow["extra"]["endpoint_url"] = f"http://127.0.0.1:{proxy.port}"
        monkeypatch.setenv("AIRFLOW_CONN_AWS_SLOW", json.dumps(slow))
        watcher = release_on_first_retry(proxy, alerts)
        started = time.monotonic()
        run, states = run_dag(pipelines, "slow_source__data", monkeypatch, tmp_path / "cache")
        seconds = time.monotonic() - started
        watcher.join(timeout=1)

    assert run.state == "success" and states[("publish", -1)] == "success"
    extract = next(ti for ti in run.get_task_instances() if ti.task_id == "extract")
    assert extract.try_number == 2  # the first try timed out; the retry read the source
    assert proxy.stalled_connections >= 1
    assert seconds < 60  # bounded by the source's 3s timeout, not pyarrow's 60s default per request
    retry_alerts = [r.body for r in alerts.received]
    assert len(retry_alerts) == 1 and "slow_source__data" in json.dumps(retry_alerts[0])
    published = latest("s3://curated/events/")
    assert published is not None and published.data.rows == 3
