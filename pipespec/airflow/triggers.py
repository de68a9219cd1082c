"""Waits that run in Airflow's triggerer, so a remote job holds no worker slot while it runs.

- `RayJobTrigger`: a Ray job, polled over the Ray Jobs REST API (aiohttp); its new log lines go
  to the task log as they come; stopped when the spec's timeout passes or a user kills the task.
- `AnyscaleJobTrigger`: an Anyscale job. The provider's own trigger calls the SDK synchronously
  inside the triggerer's event loop, which stalls every other trigger while it waits for the
  API; this one runs each SDK call in a thread. It terminates the job when a user kills the task.

Both fire one event, {"status", "job_id", "message"}, that the task resumes with.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

REQUEST_TIMEOUT_S = 30.0


class RayJobTrigger(BaseTrigger):
    """Waits for a Ray job; its log lines go to the task log as they come."""

    def __init__(self, *, address: str, job_id: str, conn_id: str, deadline: float, poll_interval: float = 5.0) -> None:
        super().__init__()
        self.address, self.job_id, self.conn_id = address, job_id, conn_id
        self.deadline, self.poll_interval = deadline, poll_interval

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (f"{type(self).__module__}.{type(self).__qualname__}",
                {"address": self.address, "job_id": self.job_id, "conn_id": self.conn_id,
                 "deadline": self.deadline, "poll_interval": self.poll_interval})

    async def run(self) -> AsyncIterator[TriggerEvent]:
        import aiohttp

        logged = 0
        async with aiohttp.ClientSession(headers=await self._headers(),
                                         timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S)) as session:
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
        from pipespec.tasklib.compute import ray

        _, headers = await asyncio.to_thread(ray.connection, self.conn_id)
        return headers


async def _get_json(session: Any, url: str) -> dict[str, Any]:
    async with session.get(url) as response:
        response.raise_for_status()
        return await response.json()


class AnyscaleJobTrigger(BaseTrigger):
    """Waits for an Anyscale job without blocking the triggerer's event loop."""

    def __init__(self, *, conn_id: str, job_id: str, deadline: float, poll_interval: float = 60.0) -> None:
        super().__init__()
        self.conn_id, self.job_id, self.deadline, self.poll_interval = conn_id, job_id, deadline, poll_interval

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (f"{type(self).__module__}.{type(self).__qualname__}",
                {"conn_id": self.conn_id, "job_id": self.job_id, "deadline": self.deadline,
                 "poll_interval": self.poll_interval})

    async def run(self) -> AsyncIterator[TriggerEvent]:
        from anyscale.job.models import JobState

        hook = await asyncio.to_thread(self._hook)
        while True:
            state = str((await asyncio.to_thread(hook.get_job_status, self.job_id)).state)
            self.log.info("Anyscale job %s is %s", self.job_id, state)
            if state == JobState.SUCCEEDED:
                yield TriggerEvent({"status": "SUCCEEDED", "job_id": self.job_id, "message": None})
                return
            if state in (JobState.FAILED, JobState.UNKNOWN):
                yield TriggerEvent({"status": state, "job_id": self.job_id, "message": f"Anyscale job {state}"})
                return
            if time.time() > self.deadline:
                await asyncio.to_thread(hook.terminate_job, self.job_id, 0)
                yield TriggerEvent({"status": "TIMED_OUT", "job_id": self.job_id,
                                    "message": "the spec's compute.timeout passed; the job was terminated"})
                return
            await asyncio.sleep(self.poll_interval)

    async def on_kill(self) -> None:
        """A user marked the task failed or cleared it: terminate the job, not just the wait."""
        hook = await asyncio.to_thread(self._hook)
        await asyncio.to_thread(hook.terminate_job, self.job_id, 0)

    def _hook(self) -> Any:
        from anyscale_provider.hooks.anyscale import AnyscaleHook

        return AnyscaleHook(conn_id=self.conn_id)
