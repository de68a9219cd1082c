"""The project-local environment `pipespec run`, `pipespec up` and `make demo` use:
Airflow's home, metadata DB, storage and registry all under the project, so
nothing touches the user's ~/airflow. Must run before Airflow is imported
(Airflow reads its configuration at import); it imports nothing heavy itself.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

def configure(root: Path | None = None, pipelines: Path | None = None) -> dict[str, str]:
    """Defaults for the project at `root` (the current directory: a checkout or a `pipespec init` repository)."""
    root = (root or Path.cwd()).resolve()
    defaults = {
        "AIRFLOW_HOME": str(root / ".airflow"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(root / "dags" / "pipespec_dags.py"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__PARALLELISM": "4",  # Airflow's default would start 32 workers on a 2-core machine
        # A project-local Airflow serves this machine only (the log servers are not started; see pipespec/local/up.py).
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_HOST": "127.0.0.1",
        # With SQLite, the scheduler's write lock can stall the API server past the workers' 5 s default.
        "AIRFLOW__WORKERS__EXECUTION_API_TIMEOUT": "60",
        "AIRFLOW__DAG_FACTORY__ENABLE_TELEMETRY": "False",
        # The embedded default: `s3://bucket/key` lives under this directory (see tasklib/storage.py).
        "PIPESPEC_STORAGE_ROOT": str(root / ".pipespec-data" / "storage"),
        "PIPESPEC_CACHE_DIR": str(root / ".pipespec-cache"),
    }
    if pipelines is not None:
        defaults["PIPESPEC_PIPELINES"] = str(pipelines.resolve())
    for key, value in defaults.items():
        os.environ.setdefault(key, value)
    return {key: os.environ[key] for key in defaults}


def ensure_db() -> None:
    """Migrate the SQLite metadata DB once (about 15 s); a marker file skips it afterwards."""
    home = Path(os.environ["AIRFLOW_HOME"])
    marker = home / ".pipespec-migrated"
    if marker.exists():
        return
    home.mkdir(parents=True, exist_ok=True)
    # umask 077: the DB (connections) and the airflow.cfg it may write (secret keys) are the owner's only.
    done = subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], capture_output=True, text=True,
                          umask=0o077)
    if done.returncode != 0:
        raise RuntimeError(f"airflow db migrate failed:\n{done.stderr[-2000:]}")
    marker.touch()
