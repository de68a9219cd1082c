"""IR → dag-factory 1.x YAML: `pipespec export --to dag-factory SPEC`.

Writes the same DAGs that `pipespec.airflow.dag` builds, in the YAML dialect that
dag-factory 1.1.0 loads on Airflow 3 (`dagfactory.load_yaml_dags`). Like the
rest of `schemas`, this module never imports Airflow or dag-factory: it only
writes YAML. The exported file still runs pipespec's code (`run_step`,
`run_branch`, `LazyOperator`, `PipespecNotifier`, `UpstreamOutput`), so the
project must be importable wherever dag-factory loads it.

dag-factory 1.x has no setup/teardown tasks: a teardown is exported as a task after its setup with
the rule Airflow gives teardowns (`all_done_setup_success`), without the clearing rules of
setup/teardown. It also drops `max_consecutive_failed_dag_runs` (not among the DAG arguments it
passes on), so a spec's `dag.max_consecutive_failed_dag_runs` does not survive the export.

How each piece of the IR is written (checked against dag-factory 1.1.0's
source: `_yaml.load_yaml_file`, `utils.cast_with_type`, `DagBuilder`):

- python tasks use the TaskFlow form (`decorator: pipespec.airflow.step_operators.step_task`,
  `python_callable: pipespec.airflow.adapter.run_step`), the only form in which
  dag-factory maps a task over another task's output (`expand: {item: +task}`)
  with fixed arguments in `partial`. Branch tasks use the standard provider's
  `branch_step_task` decorator with `pipespec.airflow.adapter.run_branch`. Both build the same
  operator classes as the renderer (`@task`, `@task.branch`).
- dag-factory resolves `+task` (an XComArg) only when it is a whole top-level
  argument, an `expand` value or a `partial` value; a `+task` inside a dict
  stays a string. `inputs` is a dict of upstream outputs, so each entry is an
  `UpstreamOutput` object (dag-factory's `__type__` syntax), which Airflow
  resolves while rendering the templated `op_kwargs` exactly as it resolves
  the XComArg the renderer passes. An object is not an XComArg, so it adds no
  edge by itself: the exported `dependencies` list the input tasks explicitly.
- `schedule`: a cron as `airflow.sdk.CronDataIntervalTimetable`; an Asset as `{__type__: airflow.sdk.Asset}`;
  all/any with dag-factory's `__and__`/`__or__` when that fold gives the very
  expression the renderer builds, else `airflow.sdk.AssetAll`/`AssetAny` with
  `__args__` (`__and__` folds pairwise: `AssetAll(a, b) & c` flattens to
  `AssetAll(a, b, c)` and a one-item group becomes the item itself). Assets or
  cron is `airflow.sdk.AssetOrTimeSchedule` over a `CronTriggerTimetable`,
  always with `__type__` objects, because dag-factory builds `__type__` objects
  before it folds `__and__`/`__or__`.
- `LazyOperator(operator=...)`: dag-factory reserves the task key `operator`
  for the class path, so the value goes in the task's `default_args`, which
  Airflow applies to every constructor argument.
- dag-factory runs `os.path.expandvars` over the whole file before parsing it;
  every `$` is therefore written as the YAML escape `\\x24` inside a
  double-quoted scalar, which no environment variable can replace.

What cannot be equal (asserted in tests/compiler/test_export_dagfactory.py): dag-factory
adds the `dagfactory` tag and appends a "YML DAG" section to `doc_md`; failure
and retry callbacks are one `PipespecNotifier` instead of a list of one (dag-factory
rejects a list); `inputs` entries are `UpstreamOutput` objects rather than
XComArgs (same values at run time; in a mapped task's serialized partial
arguments they show as the xcom_pull template instead of an `xcomref`).

Deployment note: dag-factory's listener plugin reports every run of a DAG
tagged `dagfactory` to Scarf unless `AIRFLOW__DAG_FACTORY__ENABLE_TELEMETRY=False`,
`DO_NOT_TRACK=1` or `SCARF_NO_ANALYTICS=true` is set.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

from pipespec.compiler import ir
from pipespec.schemas.models.common import parse_duration

# pipespec.airflow.dag.START_DATE, written as dag-factory parses dates (pendulum, then tz=UTC).
START_DATE = "2024-01-01T00:00:00+00:00"
MAP_INDEX_TEMPLATE = "{{ map_label }}"

RUN_STEP = "pipespec.airflow.adapter.run_step"
RUN_BRANCH = "pipespec.airflow.adapter.run_branch"
# The renderer's own decorators: spec strings stay data (never Jinja-rendered), as in our DAGs.
TASK_DECORATOR = "pipespec.airflow.step_operators.step_task"
BRANCH_DECORATOR = "pipespec.airflow.step_operators.branch_step_task"
APPROVAL_OPERATOR = "pipespec.airflow.approval.ApprovalOperator"  # pipespec's subclass: the subject is never rendered
LAZY_OPERATOR = "pipespec.airflow.lazy.LazyOperator"
NOTIFIER = "pipespec.airflow.notifier.PipespecNotifier"
UPSTREAM_OUTPUT = f"{__name__}.UpstreamOutput"
CALLBACKS = (("failure", "on_failure_callback"), ("retry", "on_retry_callback"))

# Keys dag-factory's loader interprets wherever they occur in the file.
RESERVED_KEYS = frozenset({"__type__", "__args__", "__and__", "__or__", "__join__"})
# A string argument dag-factory would replace by a task's XComArg (DagBuilder._replace_kwargs_values_as_xcom).
_XCOM_REFERENCE = re.compile(r"^\+(?P<task>\w*)(\[['\"](?P<xcom_key>.*)['\"]\])?$")


class ExportError(ValueError):
    """The IR holds something dag-factory 1.1.0 would read differently."""


class UpstreamOutput:
    """The output of an upstream task, placed inside `inputs` where dag-factory cannot put an XComArg.

    Airflow renders a templated field by calling `resolve(context)` on any value
    that has one; this resolves the upstream task's own XComArg, so the step gets
    exactly what the renderer's XComArg gives (a lazy sequence for a mapped task).
    `str()` is the XComArg's, so the serialized DAG and the UI show the same text.
    """

    def __init__(self, task_id: str, dag_id: str) -> None:
        self.task_id = task_id
        self.dag_id = dag_id

    def resolve(self, context: Any) -> Any:
        return context["task"].dag.get_task(self.task_id).output.resolve(context)

    def __str__(self) -> str:
        return (f"{{{{ task_instance.xcom_pull(task_ids='{self.task_id}', dag_id='{self.dag_id}', "
                f"key='return_value') }}}}")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, UpstreamOutput) and (other.task_id, other.dag_id) == (self.task_id, self.dag_id)

    def __hash__(self) -> int:
        return hash((UpstreamOutput, self.task_id, self.dag_id))

    def __repr__(self) -> str:
        return f"UpstreamOutput(task_id={self.task_id!r}, dag_id={self.dag_id!r})"


# --- public ---------------------------------------------------------------------------------------

def export_dagfactory(pipeline: ir.Pipeline) -> str:
    """Every DAG of `pipeline` as one dag-factory 1.x YAML document."""
    config = {dag.dag_id: _dag(dag) for dag in pipeline.dags}
    # A comment is outside every scalar: it may hold no `$` (see _dump) and no line break.
    source = " ".join(pipeline.spec_file.replace("$", "").split())
    header = (f"# dag-factory 1.x config generated by `pipespec export --to dag-factory` from {source} "
              f"(spec hash {pipeline.spec_hash}); edit the spec, not this file.\n"
              "# Load it with dagfactory.load_yaml_dags(globals_dict=globals(), config_filepath=<this file>).\n")
    return header + _dump(config)


# --- DAG ------------------------------------------------------------------------------------------

def _dag(dag: ir.Dag) -> dict[str, Any]:
    default_args: dict[str, Any] = {"owner": dag.owner, **_retry_args(dag.retry), **_callbacks(dag)}
    return {
        "description": dag.description,
        "doc_md": dag.doc_md,
        "schedule": _schedule(dag.schedule),
        "start_date": START_DATE,
        "catchup": False,
        "max_active_runs": dag.max_active_runs,
        "tags": list(dag.tags),
        "default_args": default_args,
        "tasks": {task.task_id: _task(task, dag.dag_id) for task in dag.tasks},
    }


def _timedelta(seconds: int) -> dict[str, Any]:
    return {"__type__": "datetime.timedelta", "seconds": seconds}


def _retry_args(retry: ir.Retry | None) -> dict[str, Any]:
    if retry is None:
        return {}
    args: dict[str, Any] = {"retries": retry.count, "retry_delay": _timedelta(retry.delay_s),
                            "retry_exponential_backoff": retry.exponential}
    if retry.max_delay_s:
        args["max_retry_delay"] = _timedelta(retry.max_delay_s)
    return args


def _callbacks(dag: ir.Dag) -> dict[str, Any]:
    """dag-factory's provider-callback form: {callback: <notifier class>, **its kwargs} builds one notifier."""
    pipeline = dag.dag_id.rsplit("__", 1)[0]
    out: dict[str, Any] = {}
    for event, key in CALLBACKS:
        channels = [a.target() for a in dag.alerts if event in a.events]
        if channels:
            out[key] = {"callback": NOTIFIER, "pipeline": pipeline, "event": event, "channels": _data(channels)}
    return out


# --- schedule -------------------------------------------------------------------------------------

def _schedule(schedule: ir.Schedule) -> Any:
    if schedule.kind == "none":
        return None
    if schedule.kind == "cron":  # as pipespec/airflow/dag.py: runs cover the period since the previous tick
        return {"__type__": "airflow.sdk.CronDataIntervalTimetable", "__args__": [_plain(schedule.cron, "cron")],
                "timezone": "UTC"}
    if schedule.kind == "every":  # as pipespec/airflow/dag.py: runs cover the interval since the previous one
        return {"__type__": "airflow.sdk.DeltaDataIntervalTimetable",
                "__args__": [_timedelta(schedule.every_s or 0)]}
    if schedule.kind == "assets":
        return _assets(schedule.assets, typed=not _folds_exactly(schedule.assets))
    return {"__type__": "airflow.sdk.AssetOrTimeSchedule",
            # The cron is positional: airflow.sdk names it `expression`, airflow.timetables names it `cron`.
            "timetable": {"__type__": "airflow.sdk.CronTriggerTimetable", "__args__": [_plain(schedule.cron, "cron")],
                          "timezone": "UTC"},
            "assets": _assets(schedule.assets, typed=True)}


def _asset(uri: str) -> dict[str, Any]:
    return {"__type__": "airflow.sdk.Asset", "uri": _plain(uri, "asset URI")}


def _assets(expr: Any, typed: bool) -> Any:
    if isinstance(expr, str):
        return _asset(expr)
    (op, items), = expr.items()
    children = [_assets(item, typed) for item in items]
    if typed:
        return {"__type__": "airflow.sdk.AssetAll" if op == "all" else "airflow.sdk.AssetAny", "__args__": children}
    return {"__and__" if op == "all" else "__or__": children}


def _folds_exactly(expr: Any) -> bool:
    """Whether dag-factory's pairwise `&`/`|` fold rebuilds `expr` as the renderer does (AssetAll(*items))."""
    if isinstance(expr, str):
        return True
    (op, items), = expr.items()
    first = items[0] if items else None
    return (len(items) >= 2 and not (isinstance(first, dict) and op in first)
            and all(_folds_exactly(item) for item in items))


# --- tasks ----------------------------------------------------------------------------------------

def _task(task: ir.Task, dag_id: str) -> dict[str, Any]:
    return _KINDS[task.kind](task, dag_id)


def _common(task: ir.Task) -> dict[str, Any]:
    out: dict[str, Any] = {}
    dependencies = _dependencies(task)
    if dependencies:
        out["dependencies"] = dependencies
    # Airflow gives a teardown this rule (as_teardown); dag-factory cannot mark the task itself.
    out["trigger_rule"] = "all_done_setup_success" if task.teardown_of else task.trigger_rule
    out["doc_md"] = task.doc
    if task.outlets:
        out["outlets"] = [_plain(uri, "outlet URI") for uri in task.outlets]
    out.update(_retry_args(task.retry))
    if task.timeout_s:
        out["execution_timeout"] = _timedelta(task.timeout_s)
    return out


def _dependencies(task: ir.Task) -> list[str]:
    """The renderer's edges: `upstream`, plus the implicit edge of every XComArg it passes."""
    found = list(task.upstream)
    if task.kind in ("python", "branch"):
        found += task.inputs.values()
        if task.mapping is not None and task.mapping.over:
            found.append(task.mapping.over)
    return list(dict.fromkeys(found))


def _inputs(task: ir.Task, dag_id: str) -> dict[str, Any]:
    return {arg: {"__type__": UPSTREAM_OUTPUT, "task_id": source, "dag_id": dag_id}
            for arg, source in task.inputs.items()}


def _python(task: ir.Task, dag_id: str) -> dict[str, Any]:
    out: dict[str, Any] = {"decorator": TASK_DECORATOR, "python_callable": RUN_STEP, **_common(task)}
    mapping = task.mapping
    if mapping is None:
        out.update(step=_argument(task.step), step_params=_data(task.params), inputs=_inputs(task, dag_id))
        return out
    out["map_index_template"] = MAP_INDEX_TEMPLATE
    out["partial"] = {"step": _argument(task.step), "step_params": _data(task.params), "inputs": _inputs(task, dag_id),
                      "map_arg": _argument(mapping.arg), "map_label": _argument(mapping.label),
                      "spec_items": not mapping.over or mapping.from_spec}
    out["expand"] = {"item": f"+{mapping.over}" if mapping.over else _data(list(mapping.items))}
    return out


def _branch(task: ir.Task, dag_id: str) -> dict[str, Any]:
    return {"decorator": BRANCH_DECORATOR, "python_callable": RUN_BRANCH, **_common(task),
            "step": _argument(task.step), "step_params": _data(task.params), "branches": _data(task.branches),
            "inputs": _inputs(task, dag_id)}


def _approval(task: ir.Task, dag_id: str) -> dict[str, Any]:
    params = task.params
    return {"operator": APPROVAL_OPERATOR, **_common(task),
            "subject": _data(params.get("subject") or f"Roll out the new {params['pipeline']} model?"),
            "body": "Approve to continue the rollout; reject to keep the champion.",
            "defaults": "Reject",
            "response_timeout": _timedelta(parse_duration(params["timeout"]))}


def _lazy(task: ir.Task, dag_id: str) -> dict[str, Any]:
    if task.mapping is not None or task.inputs:
        raise ExportError(f"{dag_id}.{task.task_id}: a mapped pod (inference in pods) has no dag-factory form; "
                          "load the spec with pipespec's own DAG file instead")
    return {"operator": LAZY_OPERATOR, **_common(task),
            # `operator` is dag-factory's own key; Airflow fills constructor arguments from default_args.
            "default_args": {"operator": task.kind},
            "builder": ir.builder_for(task.kind, task.step), "step_params": _data(task.params)}


def _ray(task: ir.Task, dag_id: str) -> dict[str, Any]:
    return {"operator": "pipespec.airflow.ray_job.RayJobOperator", **_common(task), "step_params": _data(task.params)}


def _s3_sensor(task: ir.Task, dag_id: str) -> dict[str, Any]:
    params = task.params
    bucket, key = ir.bucket_and_key(params["uri"])
    return {"operator": "pipespec.airflow.sensors.DataArrivalSensor", **_common(task),
            "bucket_name": _plain(bucket, "S3 bucket"), "bucket_key": _plain(key, "S3 key"), "wildcard_match": "*" in key,
            "aws_conn_id": _plain(params["conn_id"], "connection id"), "deferrable": True,
            "timeout": parse_duration(params["timeout"]), "poke_interval": parse_duration(params["poke_interval"])}


def _wait(task: ir.Task, dag_id: str) -> dict[str, Any]:
    return {"operator": "pipespec.airflow.waits.StageWindow", **_common(task),
            "seconds": parse_duration(task.params["duration"])}


_KINDS = {"python": _python, "branch": _branch, "approval": _approval, "wait": _wait,
          "kubernetes_pod": _lazy, "anyscale_job": _lazy, "ray_job": _ray, "s3_sensor": _s3_sensor}


# --- values ---------------------------------------------------------------------------------------

def _data(value: Any, where: str = "value") -> Any:
    """User data (step params, items, channels) as plain YAML that dag-factory leaves alone."""
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise ExportError(f"{where}: key {key!r} is not a string")
            if key in RESERVED_KEYS:
                raise ExportError(f"{where}: key `{key}` is dag-factory syntax and would be evaluated on load")
            out[key] = _data(item, f"{where}.{key}")
        return out
    if isinstance(value, (list, tuple)):
        return [_data(item, f"{where}[{i}]") for i, item in enumerate(value)]
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    raise ExportError(f"{where}: {type(value).__name__} is not YAML data")


def _argument(value: str) -> str:
    """A string passed as a whole argument, where dag-factory would read `+name` as a task's XComArg."""
    if _XCOM_REFERENCE.match(value):
        raise ExportError(f"argument {value!r} would be read by dag-factory as the output of a task")
    return value


def _plain(value: str | None, what: str) -> str:
    """A value given to an Airflow constructor at load time."""
    if not value:
        raise ExportError(f"empty {what}")
    return value


# --- YAML -----------------------------------------------------------------------------------------

class _Dumper(yaml.SafeDumper):
    def ignore_aliases(self, data: Any) -> bool:
        return True


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    if "$" in value:
        # Double-quoted, so that `_dump` can turn each `$` into the escape `\x24`.
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style='"')
    if "\n" in value:
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|")
    return dumper.represent_scalar("tag:yaml.org,2002:str", value)


_Dumper.add_representer(str, _represent_str)


def _dump(config: dict[str, Any]) -> str:
    text = yaml.dump(config, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=120)
    # Every `$` is inside a double-quoted scalar (see _represent_str), where `\x24` means `$`;
    # dag-factory's os.path.expandvars pass then finds nothing to expand.
    return text.replace("$", "\\x24")
