"""What a step may know about the run it is part of: plain values, no Airflow objects."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RunContext:
    """The run a step is part of: ids, try, dates and the owning team."""

    dag_id: str
    task_id: str
    run_id: str
    map_index: int = -1
    try_number: int = 1
    logical_date: str | None = None
    data_interval_start: str | None = None
    data_interval_end: str | None = None
    owner: str | None = None  # the spec's team (the DAG owner): the platform policy's rules follow it

    @property
    def run_key(self) -> str:
        """A filesystem-safe id of this run, for run-scoped output locations."""
        return "".join(c if c.isalnum() or c in "-_." else "_" for c in self.run_id)
