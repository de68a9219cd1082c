"""`acme_pager`: an alert channel under pipespec's alert contract: `(params, message) -> None`, where
`message` is what pipespec sends every channel (pipespec.tasklib.alerts.message) and `params` the
channel's validated settings. The pager's URL and token come from the Airflow HTTP connection
(its host and headers); a failure raises, so pipespec reports the channel as not reached."""

from __future__ import annotations

from typing import Any

ENDPOINT = "/v1/events"
TIMEOUT_S = 10


def event(params: dict[str, Any], message: dict[str, Any]) -> dict[str, Any]:
    """The pager event for a pipespec alert message."""
    return {"service": params["service"], "severity": params["severity"],
            "summary": message["text"].splitlines()[0], "link": message["link"],
            "dedup_key": f"{message['dag_id']}/{message['run_id']}/{message['event']}",
            "custom_details": {"pipeline": message["pipeline"], "event": message["event"], **message["details"]}}


def page(params: dict[str, Any], message: dict[str, Any]) -> None:
    from airflow.providers.http.hooks.http import HttpHook

    HttpHook(method="POST", http_conn_id=params["conn_id"]).run(
        endpoint=ENDPOINT, json=event(params, message), extra_options={"timeout": TIMEOUT_S})
