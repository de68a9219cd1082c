"""A real local Ray cluster on 127.0.0.1 for the tests: one CPU, a small object store, token auth.

The head runs in its own session (`python tests/support/ray_cluster.py ...`) and stops when its
stdin closes or after `max_life_s`; `stop()` kills every process of that session (the GCS,
raylet, dashboard and workers Ray starts), never processes found by name.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path


@dataclass
class RayCluster:
    """A started head: its dashboard address, auth token and process."""

    address: str
    token: str
    process: subprocess.Popen

    def connection_env(self, conn_id: str = "ray_default") -> dict[str, str]:
        """`AIRFLOW_CONN_<ID>` for an Airflow connection to this cluster (host, token as password)."""
        import json

        host, port = self.address.removeprefix("http://").split(":")
        return {f"AIRFLOW_CONN_{conn_id.upper()}": json.dumps(
            {"conn_type": "generic", "host": host, "port": int(port), "schema": "http", "password": self.token})}


def _session_pids(session: int) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[3]) == session:  # field 6 of /proc/<pid>/stat: the session id
                pids.append(int(entry.name))
    return pids


def stop(cluster: RayCluster) -> None:
    """Kill every process in the head's session, then wait for the head."""
    for pid in _session_pids(cluster.process.pid):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    cluster.process.wait(timeout=30)


@contextmanager
def ray_cluster(port: int, max_life_s: int = 900) -> Iterator[RayCluster]:
    """A running head with its dashboard (and the Jobs API) at http://127.0.0.1:<port>."""
    temp_dir = tempfile.mkdtemp(prefix="ray", dir="/tmp")  # Ray's socket paths must stay short
    token = secrets.token_hex(32)
    # A job's `python` is the cluster's: this environment's, as a Ray image would have it installed.
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": token, "RAY_USAGE_STATS_ENABLED": "0",
           "HOME": temp_dir, "PATH": path}
    process = subprocess.Popen([sys.executable, __file__, str(port), temp_dir, str(max_life_s)], env=env,
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               start_new_session=True, text=True)
    cluster = RayCluster(address=f"http://127.0.0.1:{port}", token=token, process=process)
    try:
        line = process.stdout.readline() if process.stdout else ""
        while line and not line.startswith("READY"):
            line = process.stdout.readline()
        if not line:
            raise RuntimeError("the Ray head did not start")
        _wait_for_jobs_api(cluster)
        yield cluster
    finally:
        stop(cluster)
        shutil.rmtree(temp_dir, ignore_errors=True)


def _wait_for_jobs_api(cluster: RayCluster, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    request = urllib.request.Request(f"{cluster.address}/api/version",
                                     headers={"Authorization": f"Bearer {cluster.token}"})
    while True:
        try:
            urllib.request.urlopen(request, timeout=5).read()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def _head(port: int, temp_dir: str, max_life_s: int) -> None:
    import threading

    import ray

    ray.init(num_cpus=1, include_dashboard=True, dashboard_host="127.0.0.1", dashboard_port=port,
             object_store_memory=80 << 20, _temp_dir=temp_dir, configure_logging=False)
    print("READY", flush=True)
    def shutdown() -> None:
        ray.shutdown()
        os._exit(0)

    threading.Timer(max_life_s, shutdown).start()  # stops by itself, whatever the test does
    sys.stdin.read()
    shutdown()


if __name__ == "__main__":
    _head(int(sys.argv[1]), sys.argv[2], int(sys.argv[3]))
