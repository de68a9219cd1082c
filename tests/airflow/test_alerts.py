"""Alerts leave through real sockets: Slack's Web API shape and a webhook on a
local HTTP server, email through a local SMTP server (aiosmtpd)."""

from __future__ import annotations

import pytest

from pipespec.tasklib.alerts import notify, send
from pipespec.tasklib.context import RunContext
from pipespec.local.sinks import AlertSinks


@pytest.fixture
def sinks(monkeypatch):
    with AlertSinks() as running:
        for key, value in running.connections().items():
            monkeypatch.setenv(key, value)
        monkeypatch.setenv("AIRFLOW__API__BASE_URL", "http://airflow.example:8080")
        yield running


def test_every_channel_arrives_with_pipeline_run_event_numbers_and_link(sinks):
    channels = [{"kind": "slack", "channel": "#ml-alerts", "conn_id": "slack_default"},
                {"kind": "email", "to": ["ml@example.com"], "conn_id": "smtp_default"},
                {"kind": "webhook", "conn_id": "http_alerts", "endpoint": "/hooks/ml"}]
    reached = send(channels, pipeline="user_feedback", event="rejected", dag_id="user_feedback__train",
                   run_id="manual__2026-01-02", details={"challenger": 0.61, "champion": 0.74})
    assert reached == ["slack", "email", "webhook"]
    slack, email, webhook = sinks.received
    assert slack.body["channel"] == "#ml-alerts"  # the Slack channel, not the alert kind
    for text in (slack.body["text"], email.body["text"], webhook.body["text"]):
        assert "[pipespec] user_feedback: rejected in user_feedback__train (run manual__2026-01-02)" in text
        assert "challenger=0.61" in text and "champion=0.74" in text
        assert "http://airflow.example:8080/dags/user_feedback__train/runs/manual__2026-01-02" in text
    assert email.body["to"] == ["ml@example.com"] and "rejected" in email.body["subject"]
    assert webhook.body["details"] == {"challenger": 0.61, "champion": 0.74}


def test_one_unreachable_channel_does_not_stop_the_others(sinks, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_DEAD_HOOK", '{"conn_type": "http", "host": "127.0.0.1", "port": 9}')
    reached = send([{"kind": "webhook", "conn_id": "dead_hook"}, {"kind": "webhook", "conn_id": "http_alerts"}],
                   pipeline="p", event="failure", dag_id="p__data", run_id="r", details={})
    assert reached == ["webhook"] and sinks.events() == [("webhook", "failure")]


def test_all_channels_down_is_an_error_not_silence(sinks, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_DEAD_HOOK", '{"conn_type": "http", "host": "127.0.0.1", "port": 9}')
    with pytest.raises(RuntimeError, match="no alert channel reached for promoted"):
        send([{"kind": "webhook", "conn_id": "dead_hook"}], pipeline="p", event="promoted", dag_id="p__train",
             run_id="r", details={})


def test_notify_step_takes_the_numbers_from_upstream_outputs(sinks):
    ctx = RunContext(dag_id="p__data", task_id="notify_gate_blocked", run_id="r7")
    notify(ctx, pipeline="p", event="gate_blocked", channels=[{"kind": "webhook", "conn_id": "http_alerts"}],
           details={"rows": 120, "new_rows": 3, "reason": "3 new records, fewer than min_new_records 100",
                    "quality_failures": ["ignored: not a scalar"]})
    body = sinks.received[0].body
    assert body["details"] == {"rows": 120, "new_rows": 3, "reason": "3 new records, fewer than min_new_records 100"}
