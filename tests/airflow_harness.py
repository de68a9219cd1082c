"""Running compiled DAGs for real in tests: a migrated SQLite metadata DB,
`dag.test()`, pure test steps swapped in through the registry, and a local
HTTP receiver for webhook alerts."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from tasklib import registry


def migrate_db(airflow_home: Path) -> None:
    marker = airflow_home / ".migrated"
    if marker.exists():
        return
    airflow_home.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], check=True, capture_output=True)
    marker.touch()


@contextmanager
def steps(**implementations):
    """Swap steps by name (`data_extract=fn` for `data.extract`) for the duration of a test."""
    names = {key.replace("_", ".", 1): fn for key, fn in implementations.items()}
    for name, fn in names.items():
        registry.override(name, fn)
    try:
        yield
    finally:
        for name in names:
            registry.override(name, None)


class WebhookReceiver:
    """A real HTTP server on 127.0.0.1 that records JSON posts."""

    def __init__(self) -> None:
        self.received: list[dict] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server API
                length = int(self.headers.get("Content-Length", 0))
                receiver.received.append(json.loads(self.rfile.read(length)))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def events(self) -> list[str]:
        return [body["event"] for body in self.received]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def run_dag(pipelines: Path, dag_id: str, monkeypatch, cache: Path):
    """Compile `pipelines/`, run one DAG with dag.test(); return the run and {(task, map_index): state}."""
    from renderer.loader import load_dags

    monkeypatch.setenv("PIPESPEC_PIPELINES", str(pipelines))
    monkeypatch.setenv("PIPESPEC_CACHE_DIR", str(cache))
    namespace: dict = {}
    load_dags(pipelines, namespace, cache)
    run = namespace[dag_id].test()
    states = {(ti.task_id, ti.map_index): ti.state for ti in run.get_task_instances()}
    return run, states
