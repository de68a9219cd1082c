"""Training and batch inference on Kubernetes: the exact KubernetesPodOperator request for a
`train` task and for each mapped `predict` shard (`predict_pod_kwargs`).

`pipespec/airflow/lazy.py` calls `pod_operator_kwargs(task_id, params, run=...)` when the
task runs and builds `KubernetesPodOperator(task_id=task_id, **kwargs)`. The pod
runs the process local training runs (`tasklib/model/runner.py`):

    python -m pipespec.tasklib.model.runner train --params-json <job>
                                         --result-file /airflow/xcom/return.json

`<job>` is what the local `train` step hands the runner, minus the local data
paths, so the pod reads the published dataset itself. A `container` model's pod runs
the team's image, command and args instead, with the container contract's variables
(tasklib/model/container.py); `collect_result` registers what it wrote. The runner writes its result
to `--result-file`; the operator's xcom sidecar reads that file, so the task
returns exactly what a local `train` returns.

Arguments travel as an argv list (no shell), and the real operator is executed
without rendering its templates, so `{{ ... }}` inside params stays literal text.
The platform policy (schemas/policy.py) is enforced first: a refused image,
namespace, service account, toleration, volume or connection never becomes a request.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Mapping
from typing import Any

from pipespec.tasklib.guard import enforce_inference, enforce_train

RUNNER = ["python", "-m", "pipespec.tasklib.model.runner"]
PREDICT = ["python", "-m", "pipespec.tasklib.inference"]  # a mapped inference shard's entry point
JOB_KEYS = ("pipeline", "dataset", "model", "holdout", "holdout_fraction", "spec_hash")  # train params the runner uses
XCOM_FILE = "/airflow/xcom/return.json"  # where KubernetesPodOperator's sidecar reads the result
GPU_RESOURCE = "nvidia.com/gpu"
# Worker settings the pod needs to reach the same registry and data: the MLflow server, and the
# storage root when a volume mounts the same directory in the pod (compute.volumes).
PASSTHROUGH_ENV = ("MLFLOW_TRACKING_URI", "PIPESPEC_STORAGE_ROOT")
# An inference pod also writes its shard's predictions into the run's work area, where `publish` reads them.
PREDICT_ENV = (*PASSTHROUGH_ENV, "PIPESPEC_WORK_URI")

_LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$")


def pod_operator_kwargs(task_id: str, params: Mapping[str, Any], *, run: Mapping[str, Any]) -> dict[str, Any]:
    """Keyword arguments for KubernetesPodOperator (besides task_id).

    `run` holds the RunContext fields of the Airflow task (dag_id, task_id, run_id, ...):
    the runner records the run as the model's lineage (and reuses a version an earlier try
    of the same run registered), and the run labels the pod.
    """
    compute = params["compute"]
    if compute.get("backend") != "kubernetes":
        raise ValueError(f"train task `{task_id}`: compute backend is `{compute.get('backend')}`, not kubernetes")
    enforce_train(task_id, params, run.get("owner"))  # before anything of the request is built
    if params["model"]["type"] == "container":  # the team's own image under the container contract
        from pipespec.tasklib.model import container

        config = container.settings(params["model"])
        image, cmds, arguments = config.image, list(config.command), list(config.args)
        # Only the contract's variables: the image gets no platform settings (MLflow, storage root);
        # pipespec registers what it wrote.
        env = container.remote_env(dict(params), dict(run))
        xcom = False  # pipespec reads the outputs from PIPESPEC_OUTPUT_URI (container.collect_remote)
    else:
        image, cmds = compute["image"], list(RUNNER)
        arguments = ["train", "--params-json", to_json(runner_job(params, run)), "--result-file", XCOM_FILE]
        env, xcom = passthrough_env(PASSTHROUGH_ENV), True
    return pod_request(compute, name=dns_label(f"{params['pipeline']}-{task_id}", max_length=50), image=image,
                       cmds=cmds, arguments=arguments, env=env, xcom=xcom, pipeline=params["pipeline"], run=run)


def predict_pod_kwargs(task_id: str, params: Mapping[str, Any], *, run: Mapping[str, Any]) -> dict[str, Any]:
    """KubernetesPodOperator arguments for one mapped `predict` shard (seed 003's inference pods).

    The pod runs the same step a worker would, `python -m pipespec.tasklib.inference predict`,
    with the shard and the champion's version as JSON arguments (no shell), and writes its result
    where the xcom sidecar reads it. It reaches the registry and the run's work area through the
    worker's MLflow URI and work URI (an s3:// prefix in production)."""
    compute = params["compute"]
    enforce_inference(task_id, compute, run.get("owner"))
    job = {"pipeline": params["pipeline"], "model": params["model"], "shard": params["shard"], "run": dict(run)}
    index = run.get("map_index", -1)
    return pod_request(
        compute, name=dns_label(f"{params['pipeline']}-{task_id}-{index}", max_length=50), image=compute["image"],
        cmds=list(PREDICT), arguments=["predict", "--params-json", to_json(job), "--result-file", XCOM_FILE],
        env=passthrough_env(PREDICT_ENV), xcom=True, pipeline=params["pipeline"], run=run)


def pod_request(compute: Mapping[str, Any], *, name: str, image: str, cmds: list[str], arguments: list[str],
                env: Mapping[str, str], xcom: bool, pipeline: str, run: Mapping[str, Any]) -> dict[str, Any]:
    """The pod every pipespec task on Kubernetes asks for, from the spec's `compute` settings."""
    from kubernetes.client import models as k8s

    from pipespec.schemas.models.common import parse_duration

    volumes = compute.get("volumes") or []
    return {
        "name": name,
        "image": image,
        "cmds": cmds,
        "arguments": arguments,
        "namespace": compute.get("namespace") or "default",
        "kubernetes_conn_id": compute.get("conn_id") or "kubernetes_default",
        "service_account_name": compute.get("service_account"),
        "container_resources": container_resources(compute.get("resources") or {}),
        "node_selector": dict(compute.get("node_selector") or {}),
        "tolerations": [k8s.V1Toleration(key=t["key"], operator=t.get("operator") or "Equal", value=t.get("value"),
                                         effect=t.get("effect")) for t in compute.get("tolerations") or []],
        "volumes": [k8s.V1Volume(name=v["name"], persistent_volume_claim=k8s.V1PersistentVolumeClaimVolumeSource(
            claim_name=v["claim"])) for v in volumes],
        "volume_mounts": [k8s.V1VolumeMount(name=v["name"], mount_path=v["mount_path"]) for v in volumes],
        "env_vars": [k8s.V1EnvVar(name=name, value=value) for name, value in env.items()],
        "labels": {"app": "pipespec", "pipeline": label_value(pipeline), "pipespec/run": label_value(run["run_id"])},
        "startup_timeout_seconds": parse_duration(compute.get("startup_timeout") or "10m"),
        "get_logs": True,
        "do_xcom_push": xcom,
        "on_finish_action": "delete_pod",
    }


def collect_result(params: Mapping[str, Any], run: Mapping[str, Any], operator_kwargs: Mapping[str, Any],
                   returned: Any) -> Any:
    """What the `train` task returns once the pod succeeded (pipespec/airflow/lazy.py calls it): the
    runner's result (the pod's xcom), or for a `container` model the version registered from what the
    code wrote to its output URI."""
    if (params.get("model") or {}).get("type") != "container":  # the runner's or an inference shard's xcom
        return returned
    from pipespec.tasklib.model import container

    return container.collect_remote(dict(params), dict(run), f"pod of {params['pipeline']}")


def runner_job(params: Mapping[str, Any], run: Mapping[str, Any]) -> dict[str, Any]:
    """The runner's `train` job for a remote process (shared with the Anyscale entrypoint)."""
    return {**{key: params[key] for key in JOB_KEYS if key in params},
            "run_id": run["run_id"], "dag_id": run["dag_id"]}


def to_json(value: Any) -> str:
    """Compact, key-sorted JSON: the same request serialises the same way."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def passthrough_env(names: tuple[str, ...]) -> dict[str, str]:
    """The set variables among `names`, from this process's environment."""
    return {name: os.environ[name] for name in names if os.environ.get(name)}


def container_resources(resources: Mapping[str, Any]) -> Any:
    """Requests == limits for cpu and memory (Guaranteed QoS: a training pod should not be evicted
    first); GPUs are an extended resource, set as a limit (Kubernetes copies it to requests)."""
    from kubernetes.client import models as k8s
    from kubernetes.utils import parse_quantity

    amounts = {"cpu": str(resources.get("cpu", "1")), "memory": str(resources.get("memory", "2Gi"))}
    for name, amount in amounts.items():
        try:
            parse_quantity(amount)
        except ValueError:
            raise ValueError(f"compute.resources.{name} `{amount}` is not a Kubernetes quantity "
                             f"(examples: 500m or 4 for cpu, 512Mi or 16Gi for memory)") from None
    limits = dict(amounts)
    gpu = int(resources.get("gpu") or 0)
    if gpu:
        limits[GPU_RESOURCE] = str(gpu)
    return k8s.V1ResourceRequirements(requests=amounts, limits=limits)


def render_pod(task_id: str, params: Mapping[str, Any], *, run: Mapping[str, Any]) -> Any:
    """The V1Pod the operator would create, built by the operator itself without a cluster."""
    from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator

    operator = KubernetesPodOperator(task_id=task_id, **pod_operator_kwargs(task_id, params, run=run))
    return operator.build_pod_request_obj(None, dry_run=True)


def validate_pod(pod: Any) -> dict[str, Any]:
    """Serialize the pod as the API client would send it, read it back into typed models
    (client-side validation of every field) and check nothing changed; returns the wire form."""
    from kubernetes.client import ApiClient

    api = ApiClient()
    wire = api.sanitize_for_serialization(pod)
    typed = api._ApiClient__deserialize(wire, "V1Pod")  # the client's own response decoder
    again = api.sanitize_for_serialization(typed)
    if again != wire:
        raise ValueError(f"pod {pod.metadata.name} does not survive a round trip through the Kubernetes models")
    return wire


def label_value(text: str) -> str:
    """A valid label value for any text; changed or shortened values get a hash so they stay distinct."""
    if _LABEL_VALUE.match(text):
        return text
    cleaned = re.sub(r"[^-A-Za-z0-9_.]", "_", text)[:54].strip("-_.")
    digest = hashlib.sha256(text.encode()).hexdigest()[:8]
    return f"{cleaned}-{digest}" if cleaned else digest


def dns_label(text: str, max_length: int = 63) -> str:
    """Lowercase RFC 1123 label (pod and Deployment names)."""
    cleaned = re.sub(r"[^a-z0-9-]+", "-", text.lower())[:max_length].strip("-")
    return cleaned or "pipespec"
