"""Failure and retry alerts as an Airflow notifier that delegates to the task
library, so callbacks and the explicit alert tasks share one implementation."""

from __future__ import annotations

from typing import Any

from airflow.sdk import BaseNotifier

from pipespec.airflow.step_operators import SpecValuesAreData


class PipespecNotifier(SpecValuesAreData, BaseNotifier):
    """Sends a failure or retry alert to the spec's channels."""

    template_fields = ()  # channels and messages come from the spec: data, never Jinja

    def __init__(self, *, pipeline: str, event: str, channels: list[dict]) -> None:
        super().__init__()
        self.pipeline = pipeline
        self.event = event
        self.channels = channels

    def notify(self, context: Any) -> None:
        from pipespec.tasklib.alerts import send

        ti = context["ti"]
        exception = context.get("exception")
        send(self.channels, pipeline=self.pipeline, event=self.event, dag_id=ti.dag_id,
             run_id=context.get("run_id", ""), details={"task_id": ti.task_id, "try_number": ti.try_number,
                                                       "error": str(exception) if exception else ""})
