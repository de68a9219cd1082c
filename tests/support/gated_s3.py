"""moto's S3 server on 127.0.0.1 with a gate in front: a test can hold the request that writes
one key, to act at an exact point of a step (kill the worker that sent it, say).

`gate.arm(method, pattern)` holds the next matching request (path-style `/bucket/key`) until
`gate.drop()` answers it 503 without forwarding it (its sender is gone) or `gate.release()`
forwards it; `gate.held` is set while one is held. Everything else passes straight to moto.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator


@dataclass
class Gate:
    method: str = ""
    pattern: re.Pattern | None = None
    held: threading.Event = field(default_factory=threading.Event)
    held_path: str = ""
    _decided: threading.Event = field(default_factory=threading.Event)
    _forward: bool = True

    def arm(self, method: str, pattern: str) -> None:
        self.held.clear()
        self._decided.clear()
        self.method, self.pattern = method, re.compile(pattern)

    def release(self) -> None:
        self._finish(forward=True)

    def drop(self) -> None:
        self._finish(forward=False)

    def _finish(self, forward: bool) -> None:
        self._forward = forward
        self.pattern = None
        self._decided.set()

    def hold(self, method: str, path: str) -> bool:
        """Whether to forward this request (blocks while it is held)."""
        pattern = self.pattern
        if pattern is None or method != self.method or not pattern.search(path) or self.held.is_set():
            return True
        self.held_path = path
        self.held.set()
        self._decided.wait(timeout=600)
        return self._forward


def _gated(app: Callable, gate: Gate) -> Callable:
    def middleware(environ: dict, start_response: Callable) -> Iterator[bytes] | Any:
        if not gate.hold(environ["REQUEST_METHOD"], environ.get("PATH_INFO", "")):
            start_response("503 Service Unavailable", [("Content-Type", "text/plain")])
            return [b"dropped by the test's gate"]
        return app(environ, start_response)
    return middleware


class GatedS3:
    """Start with `start()` (a daemon thread; it ends with the test process)."""

    def __init__(self) -> None:
        self.gate = Gate()
        self.endpoint = ""

    def start(self) -> "GatedS3":
        from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
        from werkzeug.serving import make_server

        app = _gated(DomainDispatcherApplication(create_backend_app), self.gate)
        self._server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=MotoRequestHandler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        host, port = self._server.server_address[:2]
        self.endpoint = f"http://{host}:{port}"
        return self

    def stop(self) -> None:
        self.gate.drop()
        self._server.shutdown()
