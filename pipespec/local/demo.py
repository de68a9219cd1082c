"""`make demo`: the user-feedback pipeline end to end on embedded defaults.

Three data drops through the real DAGs (dag.test against the project-local
SQLite Airflow DB), real steps, real TensorFlow training, MLflow on SQLite, and
alerts that arrive at local Slack/SMTP receivers:

1. first drop: data → Asset → train → the first model becomes champion → inference;
2. a second, larger drop: retrain, challenger against champion, promote or reject;
3. a drop with mislabeled data: the challenger is worse and is rejected, with an alert.

Everything runs in a scratch copy under .pipespec-data/demo/, so the repository's
pipelines/ stays untouched and the demo can be rerun from scratch. Airflow's and
TensorFlow's logs go to .pipespec-data/demo/demo.log; the terminal shows a live
table of each DAG's tasks, the decisions and a closing summary
(pipespec.local.terminal).
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import Any

from pipespec.local.local_env import configure

ROOT = Path(__file__).resolve().parents[2]  # the checkout: `make demo` runs its example pipeline
DEMO = ROOT / ".pipespec-data" / "demo"
SPEC = "user_feedback.yaml"


def main() -> None:
    """Run the demo end to end in a fresh workspace, logs to a file, progress on the terminal."""
    started = time.perf_counter()
    workspace = fresh_workspace()
    configure(pipelines=workspace / "pipelines")
    os.environ["PIPESPEC_PIPELINES"] = str(workspace / "pipelines")  # the DAG file dag.test() re-parses
    os.environ["PIPESPEC_STORAGE_ROOT"] = str(workspace / "storage")
    os.environ["PIPESPEC_CACHE_DIR"] = str(workspace / "cache")
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{workspace / 'storage' / 'mlflow.db'}"
    os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = "false"  # tqdm bars in the log file are noise too
    from pipespec.tasklib.model import runner

    # Each round's training process is started ahead: its TensorFlow import overlaps with the other steps.
    runner.prestart()

    from pipespec.local.local_env import ensure_db
    from pipespec.local.sinks import AlertSinks
    from pipespec.local.terminal import LiveRun, listening, output_to_file

    log_path = workspace / "demo.log"
    with output_to_file(log_path) as console:
        console.print(f"[bold]pipespec demo[/]: user_feedback, three data drops "
                      f"[dim](Airflow, task and TensorFlow logs: {log_path})[/]")
        console.print("setup: Airflow metadata DB (SQLite, migrated once), local Slack/SMTP receivers", style="dim")
        ensure_db()
        with AlertSinks() as sinks, listening(LiveRun(console)) as view:
            os.environ.update(sinks.connections())
            os.environ["AIRFLOW_CONN_FEEDBACK_DB"] = f'{{"conn_type": "sqlite", "host": "{workspace / "slack.db"}"}}'
            rounds = [
                ("first drop: 240 Zendesk + 160 Slack messages", lambda: drop(workspace, 0, 160, noise=0.0)),
                ("second, larger drop: +600 Zendesk + 300 Slack messages",
                 lambda: drop(workspace, 600, 300, noise=0.0)),
                ("third drop: 2,400 systematically mislabeled messages (a worse challenger)",
                 lambda: drop(workspace, 1600, 800, noise=0.9)),
            ]
            summaries = []
            for number, (title, new_data) in enumerate(rounds, start=1):
                console.rule(f"round {number}: {title}", align="left")
                new_data()
                summaries.append(_round(workspace / "pipelines" / SPEC, number, view))
            _summary(console, summaries, sinks, workspace, log_path, time.perf_counter() - started)


def fresh_workspace(workspace: Path = DEMO) -> Path:
    """A scratch copy of the feedback pipeline (spec, templates, shipped data)."""
    shutil.rmtree(workspace, ignore_errors=True)
    pipelines = workspace / "pipelines"
    shutil.copytree(ROOT / "pipelines" / "templates", pipelines / "templates")
    shutil.copy(ROOT / "pipelines" / SPEC, pipelines / SPEC)
    shutil.copytree(ROOT / "pipelines" / "data" / "feedback", pipelines / "data" / "feedback")
    return workspace


def drop(workspace: Path, zendesk: int, slack: int, noise: float) -> None:
    """New feedback arrives: a Zendesk export file, Slack rows, and new messages to score."""
    from pipespec.local.sample_data import feedback_rows, write_jsonl, write_slack_db

    drop = len(list((workspace / "pipelines" / "data" / "feedback" / "zendesk").glob("*.jsonl")))
    seed = 100 + drop
    if zendesk:
        write_jsonl(feedback_rows(zendesk, seed=seed, noise=noise),
                    workspace / "pipelines" / "data" / "feedback" / "zendesk" / f"drop-{drop}.jsonl")
    write_slack_db(feedback_rows(slack, seed=seed + 50, noise=noise), workspace / "slack.db")
    storage = workspace / "storage" / "feedback"
    if not (storage / "holdout").exists():  # a fixed, clean holdout: every model is scored on the same rows
        from pipespec.tasklib.storage import write_table
        import pyarrow as pa

        write_table(pa.Table.from_pylist(feedback_rows(300, seed=7)), "s3://feedback/holdout/holdout.parquet")
    write_jsonl([{"text": r["text"]} for r in feedback_rows(1200, seed=seed + 7)],
                storage / "incoming" / f"drop-{drop}.jsonl")


def _round(spec: Path, number: int, view: Any) -> dict:
    from pipespec.local.run import run_pipeline

    outcomes = run_pipeline(spec, "inference", view=view)
    result: dict = {"round": number, "dags": {o.dag_id.rsplit("__", 1)[1]: o for o in outcomes}}
    data = result["dags"].get("data")
    if data is not None:
        measure = data.outputs.get("measure") or {}
        result["sources"] = measure.get("rows_by_source", {})
        result["gate"] = "passed" if measure.get("passed") else f"blocked: {measure.get('reason')}"
    train = result["dags"].get("train")
    if train is not None:
        result["scores"] = train.outputs.get("evaluate") or {}
        result["decision"] = "promoted" if "promote" in train.outputs else "rejected"
        result["report"] = (train.outputs.get("report") or {}).get("report_uri")
    inference = result["dags"].get("inference")
    if inference is not None:
        result["predictions"] = inference.outputs.get("publish_predictions") or {}
    return result


def _summary(console: Any, rounds: list[dict], sinks: Any, workspace: Path, log_path: Path,
             seconds: float) -> None:
    from rich.table import Table

    console.rule("summary", align="left")
    sources = next((" + ".join(r["sources"]) for r in rounds if r.get("sources")), "")
    metric = next((r["scores"]["metric"] for r in rounds if r.get("scores")), "metric")
    table = Table(title=f"records by source, the data gate, and {metric} on the holdout", title_justify="left",
                  show_edge=False, box=None, header_style="bold", pad_edge=False)
    for column in ("round", "records", "gate", "challenger", "champion", "decision", "predictions"):
        table.add_column(column, no_wrap=True)
    for r in rounds:
        scores = r.get("scores") or {}
        champion, decision, p = scores.get("champion"), r.get("decision", "-"), r.get("predictions") or {}
        table.add_row(str(r["round"]), " + ".join(str(rows) for rows in r.get("sources", {}).values()) or "-",
                      r.get("gate", "-").split(":")[0], f"{scores['challenger']:.3f}" if scores else "-",
                      "-" if champion is None else f"{champion:.3f}",
                      f"[{'green' if decision == 'promoted' else 'red'}]{decision}[/]" if scores else "-",
                      f"{p.get('rows')} by v{p.get('model_version')}" if p else "-")
    console.print(table)
    if sources:
        console.print(f"records: {sources}", style="dim")
    for r in rounds:
        if r.get("report"):
            console.print(f"round {r['round']} report: {r['report']}")
    console.print(f"alerts received locally: {', '.join(_alerts(sinks)) or 'none'}")
    console.print(f"\nfinished in {seconds / 60:.1f} min. Explore:")
    console.print("  Airflow UI:  .venv/bin/pipespec up       (same SQLite DB: the runs above are there)")
    console.print("  MLflow UI:   .venv/bin/mlflow ui --backend-store-uri "
                  f"sqlite:///{workspace / 'storage' / 'mlflow.db'}")
    console.print(f"  data:        {workspace / 'storage'}")
    console.print(f"  logs:        {log_path}")


def _alerts(sinks: Any) -> list[str]:
    """`channel: event` of each alert the local receivers took (an email's event from its subject)."""
    return [f"{r.channel}: {r.body['subject'].split(': ', 1)[1].split(' in ', 1)[0]}"
            if r.channel == "email" and r.body.get("subject") and ": " in r.body["subject"]
            else f"{c}: {e}" for r, (c, e) in zip(sinks.received, sinks.events())]


if __name__ == "__main__":
    main()
