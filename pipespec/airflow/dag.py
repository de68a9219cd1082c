"""IR → Airflow DAG objects. The only module that knows Airflow's DAG API.

One builder per task *kind* (python, branch, approval, lazily built provider
operators); no builder knows about any particular step.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from typing import Any

from airflow.sdk import (DAG, Asset, AssetAll, AssetAny, AssetOrTimeSchedule, CronDataIntervalTimetable,
                         CronTriggerTimetable, DeltaDataIntervalTimetable, XComArg)

from pipespec.compiler import ir

from pipespec.airflow.adapter import run_branch, run_step
from pipespec.airflow.lazy import LazyOperator
from pipespec.airflow.notifier import PipespecNotifier
from pipespec.airflow.step_operators import branch_step_task, step_task

START_DATE = datetime(2024, 1, 1, tzinfo=timezone.utc)
# Made once: a new TaskFlow decorator per task would re-evaluate the callable's type hints every time.
_STEP = step_task(run_step)
_BRANCH = branch_step_task(run_branch)


def render_pipeline(pipeline: ir.Pipeline) -> list[DAG]:
    """The Airflow DAGs of a compiled pipeline."""
    return [render_dag(dag) for dag in pipeline.dags]


def render_dag(spec: ir.Dag, running_task: str | None = None) -> DAG:
    """One Airflow DAG from its IR. `running_task`: in a task process, the id of the task it runs.

    There the other tasks' outlets are left out: the process reports only its own task's Asset
    events, and building an `s3://` Asset costs each task process ~0.2 s the first time (Airflow
    imports every provider's URI normaliser, the amazon one with boto3)."""
    tasks = [task if running_task in (None, task.task_id) else replace(task, outlets=()) for task in spec.tasks]
    with DAG(
        dag_id=spec.dag_id,
        schedule=_schedule(spec.schedule),
        start_date=START_DATE,
        catchup=False,
        max_active_runs=spec.max_active_runs,
        max_consecutive_failed_dag_runs=spec.max_consecutive_failed_dag_runs or 0,  # 0: Airflow's "never pause"
        description=spec.description,
        doc_md=_doc_text(spec.doc_md),
        tags=set(spec.tags),
        default_args={"owner": spec.owner, **_retry_args(spec.retry), **_callbacks(spec)},
        # The loader registers the DAGs it checked; a `with` block would register a rejected one as well.
        auto_register=False,
    ) as dag:
        built: dict[str, Any] = {}
        for task_ir in tasks:  # compile emits tasks after their upstreams
            if task_ir.task_id in built:
                # TaskFlow would rename the second one (`shadow__1`) and the edges would point at the wrong task.
                raise ValueError(f"task id `{task_ir.task_id}` appears twice in {spec.dag_id}")
            built[task_ir.task_id] = _BUILDERS[task_ir.kind](task_ir, built)
        for task_ir in tasks:
            # Data inputs and the mapped-over task already made their edges (XComArgs); set the rest once.
            explicit = [_operator(built[u]) for u in task_ir.upstream if u not in _implied_upstream(task_ir)]
            if explicit:
                _operator(built[task_ir.task_id]).set_upstream(explicit)
        for task_ir in spec.tasks:  # Airflow's setup/teardown: the teardown runs whatever happened after its setup
            if task_ir.teardown_of:
                _operator(built[task_ir.task_id]).as_teardown(setups=_operator(built[task_ir.teardown_of]))
            elif task_ir.setup:
                _operator(built[task_ir.task_id]).as_setup()
    return dag


def _doc_text(doc: str) -> str:
    """Airflow opens a DAG `doc_md` that ends in `.md` as a file path; a doc here is always text."""
    return doc + "\n" if doc.endswith(".md") else doc


def _implied_upstream(task_ir: ir.Task) -> set[str]:
    if task_ir.kind not in ("python", "branch"):
        return set()
    implied = set(task_ir.inputs.values())
    if task_ir.mapping is not None and task_ir.mapping.over:
        implied.add(task_ir.mapping.over)
    return implied


def _schedule(schedule: ir.Schedule) -> Any:
    if schedule.kind == "none":
        return None
    if schedule.kind == "every":
        # Like the cron form: a run covers the interval since the previous one.
        return DeltaDataIntervalTimetable(timedelta(seconds=schedule.every_s or 0))
    if schedule.kind == "cron":
        # A run covers the period since the previous tick, so a query templated on
        # `{{ data_interval_start }}`..`{{ data_interval_end }}` reads that period. A plain
        # cron string would give Airflow 3's CronTriggerTimetable, whose interval is empty.
        return CronDataIntervalTimetable(schedule.cron, timezone="UTC")
    assets = _assets(schedule.assets)
    if schedule.kind == "assets":
        return assets
    return AssetOrTimeSchedule(timetable=CronTriggerTimetable(schedule.cron, timezone="UTC"), assets=assets)


def _assets(expr: Any) -> Any:
    if isinstance(expr, str):
        return Asset(expr)
    if "all" in expr:
        return AssetAll(*(_assets(e) for e in expr["all"]))
    return AssetAny(*(_assets(e) for e in expr["any"]))


def _retry_args(retry: ir.Retry | None) -> dict[str, Any]:
    if retry is None:
        return {}
    args: dict[str, Any] = {"retries": retry.count, "retry_delay": timedelta(seconds=retry.delay_s),
                            "retry_exponential_backoff": retry.exponential}
    if retry.max_delay_s:
        args["max_retry_delay"] = timedelta(seconds=retry.max_delay_s)
    return args


def _callbacks(spec: ir.Dag) -> dict[str, Any]:
    pipeline = spec.dag_id.rsplit("__", 1)[0]
    out: dict[str, Any] = {}
    for event, key in (("failure", "on_failure_callback"), ("retry", "on_retry_callback")):
        channels = [a.target() for a in spec.alerts if event in a.events]
        if channels:
            out[key] = [PipespecNotifier(pipeline=pipeline, event=event, channels=channels)]
    return out


def _common(task_ir: ir.Task) -> dict[str, Any]:
    timeout = {"execution_timeout": timedelta(seconds=task_ir.timeout_s)} if task_ir.timeout_s else {}
    return {"task_id": task_ir.task_id, "trigger_rule": task_ir.trigger_rule, "doc_md": task_ir.doc,
            "outlets": [Asset(uri) for uri in task_ir.outlets], **_retry_args(task_ir.retry), **timeout}


def _inputs(task_ir: ir.Task, built: dict[str, Any]) -> dict[str, Any]:
    return {arg: _output(built[source]) for arg, source in task_ir.inputs.items()}


def _python(task_ir: ir.Task, built: dict[str, Any]) -> Any:
    inputs = _inputs(task_ir, built)
    mapping = task_ir.mapping
    if mapping is None:
        return _STEP.override(**_common(task_ir))(step=task_ir.step, step_params=task_ir.params, inputs=inputs)
    decorated = _STEP.override(map_index_template="{{ map_label }}", **_common(task_ir))
    partial = decorated.partial(step=task_ir.step, step_params=task_ir.params, inputs=inputs,
                                map_arg=mapping.arg, map_label=mapping.label,
                                spec_items=not mapping.over or mapping.from_spec)
    items = _output(built[mapping.over]) if mapping.over else list(mapping.items)
    return partial.expand(item=items)


def _branch(task_ir: ir.Task, built: dict[str, Any]) -> Any:
    return _BRANCH.override(**_common(task_ir))(
        step=task_ir.step, step_params=task_ir.params, branches=task_ir.branches, inputs=_inputs(task_ir, built))


def _approval(task_ir: ir.Task, built: dict[str, Any]) -> Any:
    # Imported only when a spec asks for approval: the HITL module costs ~1 s to import.
    from pipespec.airflow.approval import ApprovalOperator

    params = task_ir.params
    return ApprovalOperator(
        subject=params.get("subject") or f"Roll out the new {params['pipeline']} model?",
        body="Approve to continue the rollout; reject to keep the champion.",
        defaults="Reject", response_timeout=timedelta(seconds=_seconds(params["timeout"])),
        # A rejection (or the timeout's default) fails the task, so `rollback` (one_failed) withdraws the
        # challenger from shadow/canary; a plain skip would leave it deployed.
        fail_on_reject=True,
        **_common(task_ir))


def _lazy(task_ir: ir.Task, built: dict[str, Any]) -> Any:
    args = {"operator": task_ir.kind, "builder": ir.builder_for(task_ir.kind, task_ir.step), "step": task_ir.step,
            "step_params": task_ir.params, "inputs": _inputs(task_ir, built)}
    mapping = task_ir.mapping
    if mapping is None:
        return LazyOperator(**args, **_common(task_ir))
    return LazyOperator.partial(**args, map_arg=mapping.arg, map_label=mapping.label,
                                map_index_template="{{ map_label }}", **_common(task_ir)).expand(
        item=_output(built[mapping.over]) if mapping.over else list(mapping.items))


def _ray(task_ir: ir.Task, built: dict[str, Any]) -> Any:
    from pipespec.airflow.ray_job import RayJobOperator

    return RayJobOperator(step_params=task_ir.params, **_common(task_ir))


def _s3_sensor(task_ir: ir.Task, built: dict[str, Any]) -> Any:
    """Seed 001's wait for a new archive: deferred (no worker slot), failing at the spec's timeout."""
    from pipespec.airflow.sensors import DataArrivalSensor

    params = task_ir.params
    bucket, key = ir.bucket_and_key(params["uri"])
    return DataArrivalSensor(bucket_name=bucket, bucket_key=key, wildcard_match="*" in key, aws_conn_id=params["conn_id"],
                       deferrable=True, timeout=_seconds(params["timeout"]), poke_interval=_seconds(params["poke_interval"]),
                       soft_fail=False, **_common(task_ir))


def _wait(task_ir: ir.Task, built: dict[str, Any]) -> Any:
    """A rollout stage's window, waited out in the triggerer (no worker slot held)."""
    from pipespec.airflow.waits import StageWindow

    return StageWindow(seconds=_seconds(task_ir.params["duration"]), **_common(task_ir))


def _seconds(duration: str) -> int:
    from pipespec.schemas.models.common import parse_duration

    return parse_duration(duration)


def _output(built: Any) -> Any:
    """TaskFlow calls return an XComArg already; classic operators expose theirs as `.output`."""
    return built if isinstance(built, XComArg) else built.output


def _operator(built: Any) -> Any:
    return built.operator if isinstance(built, XComArg) else built


_BUILDERS: dict[str, Callable[[ir.Task, dict[str, Any]], Any]] = {
    "python": _python, "branch": _branch, "approval": _approval,
    "kubernetes_pod": _lazy, "anyscale_job": _lazy, "ray_job": _ray, "s3_sensor": _s3_sensor,
    "wait": _wait,
}
