"""Training on Ray: submit a Ray job, wait in the triggerer, return the runner's result.

`RayJobOperator` submits the request `tasklib/compute/ray.py` builds and defers to
`RayJobTrigger`, so no worker slot is held while the cluster trains. The trigger polls the
Ray Jobs REST API, copies new job log lines into the task's log as they come, stops the job
itself when the spec's timeout passes, and stops it when a user marks the task failed or
clears it (`on_kill`). Back on a worker, `execute_complete` turns the job's logs into what
a local `train` returns.

The Ray SDK is imported only when a task runs; the trigger speaks plain HTTP (aiohttp).
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

from airflow.sdk import BaseOperator
from airflow.triggers.base import BaseTrigger, TriggerEvent

from pipespec.airflow.adapter import run_context
from pipespec.airflow.step_operators import SpecValuesAreData

POLL_INTERVAL_S = 5.0
REQUEST_TIMEOUT_S = 30.0


class RayJobOperator(SpecValuesAreData, BaseOperator):
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
        return ray.collect_result(self.step_params, event["job_id"], logs)

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


class RayJobTrigger(BaseTrigger):
    """Waits for a Ray job in the triggerer; its log lines go to the task log as they come."""

    def __init__(self, *, address: str, job_id: str, conn_id: str, deadline: float,
                 poll_interval: float = POLL_INTERVAL_S) -> None:
        super().__init__()
        self.address, self.job_id, self.conn_id = address, job_id, conn_id
        self.deadline, self.poll_interval = deadline, poll_interval

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (f"{type(self).__module__}.{type(self).__qualname__}",
                {"address": self.address, "job_id": self.job_id, "conn_id": self.conn_id,
                 "deadline": self.deadline, "poll_interval": self.poll_interval})

    async def run(self) -> AsyncIterator[TriggerEvent]:
        import aiohttp

        headers = await self._headers()
        logged = 0
        timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S)
        async with aiohttp.ClientSession(headers=headers, timeout=timeout) as session:
            while True:
                job = await _get_json(session, f"{self.address}/api/jobs/{self.job_id}")
                logs = (await _get_json(session, f"{self.address}/api/jobs/{self.job_id}/logs")).get("logs", "")
                lines = logs.splitlines()
                for line in lines[logged:]:
                    self.log.info("[ray %s] %s", self.job_id, line)
                logged = len(lines)
                if job["status"] in ("SUCCEEDED", "FAILED", "STOPPED"):
                    yield TriggerEvent({"status": job["status"], "job_id": self.job_id,
                                        "message": job.get("message")})
                    return
                if time.time() > self.deadline:
                    await session.post(f"{self.address}/api/jobs/{self.job_id}/stop")
                    yield TriggerEvent({"status": "TIMED_OUT", "job_id": self.job_id,
                                        "message": "the spec's compute.timeout passed; the job was stopped"})
                    return
                await asyncio.sleep(self.poll_interval)

    async def on_kill(self) -> None:
        """A user marked the task failed or cleared it: stop the job, not just the wait."""
        import aiohttp

        async with aiohttp.ClientSession(headers=await self._headers(),
                                         timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S)) as session:
            await session.post(f"{self.address}/api/jobs/{self.job_id}/stop")
        self.log.info("stopped Ray job %s", self.job_id)

    async def _headers(self) -> dict[str, str]:
        from asgiref.sync import sync_to_async

        from pipespec.tasklib.compute import ray

        _, headers = await sync_to_async(ray.connection)(self.conn_id)
        return headers


async def _get_json(session: Any, url: str) -> dict[str, Any]:
    async with session.get(url) as response:
        response.raise_for_status()
        return await response.json()


def deferral_timeout(compute: dict[str, Any]) -> timedelta:
    """How long Airflow lets the task stay deferred: the job's timeout plus a margin to stop it."""
    from pipespec.schemas.models.common import parse_duration

    return timedelta(seconds=parse_duration(compute.get("timeout") or "4h") + 600)
