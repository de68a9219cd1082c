"""The operators compiled steps run in: TaskFlow operators that treat spec
values as data.

Airflow renders Jinja in a task's `op_kwargs` before it runs. A spec value such
as `{{ conn.warehouse.password }}` or `{{ var.value.secret }}` would be filled in
from Airflow's full context, bypassing the no-secrets rule and the SQL
sandbox (the only templating steps get is the data interval, in
tasklib/data/sql_render.py). These operators still resolve upstream outputs
(XComArgs) inside `op_kwargs`, but never render a string.
"""

from __future__ import annotations

from typing import Any

from airflow.providers.standard.decorators.branch_python import _BranchPythonDecoratedOperator
from airflow.providers.standard.decorators.python import _PythonDecoratedOperator
from airflow.sdk.bases.decorator import task_decorator_factory


class _SpecValuesAreData:
    def render_template(self, content: Any, context: Any, jinja_env: Any = None, seen_oids: Any = None) -> Any:
        if isinstance(content, str):
            return content
        return super().render_template(content, context, jinja_env, seen_oids)  # type: ignore[misc]


class StepOperator(_SpecValuesAreData, _PythonDecoratedOperator):
    custom_operator_name = "@pipespec.step"


class BranchStepOperator(_SpecValuesAreData, _BranchPythonDecoratedOperator):
    custom_operator_name = "@pipespec.branch"


def step_task(python_callable: Any, **kwargs: Any) -> Any:
    return task_decorator_factory(python_callable=python_callable, decorated_operator_class=StepOperator, **kwargs)


def branch_step_task(python_callable: Any, **kwargs: Any) -> Any:
    return task_decorator_factory(python_callable=python_callable, decorated_operator_class=BranchStepOperator,
                                  **kwargs)
