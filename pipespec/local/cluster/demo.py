"""`make demo-cluster`: the user_feedback pipeline across two Celery workers that share no disk.

The spec is the repository's, with what differs in production: its sources live in S3 and in a
PostgreSQL warehouse instead of the spec's folder and a SQLite file, the data DAG runs when
triggered (through the REST API, here), and retries wait seconds, not minutes. Everything else,
the template it extends included, is unchanged.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

import yaml

from pipespec.local.cluster.services import PIPELINE, ROOT, WORKERS, Cluster, cluster

WORKSPACE = ROOT / ".pipespec-data" / "cluster"
ZENDESK = "s3://feedback/raw/zendesk/"


def say(message: str = "") -> None:
    """Print a line at once."""
    print(message, flush=True)


def cluster_spec(source: Path = ROOT / "pipelines" / f"{PIPELINE}.yaml") -> dict[str, Any]:
    """The feedback spec as deployed on the cluster: sources in S3 and the warehouse, no clock, and a
    short shadow window before the full rollout."""
    spec = yaml.safe_load(source.read_text())
    spec["data"]["sources"] = [
        {"name": "zendesk", "type": "s3", "uri": ZENDESK, "format": "jsonl"},
        next(s for s in spec["data"]["sources"] if s["name"] == "slack"),  # conn feedback_db: PostgreSQL here
    ]
    spec["data"]["schedule"] = "manual"
    spec["inference"]["schedule"] = {"assets": f"model://{PIPELINE}"}
    spec["retries"] = {"count": 3, "delay": "5s"}
    # A short shadow window: it is waited out in the triggerer, holding neither worker's slot.
    spec["rollout"] = {"stages": [{"shadow": {"duration": "20s"}}, "full"]}
    return spec


def fresh_workspace(workspace: Path = WORKSPACE) -> Path:
    """An empty workspace holding the cluster's copy of the specs (templates included)."""
    shutil.rmtree(workspace, ignore_errors=True)
    pipelines = workspace / "pipelines"
    shutil.copytree(ROOT / "pipelines" / "templates", pipelines / "templates")
    (pipelines / f"{PIPELINE}.yaml").write_text(yaml.safe_dump(cluster_spec(), sort_keys=False))
    return workspace


def seed(running: Cluster, drop: int, zendesk: int, slack: int, noise: float = 0.0) -> None:
    """A drop of new feedback: Zendesk exports in S3, Slack rows in the warehouse, messages to score in
    S3, and (once) the fixed holdout every model is scored on."""
    import psycopg

    from pipespec.local.sample_data import feedback_rows

    s3 = running.s3_client()
    jsonl = lambda rows: "".join(json.dumps(row) + "\n" for row in rows).encode()  # noqa: E731
    if drop == 0:
        for export in sorted((ROOT / "pipelines" / "data" / "feedback" / "zendesk").glob("*.jsonl")):
            s3.put_object(Bucket="feedback", Key=f"raw/zendesk/{export.name}", Body=export.read_bytes())
        s3.put_object(Bucket="feedback", Key="holdout/holdout.parquet", Body=_parquet(feedback_rows(300, seed=7)))
    seed_ = 100 + drop
    if zendesk:
        s3.put_object(Bucket="feedback", Key=f"raw/zendesk/drop-{drop}.jsonl",
                      Body=jsonl(feedback_rows(zendesk, seed=seed_, noise=noise)))
    with psycopg.connect(host=running.socket_dir, user="postgres", dbname="warehouse", autocommit=True) as db:
        db.execute("create table if not exists slack_messages (text text, label text, ts text)")
        with db.cursor() as cursor:
            cursor.executemany("insert into slack_messages values (%(text)s, %(label)s, %(ts)s)",
                               feedback_rows(slack, seed=seed_ + 50, noise=noise))
    s3.put_object(Bucket="feedback", Key=f"incoming/drop-{drop}.jsonl",
                  Body=jsonl([{"text": r["text"]} for r in feedback_rows(1200, seed=seed_ + 7)]))


def _parquet(rows: list[dict]) -> bytes:
    """Rows as the Parquet bytes pipespec itself would write (the holdout is read like any Ref)."""
    import pyarrow as pa

    from pipespec.tasklib.storage import _write_parquet

    sink = pa.BufferOutputStream()
    table = pa.Table.from_pylist(rows)
    _write_parquet(iter(table.to_batches()), table.schema, sink)
    return sink.getvalue().to_pybytes()


def champion(running: Cluster) -> dict[str, Any] | None:
    """The champion as the MLflow server has it: version, run and where its artifacts are."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    client = MlflowClient(tracking_uri=running.mlflow_url, registry_uri=running.mlflow_url)
    try:
        version = client.get_model_version_by_alias(PIPELINE, "champion")
    except MlflowException:
        return None
    run = client.get_run(version.run_id)
    return {"version": str(version.version), "run_id": version.run_id, "artifacts": run.info.artifact_uri}


def predictions(running: Cluster) -> dict[str, Any] | None:
    """The latest published predictions in S3 (its `_LATEST` pointer, manifest and data)."""
    s3 = running.s3_client()
    try:
        prefix = s3.get_object(Bucket="feedback", Key="predictions/_LATEST")["Body"].read().decode().strip()
    except s3.exceptions.NoSuchKey:
        return None
    manifest = json.loads(s3.get_object(Bucket="feedback", Key=f"{prefix.removeprefix('s3://feedback/')}/manifest.json")
                          ["Body"].read())
    return {"prefix": prefix, "rows": manifest["data"]["rows"], "model_version": manifest.get("model_version")}


def alert_connections(sinks: Any) -> dict[str, str]:
    """The alert connections, pointing at the local receivers; SMTP in plain text, which the smtp
    provider only speaks when its connection says so (`disable_ssl`, `disable_tls`)."""
    return {**sinks.connections(), "AIRFLOW_CONN_SMTP_DEFAULT": json.dumps(
        {"conn_type": "smtp", "host": "127.0.0.1", "port": sinks.smtp_port,
         "extra": {"disable_ssl": True, "disable_tls": True, "from_email": "pipespec@localhost"}})}


def main(workspace: Path = WORKSPACE) -> int:
    """Start the cluster, run the pipeline once end to end, print the summary, stop everything."""
    from pipespec.local.sinks import AlertSinks

    started = time.monotonic()
    workspace = fresh_workspace(workspace)
    say(f"== starting the cluster in {workspace} (logs: {workspace / 'logs'})")
    with AlertSinks() as sinks, cluster(workspace, extra_env=alert_connections(sinks), echo=say) as running:
        say(f"   PostgreSQL (socket {running.socket_dir}), Redis :{running.ports['redis']}, S3 {running.s3_url}, "
            f"MLflow {running.mlflow_url}, Airflow {running.api_url}, workers {', '.join(WORKERS)}")
        say(f"   ready in {time.monotonic() - started:.0f}s; seeding S3 and the warehouse")
        seed(running, drop=0, zendesk=0, slack=160)
        running.wait_for_dags()
        say("== triggering user_feedback__data through the REST API")
        runs = running.run_pipeline()
        summary(running, runs, sinks, time.monotonic() - started)
    return 0


def summary(running: Cluster, runs: list[dict], sinks: Any, seconds: float) -> None:
    """Where each DAG's tasks ran, the champion in MLflow, the predictions in S3."""
    say("\n== summary")
    for run in runs:
        took = _seconds(run)
        say(f"{run['dag_id']:<28} {run['state']:<8} {took:6.0f}s  ({run['run_type']})")
    counts = running.tasks_per_worker(runs)
    for worker in WORKERS:
        say(f"Celery worker {worker}: ran {counts.get(worker, 0)} tasks")
    best = champion(running)
    say(f"champion in MLflow ({running.mlflow_url}): "
        + (f"v{best['version']}, artifacts {best['artifacts']}" if best else "none"))
    published = predictions(running)
    say("predictions in S3: " + (f"{published['rows']} rows by v{published['model_version']} at {published['prefix']}"
                                 if published else "none"))
    say(f"alerts received locally: {', '.join(f'{c}:{e}' for c, e in sinks.events()) or 'none'}")
    say(f"finished in {seconds / 60:.1f} min")


def _seconds(run: dict) -> float:
    from datetime import datetime

    if not run.get("start_date") or not run.get("end_date"):
        return 0.0
    return (datetime.fromisoformat(run["end_date"]) - datetime.fromisoformat(run["start_date"])).total_seconds()


if __name__ == "__main__":
    raise SystemExit(main())
