"""Seed 001 as `pipelines/xray_classifier.yaml` runs it: the data run waits in the triggerer for a
new `.tgz` of labelled JPEGs in S3 (moto's server, the spec's `aws_default`), reads the archive
member by member (labels from the folders), publishes, and on the next drop reads only the new
archive. The archive is put in the bucket only once the sensor has deferred to its trigger."""

from __future__ import annotations

import shutil

import pytest

from pipespec.local.local_env import ensure_db
from pipespec.local.sinks import AlertSinks
from pipespec.local.run import run_pipeline
from pipespec.tasklib.published import latest
from tests.support.paths import EXAMPLES
from tests.support.s3_server import s3_server  # noqa: F401 - fixture
from tests.tasklib.test_documents import jpeg, tgz

pytestmark = pytest.mark.slow  # a real data DAG against S3, with the deferred sensor


def xray_archive(day: str, normal: int, pneumonia: int, shade: int = 0) -> bytes:
    files = {f"{day}/normal/{i:04}.jpg": jpeg(20 + shade + i % 40, size=32) for i in range(normal)}
    files |= {f"{day}/pneumonia/{i:04}.jpg": jpeg(200 - shade - i % 40, size=32) for i in range(pneumonia)}
    return tgz(files).getvalue()


def test_the_xray_spec_waits_for_an_archive_of_jpegs_and_reads_only_new_ones(s3_server, tmp_path,  # noqa: F811
                                                                              monkeypatch):
    from airflow.providers.amazon.aws.triggers.s3 import S3KeyTrigger

    ensure_db()
    examples = tmp_path / "pipelines"
    shutil.copytree(EXAMPLES, examples)
    spec = examples / "xray_classifier.yaml"  # the trigger re-lists every poke_interval: seconds here, not a minute
    spec.write_text(spec.read_text().replace("poke_interval: 1m", "poke_interval: 1s"))
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", s3_server.connection_json())
    monkeypatch.setenv("PIPESPEC_PIPELINES", str(examples))
    monkeypatch.setenv("PIPESPEC_CACHE_DIR", str(tmp_path / "cache"))
    s3_server.client().create_bucket(Bucket="xray-images")
    drops = [("drop/2026-12-01.tgz", xray_archive("2026-12-01", 300, 305)),
             ("drop/2026-12-02.tgz", xray_archive("2026-12-02", 15, 15, shade=50))]
    deferred: list[str] = []
    real_run = S3KeyTrigger.run

    async def drop_once_deferred(self):  # the archive arrives while the wait is in the triggerer
        deferred.append(self.bucket_key)
        key, body = drops[len(deferred) - 1]
        s3_server.put("xray-images", key, body)
        async for event in real_run(self):
            yield event

    monkeypatch.setattr(S3KeyTrigger, "run", drop_once_deferred)
    sinks = AlertSinks().__enter__()  # the team's email: a local SMTP server behind `smtp_default`
    for key, value in sinks.connections().items():
        monkeypatch.setenv(key, value)
    try:
        run_twice(examples, deferred, sinks)
    finally:
        sinks.__exit__(None, None, None)


def run_twice(examples, deferred: list[str], sinks: AlertSinks) -> None:
    [first] = run_pipeline(examples / "xray_classifier.yaml", until="data", echo=lambda _: None)
    states = {task: state for task, label, state in first.tasks if not label}
    assert first.state == "success", first.tasks
    assert deferred == ["drop/*.tgz"]  # nothing there at first: the sensor deferred (bucket xray-images)
    assert states["wait_for_data"] == "success" and states["publish"] == "success"
    published = latest("s3://xray-images/curated/")
    assert published is not None and published.data.rows == 605
    assert published.manifest["sources"]["xrays"]["files"] == 1
    assert published.data.schema["image"] == "list<element: float>" and published.data.schema["label"] == "string"

    # The first archive still matches `*.tgz`, but it is not new: the next run defers until another lands.
    [second] = run_pipeline(examples / "xray_classifier.yaml", until="data", echo=lambda _: None)
    measurement = second.outputs["measure"]
    assert second.state == "success" and len(deferred) == 2, second.tasks
    assert (measurement["passed"], measurement["new_rows"]) == (False, 30)  # only the new archive was read
    assert measurement["reason"] == ("30 records, fewer than min_records 500; "
                                     "30 new records, fewer than min_new_records 50")
    assert latest("s3://xray-images/curated/").manifest["run_id"] == published.manifest["run_id"]
    assert sinks.events() == [("email", "gate_blocked")]  # every outcome reaches the team, a blocked run too
