"""Airflow's entry point: every spec under pipelines/ becomes DAGs (`pipespec.airflow.loader`).

PIPESPEC_PIPELINES loads another directory, PIPESPEC_STRICT=1 fails the import on any invalid
spec (CI), PIPESPEC_CACHE_DIR moves the IR cache, PIPESPEC_POLICY names the platform policy.
Every process that parses this file (each task process does, before its step runs) gets the task
environment's defaults first (`pipespec.tasklib.worker_env`).
"""

from pathlib import Path

from pipespec.tasklib.worker_env import use_worker_environment

use_worker_environment()  # before anything imports pyarrow

from pipespec.airflow.loader import load_project  # noqa: E402 - after the environment is set

load_project(Path(__file__).resolve().parent.parent, globals())
