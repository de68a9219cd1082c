"""Training on Anyscale: the exact SubmitAnyscaleJob request for a `train` task.

`pipespec/airflow/lazy.py` calls `job_operator_kwargs(task_id, params, run=...)` when the
task runs, builds `SubmitAnyscaleJob(task_id=task_id, **kwargs)`, executes it (it
returns the Anyscale job id), then hands that id to `collect_result`, which turns
it into what a local `train` returns: {"version", "run_id", "model_type", ...}.

- Keras model types run the process local training runs,
  `python -m pipespec.tasklib.model.runner train --params-json <job>`, every word
  shell-quoted; the `pipespec` package travels as a py_module (the SDK uploads the
  worker's copy). The runner registers the model itself and prints its result as
  the last `PIPESPEC_RESULT {...}` line, which `collect_result` reads back from the
  job's logs.
- `llm_finetune` runs LLMForge (see `llm.py`); its training data is prepared here,
  at submission, from the published dataset. LLMForge knows nothing of MLflow, so
  `collect_result` registers the adapter (a pointer: base model, model tag, adapter
  URI, as `pipespec.*` version tags that rollout targets read) and moves
  `challenger` to it, as local training does.
"""

from __future__ import annotations

import functools
import json
import shlex
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pipespec.tasklib.compute import llm
from pipespec.tasklib.guard import enforce_train
from pipespec.tasklib.compute.kubernetes import RUNNER, passthrough_env, runner_job, to_json

POLL_INTERVAL_S = 60
START_SLACK_S = 600  # time Anyscale may take to start a cluster before the first attempt runs
PASSTHROUGH_ENV = ("MLFLOW_TRACKING_URI",)  # the job registers to the same MLflow as the rest of the run


@functools.cache  # one staged copy per worker process
def package_folder() -> Path:
    """The `pipespec` package as one folder holding every layer, which Ray uploads as one module: the
    installed package, or in a checkout a copy laid out as the wheel lays it out."""
    import pipespec

    installed = Path(pipespec.__file__).resolve().parent
    if (installed / "tasklib").is_dir():
        return installed
    staged = Path(tempfile.mkdtemp(prefix="pipespec-job-")) / "pipespec"
    skip = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(installed, staged, ignore=skip)
    for layer in ("schemas", "tasklib"):
        shutil.copytree(installed.parent / layer, staged / layer, ignore=skip)
    return staged


def job_operator_kwargs(task_id: str, params: Mapping[str, Any], *, run: Mapping[str, Any]) -> dict[str, Any]:
    """Keyword arguments for SubmitAnyscaleJob (besides task_id)."""
    from pipespec.schemas.models.common import parse_duration

    compute = params["compute"]
    if compute.get("backend") != "anyscale":
        raise ValueError(f"train task `{task_id}`: compute backend is `{compute.get('backend')}`, not anyscale")
    enforce_train(task_id, params, run.get("owner"))  # before fine-tuning data is written or anything is submitted
    image_uri = compute.get("image_uri")
    if params["model"]["type"] == "llm_finetune":
        entrypoint, job_env = _llm_job(params, run)
        py_modules = None
    elif params["model"]["type"] == "container":  # the team's image, command and args: the container contract
        from pipespec.tasklib.model import container

        config = container.settings(params["model"])
        entrypoint, job_env = shlex.join([*config.command, *config.args]), container.remote_env(dict(params), dict(run))
        image_uri, py_modules = config.image, None
    else:
        entrypoint, job_env = shlex.join([*RUNNER, "train", "--params-json", to_json(runner_job(params, run))]), {}
        py_modules = [str(package_folder())]
    timeout_s = parse_duration(compute.get("timeout") or "4h")
    max_retries = int(compute.get("max_retries", 1))
    return {
        "conn_id": compute.get("conn_id") or "anyscale_conn",
        "name": f"{params['pipeline']}-{task_id}",
        "entrypoint": entrypoint,
        "image_uri": image_uri,
        "containerfile": compute.get("containerfile"),
        "compute_config": compute.get("compute_config"),
        "working_dir": compute.get("working_dir"),
        "requirements": list(compute.get("requirements") or []) or None,
        # The policy keeps spec `env` off reserved names; the platform's variables win over it regardless.
        "env_vars": {**(compute.get("env") or {}), **passthrough_env(PASSTHROUGH_ENV), **job_env} or None,
        "py_modules": py_modules,
        "max_retries": max_retries,
        # Airflow waits for every attempt Anyscale makes; Anyscale stops each attempt at the spec's timeout.
        "job_timeout_seconds": timeout_s * (max_retries + 1) + START_SLACK_S,
        "poll_interval": POLL_INTERVAL_S,
        "wait_for_completion": True,
        "extra_job_params": {"timeout_s": timeout_s, "tags": {
            "app": "pipespec", "pipeline": params["pipeline"], "run_id": run["run_id"]}},
    }


def _llm_job(params: Mapping[str, Any], run: Mapping[str, Any]) -> tuple[str, dict[str, str]]:
    model = params["model"]
    data = llm.prepare_data(params["dataset"], model)
    config = llm.finetune_config(model, train_path=data["train_path"], valid_path=data["valid_path"])
    tag = llm.model_tag(llm.model_settings(model)["base_model"], params["pipeline"], run["run_id"])
    return llm.finetune_job(config, tag=tag, lora_uri=llm.lora_storage_uri(params))


def collect_result(params: Mapping[str, Any], run: Mapping[str, Any], operator_kwargs: Mapping[str, Any],
                   job_id: str) -> dict[str, Any]:
    """What the `train` task returns once the job succeeded: the same shape a local train returns."""
    if params["model"]["type"] == "llm_finetune":
        return _register_adapter(params, run, operator_kwargs, job_id)
    if params["model"]["type"] == "container":
        from pipespec.tasklib.model import container

        return {**container.collect_remote(dict(params), dict(run), f"Anyscale job {job_id}"), "anyscale_job_id": job_id}
    from anyscale_provider.hooks.anyscale import AnyscaleHook

    logs = AnyscaleHook(conn_id=operator_kwargs["conn_id"]).get_job_logs(job_id)
    return {**runner_result(logs, f"Anyscale job {job_id}"), "anyscale_job_id": job_id}


def runner_result(logs: str, what: str) -> dict[str, Any]:
    """The runner's result line (the last `PIPESPEC_RESULT {...}`) in a process's output."""
    from pipespec.tasklib.model.runner import ERROR_MARKER, RESULT_MARKER

    lines = logs.splitlines()
    for line in reversed(lines):
        if line.startswith(RESULT_MARKER):
            return json.loads(line[len(RESULT_MARKER):])
    errors = [line[len(ERROR_MARKER):] for line in lines if line.startswith(ERROR_MARKER)]
    raise RuntimeError(f"{what} printed no {RESULT_MARKER.strip()} line"
                       + (f"; the runner failed with {errors[-1]}" if errors else
                          f"; its last output: {lines[-1] if lines else '(none)'}"))


def _register_adapter(params: Mapping[str, Any], run: Mapping[str, Any], operator_kwargs: Mapping[str, Any],
                      job_id: str) -> dict[str, Any]:
    """Register the fine-tuned adapter as a model version (once per run) and make it the challenger."""
    import tempfile

    from pipespec.tasklib.model import registry

    pipeline = params["pipeline"]
    config = json.loads(operator_kwargs["env_vars"][llm.CONFIG_ENV])
    tag = llm.model_tag(config["model_id"], pipeline, run["run_id"])
    lora_uri = llm.lora_storage_uri(params)
    pointer = {"base_model": config["model_id"], "model_tag": tag, "lora_storage_uri": lora_uri,
               "adapter_uri": f"{lora_uri}/{tag}"}
    tags = {**{f"pipespec.{key}": value for key, value in pointer.items()},
            "pipespec.model_type": "llm_finetune", "pipespec.run_id": run["run_id"],
            "pipespec.dag_id": run.get("dag_id") or "", "pipespec.dataset": params["dataset"],
            "pipespec.train_path": config["train_path"], "pipespec.anyscale_job_id": job_id}
    registered = _registered_for(pipeline, tag)  # a retry of this run registered it already
    if registered is None:
        with tempfile.TemporaryDirectory(prefix="pipespec-adapter-") as directory:
            (Path(directory) / "adapter.json").write_text(json.dumps({**pointer, "llmforge_config": config}, indent=2))
            run_name = f"{run.get('dag_id', pipeline)} {run['run_id']}"
            registered = registry.register(pipeline, Path(directory), params=llm.model_settings(params["model"]),
                                           metrics={}, tags=tags, run_name=run_name)
    registry.set_alias(pipeline, registry.CHALLENGER, registered["version"])
    return {**registered, "model_type": "llm_finetune", "anyscale_job_id": job_id, **pointer,
            "train_path": config["train_path"], "valid_path": config.get("valid_path")}


def _registered_for(pipeline: str, tag: str) -> dict[str, str] | None:
    from mlflow.exceptions import MlflowException

    from pipespec.tasklib.model import registry

    try:
        found = registry.client().search_model_versions(f"name = '{pipeline}'")
    except MlflowException:
        return None
    mine = [v for v in found if (v.tags or {}).get("pipespec.model_tag") == tag]
    return {"version": str(mine[0].version), "run_id": mine[0].run_id} if mine else None
