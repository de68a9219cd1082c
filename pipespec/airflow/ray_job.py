"""Training on Ray: submit a Ray job, wait in the triggerer, return the runner's result.

`RayJobOperator` submits the request `tasklib/compute/ray.py` builds and defers to
`RayJobTrigger` (pipespec/airflow/triggers.py), so no worker slot is held while the cluster
trains. Back on a worker, `execute_complete` turns the job's logs into what a local `train`
returns. The Ray SDK is imported only when a task runs.
"""

from __future__ import annotations

import dataclasses
import time
from datetime import timedelta
from typing import Any

from airflow.sdk import BaseOperator

from pipespec.airflow.adapter import run_context
from pipespec.airflow.step_operators import RemoteStepLineage, SpecValuesAreData
from pipespec.airflow.triggers import RayJobTrigger

POLL_INTERVAL_S = 5.0


class RayJobOperator(RemoteStepLineage, SpecValuesAreData, BaseOperator):
    """A `train` task on a Ray cluster (compute backend `ray`)."""

    ui_color = "#e3f2fd"

    def __init__(self, *, step_params: dict, poll_interval: float = POLL_INTERVAL_S, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.step_params = step_params
        self.poll_interval = poll_interval
        self._job: tuple[str, str] | None = None  # (address, job id) once submitted, for on_kill

    def execute(self, context: Any) -> None:
        from ray.job_submission import JobSubmissionClient

        from pipespec.schemas.models.common import parse_duration
        from pipespec.tasklib.compute import ray

        compute = self.step_params["compute"]
        run = dataclasses.asdict(run_context(context))
        request = ray.job_request(self.task_id, self.step_params, run=run)
        conn_id = compute.get("conn_id") or "ray_default"
        address, headers = ray.connection(conn_id)
        client = JobSubmissionClient(address, headers=headers)
        job_id = request["submission_id"]
        if _status(client, job_id) is None:  # a worker that died after submitting already started this try's job
            client.submit_job(**request)
        self._job = (address, job_id)
        self.log.info("submitted Ray job %s to %s", job_id, address)
        timeout_s = parse_duration(compute.get("timeout") or "4h")
        self.defer(trigger=RayJobTrigger(address=address, job_id=job_id, conn_id=conn_id,
                                         deadline=time.time() + timeout_s, poll_interval=self.poll_interval),
                   method_name="execute_complete", timeout=deferral_timeout(compute))

    def execute_complete(self, context: Any, event: dict[str, Any]) -> dict[str, Any]:
        from ray.job_submission import JobSubmissionClient

        from pipespec.tasklib.compute import ray

        address, headers = ray.connection(self.step_params["compute"].get("conn_id") or "ray_default")
        logs = JobSubmissionClient(address, headers=headers).get_job_logs(event["job_id"])
        if event["status"] != "SUCCEEDED":
            tail = "\n".join(logs.splitlines()[-20:])
            raise RuntimeError(f"Ray job {event['job_id']} ended {event['status']}: {event.get('message') or ''}\n"
                               f"last lines of its log:\n{tail}")
        result = ray.collect_result(self.step_params, event["job_id"], logs)
        self.record_lineage(result)
        return result

    def on_kill(self) -> None:
        if self._job is None:
            return
        from ray.job_submission import JobSubmissionClient

        from pipespec.tasklib.compute import ray

        _, headers = ray.connection(self.step_params["compute"].get("conn_id") or "ray_default")
        JobSubmissionClient(self._job[0], headers=headers).stop_job(self._job[1])


def _status(client: Any, job_id: str) -> str | None:
    try:
        return str(client.get_job_status(job_id))
    except RuntimeError:  # the SDK's error for an unknown job id
        return None


def deferral_timeout(compute: dict[str, Any]) -> timedelta:
    """How long Airflow lets the task stay deferred: the job's timeout plus a margin to stop it."""
    from pipespec.schemas.models.common import parse_duration

    return timedelta(seconds=parse_duration(compute.get("timeout") or "4h") + 600)
