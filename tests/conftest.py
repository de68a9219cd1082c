"""Airflow reads its configuration at import: point it at a project-local,
throw-away home before any test imports it."""

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("AIRFLOW_HOME", str(ROOT / ".airflow-test"))
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(ROOT / "dags" / "pipespec_dags.py")
os.environ.setdefault("AIRFLOW__DAG_FACTORY__ENABLE_TELEMETRY", "False")  # dag-factory reports runs otherwise
os.environ.setdefault("DO_NOT_TRACK", "1")
