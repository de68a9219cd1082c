"""Alert receivers on 127.0.0.1: the embedded defaults for Slack, webhooks and email.

`make demo` and the end-to-end tests point the spec's connections here
(`connections()`), so every alert really leaves the worker, crosses a socket
and arrives somewhere it can be read back: an HTTP server that answers like
Slack's Web API and like a webhook, and an SMTP server (aiosmtpd).
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from email import message_from_bytes
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Received:
    """One alert a local receiver got."""

    channel: str  # slack | webhook | email
    body: dict[str, Any]


@dataclass
class AlertSinks:
    """Start with `start()`, read `received`, stop with `stop()` (or use as a context manager)."""

    received: list[Received] = field(default_factory=list)
    http_port: int = 0
    smtp_port: int = 0

    def start(self) -> "AlertSinks":
        self._http = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self.received))
        self.http_port = self._http.server_address[1]
        threading.Thread(target=self._http.serve_forever, daemon=True).start()
        self._smtp = _Smtp(self.received)
        self.smtp_port = self._smtp.port
        return self

    def stop(self) -> None:
        self._http.shutdown()
        self._http.server_close()
        self._smtp.stop()

    def __enter__(self) -> "AlertSinks":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def connections(self) -> dict[str, str]:
        """`AIRFLOW_CONN_*` values pointing the default alert connections at these sinks."""
        base = f"http://127.0.0.1:{self.http_port}"
        return {
            "AIRFLOW_CONN_SLACK_DEFAULT": json.dumps({"conn_type": "slack", "password": "xoxb-local-sink",
                                                      "extra": {"base_url": f"{base}/slack/"}}),
            # Plain SMTP, which the smtp provider's hook speaks only when the connection says so.
            "AIRFLOW_CONN_SMTP_DEFAULT": json.dumps({"conn_type": "smtp", "host": "127.0.0.1", "port": self.smtp_port,
                                                     "extra": {"disable_ssl": True, "disable_tls": True,
                                                               "from_email": "pipespec@localhost"}}),
            "AIRFLOW_CONN_HTTP_ALERTS": json.dumps({"conn_type": "http", "host": "127.0.0.1",
                                                    "port": self.http_port}),
        }

    def events(self) -> list[tuple[str, str]]:
        """(channel, event) of everything received, in order."""
        return [(r.channel, r.body.get("event") or _event_in(r.body.get("text", ""))) for r in self.received]


def _event_in(text: str) -> str:
    # "[pipespec] <pipeline>: <event words> in <dag> ..." (see pipespec.tasklib.alerts.message)
    try:
        return text.split(": ", 1)[1].split(" in ", 1)[0].replace(" ", "_")
    except IndexError:
        return ""


def _handler(received: list[Received]) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server API
            raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            if self.path.startswith("/slack/"):
                body = _slack_body(raw, self.headers.get("Content-Type", ""))
                received.append(Received("slack", body))
                reply = {"ok": True, "channel": body.get("channel"), "ts": "1.0"}
            else:
                received.append(Received("webhook", json.loads(raw or b"{}")))
                reply = {"ok": True}
            payload = json.dumps(reply).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args: Any) -> None:
            pass

    return Handler


def _slack_body(raw: bytes, content_type: str) -> dict[str, Any]:
    if "json" in content_type:
        return json.loads(raw or b"{}")
    from urllib.parse import parse_qs

    return {k: v[0] for k, v in parse_qs(raw.decode()).items()}


class _Smtp:
    def __init__(self, received: list[Received]):
        from aiosmtpd.controller import Controller

        class Handler:
            async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd API
                mail = message_from_bytes(envelope.content)
                # The smtp provider sends multipart mail: the text is the first text part, decoded.
                part = next((p for p in mail.walk() if p.get_content_maintype() == "text"), mail)
                text = part.get_payload(decode=True).decode(part.get_content_charset() or "utf-8", errors="replace")
                received.append(Received("email", {"to": envelope.rcpt_tos, "subject": mail["Subject"],
                                                   "text": text}))
                return "250 OK"

        self.port = _free_port()  # aiosmtpd's readiness check cannot start on port 0
        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def stop(self) -> None:
        self.controller.stop()


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
