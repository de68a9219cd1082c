"""The container contract on Kubernetes and Anyscale: the exact requests for the x-ray team's own image
(pipelines/xray_own_code.yaml). The pod is rendered by the cncf-kubernetes provider's own operator and
validated through the Kubernetes client's models (not run); the Anyscale job goes through the real
SubmitAnyscaleJob operator to the SDK's fake API (the narrowest boundary). After either, pipespec
registers what the code wrote to its output URI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipespec.tasklib.compute import anyscale as anyscale_compute
from pipespec.tasklib.compute import kubernetes
from pipespec.tasklib.model import registry
from tests.tasklib.test_compute_backends import anyscale_api, clean_env, compiled_tasks, run_for  # noqa: F401

pytestmark = pytest.mark.airflow  # the cncf-kubernetes and Anyscale providers import Airflow

RUN = {**run_for("xray_own_code__train"), "owner": "ml-imaging"}
OUTPUT_URI = f"s3://xray-images/curated/_container/xray_own_code/{RUN['run_id'].replace(':', '_').replace('+', '_')}/"
PARAMS_DOC = {"contract": 1, "pipeline": "xray_own_code", "run_id": RUN["run_id"], "task": "classification",
              "features": ["image"], "label": "label",
              "hyperparams": {"head_epochs": 3, "fine_tune_epochs": 2, "learning_rate": 0.01, "seed": 1}}
CONTRACT_ENV = {"PIPESPEC_CONTRACT": "1", "PIPESPEC_MODE": "train", "PIPESPEC_PARAMS": json.dumps(PARAMS_DOC, sort_keys=True),
                "PIPESPEC_OUTPUT_URI": OUTPUT_URI, "PIPESPEC_TRAIN_DATA_URI": "s3://xray-images/curated/",
                "PIPESPEC_HOLDOUT_URI": "", "PIPESPEC_HOLDOUT_FRACTION": "0.2"}


@pytest.fixture
def xray():
    return compiled_tasks("xray_own_code.yaml")["train", "train"].params


def test_the_pod_runs_the_teams_image_command_and_contract_on_a_gpu(xray, clean_env):  # noqa: F811
    kwargs = kubernetes.pod_operator_kwargs("train", xray, run=RUN)
    assert (kwargs["image"], kwargs["cmds"], kwargs["arguments"]) == ("ghcr.io/example/xray-train:2.0.0",
                                                                       ["python", "train.py"], [])
    assert {e.name: e.value for e in kwargs["env_vars"]} == CONTRACT_ENV
    assert kwargs["container_resources"].limits == {"cpu": "4", "memory": "16Gi", "nvidia.com/gpu": "1"}
    assert kwargs["namespace"] == "ml-training" and kwargs["do_xcom_push"] is False
    wire = kubernetes.validate_pod(kubernetes.render_pod("train", xray, run=RUN))
    container = wire["spec"]["containers"][0]
    assert container["image"] == "ghcr.io/example/xray-train:2.0.0" and container["command"] == ["python", "train.py"]
    assert {"name": "PIPESPEC_MODE", "value": "train"} in container["env"]
    assert wire["spec"]["tolerations"][0]["key"] == "nvidia.com/gpu"


def anyscale_params(xray: dict) -> dict:
    return {**xray, "compute": {"backend": "anyscale", "conn_id": "anyscale_conn", "compute_config": "gpu-t4",
                                "timeout": "3h", "max_retries": 1}}


def test_the_anyscale_job_runs_the_teams_image_and_command(xray, clean_env, anyscale_api):  # noqa: F811
    from anyscale_provider.operators.anyscale import SubmitAnyscaleJob

    kwargs = anyscale_compute.job_operator_kwargs("train", anyscale_params(xray), run=RUN)
    assert (kwargs["entrypoint"], kwargs["image_uri"], kwargs["py_modules"]) == (
        "python train.py", "ghcr.io/example/xray-train:2.0.0", None)
    assert kwargs["env_vars"] == CONTRACT_ENV
    SubmitAnyscaleJob(task_id="train", **kwargs).execute(None)
    sent = anyscale_api.fake.submitted_job
    assert sent.config.entrypoint == "python train.py" and sent.config.runtime_env["env_vars"] == CONTRACT_ENV
    assert sent.config.compute_config_id == "cc-t4" and sent.config.max_retries == 1
    assert anyscale_api.fake.get_cluster_env_build_image_uri(sent.config.build_id).image_uri == kwargs["image_uri"]


def test_what_the_remote_code_wrote_becomes_the_challenger(xray, clean_env, tmp_path, monkeypatch):  # noqa: F811
    clean_env.setenv("PIPESPEC_STORAGE_ROOT", str(tmp_path / "store"))
    clean_env.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.chdir(tmp_path)
    # What the pod left at its output URI (PIPESPEC_STORAGE_ROOT stands in for S3).
    output = Path(tmp_path / "store" / OUTPUT_URI.removeprefix("s3://"))
    (output / "model").mkdir(parents=True)
    (output / "model" / "xray.keras").write_bytes(b"weights")
    (output / "metrics.json").write_text(json.dumps({"accuracy": 0.93}))
    kwargs = anyscale_compute.job_operator_kwargs("train", anyscale_params(xray), run=RUN)
    result = anyscale_compute.collect_result(anyscale_params(xray), RUN, kwargs, "job-1")
    assert result["version"] == "1" and result["anyscale_job_id"] == "job-1"
    assert result["train_metrics"] == {"accuracy": 0.93}
    assert registry.version_for("xray_own_code", "challenger") == "1"
    # The pod's task collects the same way (lazy.py calls the builder module's collect_result).
    pod_kwargs = kubernetes.pod_operator_kwargs("train", xray, run=RUN)
    assert kubernetes.collect_result(xray, RUN, pod_kwargs, None)["version"] == "2"
    keras_result = {"version": "7"}
    assert kubernetes.collect_result({**xray, "model": {"type": "keras_image_classifier"}}, RUN, {}, keras_result) \
        is keras_result
