"""Operators whose provider import is too heavy for DAG parsing, and whose wait is deferred.

Importing KubernetesPodOperator costs about 4 s here and the Anyscale provider
about 3 s; the dag-processor would pay that on every parse. `LazyOperator`
holds the operator's import path and keyword arguments (computed by the task
library, so tests can check the exact request) and builds the real operator
only when the task runs.

No remote job holds a worker slot while it runs (seed 002: deferrable operators for long
tasks). The pod operator runs deferrable: when it defers, the task defers with the same
trigger and resumes the pod operator's own method afterwards. The Anyscale operator only
polls in place, so it submits without waiting and the task defers to pipespec's
`AnyscaleJobTrigger`; the job's result is collected when the task resumes.
"""

from __future__ import annotations

import dataclasses
import importlib
import time
from typing import Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import TaskDeferred

from pipespec.airflow.adapter import run_context
from pipespec.airflow.step_operators import RemoteStepLineage, SpecValuesAreData

OPERATORS = {
    "kubernetes_pod": "airflow.providers.cncf.kubernetes.operators.pod:KubernetesPodOperator",
    "anyscale_job": "anyscale_provider.operators.anyscale:SubmitAnyscaleJob",
}
RESUME_KEY = "pipespec_resume"  # XCom: the inner operator's method (and kwargs) to resume in
# Set on the real operator, whatever the builder returned: how each waits in the triggerer.
DEFERRED = {
    "kubernetes_pod": {"deferrable": True},
    "anyscale_job": {"wait_for_completion": False},  # submit, then AnyscaleJobTrigger waits
}


class LazyOperator(RemoteStepLineage, SpecValuesAreData, BaseOperator):
    """Builds a heavy provider's operator only when the task runs, then executes it.

    `inputs` (upstream outputs) and a mapped `item` join the step's params, as they do for a step on
    a worker: an inference pod per shard gets the champion load_champion resolved and its shard."""

    ui_color = "#e8f0fe"
    template_fields = ("inputs", "item")  # only so Airflow resolves the upstream outputs; strings stay data

    def __init__(self, *, operator: str, builder: str, step_params: dict, step: str = "model.train",
                 inputs: dict | None = None, item: Any = None, map_arg: str | None = None,
                 map_label: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.operator = operator
        self.builder = builder  # tasklib function: (task_id, params) -> operator kwargs
        self.step = step
        self.step_params = step_params
        self.inputs = inputs or {}
        self.item = item
        self.map_arg = map_arg
        self.map_label = map_label  # the item's key whose value names this mapped instance in the UI

    @property
    def params_for_builder(self) -> dict:
        """The step's params with its upstream outputs and its mapped item, as the step would get them."""
        return {**self.step_params, **self.inputs, **({self.map_arg: self.item} if self.map_arg else {})}

    def execute(self, context: Any) -> Any:
        self._label(context)
        real, operator_kwargs = self._real_operator(context)
        try:
            # The inner operator's templates are never rendered: spec values may contain "{{".
            returned = real.execute(context)
        except TaskDeferred as deferred:
            # Where to resume travels in XCom: Airflow keeps defer kwargs beside the event, but dag.test() drops them.
            context["ti"].xcom_push(key=RESUME_KEY, value={"method": deferred.method_name,
                                                            "kwargs": deferred.kwargs or {}})
            self.defer(trigger=deferred.trigger, method_name="resume_inner", timeout=deferred.timeout)
        if self.operator == "anyscale_job":
            self._defer_to_anyscale(operator_kwargs, returned)
        return self._collect(context, operator_kwargs, returned)

    def resume_inner(self, context: Any, event: Any = None, **_: Any) -> Any:
        """Back from the inner operator's own trigger: finish in its method, then collect."""
        self._label(context)
        ti = context["ti"]
        resume = ti.xcom_pull(task_ids=self.task_id, key=RESUME_KEY, map_indexes=ti.map_index)
        real, operator_kwargs = self._real_operator(context)
        returned = getattr(real, resume["method"])(context, event=event, **resume["kwargs"])
        return self._collect(context, operator_kwargs, returned)

    def resume_after_job(self, context: Any, event: dict[str, Any], **_: Any) -> Any:
        """Back from AnyscaleJobTrigger: fail unless the job succeeded, else collect its result."""
        if event["status"] != "SUCCEEDED":
            raise RuntimeError(f"Anyscale job {event['job_id']} ended {event['status']}: {event.get('message') or ''}")
        _, operator_kwargs = self._real_operator(context)
        return self._collect(context, operator_kwargs, event["job_id"])

    def _real_operator(self, context: Any) -> tuple[Any, dict[str, Any]]:
        module, _, name = OPERATORS[self.operator].partition(":")
        operator_class = getattr(importlib.import_module(module), name)
        operator_kwargs = getattr(self._builder_module(), self.builder.partition(":")[2])(
            self.task_id, self.params_for_builder, run=dataclasses.asdict(run_context(context)))
        return operator_class(task_id=self.task_id, **{**operator_kwargs, **DEFERRED[self.operator]}), operator_kwargs

    def _defer_to_anyscale(self, operator_kwargs: dict[str, Any], job_id: str) -> None:
        from pipespec.airflow.triggers import AnyscaleJobTrigger

        trigger = AnyscaleJobTrigger(conn_id=operator_kwargs["conn_id"], job_id=job_id,
                                     deadline=time.time() + operator_kwargs["job_timeout_seconds"],
                                     poll_interval=operator_kwargs["poll_interval"])
        self.defer(trigger=trigger, method_name="resume_after_job")

    def _collect(self, context: Any, operator_kwargs: dict[str, Any], returned: Any) -> Any:
        collect = getattr(self._builder_module(), "collect_result", None)  # e.g. register what the job trained
        run = dataclasses.asdict(run_context(context))
        result = collect(self.params_for_builder, run, operator_kwargs, returned) if collect else returned
        self.record_lineage(result)
        return result

    def _label(self, context: Any) -> None:
        """`map_label` in the context, as data: what the DAG's `{{ map_label }}` map index template shows."""
        if self.map_label and isinstance(self.item, dict):
            context["map_label"] = str(self.item.get(self.map_label, ""))

    def _builder_module(self) -> Any:
        return importlib.import_module(self.builder.partition(":")[0])
