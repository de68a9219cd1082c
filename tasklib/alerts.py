"""Alerts: Slack, email and webhook, shared by the failure/retry callbacks and
the explicit alert tasks (gate blocked, promoted, rejected, rolled back).

Endpoints come from Airflow connections (`conn_id`), never from the spec, and
every message leaves through the provider's hook for that connection type, so
the connection's extras decide transport security, timeouts and retries:
SMTP (smtp provider: SSL unless `disable_ssl`, STARTTLS unless `disable_tls`,
`ssl_context`, `timeout`, `retry_limit`, `from_email`), webhook (http provider:
`timeout`, `verify`, `proxies`, auth and headers from the connection) and Slack
(slack provider: `timeout`, `base_url`, the SDK's retry handlers). The hooks
render no Jinja: the alert's text, spec values included, stays data.
"""

from __future__ import annotations

import html
import json
import logging
import os
import urllib.parse
from typing import Any

from pipespec.tasklib.context import RunContext

log = logging.getLogger(__name__)
TIMEOUT_S = 10  # webhook timeout unless the connection's `timeout` extra says otherwise
WEBHOOK_ATTEMPTS = 3  # connection errors and timeouts are retried, with exponential waits of 1-4 s
DEFAULT_SENDER = "pipespec@localhost"  # when the SMTP connection has no `from_email` extra


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
    """Send to every channel; returns the channels reached. One failing channel doesn't stop the others.

    Each channel (`{"kind": name, **settings}`) is an alert channel plugin, built-in or installed: its
    implementation is called as `(params, message)`, with its params validated (defaults filled)
    and the `message` every channel gets."""
    body = message(pipeline, event, dag_id, run_id, details)
    reached, errors = [], []
    for channel in channels:
        try:
            _channel(channel["kind"])(_params(channel), body)
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


def _channel(kind: str) -> Any:
    from pipespec.tasklib.steps import plugin_implementation

    return plugin_implementation("alert_channel", kind)


def _params(channel: dict) -> dict[str, Any]:
    from pipespec.schemas import plugins

    settings = {k: v for k, v in channel.items() if k != "kind"}
    return plugins.check_params("alert_channel", channel["kind"], settings).model_dump()


def webhook(channel: dict, body: dict) -> None:
    """POST the message as JSON through the channel's HTTP connection, retrying connection errors."""
    import requests
    import tenacity
    from airflow.providers.http.hooks.http import HttpHook

    hook = HttpHook(method="POST", http_conn_id=channel["conn_id"])
    timeout = {} if "timeout" in hook.get_connection(channel["conn_id"]).extra_dejson else {"timeout": TIMEOUT_S}
    retry = {"stop": tenacity.stop_after_attempt(WEBHOOK_ATTEMPTS), "reraise": True,
             "wait": tenacity.wait_exponential(multiplier=1, max=4),
             "retry": tenacity.retry_if_exception_type((requests.ConnectionError, requests.Timeout))}
    hook.run_with_advanced_retry(retry, endpoint=channel.get("endpoint", ""), json=body, extra_options=timeout)


def email(channel: dict, body: dict) -> None:
    """Email the message (HTML, utf-8) through the channel's SMTP connection."""
    from airflow.providers.smtp.hooks.smtp import SmtpHook

    details = json.dumps(body["details"], indent=2, default=str)
    page = f"<pre>{html.escape(body['text'] + chr(10) * 2 + details, quote=False)}</pre>"
    # utf-8 goes out base64-encoded, in lines of 76: SMTP refuses lines over 998 bytes, and a
    # report's summary or a JSON value can be longer than that.
    with SmtpHook(smtp_conn_id=channel.get("conn_id", "smtp_default")) as hook:
        hook.send_email_smtp(to=channel["to"], subject=_subject(body["text"]), html_content=page,
                             from_email=hook.from_email or DEFAULT_SENDER, mime_charset="utf-8")


def _subject(text: str, limit: int = 150) -> str:
    """The message's first line, shortened: a header line is never folded here, and SMTP refuses
    lines over 998 bytes (a summary that lists every decision rule can be longer)."""
    first = text.splitlines()[0] if text else ""
    return first if len(first) <= limit else first[: limit - 3] + "..."


def slack(channel: dict, body: dict) -> None:
    """Post the message's text to the Slack channel through the channel's Slack connection."""
    from airflow.providers.slack.hooks.slack import SlackHook

    SlackHook(slack_conn_id=channel.get("conn_id", "slack_default")).client.chat_postMessage(
        channel=channel["channel"], text=body["text"])

