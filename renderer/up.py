"""`pipespec up`: Airflow standalone on this project's dags folder and a
project-local AIRFLOW_HOME, with low parallelism; stops cleanly on Ctrl-C,
children included (they share one process group)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from .processes import stop_airflow

PASSWORDS = "simple_auth_manager_passwords.json.generated"


def _say(message: str) -> None:
    print(message, flush=True)


def _interrupt(signum, frame) -> None:
    """`kill` (SIGTERM) cleans up exactly like Ctrl-C."""
    raise KeyboardInterrupt


def up(port: int = 8080, echo=_say, ready_timeout_s: int = 240) -> int:
    env = {**os.environ, "AIRFLOW__API__PORT": str(port), "AIRFLOW__API__BASE_URL": f"http://localhost:{port}",
           # standalone starts its components as `airflow ...` by name: they must come from this venv.
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    home = Path(env["AIRFLOW_HOME"])
    log_path = home / "standalone.log"
    home.mkdir(parents=True, exist_ok=True)
    echo(f"starting Airflow (logs: {log_path}) ...")
    signal.signal(signal.SIGTERM, _interrupt)
    with open(log_path, "ab") as log:
        process = subprocess.Popen([sys.executable, "-m", "airflow", "standalone"], env=env, stdout=log,
                                   stderr=subprocess.STDOUT, start_new_session=True)
    try:
        if not _wait_ready(port, process, ready_timeout_s):
            echo(f"Airflow did not become ready in {ready_timeout_s}s; see {log_path}")
            return 1
        echo(f"Airflow UI: http://localhost:{port}  login: {_login(home)}")
        echo("pipespec DAGs are tagged `pipespec`; invalid specs appear as `pipespec_invalid__*`. Ctrl-C stops.")
        return process.wait()
    except KeyboardInterrupt:
        echo("stopping Airflow ...")
        return 0
    finally:
        stop_airflow(process, home)


def _wait_ready(port: int, process: subprocess.Popen, timeout_s: int) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v2/monitor/health", timeout=2) as response:
                if response.status == 200:
                    return True
        except OSError:
            pass
        time.sleep(2)
    return False


def _login(home: Path) -> str:
    try:
        users = json.loads((home / PASSWORDS).read_text())
        return ", ".join(f"{user} / {password}" for user, password in users.items())
    except (OSError, ValueError):
        return f"see {home / PASSWORDS}"
