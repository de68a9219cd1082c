"""The one thin adapter between Airflow and the task library.

Every compiled task calls `run_step` (or `run_branch`): it turns Airflow's
context into a plain `RunContext`, looks the step up by name in the registry
and calls it with the spec's params and the upstream outputs. Steps never
see Airflow, and the renderer never special-cases a step.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypedDict

from pipespec.compiler.ir import ALWAYS
from pipespec.tasklib.context import RunContext
from pipespec.tasklib.errors import PermanentFailure
from pipespec.tasklib.guard import enforce_params
from pipespec.tasklib.steps import resolve


def _run_context() -> tuple[RunContext, Any]:
    from airflow.sdk import get_current_context

    context = get_current_context()
    return run_context(context), context


def run_context(context: Any) -> RunContext:
    """Airflow's task context as the plain values a step may see."""
    ti = context["ti"]
    interval_start, interval_end = context.get("data_interval_start"), context.get("data_interval_end")
    if interval_end is None:
        interval_start, interval_end = _manual_interval(context)
    return RunContext(
        dag_id=ti.dag_id, task_id=ti.task_id, run_id=context["run_id"],
        map_index=getattr(ti, "map_index", -1), try_number=getattr(ti, "try_number", 1),
        logical_date=_iso(context.get("logical_date")),
        data_interval_start=_iso(interval_start), data_interval_end=_iso(interval_end),
        owner=getattr(context.get("task"), "owner", None),
    )


def _manual_interval(context: Any) -> tuple[Any, Any]:
    """A run triggered without a logical date (REST API, UI) has no data interval in Airflow 3.

    Steps then see the data since the last successful run (or all of it) up to the trigger time,
    so a query templated on the interval means the same thing for manual and scheduled runs.
    """
    from datetime import datetime, timezone

    dag_run = context.get("dag_run")
    end = getattr(dag_run, "run_after", None) or datetime.now(timezone.utc)
    start = context.get("prev_data_interval_end_success") or datetime(1970, 1, 1, tzinfo=timezone.utc)
    return start, end


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def _materialized(inputs: dict | None) -> dict:
    """Outputs of mapped upstream tasks arrive as Airflow's lazy sequences; read them by length.

    Iterating one instead probes past the end, which Airflow logs as an alarming "XCom not found".
    """
    out = {}
    for name, value in (inputs or {}).items():
        if isinstance(value, Sequence) and not isinstance(value, (str, bytes, list, tuple)):
            value = [value[i] for i in range(len(value))]
        out[name] = value
    return out


def step_arguments(step_params: dict, inputs: dict | None = None, item: Any = None,
                   map_arg: str | None = None) -> dict:
    """What a step is called with: the spec's params, the upstream outputs and the mapped item."""
    arguments = {**step_params, **_materialized(inputs)}
    if map_arg is not None:
        arguments[map_arg] = item
    return arguments


def run_step(step: str, step_params: dict, inputs: dict | None = None, item: Any = None,
             map_arg: str | None = None, map_label: str | None = None, spec_items: bool = False) -> Any:
    """Run a registered step. No `**kwargs` here on purpose: Airflow would fill them with its context.

    `item` is the mapped value (one source, one shard); `map_arg` names the step argument it becomes;
    `spec_items` says the items come from the spec (sources), not from an upstream task's output.
    """
    ctx, context = _run_context()
    arguments = step_arguments(step_params, inputs, item, map_arg)
    spec_given = step_params
    if map_arg is not None:
        if isinstance(item, dict) and map_label in item:
            # Names the mapped instance in the UI (map_index_template="{{ map_label }}").
            context["map_label"] = str(item[map_label])
        if spec_items:
            spec_given = {**step_params, map_arg: item}
    return _call(step, ctx, arguments, spec_given)


def _call(step: str, ctx: RunContext, arguments: dict, spec_given: dict) -> Any:
    try:
        # The platform policy holds at run time too: a stale DAG cache or `pipespec run` skips `check`.
        enforce_params(ctx.task_id, ctx.owner, spec_given)
        return resolve(step)(ctx, **arguments)
    except PermanentFailure as exc:
        from airflow.sdk.exceptions import AirflowFailException

        raise AirflowFailException(str(exc)) from exc


class BranchOutcome(TypedDict):
    """A deciding step's outcome: the tasks to follow, and its result (the task's XCom)."""

    follow: list[str]
    result: Any


def run_branch(step: str, step_params: dict, branches: dict[str, str], inputs: dict | None = None) -> BranchOutcome:
    """Run a deciding step; follow the task its decision names (none: skip everything after) and
    the one named under ALWAYS. The step's result stays the task's XCom (BranchStepOperator)."""
    ctx, _ = _run_context()
    decision = _call(step, ctx, {**step_params, **_materialized(inputs)}, step_params)
    name = decision["decision"] if isinstance(decision, dict) else decision
    follow = [target for target in (branches.get(name), branches.get(ALWAYS)) if target]
    return {"follow": follow, "result": decision}
