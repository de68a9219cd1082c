"""Stopping an Airflow started by pipespec, completely.

Its components share the process group we started them in, but task
processes of the LocalExecutor are moved into groups of their own by Airflow's
task supervisor. So: terminate the group, then every process descending from
the ones we started or running with our AIRFLOW_HOME (Airflow's process titles
overwrite the environment of some, hence both), then kill whatever is left.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path


def stop_airflow(started: subprocess.Popen | Sequence[subprocess.Popen], home: Path, grace_s: float = 30) -> None:
    """Stop what we started (one process, or several in the first one's process group) and all of theirs."""
    processes = [started] if isinstance(started, subprocess.Popen) else list(started)
    group = processes[0].pid  # the leader's pid is the group id
    descendants = _descendants(processes)  # now: once a parent is gone, its children are re-parented
    _signal_group(group, signal.SIGTERM)
    for proc in _ours(home, descendants):
        _signal(proc, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline and (_group_alive(group) or _ours(home, descendants)):
        for process in processes:
            process.poll()  # reap them so they do not linger as zombies
        time.sleep(0.5)
    _signal_group(group, signal.SIGKILL)
    for proc in _ours(home, descendants):
        _signal(proc, signal.SIGKILL)
    for process in processes:
        process.wait()


def _descendants(processes: list[subprocess.Popen]) -> list:
    import psutil  # an Airflow dependency

    found = []
    for process in processes:
        try:
            parent = psutil.Process(process.pid)
            found += [parent, *parent.children(recursive=True)]
        except psutil.Error:
            continue
    return found


def _ours(home: Path, descendants: list) -> list:
    """Those still running of `descendants` and of the processes with our AIRFLOW_HOME."""
    import psutil

    found = [proc for proc in descendants if _running(proc)]
    for proc in psutil.process_iter():
        try:
            if proc.pid != os.getpid() and proc not in found and proc.environ().get("AIRFLOW_HOME") == str(home):
                found.append(proc)
        except psutil.Error:  # gone, a zombie, or not ours to read
            continue
    return found


def _running(proc) -> bool:
    import psutil

    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


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
