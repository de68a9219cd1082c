"""`pipespec run SPEC`: run a pipeline's DAGs locally, in order, the way the
scheduler would chain them through Assets, with dag.test() against the
project-local SQLite DB. The train DAG runs only when the data DAG published
its Asset; inference only after a promotion, unless it runs on a clock."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

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


def run_pipeline(spec: Path, until: str = "inference", echo: Callable[[str], None] = print) -> list[DagOutcome]:
    """Check a spec, then run its DAGs in order up to `until`, each with `dag.test()`."""
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
            echo(f"-- {dag.dag_id}: not triggered ({_why_not(previous)})")
            break
        outcomes.append(_run(dag, echo))
        if outcomes[-1].state != "success":
            break
    return outcomes


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


def _run(dag, echo: Callable[[str], None]) -> DagOutcome:
    echo(f"-> {dag.dag_id}")
    started = time.perf_counter()
    run = dag.test()
    outcome = DagOutcome(dag.dag_id, str(run.state), time.perf_counter() - started)
    for ti in sorted(run.get_task_instances(), key=lambda ti: (ti.start_date is None, ti.start_date, ti.map_index)):
        label = ti.rendered_map_index or (str(ti.map_index) if ti.map_index >= 0 else "")
        outcome.tasks.append((ti.task_id, label, str(ti.state)))
        if ti.map_index < 0 and str(ti.state) == "success" and ti.task_id in _INTERESTING:
            outcome.outputs[ti.task_id] = ti.xcom_pull(task_ids=ti.task_id)
        echo(f"   {ti.task_id + (f' [{label}]' if label else ''):<44} {ti.state}")
    echo(f"   {dag.dag_id}: {run.state} in {outcome.seconds:.1f}s")
    return outcome


_INTERESTING = {"measure", "publish", "evaluate", "decide", "promote", "reject", "report", "publish_predictions"}
