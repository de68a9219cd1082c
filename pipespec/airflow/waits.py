"""A rollout stage's window (a shadow's or canary's `duration`), waited out in the triggerer.

The standard provider's WaitSensor ends its task from the trigger (`end_from_trigger`), which
`dag.test()` cannot resume; this operator defers to the same TimeDeltaTrigger and resumes in
`execute_complete`, so it behaves the same under the scheduler and in local runs.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from airflow.sdk import BaseOperator


class StageWindow(BaseOperator):
    """Wait `seconds` without holding a worker slot."""

    ui_color = "#fff3e0"

    def __init__(self, *, seconds: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.seconds = seconds

    def execute(self, context: Any) -> None:
        from airflow.providers.standard.triggers.temporal import TimeDeltaTrigger

        self.defer(trigger=TimeDeltaTrigger(timedelta(seconds=self.seconds)), method_name="execute_complete")

    def execute_complete(self, context: Any, event: Any = None) -> None:
        """The window is over."""
        self.log.info("stage window of %s s is over", self.seconds)
