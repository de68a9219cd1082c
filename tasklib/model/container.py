"""`container` models: the team's own training and evaluation code, under the container contract v1
(docs/container-contract.md). This module is the contract's one definition: the environment the
code gets (`contract_env`), what it must leave behind (`read_outputs`), what its exit code means
(`outcome`), and the local runner that runs the same command as a subprocess.

Trust: the spec names an image, a command and arguments. On Kubernetes and Anyscale that command
runs inside the image, never on a worker. Locally the platform policy (`local_images`) maps the
image to a folder that stands in for it; the command must be a program inside that folder (or
`python <script in that folder>`), runs there without a shell, with a clean environment (the
contract's variables and the values of the connections the spec names, nothing of the worker's),
and is stopped after its timeout.
"""

from __future__ import annotations

import collections
import json
import logging
import math
import os
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pipespec.tasklib.context import RunContext
from pipespec.tasklib.errors import PermanentFailure

log = logging.getLogger(__name__)

CONTRACT_VERSION = 1
RETRYABLE_EXIT = 75  # EX_TEMPFAIL (sysexits.h): the code says trying again may help
MODEL_DIR, METRICS_FILE = "model", "metrics.json"
TAIL_LINES = 20
Mode = Literal["train", "evaluate"]


class ContainerFailed(RuntimeError):
    """The code failed in a way a retry may fix (exit 75, killed, timed out)."""


@dataclass(frozen=True)
class Outputs:
    """What a run left behind: its model directory (train) and its metrics."""

    model_dir: Path | None
    metrics: dict[str, float]
    mlflow_model: bool  # the model directory is an MLflow model (it holds `MLmodel`)


# --- the contract ------------------------------------------------------------------------------

def contract_env(mode: Mode, *, data_uri: str | None, holdout_uri: str | None, params: dict[str, Any],
                 output_uri: str, output_dir: str | None = None, model_dir: str | None = None,
                 holdout_fraction: float | None = None) -> dict[str, str]:
    """The variables every backend sets for the code (docs/container-contract.md)."""
    env = {"PIPESPEC_CONTRACT": str(CONTRACT_VERSION), "PIPESPEC_MODE": mode,
           "PIPESPEC_PARAMS": json.dumps(params, sort_keys=True), "PIPESPEC_OUTPUT_URI": output_uri,
           "PIPESPEC_TRAIN_DATA_URI": data_uri or "", "PIPESPEC_HOLDOUT_URI": holdout_uri or ""}
    if output_dir is not None:
        env["PIPESPEC_OUTPUT_DIR"] = output_dir
    if model_dir is not None:
        env["PIPESPEC_MODEL_DIR"] = model_dir
    if holdout_fraction is not None:
        env["PIPESPEC_HOLDOUT_FRACTION"] = str(holdout_fraction)
    return env


def remote_output_uri(dataset: str, pipeline: str, run_key: str) -> str:
    """Where remote code (a pod, a job) writes its outputs: run-scoped, beside the published dataset."""
    return f"{dataset.rstrip('/')}/_container/{pipeline}/{run_key}/"


def remote_env(params: dict[str, Any], run: dict[str, Any]) -> dict[str, str]:
    """The contract's variables for a pod or a job: remote URIs, params inline, connection values."""
    model = params["model"]
    config = settings(model)
    run_key = "".join(c if c.isalnum() or c in "-_." else "_" for c in run["run_id"])
    return {**connection_env(config.connections), **contract_env(
        "train", data_uri=params["dataset"], holdout_uri=params.get("holdout"),
        holdout_fraction=params.get("holdout_fraction"),
        params=params_document(model, pipeline=params["pipeline"], run_id=run["run_id"]),
        output_uri=remote_output_uri(params["dataset"], params["pipeline"], run_key))}


def params_document(model: dict[str, Any], *, pipeline: str, run_id: str) -> dict[str, Any]:
    """What PIPESPEC_PARAMS holds: the spec's hyperparams and the columns, never connection values."""
    config = settings(model)
    return {"contract": CONTRACT_VERSION, "pipeline": pipeline, "run_id": run_id, "task": config.task,
            "features": list(model.get("features") or []), "label": model.get("label"),
            "hyperparams": config.hyperparams}


def connection_env(connections: dict[str, str]) -> dict[str, str]:
    """`<PREFIX>_URI`, `_LOGIN`, `_PASSWORD`, `_HOST`, `_PORT`, `_SCHEMA` from each named Airflow connection
    (through Airflow's own lookup: secrets backends, env, metadata DB); values never come from the spec."""
    if not connections:
        return {}
    from airflow.sdk import BaseHook

    env: dict[str, str] = {}
    for prefix, conn_id in connections.items():
        conn = BaseHook.get_connection(conn_id)
        values = {"URI": conn.get_uri(), "LOGIN": conn.login, "PASSWORD": conn.password, "HOST": conn.host,
                  "PORT": conn.port, "SCHEMA": conn.schema}
        env.update({f"{prefix}_{key}": str(value) for key, value in values.items() if value not in (None, "")})
    return env


def outcome(code: int, what: str, tail: list[str]) -> None:
    """Raise what exit `code` means: 0 nothing; 75 or a signal a retryable ContainerFailed; any other
    non-zero a PermanentFailure (the same code on the same data would fail again)."""
    if code == 0:
        return
    last = "\n".join(tail)
    if code == RETRYABLE_EXIT or code < 0:
        cause = f"killed by signal {-code}" if code < 0 else f"exit code {code}: the code asks to be retried"
        raise ContainerFailed(f"{what} failed ({cause})\n--- last lines of its output ---\n{last}")
    raise PermanentFailure(f"{what} failed (exit code {code}; not retried: only exit code {RETRYABLE_EXIT} "
                           f"asks for a retry)\n--- last lines of its output ---\n{last}")


def read_outputs(output: Path, mode: Mode, what: str, metric: str | None = None) -> Outputs:
    """The run's outputs, or a PermanentFailure saying exactly what is missing."""
    metrics_path = output / METRICS_FILE
    if not metrics_path.is_file():
        raise PermanentFailure(f"{what} exited 0 but wrote no {METRICS_FILE} in $PIPESPEC_OUTPUT_DIR "
                               f"(contract v{CONTRACT_VERSION}: a JSON object of metric name -> number)")
    try:
        raw = json.loads(metrics_path.read_text())
    except ValueError as exc:
        raise PermanentFailure(f"{what}: {METRICS_FILE} is not JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise PermanentFailure(f"{what}: {METRICS_FILE} must be a JSON object of metric name -> number")
    metrics = {str(k): float(v) for k, v in raw.items()
               if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)}
    if metric is not None and metric not in metrics:
        raise PermanentFailure(f"{what}: {METRICS_FILE} has no finite `{metric}` (the deciding metric); "
                               f"it has: {', '.join(sorted(raw)) or 'nothing'}")
    model_dir = output / MODEL_DIR
    if mode == "train" and not (model_dir.is_dir() and any(model_dir.iterdir())):
        raise PermanentFailure(f"{what} exited 0 but wrote no model: $PIPESPEC_OUTPUT_DIR/{MODEL_DIR}/ is "
                               "missing or empty (an MLflow model, or any model files)")
    return Outputs(model_dir if model_dir.is_dir() else None, metrics, (model_dir / "MLmodel").is_file())


# --- the local runner ----------------------------------------------------------------------------

def local_folder(image: str) -> Path:
    """The folder the platform policy maps `image` to for local runs; PermanentFailure without one."""
    from pipespec.schemas.policy import active_policy

    folder = active_policy().local_image_folder(image)
    if folder is None or not Path(folder).is_dir():
        raise PermanentFailure(f"image `{image}` cannot run locally: the platform policy's `local_images` maps no "
                               "folder to it (local runs execute only code the platform team placed there)")
    resolved = Path(folder).resolve()
    specs = os.environ.get("PIPESPEC_PIPELINES")
    if specs and resolved.is_relative_to(Path(specs).resolve()):
        # Spec authors can edit everything under the specs folder: code there is theirs, not the platform's.
        raise PermanentFailure(f"image `{image}` maps to a folder inside the specs folder, which spec authors can "
                               "edit; the platform policy must map images to folders outside it")
    return resolved


def local_argv(command: list[str], args: list[str], folder: Path) -> list[str]:
    """The argv of a local run: a program inside `folder`, or `python <script inside folder>`.

    Anything else (`/bin/sh`, `python -c ...`, `../x`) is refused: locally the command runs on a worker."""
    def inside(relative: str) -> Path:
        path = (folder / relative).resolve()
        if os.path.isabs(relative) or not path.is_relative_to(folder) or not path.is_file():
            raise PermanentFailure(f"command `{relative}` is not a file inside the folder that stands in for the "
                                   "image: local runs execute only the image's own code")
        return path

    if command[0] == "python":
        if len(command) < 2 or command[1].startswith("-"):
            raise PermanentFailure("locally, `python` must be followed by a script inside the image folder "
                                   "(no interpreter options)")
        return [sys.executable, str(inside(command[1])), *command[2:], *args]
    program = inside(command[0])
    if not os.access(program, os.X_OK):
        raise PermanentFailure(f"`{command[0]}` is not executable")
    return [str(program), *command[1:], *args]


def run_local(argv: list[str], folder: Path, env: dict[str, str], timeout_s: int, what: str) -> None:
    """Run argv in `folder` with exactly `env` (plus a minimal PATH/HOME/locale), no shell; stream the
    output to the log; raise what the exit code means (see `outcome`)."""
    home = Path(tempfile.mkdtemp(prefix="pipespec-home-"))
    clean = {"PATH": os.defpath, "HOME": str(home), "LANG": "C.UTF-8", "PYTHONUNBUFFERED": "1",
             "PYTHONNOUSERSITE": "1", "TF_CPP_MIN_LOG_LEVEL": "2", **env}
    tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
    process = subprocess.Popen(argv, cwd=folder, env=clean, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, errors="replace", start_new_session=True)
    timed_out = threading.Event()

    def expire() -> None:
        timed_out.set()
        _stop(process)

    timer = threading.Timer(timeout_s, expire)
    timer.start()
    try:
        assert process.stdout is not None
        for line in process.stdout:
            line = line.rstrip()
            log.info("%s | %s", what, line)
            tail.append(line)
        code = process.wait()
    finally:
        timer.cancel()
        _stop(process)  # the worker was interrupted: leave no orphan training
    if timed_out.is_set():
        raise ContainerFailed(f"{what} ran longer than its timeout ({timeout_s}s) and was stopped")
    outcome(code, what, list(tail))


def _stop(process: subprocess.Popen) -> None:
    import signal

    if process.poll() is None:
        try:
            os.killpg(process.pid, signal.SIGTERM)  # its own session: children go too
            process.wait(timeout=10)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            process.wait()


# --- the steps' work -------------------------------------------------------------------------------

def settings(model: dict[str, Any]) -> Any:
    """The validated ContainerParams of a `container` model."""
    from pipespec.schemas import plugins

    return plugins.check_params("model", "container", model.get("params") or {})


def train(ctx: RunContext, *, pipeline: str, dataset: str, model: dict[str, Any], holdout: str | None,
          holdout_fraction: float, spec_hash: str | None) -> dict[str, Any]:
    """Train locally: the team's command on the training rows; register its model as the challenger."""
    import pyarrow.parquet as pq

    from pipespec.schemas.models.common import parse_duration
    from pipespec.tasklib.model.data import training_data

    from pipespec.tasklib.guard import enforce_train

    # The policy as it stands now (the image allowlist, the connections), not as it was at check time.
    enforce_train(ctx.task_id, {"compute": {"backend": "local"}, "model": model, "dataset": dataset}, ctx.owner)
    config = settings(model)
    folder = local_folder(config.image)
    argv = local_argv(config.command, config.args, folder)
    data = training_data(dataset, model, holdout, holdout_fraction)
    what = f"container {config.image} (train)"
    job = {"pipeline": pipeline, "run_id": ctx.run_id, "dag_id": ctx.dag_id, "dataset": dataset, "model": model,
           "holdout": holdout, "holdout_fraction": holdout_fraction, "spec_hash": spec_hash}
    with tempfile.TemporaryDirectory(prefix="pipespec-container-") as work:
        data_path, output = Path(work) / "train.parquet", Path(work) / "output"
        output.mkdir()
        pq.write_table(data.train, data_path)
        env = {**connection_env(config.connections), **contract_env(
            "train", data_uri=data_path.as_uri(), holdout_uri=holdout,
            params=params_document(model, pipeline=pipeline, run_id=ctx.run_id),
            output_uri=output.as_uri(), output_dir=str(output))}
        run_local(argv, folder, env, parse_duration(config.timeout), what)
        registered = register_outputs(output, job, data.manifest, what)
    return {**registered, "dataset_run": data.manifest.get("run_id"), "rows_train": data.train.num_rows,
            "rows_holdout": data.holdout_rows}


def register_outputs(output: Path, job: dict[str, Any], manifest: dict[str, Any], what: str) -> dict[str, Any]:
    """Check a training run's outputs, register its model with lineage and make it the challenger."""
    from pipespec.tasklib.model import registry
    from pipespec.tasklib.model.train import lineage_tags

    model = job["model"]
    config = settings(model)
    outputs = read_outputs(output, "train", what)
    assert outputs.model_dir is not None
    if config.evaluation.by == "builtin" and not outputs.mlflow_model:
        raise PermanentFailure(f"{what}: `evaluation.by: builtin` loads the model with MLflow, but "
                               f"{MODEL_DIR}/ holds no MLmodel; save an MLflow model or use `by: command`")
    meta = {"model_type": "container", "task": config.task, "features": list(model["features"]),
            "label": model["label"], "image": config.image, "contract": CONTRACT_VERSION}
    (outputs.model_dir / "pipespec.json").write_text(json.dumps(meta, indent=2))
    registered = registry.register(
        job["pipeline"], outputs.model_dir, tags=lineage_tags(job, manifest, config.hyperparams),
        run_name=f"{job.get('dag_id') or job['pipeline']} {job['run_id']}",
        params={**config.hyperparams, "image": config.image, "model_type": "container"},
        metrics={f"train_{k}": v for k, v in outputs.metrics.items()})
    registry.set_alias(job["pipeline"], registry.CHALLENGER, registered["version"])
    return {**registered, "model_type": "container", "train_metrics": outputs.metrics}


def collect_remote(params: dict[str, Any], run: dict[str, Any], what: str) -> dict[str, Any]:
    """After a pod or a job succeeded: fetch what it wrote to its output URI and register it."""
    from pyarrow import fs

    from pipespec.tasklib.storage import filesystem

    run_key = "".join(c if c.isalnum() or c in "-_." else "_" for c in run["run_id"])
    source, path = filesystem(remote_output_uri(params["dataset"], params["pipeline"], run_key))
    job = {key: params.get(key) for key in ("pipeline", "dataset", "model", "holdout", "holdout_fraction",
                                            "spec_hash")}
    job.update(run_id=run["run_id"], dag_id=run.get("dag_id"))
    with tempfile.TemporaryDirectory(prefix="pipespec-container-") as work:
        fs.copy_files(path, work, source_filesystem=source, destination_filesystem=fs.LocalFileSystem())
        return register_outputs(Path(work), job, {}, what)


def score_with_command(model: dict[str, Any], model_dir: Path, holdout_table: Any, metric: str, *, pipeline: str,
                       run_id: str, version: str) -> dict[str, float]:
    """Run the team's command in evaluate mode on one saved model and the holdout; its metrics."""
    import pyarrow.parquet as pq

    from pipespec.schemas.models.common import parse_duration

    config = settings(model)
    folder = local_folder(config.image)
    argv = local_argv(config.command, config.evaluation.args, folder)
    what = f"container {config.image} (evaluate v{version})"
    with tempfile.TemporaryDirectory(prefix="pipespec-container-eval-") as work:
        workdir = Path(work)
        holdout_path, output = workdir / "holdout.parquet", workdir / "output"
        output.mkdir()
        pq.write_table(holdout_table, holdout_path)
        env = {**connection_env(config.connections), **contract_env(
            "evaluate", data_uri=None, holdout_uri=holdout_path.as_uri(),
            params=params_document(model, pipeline=pipeline, run_id=run_id), output_uri=output.as_uri(),
            output_dir=str(output), model_dir=str(model_dir))}
        run_local(argv, folder, env, parse_duration(config.timeout), what)
        return read_outputs(output, "evaluate", what, metric).metrics
