"""Stopping an Airflow started by pipespec, completely.

Its components share the process group we started them in, but task
processes of the LocalExecutor are moved into groups of their own by Airflow's
task supervisor. So: terminate the group, then every process that still runs
with our AIRFLOW_HOME, then kill whatever is left.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path


def stop_airflow(process: subprocess.Popen, home: Path, grace_s: float = 30) -> None:
    group = process.pid  # started with start_new_session: the leader's pid is the group id
    _signal_group(group, signal.SIGTERM)
    for proc in _ours(home):
        _signal(proc, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline and (_group_alive(group) or _ours(home)):
        process.poll()  # reap the leader so it does not linger as a zombie
        time.sleep(0.5)
    _signal_group(group, signal.SIGKILL)
    for proc in _ours(home):
        _signal(proc, signal.SIGKILL)
    process.wait()


def _ours(home: Path) -> list:
    import psutil  # an Airflow dependency

    found = []
    for proc in psutil.process_iter():
        try:
            if proc.pid != os.getpid() and proc.environ().get("AIRFLOW_HOME") == str(home):
                found.append(proc)
        except psutil.Error:  # gone, a zombie, or not ours to read
            continue
    return found


def _signal(proc, sig: int) -> None:
    import psutil

    try:
        proc.send_signal(sig)
    except psutil.Error:
        pass


def _signal_group(group: int, sig: int) -> None:
    try:
        os.killpg(group, sig)
    except ProcessLookupError:
        pass


def _group_alive(group: int) -> bool:
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return False
    return True
