"""Operators whose provider import is too heavy for DAG parsing.

Importing KubernetesPodOperator costs about 4 s here and the Anyscale provider
about 3 s; the dag-processor would pay that on every parse. `LazyOperator`
holds the operator's import path and keyword arguments (computed by the task
library, so tests can check the exact request) and builds the real operator
only when the task runs.
"""

from __future__ import annotations

import dataclasses
import importlib
from typing import Any

from airflow.sdk import BaseOperator

from pipespec.airflow.adapter import run_context
from pipespec.airflow.step_operators import SpecValuesAreData

OPERATORS = {
    "kubernetes_pod": "airflow.providers.cncf.kubernetes.operators.pod:KubernetesPodOperator",
    "anyscale_job": "anyscale_provider.operators.anyscale:SubmitAnyscaleJob",
}


class LazyOperator(SpecValuesAreData, BaseOperator):
    """Builds a heavy provider's operator only when the task runs, then executes it."""

    ui_color = "#e8f0fe"

    def __init__(self, *, operator: str, builder: str, step_params: dict, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.operator = operator
        self.builder = builder  # tasklib function: (task_id, params) -> operator kwargs
        self.step_params = step_params

    def execute(self, context: Any) -> Any:
        module, _, name = OPERATORS[self.operator].partition(":")
        operator_class = getattr(importlib.import_module(module), name)
        build_module, _, build_name = self.builder.partition(":")
        builder = importlib.import_module(build_module)
        run = dataclasses.asdict(run_context(context))
        operator_kwargs = getattr(builder, build_name)(self.task_id, self.step_params, run=run)
        real = operator_class(task_id=self.task_id, **operator_kwargs)
        # The inner operator's templates are never rendered: spec values may contain "{{".
        returned = real.execute(context)
        collect = getattr(builder, "collect_result", None)  # e.g. register the model an Anyscale job trained
        return collect(self.step_params, run, operator_kwargs, returned) if collect else returned
