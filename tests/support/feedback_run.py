"""One real round of the feedback pipeline (data -> train -> inference), as `pipespec run`
runs it (dag.test(), real steps, TensorFlow, MLflow on SQLite), in a fresh process so that
Airflow reads the environment given here: its own AIRFLOW_HOME and, for the lineage tests,
an OpenLineage transport (the provider decides whether it is enabled once, at import).

`feedback_round(tmp)` runs it and returns the workspace and environment; tests/airflow/
test_lineage_events.py and test_ui_browser.py read what it left behind.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from tests.support.paths import ROOT


@dataclass
class FeedbackRun:
    workspace: Path
    home: Path  # AIRFLOW_HOME: the SQLite metadata DB with the runs
    lineage: Path  # OpenLineage events, one JSON document a line
    env: dict[str, str]  # what the run saw; an API server started with it reads the same DB and registry
    seconds: float


def feedback_env(workspace: Path) -> dict[str, str]:
    storage = workspace / "storage"
    return {
        "AIRFLOW_HOME": str(workspace / "airflow"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags" / "pipespec_dags.py"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "PIPESPEC_PIPELINES": str(workspace / "pipelines"),
        "PIPESPEC_STORAGE_ROOT": str(storage),
        "PIPESPEC_CACHE_DIR": str(workspace / "cache"),
        "MLFLOW_TRACKING_URI": f"sqlite:///{storage / 'mlflow.db'}",
        "AIRFLOW_CONN_FEEDBACK_DB": json.dumps({"conn_type": "sqlite", "host": str(workspace / "slack.db")}),
        "AIRFLOW__OPENLINEAGE__TRANSPORT": json.dumps(
            {"type": "file", "log_file_path": str(workspace / "lineage.jsonl"), "append": True}),
        "AIRFLOW__OPENLINEAGE__NAMESPACE": "pipespec-tests",
        "AIRFLOW__PIPESPEC__MLFLOW_UI_URL": "http://127.0.0.1:5000",
    }


def feedback_round(tmp: Path, timeout_s: int = 900, description: str | None = None) -> FeedbackRun:
    """Run the round in a child process; raise with its output if any DAG did not succeed.

    `description` replaces the spec's description (a hostile one, for the UI tests)."""
    import time

    import yaml

    from pipespec.local.demo import SPEC, drop, fresh_workspace
    from pipespec.local.sinks import AlertSinks

    workspace = fresh_workspace(tmp / "workspace")
    if description is not None:
        spec = workspace / "pipelines" / SPEC
        spec.write_text("\n".join(f"description: {json.dumps(description)}" if line.startswith("description:")
                                  else line for line in spec.read_text().splitlines()) + "\n")
        assert yaml.safe_load(spec.read_text())["description"] == description
    env = feedback_env(workspace)
    saved = os.environ.get("PIPESPEC_STORAGE_ROOT")
    os.environ["PIPESPEC_STORAGE_ROOT"] = env["PIPESPEC_STORAGE_ROOT"]  # drop() writes the holdout through storage
    try:
        drop(workspace, 0, 160, noise=0.0)
    finally:
        if saved is None:
            os.environ.pop("PIPESPEC_STORAGE_ROOT")
        else:
            os.environ["PIPESPEC_STORAGE_ROOT"] = saved
    Path(env["AIRFLOW_HOME"]).mkdir(parents=True)
    with AlertSinks() as sinks:  # the spec's alerts (email on promotion) land on local receivers
        connections = sinks.connections()
        # The local SMTP sink speaks plain SMTP; the smtp provider's hook tries SSL and STARTTLS unless told not to.
        connections["AIRFLOW_CONN_SMTP_DEFAULT"] = json.dumps({
            "conn_type": "smtp", "host": "127.0.0.1", "port": sinks.smtp_port,
            "extra": {"disable_ssl": True, "disable_tls": True}})
        child_env = {**os.environ, **env, **connections, "PYTHONPATH": str(ROOT)}
        subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], env=child_env, check=True,
                       capture_output=True)
        started = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "tests.support.feedback_run"], env=child_env, cwd=ROOT,
                              capture_output=True, text=True, timeout=timeout_s)
        seconds = time.perf_counter() - started
    (workspace / "run.log").write_text(done.stdout + done.stderr)
    if done.returncode != 0:
        raise AssertionError(f"the feedback round failed (see {workspace / 'run.log'}):\n{done.stdout[-3000:]}"
                             f"\n{done.stderr[-3000:]}")
    return FeedbackRun(workspace, Path(env["AIRFLOW_HOME"]), workspace / "lineage.jsonl", env, seconds)


def _main() -> None:
    from pipespec.local.run import run_pipeline

    spec = Path(os.environ["PIPESPEC_PIPELINES"]) / "user_feedback.yaml"
    outcomes = run_pipeline(spec, "inference", echo=print)
    states = {o.dag_id: o.state for o in outcomes}
    print(json.dumps(states))
    if [o.state for o in outcomes] != ["success"] * 3:
        sys.exit(f"not every DAG succeeded: {states}")


if __name__ == "__main__":
    _main()
