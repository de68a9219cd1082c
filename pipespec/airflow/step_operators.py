"""The operators compiled steps run in: TaskFlow operators that treat spec
values as data.

Airflow renders Jinja in every template field of a task before it runs (here
`op_kwargs`; the approval's `subject`). A spec value such as
`{{ conn.warehouse.password }}` or `{{ var.value.secret }}` would be filled in
from Airflow's full context, bypassing the no-secrets rule and the SQL sandbox
(the only templating steps get is the data interval, in
tasklib/data/sql_render.py). `SpecValuesAreData` is the one rule: every operator
and notifier pipespec builds inherits it, so it still resolves upstream outputs
(XComArgs) inside its fields but never renders a string nor reads one as a
template file.
"""

from __future__ import annotations

import inspect
import os
import types
from collections.abc import Sequence
from typing import Any

from airflow.providers.standard.decorators.branch_python import _BranchPythonDecoratedOperator
from airflow.providers.standard.decorators.python import _PythonDecoratedOperator
from airflow.sdk.bases.decorator import task_decorator_factory

from pipespec.airflow import lineage
from pipespec.airflow.links import STEP_LINKS, links_of_step


class SpecValuesAreData:
    """Mixin for an Airflow `Templater` (operator, notifier): its template fields hold data, not Jinja."""

    # A field value ending in one of these would be read as a template *file* (`resolve_template_files`).
    template_ext: Sequence[str] = ()

    def render_template(self, content: Any, context: Any, jinja_env: Any = None, seen_oids: Any = None) -> Any:
        if isinstance(content, (str, os.PathLike)):  # a path too: Airflow renders an ObjectStoragePath's text
            return content
        return super().render_template(content, context, jinja_env, seen_oids)  # type: ignore[misc]


class StepLineageOnWorker:
    """OpenLineage for a step run on the worker (a plain step or a deciding one): when Airflow's
    OpenLineage provider is enabled, the datasets it read and wrote (pipespec/airflow/lineage.py),
    derived from its resolved arguments and its result."""

    op_kwargs: dict
    task_id: str

    def record_lineage(self, result: Any) -> None:
        """Keep what the finished step read and wrote, for `get_openlineage_facets_on_complete`."""
        if not lineage.enabled():
            return
        try:
            self.step_lineage = self._lineage(result)
        except Exception:  # noqa: BLE001 - lineage is reported, never a reason to fail a step
            self.log.warning("pipespec: no OpenLineage datasets for %s", self.task_id, exc_info=True)  # type: ignore[attr-defined]

    def _lineage(self, result: Any) -> lineage.StepLineage:
        from airflow.sdk import BaseHook

        from pipespec.airflow.adapter import step_arguments

        kwargs = self.op_kwargs  # the step's resolved arguments, as run_step received them
        arguments = step_arguments(kwargs["step_params"], kwargs.get("inputs"), kwargs.get("item"),
                                   kwargs.get("map_arg"))
        return lineage.step_lineage(kwargs["step"], arguments, result, BaseHook.get_connection)

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """The datasets this step read and wrote, for Airflow's OpenLineage provider."""
        return lineage.operator_lineage(getattr(self, "step_lineage", None))


def _inherit_init(cls: type) -> type:
    """Give an operator class its Airflow base's `__init__`, wrapped once. BaseOperatorMeta wraps a
    class's `__init__` in its default-argument handling whenever it is not the first base's, and a
    mixin listed first (so that its methods win) has `object`'s: the inherited, already wrapped
    `__init__` was wrapped again, repeating the same work for every task (~3% of a warm parse)."""
    own = vars(cls).get("__init__")
    if own is not None and getattr(own, "__wrapped__", None) is super(cls, cls).__init__:
        del cls.__init__
    return cls


class _LinksOfStep:
    """`StepOperator.operator_extra_links`: on the class, every step link (what Airflow serializes a
    mapped task with); on a task, the links its step can fill. Read, not set in an `__init__`: Airflow
    wraps each operator class's own `__init__` in one more round of default-argument handling, which
    cost ~3% of a warm parse (bench/dagbag_load.py). A value assigned to a task still wins."""

    def __get__(self, operator: Any, owner: type) -> Any:
        if operator is None:
            return STEP_LINKS
        return links_of_step((getattr(operator, "op_kwargs", None) or {}).get("step"))


@_inherit_init
class StepOperator(StepLineageOnWorker, SpecValuesAreData, _PythonDecoratedOperator):
    """The TaskFlow operator a step runs in. It keeps the step's result for its extra links
    (evaluated when the task finishes, pipespec/airflow/links.py) and its lineage."""

    custom_operator_name = "@pipespec.step"
    operator_extra_links = _LinksOfStep()

    def execute(self, context: Any) -> Any:
        result = super().execute(context)
        self.step_result = result
        self.record_lineage(result)
        return result


class RemoteStepLineage:
    """OpenLineage for a step that runs remotely (training on Kubernetes, Anyscale or Ray, an inference
    shard in a pod): what it read and wrote, derived like a local step's from its params and result."""

    step_params: dict
    step: str = "model.train"
    step_lineage: lineage.StepLineage | None = None

    @property
    def params_for_builder(self) -> dict:
        return self.step_params

    def record_lineage(self, result: Any) -> None:
        """Called with the task's result, as StepOperator.execute does for local steps."""
        if not lineage.enabled():
            return
        from airflow.sdk import BaseHook

        try:
            self.step_lineage = lineage.step_lineage(self.step, self.params_for_builder, result, BaseHook.get_connection)
        except Exception:  # noqa: BLE001 - lineage is reported, never a reason to fail a step
            self.log.warning("pipespec: no OpenLineage datasets for %s", self.task_id, exc_info=True)  # type: ignore[attr-defined]

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """The datasets this train task read and wrote, for Airflow's OpenLineage provider."""
        return lineage.operator_lineage(self.step_lineage)


@_inherit_init
class BranchStepOperator(StepLineageOnWorker, SpecValuesAreData, _BranchPythonDecoratedOperator):
    """The TaskFlow branch operator a deciding step runs in. Its XCom is the step's result (the
    measurement, the decision and its reason), not the list of followed task ids, so a branch's
    output feeds later tasks like any step's."""

    custom_operator_name = "@pipespec.branch"

    def do_branch(self, context: Any, branches_to_execute: Any) -> Any:
        # Pushed first: skipping raises DownstreamTasksSkipped, and the task runner then pushes nothing.
        context["ti"].xcom_push(key="return_value", value=branches_to_execute["result"])
        self.record_lineage(branches_to_execute["result"])  # the data gate reads the sources and writes the join
        super().do_branch(context, branches_to_execute["follow"])
        return branches_to_execute["result"]


def _signature_once(python_callable: Any) -> Any:
    """Airflow derives a TaskFlow callable's signature anew about six times for every task it builds
    (~12 µs each, ~10% of a warm parse); `inspect.signature` returns a function's `__signature__`
    when it has one, so computing it once here gives every later call the same Signature."""
    if isinstance(python_callable, types.FunctionType) and getattr(python_callable, "__signature__", None) is None:
        python_callable.__signature__ = inspect.signature(python_callable)
    return python_callable


def step_task(python_callable: Any, **kwargs: Any) -> Any:
    """A TaskFlow task that runs `python_callable` in a StepOperator."""
    return task_decorator_factory(python_callable=_signature_once(python_callable),
                                  decorated_operator_class=StepOperator, **kwargs)


def branch_step_task(python_callable: Any, **kwargs: Any) -> Any:
    """A TaskFlow branch task that runs `python_callable` in a BranchStepOperator. One XCom, the step's
    result: Airflow would otherwise split it into an XCom per key, seeing run_branch return a TypedDict."""
    return task_decorator_factory(python_callable=_signature_once(python_callable),
                                  decorated_operator_class=BranchStepOperator, **{"multiple_outputs": False, **kwargs})
