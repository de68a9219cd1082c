"""A quiet, readable terminal for `make demo` and `pipespec run`.

Airflow's structured logs, the task logs and TensorFlow's output all go to one
log file (the process's stdout and stderr file descriptors are pointed at it,
so output of C extensions and child processes lands there too); the terminal
shows only what a person follows: a live table of the current DAG's tasks with a
progress bar per DAG, the decisions, and the closing summary.

Task states arrive through an Airflow listener (`dag.test()` runs every task in
this process, and the task runner calls listeners as each one starts and ends);
tasks that never ran (skipped by a branch, upstream failed) take their final
state from the DAG run when it ends. Without a terminal (CI, a pipe) the live
view is not redrawn: each DAG's table is printed once, when it ends.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from airflow.listeners import hookimpl  # import after pipespec.local.local_env.configure()
from rich.console import Console, Group
from rich.live import Live
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

STYLES = {"success": "green", "running": "bold yellow", "failed": "bold red", "upstream_failed": "red",
          "skipped": "dim", "removed": "dim", "waiting": "dim", "up_for_retry": "yellow"}
FINISHED = {"success", "failed", "skipped", "upstream_failed", "removed"}


@contextmanager
def output_to_file(path: Path) -> Iterator[Console]:
    """Point this process's stdout and stderr (file descriptors 1 and 2) at `path`, appending; yield a
    rich Console on the terminal they pointed at before. Restored on exit, also on errors, so a
    traceback reaches the terminal."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    saved_out, saved_err = os.dup(1), os.dup(2)
    log = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    terminal = os.fdopen(os.dup(saved_out), "w", buffering=1, encoding="utf-8", errors="replace")
    console = Console(file=terminal, highlight=False, soft_wrap=True)  # paths stay whole, never folded
    os.dup2(log, 1)
    os.dup2(log, 2)
    try:
        yield console
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved_out, 1)
        os.dup2(saved_err, 2)
        for descriptor in (saved_out, saved_err, log):
            os.close(descriptor)
        terminal.close()


@dataclass
class TaskRow:
    """One task of the DAG on screen; a mapped task counts its instances."""

    task_id: str
    states: dict[int, str] = field(default_factory=dict)  # map index (-1 unmapped) -> state
    labels: dict[int, str] = field(default_factory=dict)  # map index -> rendered map label
    started: float | None = None
    ended: float | None = None

    @property
    def state(self) -> str:
        """The task's state: running while any instance runs, failed if any failed, else the common one."""
        values = set(self.states.values())
        for state in ("running", "failed", "upstream_failed", "up_for_retry"):
            if state in values:
                return state
        if not values:
            return "waiting"
        if values <= FINISHED:
            return "success" if "success" in values else sorted(values)[0]
        return "running"

    @property
    def finished(self) -> bool:
        """Every instance seen has ended, and at least one was seen."""
        return bool(self.states) and set(self.states.values()) <= FINISHED


class LiveRun:
    """The live view: one progress bar per DAG and the current DAG's task table.

    Register it as an Airflow listener (`listening()`); call `dag_started` / `dag_ended`
    around each `dag.test()`."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.progress = self._new_progress()
        self.rows: dict[str, TaskRow] = {}
        self.dag_id = ""
        self._bar: Any = None
        self._live: Live | None = None

    # --- the run --------------------------------------------------------------------------

    def dag_started(self, dag: Any) -> None:
        """Show a new DAG: its bar and a waiting row per task."""
        self.dag_id = dag.dag_id
        self.rows = {task_id: TaskRow(task_id) for task_id in _ordered_task_ids(dag)}
        self.progress = self._new_progress()  # the bar of this DAG; finished DAGs are printed as tables
        self._bar = self.progress.add_task(dag.dag_id, total=len(self.rows), state="running")
        self._live = Live(self._view(), console=self.console, refresh_per_second=4, transient=True,
                          redirect_stdout=False, redirect_stderr=False)
        self._live.start()

    def dag_ended(self, state: str, tasks: list[tuple[str, int, str, str]], seconds: float) -> None:
        """The run's final task states [(task, map index, label, state)], then the table printed once."""
        for task_id, map_index, label, task_state in tasks:
            row = self.rows.setdefault(task_id, TaskRow(task_id))
            row.states[map_index] = task_state
            if label:
                row.labels[map_index] = label
        self._update_bar(state)
        if self._live is not None:
            self._live.stop()
            self._live = None
        self.console.print(self._table(title=f"{self.dag_id}: {state} in {seconds:.1f}s"))

    def note(self, message: str, style: str = "") -> None:
        """A line above the live view (a decision, a step of the demo)."""
        self.console.print(message, style=style or None)

    # --- listener hooks (airflow.listeners spec) ---------------------------------------------

    def running(self, task_id: str, map_index: int, label: str | None) -> None:
        """A task instance started."""
        row = self.rows.setdefault(task_id, TaskRow(task_id))
        row.states[map_index] = "running"
        if label:
            row.labels[map_index] = label
        row.started = row.started or time.monotonic()
        self._refresh()

    def ended(self, task_id: str, map_index: int, state: str) -> None:
        """A task instance ended (success, failed, skipped, up for retry)."""
        row = self.rows.setdefault(task_id, TaskRow(task_id))
        row.states[map_index] = state
        row.ended = time.monotonic()
        self._refresh()

    # --- drawing ----------------------------------------------------------------------------

    def _new_progress(self) -> Progress:
        return Progress(TextColumn("{task.description:<28}"), BarColumn(bar_width=30), MofNCompleteColumn(),
                        TextColumn("{task.fields[state]}"), TimeElapsedColumn(), console=self.console)

    def _refresh(self) -> None:
        self._update_bar("running")
        if self._live is not None:
            self._live.update(self._view())

    def _update_bar(self, state: str) -> None:
        if self._bar is not None:
            done = sum(row.finished for row in self.rows.values())
            self.progress.update(self._bar, completed=done, state=state)
            if state != "running":
                self.progress.update(self._bar, completed=len(self.rows))
                self.progress.stop_task(self._bar)

    def _view(self) -> Group:
        return Group(self.progress, self._table())

    def _table(self, title: str | None = None) -> Table:
        table = Table(title=title, title_justify="left", show_edge=False, pad_edge=False, box=None,
                      header_style="bold")
        table.add_column("task", min_width=24)
        table.add_column("state", min_width=10)
        table.add_column("time", justify="right")
        table.add_column("instances", no_wrap=True, overflow="ellipsis")
        for row in self.rows.values():
            state = row.state
            took = f"{row.ended - row.started:.1f}s" if row.started and row.ended and row.finished else ""
            mapped = [index for index in row.states if index >= 0]
            instances = (f"{sum(row.states[i] == 'success' for i in mapped)}/{len(mapped)}: "
                         + ", ".join(row.labels.get(i, str(i)) for i in sorted(mapped))) if mapped else ""
            table.add_row(row.task_id, f"[{STYLES.get(state, '')}]{state}[/]" if STYLES.get(state) else state,
                          took, _clip(instances, 60))
        return table


class _Listener:
    """The Airflow listener that forwards task instance events to a LiveRun."""

    def __init__(self, view: LiveRun) -> None:
        self.view = view

    @hookimpl
    def on_task_instance_running(self, previous_state: Any, task_instance: Any) -> None:
        """A task instance started."""
        task_id, map_index = _instance(task_instance)
        self.view.running(task_id, map_index, getattr(task_instance, "rendered_map_index", None))

    @hookimpl
    def on_task_instance_success(self, previous_state: Any, task_instance: Any) -> None:
        """A task instance succeeded."""
        self.view.ended(*_instance(task_instance), "success")

    @hookimpl
    def on_task_instance_failed(self, previous_state: Any, task_instance: Any, error: Any) -> None:
        """A task instance failed, or goes up for retry (its state says which)."""
        state = str(getattr(task_instance, "state", None) or "failed")
        self.view.ended(*_instance(task_instance), "up_for_retry" if state == "up_for_retry" else "failed")

    @hookimpl
    def on_task_instance_skipped(self, previous_state: Any, task_instance: Any) -> None:
        """A task instance skipped itself."""
        self.view.ended(*_instance(task_instance), "skipped")


def _instance(task_instance: Any) -> tuple[str, int]:
    map_index = getattr(task_instance, "map_index", None)
    return task_instance.task_id, -1 if map_index is None else int(map_index)


@contextmanager
def listening(view: LiveRun) -> Iterator[LiveRun]:
    """Register `view` as an Airflow listener of task instances for the duration."""
    from airflow.sdk.listener import get_listener_manager

    listener = _Listener(view)
    manager = get_listener_manager()
    manager.add_listener(listener)
    try:
        yield view
    finally:
        manager.pm.unregister(listener)


def _ordered_task_ids(dag: Any) -> list[str]:
    """Task ids upstream first (the order they run in), ties by definition order."""
    order = {task_id: index for index, task_id in enumerate(dag.task_ids)}
    placed: list[str] = []
    remaining = set(order)
    while remaining:
        ready = sorted((t for t in remaining if not (dag.get_task(t).upstream_task_ids & remaining)), key=order.get)
        if not ready:  # never in a DAG; stay total anyway
            ready = sorted(remaining, key=order.get)
        placed += ready
        remaining -= set(ready)
    return placed


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"
