"""Warm task processes: import pipespec's task path once, in the process that forks the task processes.

Airflow forks each task process from a long-lived one: a LocalExecutor worker (itself forked from
the scheduler) or a Celery worker. Whatever that process imported, every task process starts
with. Without this, each task imported pipespec's loader, the platform policy, pyarrow and the
data steps again: ~0.5 s of a data task's start-up, paid by every mapped instance
(bench/scheduler_e2e.py: the data DAG at 1M rows went from 12.8 s to 8.6 s end to end).

A deployment opts in from its `airflow_local_settings.py` (Airflow imports it in every process):

    import pipespec.airflow.preload  # noqa: F401

Only the scheduler and Celery workers import anything here; the API server and the dag-processor
are left as they are. TensorFlow is not preloaded (seconds to import, threads, and memory a data
task does not need). Nothing imported here starts a thread, so forking after it stays safe.
`pipespec up` and the test harness write that file into their Airflow home (`install`).
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

MODULES = (
    "pipespec.airflow.loader",  # the DAG file's imports: the loader, renderer, adapter, policy
    "pipespec.schemas.plugins_builtin",  # the registry every source, transform and model is checked against
    "pyarrow", "pyarrow.compute", "pyarrow.parquet", "pyarrow.json", "pyarrow.csv",
    "pipespec.tasklib.data.plan", "pipespec.tasklib.data.extract", "pipespec.tasklib.data.transform",
    "pipespec.tasklib.data.curate", "pipespec.tasklib.data.publish", "pipespec.tasklib.data.row_hash",
)
LOCAL_SETTINGS = "import pipespec.airflow.preload  # noqa: F401 - warm task processes (pipespec/airflow/preload.py)\n"


def forks_tasks(argv: list[str]) -> bool:
    """Whether this process (by its command line) forks task processes: `airflow scheduler` (its
    LocalExecutor workers) or `airflow celery worker`."""
    args = [a for a in argv[1:] if not a.startswith("-")]
    return args[:1] == ["scheduler"] or args[:2] == ["celery", "worker"]


def preload() -> None:
    """Import MODULES, with the worker environment set first (as the DAG file sets it)."""
    from pipespec.tasklib.worker_env import use_worker_environment

    use_worker_environment()  # before pyarrow is imported
    for name in MODULES:
        importlib.import_module(name)
    from airflow.sdk import Asset

    # The first `s3://` Asset makes Airflow import every provider's URI normaliser (the amazon one with
    # boto3, ~0.25 s): the publishing tasks' outlets then find them loaded.
    Asset("s3://pipespec-preload/")


def install(airflow_home: Path) -> Path:
    """Write `<airflow_home>/config/airflow_local_settings.py` that preloads, unless one is there (a
    deployment's own settings are never replaced). Returns its path."""
    settings = airflow_home / "config" / "airflow_local_settings.py"
    if not settings.exists():
        settings.parent.mkdir(parents=True, exist_ok=True)
        settings.write_text(LOCAL_SETTINGS)
    return settings


if forks_tasks(sys.argv):
    preload()
