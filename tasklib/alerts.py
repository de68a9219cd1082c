"""Alerts: Slack, email and webhook, shared by the failure/retry callbacks and
the explicit alert tasks (gate blocked, promoted, rejected, rolled back).

Endpoints come from Airflow connections (`conn_id`), never from the spec.
"""

from __future__ import annotations

import json
import logging
import os
import smtplib
import urllib.parse
import urllib.request
from email.message import EmailMessage
from typing import Any

from pipespec.tasklib.context import RunContext

log = logging.getLogger(__name__)
TIMEOUT_S = 10


def message(pipeline: str, event: str, dag_id: str, run_id: str, details: dict[str, Any]) -> dict[str, Any]:
    """The alert payload every channel formats: text, a link to the run, and the details."""
    base_url = os.environ.get("AIRFLOW__API__BASE_URL", "http://localhost:8080").rstrip("/")
    link = f"{base_url}/dags/{dag_id}/runs/{urllib.parse.quote(run_id, safe='')}" if run_id else base_url
    facts = ", ".join(f"{k}={v}" for k, v in details.items() if v not in (None, "", [], {}))
    text = f"[pipespec] {pipeline}: {event.replace('_', ' ')} in {dag_id} (run {run_id})" + (f": {facts}" if facts else "")
    return {"pipeline": pipeline, "event": event, "dag_id": dag_id, "run_id": run_id, "details": details,
            "link": link, "text": f"{text}\n{link}"}


def send(channels: list[dict], *, pipeline: str, event: str, dag_id: str, run_id: str,
         details: dict[str, Any]) -> list[str]:
    """Send to every channel; returns the channels reached. One failing channel doesn't stop the others."""
    body = message(pipeline, event, dag_id, run_id, details)
    reached, errors = [], []
    for channel in channels:
        try:
            _SENDERS[channel["kind"]](channel, body)
            reached.append(channel["kind"])
        except Exception as exc:  # an alert must never hide the alert after it
            log.exception("pipespec: %s alert via %s failed", event, channel["kind"])
            errors.append(f"{channel['kind']}: {exc}")
    if errors and not reached:
        raise RuntimeError(f"no alert channel reached for {event}: {'; '.join(errors)}")
    return reached


def notify(ctx: RunContext, *, pipeline: str, event: str, channels: list[dict], details: dict | None = None,
           trained: dict | None = None, scores: dict | None = None, report: dict | None = None) -> dict:
    """The explicit alert task: the scalar fields of its upstream outputs (a gate's measurement, a
    rollback, what was trained, the scores and the report's link) become the alert's details.

    Returns {"event", "reached": the channels that took the alert}."""
    upstream = (details, trained, scores, report)
    details = {k: v for value in upstream if isinstance(value, dict) for k, v in value.items()
               if isinstance(v, (str, int, float, bool))}
    reached = send(channels, pipeline=pipeline, event=event, dag_id=ctx.dag_id, run_id=ctx.run_id, details=details)
    return {"event": event, "reached": reached}


def _connection(conn_id: str) -> Any:
    from airflow.sdk import BaseHook

    return BaseHook.get_connection(conn_id)


def _webhook(channel: dict, body: dict) -> None:
    conn = _connection(channel["conn_id"])
    scheme = conn.conn_type if conn.conn_type in ("http", "https") else "http"
    url = f"{scheme}://{conn.host}" + (f":{conn.port}" if conn.port else "") + "/" + channel.get("endpoint", "").lstrip("/")
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:  # noqa: S310 - URL from a connection
        response.read()


def _email(channel: dict, body: dict) -> None:
    conn = _connection(channel.get("conn_id", "smtp_default"))
    mail = EmailMessage()
    mail["Subject"] = body["text"].splitlines()[0]
    mail["From"] = (conn.extra_dejson or {}).get("from_email", "pipespec@localhost")
    mail["To"] = ", ".join(channel["to"])
    mail.set_content(body["text"] + "\n\n" + json.dumps(body["details"], indent=2, default=str))
    with smtplib.SMTP(conn.host, conn.port or 25, timeout=TIMEOUT_S) as smtp:
        if conn.login:
            smtp.starttls()
            smtp.login(conn.login, conn.password)
        smtp.send_message(mail)


def _slack(channel: dict, body: dict) -> None:
    from airflow.providers.slack.hooks.slack import SlackHook

    SlackHook(slack_conn_id=channel.get("conn_id", "slack_default")).client.chat_postMessage(
        channel=channel["channel"], text=body["text"])


_SENDERS = {"webhook": _webhook, "email": _email, "slack": _slack}
