"""Alerts leave through real sockets and the providers' hooks: Slack's Web API shape
and a webhook on a local HTTP server, email through a local SMTP server (aiosmtpd);
the connections' extras (SSL/TLS, timeouts) decide how."""

from __future__ import annotations

import json
import socket
import threading
import time

import pytest

from pipespec.tasklib.alerts import notify, send
from pipespec.tasklib.context import RunContext
from pipespec.local.sinks import AlertSinks


@pytest.fixture
def sinks(monkeypatch):
    with AlertSinks() as running:
        for key, value in running.connections().items():
            monkeypatch.setenv(key, value)
        monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", plain_smtp(running.smtp_port))
        monkeypatch.setenv("AIRFLOW__API__BASE_URL", "http://airflow.example:8080")
        yield running


def plain_smtp(port: int, **extra) -> str:
    """The local receiver speaks plain SMTP: the connection must say so (the hook's default is SSL)."""
    return json.dumps({"conn_type": "smtp", "host": "127.0.0.1", "port": port,
                       "extra": {"disable_ssl": True, "disable_tls": True, "retry_limit": 0, **extra}})


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


def test_email_honours_the_connections_tls_settings(sinks, monkeypatch):
    """Without `disable_ssl` the hook opens SSL, which a plain server refuses: no silent downgrade."""
    monkeypatch.setenv("AIRFLOW_CONN_SMTP_TLS", json.dumps({
        "conn_type": "smtp", "host": "127.0.0.1", "port": sinks.smtp_port,
        "extra": {"retry_limit": 0, "timeout": 5}}))
    with pytest.raises(RuntimeError, match="no alert channel reached"):
        send([{"kind": "email", "to": ["a@example.com"], "conn_id": "smtp_tls"}], pipeline="p", event="promoted",
             dag_id="p__train", run_id="r", details={})
    assert sinks.received == []
    send([{"kind": "email", "to": ["a@example.com"], "conn_id": "smtp_default"}], pipeline="p", event="promoted",
         dag_id="p__train", run_id="r", details={"reason": "café — ok"})
    (mail,) = sinks.received
    assert "café — ok" in mail.body["text"]
    # SMTP refuses lines over 998 bytes: a long value (a report summary, a JSON field) still arrives whole.
    send([{"kind": "email", "to": ["a@example.com"], "conn_id": "smtp_default"}], pipeline="p", event="promoted",
         dag_id="p__train", run_id="r", details={"reason": "x" * 3000})
    assert "x" * 3000 in sinks.received[-1].body["text"]
    send([{"kind": "email", "to": ["a@example.com"], "conn_id": "smtp_default"}], pipeline="p" * 1500,
         event="promoted", dag_id="p__train", run_id="r", details={})  # a subject line far over 998 bytes
    assert len(sinks.received[-1].body["subject"]) <= 150


def test_the_sender_comes_from_the_connection(monkeypatch):
    from aiosmtpd.controller import Controller

    senders = []

    class Handler:
        async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd API
            senders.append(envelope.mail_from)
            return "250 OK"

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(Handler(), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        monkeypatch.setenv("AIRFLOW_CONN_SMTP_FROM", plain_smtp(port, from_email="ml-bot@example.com"))
        monkeypatch.setenv("AIRFLOW_CONN_SMTP_NOFROM", plain_smtp(port))
        for conn_id in ("smtp_from", "smtp_nofrom"):
            send([{"kind": "email", "to": ["a@example.com"], "conn_id": conn_id}], pipeline="p", event="promoted",
                 dag_id="p__train", run_id="r", details={})
    finally:
        controller.stop()
    assert senders == ["ml-bot@example.com", "pipespec@localhost"]


def test_webhook_timeout_comes_from_the_connection(monkeypatch):
    """A receiver that accepts and never answers: the connection's `timeout` extra bounds each try."""
    server = socket.create_server(("127.0.0.1", 0))
    server.listen(8)
    accepted = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    monkeypatch.setenv("AIRFLOW_CONN_SLOW_HOOK", json.dumps({
        "conn_type": "http", "host": "127.0.0.1", "port": server.getsockname()[1], "extra": {"timeout": 1}}))
    started = time.monotonic()
    try:
        with pytest.raises(RuntimeError, match="no alert channel reached"):
            send([{"kind": "webhook", "conn_id": "slow_hook"}], pipeline="p", event="failure", dag_id="p__data",
                 run_id="r", details={})
    finally:
        stop.set()
        thread.join()
        for connection in accepted:
            connection.close()
        server.close()
    # three tries of 1 s each, with 1-2 s waits between them; nowhere near an unbounded hang
    assert len(accepted) == 3 and 3 <= time.monotonic() - started < 10
