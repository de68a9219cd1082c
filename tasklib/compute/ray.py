"""Training on a Ray cluster through the Ray Jobs API (`compute: {backend: ray}`).

The job runs the entrypoint an Anyscale job runs, `python -m pipespec.tasklib.model.runner
train --params-json <job>`, every word shell-quoted, with the `pipespec` package uploaded
as a py_module, so the same runner trains and registers the model on either. The runner
prints its result as the last `PIPESPEC_RESULT {...}` line of the job's logs.

`pipespec/airflow/ray_job.py` submits the request built here, waits in the triggerer (no
worker slot is held while the cluster trains), copies the job's logs into the task log and
returns `collect_result`. The cluster's address and token come from an Airflow connection
(`conn_id`: host = the dashboard URL, password = the cluster's auth token), never from YAML.
"""

from __future__ import annotations

import hashlib
import shlex
from collections.abc import Mapping
from typing import Any

from pipespec.tasklib.compute.anyscale import package_folder, runner_result
from pipespec.tasklib.compute.kubernetes import RUNNER, passthrough_env, runner_job, to_json
from pipespec.tasklib.guard import enforce_train

PASSTHROUGH_ENV = ("MLFLOW_TRACKING_URI", "MLFLOW_S3_ENDPOINT_URL", "PIPESPEC_STORAGE_ROOT")
TERMINAL = ("SUCCEEDED", "FAILED", "STOPPED")


def job_request(task_id: str, params: Mapping[str, Any], *, run: Mapping[str, Any]) -> dict[str, Any]:
    """Keyword arguments for `JobSubmissionClient.submit_job` (besides the address)."""
    compute = params["compute"]
    if compute.get("backend") != "ray":
        raise ValueError(f"train task `{task_id}`: compute backend is `{compute.get('backend')}`, not ray")
    enforce_train(task_id, params, run.get("owner"))  # before anything is submitted
    if params["model"]["type"] == "llm_finetune":
        raise ValueError(f"train task `{task_id}`: llm_finetune runs LLMForge on Anyscale (backend: anyscale)")
    return {
        "entrypoint": shlex.join([*RUNNER, "train", "--params-json", to_json(runner_job(params, run))]),
        # One id per try: a retry submits a new job; Ray refuses a second job under the same id.
        "submission_id": submission_id(params["pipeline"], task_id, run),
        "runtime_env": {"py_modules": [str(package_folder())],
                        "env_vars": {**(compute.get("env") or {}), **passthrough_env(PASSTHROUGH_ENV)}},
        "entrypoint_num_cpus": float(compute.get("cpus") or 1),
        "entrypoint_num_gpus": float(compute.get("gpus") or 0),
        "metadata": {"app": "pipespec", "pipeline": params["pipeline"], "run_id": run["run_id"]},
    }


def submission_id(pipeline: str, task_id: str, run: Mapping[str, Any]) -> str:
    """`pipespec-<pipeline>-<task>-<run id's hash>-try<n>`: distinct for every try of every run (the
    run id itself travels in the job's metadata)."""
    run_hash = hashlib.sha256(run["run_id"].encode()).hexdigest()[:12]
    return f"pipespec-{pipeline}-{task_id}-{run_hash}-try{run.get('try_number', 1)}"


def connection(conn_id: str) -> tuple[str, dict[str, str]]:
    """(dashboard address, request headers) from the Airflow connection."""
    from airflow.sdk import BaseHook

    from pipespec.tasklib.connections import base_url

    conn = BaseHook.get_connection(conn_id)
    return base_url(conn), ({"Authorization": f"Bearer {conn.password}"} if conn.password else {})


def collect_result(params: Mapping[str, Any], job_id: str, logs: str) -> dict[str, Any]:
    """What the `train` task returns once the job succeeded: the same shape a local train returns."""
    return {**runner_result(logs, f"Ray job {job_id}"), "ray_job_id": job_id}
