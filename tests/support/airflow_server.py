"""A real Airflow for end-to-end tests: scheduler, dag-processor and API server
(LocalExecutor, SQLite) on 127.0.0.1, in one process group that is killed at
the end, also when the test fails."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from pipespec.local.processes import stop_airflow

from tests.support.paths import ROOT  # noqa: E402 - one home for where the checkout is
USER, PASSWORD = "admin", "pipespec-e2e"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class AirflowServer:
    def __init__(self, home: Path, env: dict[str, str]):
        self.home, self.port = home, free_port()
        passwords = home / "passwords.json"
        home.mkdir(parents=True, exist_ok=True)
        passwords.write_text(json.dumps({USER: PASSWORD}))
        self.env = {
            **os.environ, **env,
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags" / "pipespec_dags.py"),
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__PARALLELISM": "2",
            # With SQLite, the scheduler's write lock can stall the API server past the workers' 5 s default.
            "AIRFLOW__WORKERS__EXECUTION_API_TIMEOUT": "60",
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{USER}:admin",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
            "AIRFLOW__API__PORT": str(self.port),
            # Test servers listen on 127.0.0.1 only; the log servers (always on every interface) are not
            # started: the API server reads the task logs from this machine's files.
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_HOST": "127.0.0.1",
            "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{self.port}",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{self.port}/execution/",
            "AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME": "1",
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        }
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None
        self._token: str | None = None

    def start(self, timeout_s: int = 240) -> "AirflowServer":
        from pipespec.airflow.preload import install

        install(self.home)  # warm task processes, as `pipespec up` and a deployment have them
        subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], env=self.env, check=True,
                       capture_output=True)
        log = open(self.home / "components.log", "ab")
        script = (f"airflow api-server --port {self.port} & airflow scheduler --skip-serve-logs & "
                  "airflow dag-processor & wait")
        self.process = subprocess.Popen(["bash", "-c", script], env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                        start_new_session=True)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{self.url}/api/v2/monitor/health", timeout=2):
                    return self
            except OSError:
                time.sleep(2)
        raise TimeoutError(f"Airflow API not ready in {timeout_s}s; see {self.home / 'components.log'}")

    def stop(self) -> None:
        if self.process is not None:
            stop_airflow(self.process, self.home)

    def token(self) -> str:
        if self._token is None:
            request = urllib.request.Request(f"{self.url}/auth/token", method="POST",
                                             data=json.dumps({"username": USER, "password": PASSWORD}).encode(),
                                             headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(request, timeout=10) as response:
                self._token = json.load(response)["access_token"]
        return self._token

    def api(self, path: str, body: dict | None = None, method: str | None = None, tries: int = 3) -> Any:
        """One REST API call. A 500 is tried again (up to `tries` in all): with SQLite, a request that waited
        5 s for the writer lock while the scheduler and the tasks were writing fails whole (rolled back)."""
        for attempt in range(1, tries + 1):
            request = urllib.request.Request(f"{self.url}/api/v2{path}", method=method or ("POST" if body else "GET"),
                                             data=json.dumps(body).encode() if body is not None else None,
                                             headers={"Content-Type": "application/json",
                                                      "Authorization": f"Bearer {self.token()}"})
            try:
                with urllib.request.urlopen(request, timeout=30) as response:
                    return json.load(response)
            except urllib.error.HTTPError as error:
                if error.code != 500 or attempt == tries:
                    raise
                time.sleep(2 * attempt)

    def wait_for(self, predicate, what: str, timeout_s: int, every_s: float = 3) -> Any:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                value = predicate()
            except urllib.error.HTTPError as error:
                if error.code != 404:
                    raise
                value = None
            if value:
                return value
            time.sleep(every_s)
        raise TimeoutError(f"timed out after {timeout_s}s waiting for {what}; see {self.home / 'components.log'}")

    def runs(self, dag_id: str) -> list[dict]:
        return self.api(f"/dags/{dag_id}/dagRuns?order_by=-start_date&limit=20")["dag_runs"]


@contextmanager
def airflow_server(home: Path, env: dict[str, str]) -> Iterator[AirflowServer]:
    server = AirflowServer(home, env)
    try:
        yield server.start()
    finally:
        server.stop()
