"""`pipespec up`: a local Airflow (API server, scheduler, dag-processor,
triggerer) on this project's dags folder and a project-local AIRFLOW_HOME, with
low parallelism; stops cleanly on Ctrl-C, children included (they share one
process group).

Local means local: everything listens on 127.0.0.1 only. The API server binds
`[api] host` (pipespec/local/local_env.py sets 127.0.0.1). The scheduler's and triggerer's log
servers always bind every interface (Airflow has no setting for their host), so
they are not started (`--skip-serve-logs`): on one machine the API server reads
task logs from the log folder itself. That is also why this starts the four
components rather than `airflow standalone`, which cannot skip them.

The admin password: pipespec writes the password file itself, created 0600
(never readable by others, not even for a moment), before Airflow would create
one world-readable. It is never printed, not even the first time: terminal
scrollback, CI logs and shared screens outlive the moment, and the file is one
`cat` away. Start-up prints the file's path. Airflow runs with umask 077, so
what it writes under AIRFLOW_HOME (airflow.cfg with its secret keys, the
metadata DB with connections, logs) is private too.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from pipespec.local.processes import stop_airflow

PASSWORDS = "simple_auth_manager_passwords.json.generated"
LOOPBACK = "127.0.0.1"
COMPONENTS = (["api-server"], ["scheduler", "--skip-serve-logs"], ["dag-processor"],
              ["triggerer", "--skip-serve-logs"])
PRIVATE = 0o077  # umask: files only their owner can read


def _say(message: str) -> None:
    print(message, flush=True)


def _interrupt(signum, frame) -> None:
    """`kill` (SIGTERM) cleans up exactly like Ctrl-C."""
    raise KeyboardInterrupt


def up(port: int = 8080, echo=_say, ready_timeout_s: int = 240) -> int:
    """Start a local Airflow on `port` and keep it running until a component exits; the exit code."""
    url = f"http://{LOOPBACK}:{port}"
    env = {**os.environ, "AIRFLOW__API__PORT": str(port), "AIRFLOW__API__BASE_URL": url,
           # The components are started as `airflow ...` by name: they must come from this venv.
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    home = Path(env["AIRFLOW_HOME"])
    home.mkdir(parents=True, exist_ok=True)
    from pipespec.airflow.preload import install

    install(home)  # task processes forked with pipespec's task path already imported
    passwords = password_file(home, env)
    env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"] = str(passwords)
    log_path = home / "standalone.log"
    echo(f"starting Airflow (logs: {log_path}) ...")
    signal.signal(signal.SIGTERM, _interrupt)
    processes = _start(env, log_path)
    try:
        if not _wait_ready(port, processes, ready_timeout_s):
            echo(f"Airflow did not become ready in {ready_timeout_s}s; see {log_path}")
            return 1
        echo(f"Airflow UI: {url}  login: admin, password in {passwords}")
        echo("pipespec DAGs are tagged `pipespec`; invalid specs appear as `pipespec_invalid__*`. Ctrl-C stops.")
        return _wait_any(processes)
    except KeyboardInterrupt:
        echo("stopping Airflow ...")
        return 0
    finally:
        stop_airflow(processes, home)


def password_file(home: Path, env: dict[str, str]) -> Path:
    """The SimpleAuthManager password file, with a generated password for each configured user.

    Created with mode 0600 in the same call that creates it (O_EXCL: never opened on someone
    else's file). An existing file keeps its passwords; one left readable by others (by an
    earlier pipespec or Airflow) is made private.
    """
    path = Path(env.get("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE") or home / PASSWORDS)
    users = [entry.split(":")[0].strip() for entry in
             env.get("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS", "admin:admin").split(",") if entry.strip()]
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        if path.stat().st_mode & 0o077:
            path.chmod(0o600)
        return path
    with os.fdopen(descriptor, "w") as file:
        json.dump({user: secrets.token_urlsafe(16) for user in users}, file)
        file.write("\n")
    return path


def _start(env: dict[str, str], log_path: Path) -> list[subprocess.Popen]:
    """The components in one new process group (the first one's), output appended to the log."""
    processes: list[subprocess.Popen] = []
    descriptor = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    with os.fdopen(descriptor, "ab") as log:
        for component in COMPONENTS:
            # A group of their own (not a session: joining a group in another session is refused), so
            # Ctrl-C reaches only us and we stop them in order; the first one's pid is the group id.
            group = processes[0].pid if processes else 0
            processes.append(subprocess.Popen([sys.executable, "-m", "airflow", *component], env=env, stdout=log,
                                              stderr=subprocess.STDOUT, umask=PRIVATE, process_group=group))
    return processes


def _wait_any(processes: list[subprocess.Popen]) -> int:
    """Until a component exits (the others are then stopped by the caller); its exit code."""
    while True:
        for process in processes:
            if process.poll() is not None:
                return process.returncode
        time.sleep(1)


def _wait_ready(port: int, processes: list[subprocess.Popen], timeout_s: int) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if any(process.poll() is not None for process in processes):
            return False
        try:
            with urllib.request.urlopen(f"http://{LOOPBACK}:{port}/api/v2/monitor/health", timeout=2) as response:
                if response.status == 200:
                    return True
        except OSError:
            pass
        time.sleep(2)
    return False
