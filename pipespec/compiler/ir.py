"""The intermediate representation: a frozen, JSON-serialisable graph of steps.

Produced from a spec by `pipespec.compiler.compile`, consumed by the renderer (the only
code that knows Airflow), by `pipespec graph`/`diff`/`export`, and cached on
disk by content hash so DAG parsing stays cheap.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

IR_VERSION = 4

# How the renderer builds a task. One generic builder per kind, never per step.
# A branch's `branches` key for a task it follows whatever it decides (the data DAG's record counts).
ALWAYS = "*"

TaskKind = Literal["python", "branch", "approval", "kubernetes_pod", "anyscale_job", "ray_job", "s3_sensor", "wait"]
# The task-library function that turns a remote task's params into its operator's arguments, per
# kind (or per kind and step, where a step's request differs). The renderer and the dag-factory
# export read it, so an exported DAG sends the same request.
BUILDERS: dict[object, str] = {
    "kubernetes_pod": "pipespec.tasklib.compute.kubernetes:pod_operator_kwargs",
    ("kubernetes_pod", "inference.predict"): "pipespec.tasklib.compute.kubernetes:predict_pod_kwargs",
    "anyscale_job": "pipespec.tasklib.compute.anyscale:job_operator_kwargs",
}


def bucket_and_key(uri: str) -> tuple[str, str]:
    """An `s3_sensor` task's URI as the S3 sensor takes it: bucket and key apart (its trigger lists
    the bucket to tell new objects from old, which it cannot do from a whole URI)."""
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return bucket, key


def builder_for(kind: str, step: str) -> str:
    """The `module:function` building the operator arguments of a `kind` task running `step`."""
    return BUILDERS.get((kind, step)) or BUILDERS[kind]


TriggerRule = Literal["all_success", "none_failed_min_one_success", "one_failed", "all_done", "none_failed"]
Events = Literal["failure", "retry", "gate_blocked", "promoted", "rejected", "rolled_back"]


@dataclass(frozen=True)
class Retry:
    """How a task is retried: count, delay, backoff."""

    count: int
    delay_s: int
    exponential: bool
    max_delay_s: int | None


@dataclass(frozen=True)
class Mapping:
    """Dynamic task mapping: one task instance per item.

    `over` is the upstream task whose list output is mapped, or None when the
    items are static (`items`). `label` is the key of an item shown as the
    map index in the UI (the source name, the shard range). `from_spec`: the
    upstream task derived its items from the spec's (a source per folder), so
    the run-time policy checks each item, as it checks static items.
    """

    arg: str
    over: str | None = None
    items: tuple[Any, ...] = ()
    label: str = "name"
    from_spec: bool = False


@dataclass(frozen=True)
class Task:
    """One task: the registered step it runs, its params, inputs and place in the DAG."""

    task_id: str
    step: str  # a name registered in tasklib; never a dotted import path from YAML
    params: dict[str, Any] = field(default_factory=dict)
    inputs: dict[str, str] = field(default_factory=dict)  # step argument -> upstream task id (its output)
    upstream: tuple[str, ...] = ()
    kind: TaskKind = "python"
    trigger_rule: TriggerRule = "all_success"
    mapping: Mapping | None = None
    branches: dict[str, str] = field(default_factory=dict)  # decision (or ALWAYS) -> downstream task id, kind=branch
    retry: Retry | None = None  # None: the DAG's default
    timeout_s: int | None = None  # execution timeout; a timed-out try is retried like a failed one
    outlets: tuple[str, ...] = ()
    doc: str = ""
    setup: bool = False  # an Airflow setup task: its teardown runs whatever happens in between
    teardown_of: str | None = None  # an Airflow teardown task, of this setup task


@dataclass(frozen=True)
class Schedule:
    """`kind`: none | cron | assets | assets_or_cron | every. `assets` is a URI or {"all"|"any": [...]}."""

    kind: Literal["none", "cron", "assets", "assets_or_cron", "every"]
    cron: str | None = None
    assets: Any = None
    every_s: int | None = None  # kind "every": a timedelta schedule


@dataclass(frozen=True)
class Alert:
    """Which events go to one channel, and its settings."""

    events: tuple[str, ...]
    channel: str  # a registered alert channel: slack, email, webhook or an installed plugin's
    settings: dict[str, Any]

    def target(self) -> dict[str, Any]:
        """What pipespec.tasklib.alerts.send takes. `kind`, not `channel`: Slack settings have a `channel` of their own."""
        return {"kind": self.channel, **self.settings}


@dataclass(frozen=True)
class Dag:
    """One DAG: schedule, documentation, defaults and tasks."""

    dag_id: str
    schedule: Schedule
    description: str
    doc_md: str
    owner: str
    tags: tuple[str, ...]
    retry: Retry
    alerts: tuple[Alert, ...]  # failure/retry alerts become callbacks; others are explicit tasks
    tasks: tuple[Task, ...]
    max_active_runs: int = 1
    max_consecutive_failed_dag_runs: int | None = None

    def task(self, task_id: str) -> Task:
        return next(t for t in self.tasks if t.task_id == task_id)


@dataclass(frozen=True)
class Pipeline:
    """What one spec compiles to: its DAGs, and the hash of the files they came from."""

    name: str
    spec_file: str
    spec_hash: str
    dags: tuple[Dag, ...]

    def to_json(self) -> dict:
        return {"ir_version": IR_VERSION, **asdict(self)}

    @classmethod
    def from_json(cls, data: dict) -> "Pipeline":
        def retry(value: dict | None) -> Retry | None:
            return Retry(**value) if value else None

        def task(value: dict) -> Task:
            mapping = value["mapping"]
            return Task(**{**value, "upstream": tuple(value["upstream"]), "outlets": tuple(value["outlets"]),
                           "retry": retry(value["retry"]),
                           "mapping": Mapping(**{**mapping, "items": tuple(mapping["items"])}) if mapping else None})

        def dag(value: dict) -> Dag:
            return Dag(**{**value, "schedule": Schedule(**value["schedule"]), "tags": tuple(value["tags"]),
                          "retry": retry(value["retry"]),
                          "alerts": tuple(Alert(**{**a, "events": tuple(a["events"])}) for a in value["alerts"]),
                          "tasks": tuple(task(t) for t in value["tasks"])})

        body = {k: v for k, v in data.items() if k != "ir_version"}
        return cls(**{**body, "dags": tuple(dag(d) for d in body["dags"])})
