"""Seed 003's inference pods: `inference.compute: kubernetes` maps one pod per shard.

The DAG runs for real under dag.test(): load_champion, plan_shards, the mapped predict tasks
(pipespec's LazyOperator resolving the champion and the shard, enforcing the policy and building
the exact KubernetesPodOperator request) and publish. Only the Kubernetes API is missing here, so
the pod operator is replaced at that boundary by `LocalPod`, which runs the pod's own command and
arguments (no shell) with the pod's environment as a local process and hands back the file the
xcom sidecar would read.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pyarrow as pa
import pytest

from pipespec.tasklib.compute import kubernetes
from tests.tasklib.test_inference import TEXTS, champion, read_published, tiny_models, write_input  # noqa: F401
from tests.tasklib.test_rollout import mlflow_registry  # noqa: F401 - fixture

SPEC = """\
pipeline: {name}
owner: ml-batch
train: {{dataset: "s3://{name}/curated/", model: {{type: keras_text_classifier}}}}
inference:
  input: "s3://{name}/incoming/"
  output: "s3://{name}/predictions/"
  format: jsonl
  shard_size: 3
  compute:
    backend: kubernetes
    image: ghcr.io/example/pipespec-runtime:0.9.0
    namespace: ml-batch
    resources: {{cpu: "2", memory: 4Gi}}
"""
REQUESTS: list[dict] = []


class LocalPod:
    """KubernetesPodOperator at the API boundary: the pod's command runs here, its result file is the xcom."""

    def __init__(self, task_id: str, **kwargs):
        REQUESTS.append(kwargs)
        self.kwargs = kwargs

    def execute(self, context):
        arguments = list(self.kwargs["arguments"])
        result = arguments.index("--result-file") + 1
        assert arguments[result] == kubernetes.XCOM_FILE
        arguments[result] = str(context["ti"].run_id).replace(":", "_") + f"-{context['ti'].map_index}.json"
        cmds = [sys.executable if self.kwargs["cmds"][0] == "python" else self.kwargs["cmds"][0],
                *self.kwargs["cmds"][1:]]
        env = {var.name: var.value for var in self.kwargs["env_vars"]}
        import os

        subprocess.run([*cmds, *arguments], env={**os.environ, **env}, check=True, timeout=120)
        with open(arguments[result]) as handle:
            return json.load(handle)


@pytest.fixture
def pods(monkeypatch):
    from pipespec.airflow import lazy

    monkeypatch.setitem(lazy.OPERATORS, "kubernetes_pod", f"{__name__}:LocalPod")
    REQUESTS.clear()
    return REQUESTS


def test_each_shard_is_predicted_in_its_own_pod(mlflow_registry, tiny_models, monkeypatch, pods):  # noqa: F811
    from pipespec.local.local_env import ensure_db
    from tests.support.airflow_harness import run_dag

    ensure_db()
    name = "pods_churn"
    monkeypatch.chdir(mlflow_registry)  # the stand-in's result files
    monkeypatch.setenv("PIPESPEC_WORK_URI", (mlflow_registry / "work").as_uri())
    pipelines = mlflow_registry / "pipelines"
    pipelines.mkdir()
    (pipelines / f"{name}.yaml").write_text(SPEC.format(name=name))
    version = champion(name, tiny_models["text"]["dir"])
    write_input(mlflow_registry / "storage" / name / "incoming", "jsonl", [7])

    run, states = run_dag(pipelines, f"{name}__inference", monkeypatch, mlflow_registry / "cache")

    assert run.state == "success", states
    labels = sorted(ti.rendered_map_index for ti in run.get_task_instances() if ti.task_id == "predict")
    assert labels == ["rows 0–2", "rows 3–5", "rows 6–6"]
    assert len(pods) == 3
    request = pods[0]
    assert request["image"] == "ghcr.io/example/pipespec-runtime:0.9.0" and request["namespace"] == "ml-batch"
    assert request["cmds"] == ["python", "-m", "pipespec.tasklib.inference"]
    job = json.loads(request["arguments"][2])
    assert request["arguments"][:2] == ["predict", "--params-json"]
    assert job["model"]["version"] == version and job["shard"]["label"].startswith("rows ")
    assert job["run"]["dag_id"] == f"{name}__inference" and job["run"]["task_id"] == "predict"
    assert {p["name"] for p in pods} == {f"pods-churn-predict-{i}" for i in range(3)}  # one pod per map index
    env = {var.name for var in request["env_vars"]}
    assert {"MLFLOW_TRACKING_URI", "PIPESPEC_WORK_URI", "PIPESPEC_STORAGE_ROOT"} <= env
    assert request["container_resources"].limits == {"cpu": "2", "memory": "4Gi"}
    assert request["do_xcom_push"] is True and request["on_finish_action"] == "delete_pod"
    latest, parts = read_published(f"s3://{name}/predictions/")
    table = pa.concat_tables(parts)
    assert table.column("id").to_pylist() == list(range(7))
    assert set(table.column("model_version").to_pylist()) == {version}


def test_a_hostile_inference_pod_is_refused_before_any_request(tmp_path):
    from pipespec.schemas.check import check_file

    spec = tmp_path / "evil.yaml"
    spec.write_text(SPEC.format(name="evil").replace("namespace: ml-batch", "namespace: kube-system")
                    + "    tolerations: [{key: node-role.kubernetes.io/control-plane, operator: Exists}]\n")
    checked = check_file(spec)
    problems = {(d.line, d.message) for d in checked.diagnostics if d.severity == "error"}
    assert any(line == 12 and "kube-system" in message for line, message in problems), problems
    assert any(line == 14 and "control plane" in message for line, message in problems), problems
    with pytest.raises(Exception, match="kube-system"):  # and at run time, a stale cache included
        kubernetes.predict_pod_kwargs("predict", {"pipeline": "evil", "compute": {
            "backend": "kubernetes", "image": "x:1", "namespace": "kube-system"}, "model": {}, "shard": {}},
            run={"run_id": "r", "dag_id": "evil__inference", "owner": "ml-batch", "map_index": 0})
