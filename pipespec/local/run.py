"""`pipespec run SPEC`: run a pipeline's DAGs locally, in order, the way the
scheduler would chain them through Assets, with dag.test() against the
project-local SQLite DB. The train DAG runs only when the data DAG published
its Asset; inference only after a promotion, unless it runs on a clock.

On a terminal (`pipespec run`, `make demo`) Airflow's and TensorFlow's logs go to
a file whose path is printed, and the terminal shows a live table of tasks per
DAG (pipespec.local.terminal), the decisions and a closing summary. Given an
`echo`, it prints plain lines instead (tests, scripts)."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:
    from pipespec.local.terminal import LiveRun

STAGES = ("data", "train", "inference")
# The task whose success emits the Asset the next DAG is scheduled on.
EMITTER = {"data": "publish", "train": "promote"}


@dataclass
class DagOutcome:
    """How one DAG run ended: state, time, task states and the outputs worth showing."""

    dag_id: str
    state: str
    seconds: float
    tasks: list[tuple[str, str, str]] = field(default_factory=list)  # (task, map label, state)
    outputs: dict[str, object] = field(default_factory=dict)  # task id -> return value of interest


def run_pipeline(spec: Path, until: str = "inference", echo: Callable[[str], None] | None = None,
                 view: LiveRun | None = None) -> list[DagOutcome]:
    """Check a spec, then run its DAGs in order up to `until`, each with `dag.test()`.

    Progress goes to `view` (a live table), else to `echo` line by line; with neither, the
    logs go to a file and a live view is drawn on the terminal (`pipespec run`)."""
    if view is None and echo is None:
        return _run_quietly(spec, until)
    from pipespec.schemas.check import check_file

    from pipespec.airflow.loader import load_dags

    checked = check_file(spec)
    if checked.spec is None:
        raise ValueError(f"{spec} has errors: run `pipespec check {spec}`")
    namespace: dict = {}
    load_dags(spec.parent, namespace)
    outcomes: list[DagOutcome] = []
    for stage in STAGES[: STAGES.index(until) + 1]:
        dag = namespace.get(f"{checked.spec.pipeline}__{stage}")
        if dag is None:
            continue
        previous = outcomes[-1] if outcomes else None
        if previous is not None and not _triggered(previous, stage, dag):
            _say(view, echo, f"-- {dag.dag_id}: not triggered ({_why_not(previous)})", "dim")
            break
        outcomes.append(_run(dag, echo, view))
        for line in decisions(outcomes[-1]):
            _say(view, echo, f"   {line}", "bold")
        if outcomes[-1].state != "success":
            break
    return outcomes


def log_file(name: str) -> Path:
    """Where a local run's logs go: the project's Airflow home, `logs/pipespec-<name>-<time>.log`."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    return Path(os.environ.get("AIRFLOW_HOME", ".airflow")) / "logs" / f"pipespec-{name}-{stamp}.log"


def _run_quietly(spec: Path, until: str) -> list[DagOutcome]:
    from pipespec.local.terminal import LiveRun, listening, output_to_file

    path = log_file(spec.stem)
    with output_to_file(path) as console:
        console.print(f"logs (Airflow, tasks, TensorFlow): {path}", style="dim")
        with listening(LiveRun(console)) as view:
            outcomes = run_pipeline(spec, until, view=view)
        failed = [o for o in outcomes if o.state != "success"]
        console.print(f"{len(outcomes)} DAG run(s): " + ", ".join(f"{o.dag_id} {o.state}" for o in outcomes)
                      + (f"; see the log for the failure: {path}" if failed else ""),
                      style="bold red" if failed else "bold green")
    return outcomes


def decisions(outcome: DagOutcome) -> list[str]:
    """What a DAG run decided, in words: the data gate, promote or reject, the predictions."""
    lines = []
    measure = outcome.outputs.get("measure")
    if isinstance(measure, dict):
        gate = "passed" if measure.get("passed") else "blocked"
        lines.append(f"data gate {gate}: {measure.get('rows')} records, {measure.get('new_rows')} new; "
                     f"{measure.get('reason')}")
    decide = outcome.outputs.get("decide")
    scores = outcome.outputs.get("evaluate")
    if isinstance(scores, dict) and scores.get("challenger") is not None:
        champion = scores.get("champion")
        verdict = "promoted" if "promote" in outcome.outputs else "rejected" if "reject" in outcome.outputs else "?"
        reason = decide.get("reason") if isinstance(decide, dict) else None
        lines.append(f"{scores.get('metric')}: challenger v{scores.get('challenger_version')} "
                     f"{scores['challenger']:.4f} vs champion "
                     + (f"v{scores.get('champion_version')} {champion:.4f}" if champion is not None else "(none)")
                     + f" -> {verdict}" + (f" ({reason})" if reason else ""))
    report = outcome.outputs.get("report")
    if isinstance(report, dict) and report.get("report_uri"):
        lines.append(f"report: {report['report_uri']}")
    predictions = outcome.outputs.get("publish_predictions")
    if isinstance(predictions, dict):
        lines.append(f"predictions: {predictions.get('rows')} rows by model v{predictions.get('model_version')} "
                     f"at {predictions.get('uri')}")
    return lines


def _say(view: LiveRun | None, echo: Callable[[str], None] | None, message: str, style: str = "") -> None:
    if view is not None:
        view.note(message, style)
    elif echo is not None:
        echo(message)


def _triggered(previous: DagOutcome, stage: str, dag) -> bool:
    emitter = EMITTER.get(previous.dag_id.rsplit("__", 1)[1])
    emitted = previous.state == "success" and any(t == emitter and s == "success" for t, _, s in previous.tasks)
    on_clock = type(dag.timetable).__name__ in ("CronTriggerTimetable", "CronDataIntervalTimetable")
    return emitted or (on_clock and previous.state == "success")


def _why_not(previous: DagOutcome) -> str:
    if previous.state != "success":
        return f"{previous.dag_id} {previous.state}"
    states = {t: s for t, _, s in previous.tasks}
    if states.get("publish") == "skipped":
        return "the data gate blocked publication"
    if states.get("promote") == "skipped":
        return "the challenger was rejected; the champion stays"
    return "no Asset update"


def _run(dag, echo: Callable[[str], None] | None, view: LiveRun | None) -> DagOutcome:
    if view is not None:
        view.dag_started(dag)
    else:
        _say(None, echo, f"-> {dag.dag_id}")
    started = time.perf_counter()
    try:
        run = dag.test()
    except BaseException:
        if view is not None:
            view.dag_ended("error", [], time.perf_counter() - started)
        raise
    outcome = DagOutcome(dag.dag_id, str(run.state), time.perf_counter() - started)
    instances = []
    for ti in sorted(run.get_task_instances(), key=lambda ti: (ti.start_date is None, ti.start_date, ti.map_index)):
        label = ti.rendered_map_index or (str(ti.map_index) if ti.map_index >= 0 else "")
        outcome.tasks.append((ti.task_id, label, str(ti.state)))
        instances.append((ti.task_id, ti.map_index, label, str(ti.state)))
        if ti.map_index < 0 and str(ti.state) == "success" and ti.task_id in _INTERESTING:
            outcome.outputs[ti.task_id] = ti.xcom_pull(task_ids=ti.task_id)
        if view is None:
            _say(None, echo, f"   {ti.task_id + (f' [{label}]' if label else ''):<44} {ti.state}")
    if view is not None:
        view.dag_ended(outcome.state, instances, outcome.seconds)
    else:
        _say(None, echo, f"   {dag.dag_id}: {run.state} in {outcome.seconds:.1f}s")
    return outcome


_INTERESTING = {"measure", "publish", "evaluate", "decide", "promote", "reject", "report", "publish_predictions"}
