"""Airflow's entry point: every spec under pipelines/ becomes DAGs (`pipespec.airflow.loader`).

PIPESPEC_PIPELINES loads another directory, PIPESPEC_STRICT=1 fails the import on any invalid
spec (CI), PIPESPEC_CACHE_DIR moves the IR cache, PIPESPEC_POLICY names the platform policy.
"""

from pathlib import Path

from pipespec.airflow.loader import load_project

load_project(Path(__file__).resolve().parent.parent, globals())
