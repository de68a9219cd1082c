"""Remote training backends and serving targets: the exact requests pipespec sends.

Kubernetes and Anyscale cannot run here, so these tests build the requests from
the example specs, construct the REAL provider operators with them, and stop only
at the wire: the Kubernetes pod is built by KubernetesPodOperator itself and
validated through the Kubernetes client's models; Anyscale jobs and services are
executed by the real operators, hook and SDK against the SDK's own in-memory fake
of the Anyscale API (`FakeAnyscaleClient`), which records the request it got.
Shell entrypoints are run by a real /bin/sh with stub programs on PATH.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
import stat
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from pipespec.tasklib.compute import anyscale as anyscale_compute
from pipespec.tasklib.compute import kubernetes, llm
from pipespec.tasklib.rollout import targets

pytestmark = pytest.mark.airflow  # Airflow's hooks and connections

from tests.support.paths import ROOT  # noqa: E402 - one home for where the checkout is
RUN_ID = "manual__2026-01-05T10:00:00+00:00"
HOSTILE = "it's \"quoted\" $(touch pwned) `touch pwned` ; touch pwned && echo {{ conn.aws_default.password }}"
LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$")
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


def sha8(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def run_for(dag_id: str) -> dict:
    return {"dag_id": dag_id, "task_id": "train", "run_id": RUN_ID, "map_index": -1, "try_number": 1,
            "logical_date": "2026-01-05T10:00:00+00:00", "data_interval_start": None, "data_interval_end": None}


def runner_job(params: dict, dag_id: str = "xray_classifier__train") -> dict:
    """What the local `train` step hands the runner, minus its local data paths."""
    optional = {k: params[k] for k in ("holdout", "holdout_fraction", "spec_hash") if k in params}
    return {"pipeline": params["pipeline"], "dataset": params["dataset"], "model": params["model"], **optional,
            "run_id": RUN_ID, "dag_id": dag_id}


def compiled_tasks(spec: str) -> dict:
    from pipespec.schemas.check import check_file
    from pipespec.compiler.compile import compile_checked

    checked = check_file(ROOT / "pipelines" / spec)
    assert checked.ok, [d.message for d in checked.diagnostics]
    return {(dag.dag_id.rsplit("__", 1)[1], task.task_id): task for dag in compile_checked(checked).dags
            for task in dag.tasks}


@pytest.fixture(scope="module")
def xray() -> dict:
    return compiled_tasks("xray_classifier.yaml")


@pytest.fixture(scope="module")
def feedback() -> dict:
    return compiled_tasks("feedback_llm_finetune.yaml")


@pytest.fixture
def clean_env(monkeypatch):
    for name in kubernetes.PASSTHROUGH_ENV + ("PIPESPEC_STORAGE_ROOT",):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def stub_program(directory: Path, name: str, record: Path) -> None:
    """An executable that records its argv as JSON."""
    path = directory / name
    path.write_text(f"#!{sys.executable}\nimport json, sys\n"
                    f"json.dump(sys.argv[1:], open({str(record)!r}, 'w'))\n")
    path.chmod(path.stat().st_mode | stat.S_IEXEC)


def run_shell(command: str, cwd: Path, stubs: list[str], env: dict | None = None) -> list[str]:
    """Run `command` in a real shell with stub programs first on PATH; return the stub's argv."""
    bin_dir, record = cwd / "bin", cwd / "argv.json"
    bin_dir.mkdir(exist_ok=True)
    for name in stubs:
        stub_program(bin_dir, name, record)
    full_env = {"PATH": f"{bin_dir}:/usr/bin:/bin", **(env or {})}
    subprocess.run(["/bin/sh", "-c", command], cwd=cwd, env=full_env, check=True, timeout=30)
    assert not (cwd / "pwned").exists(), "spec text was executed by the shell"
    return json.loads(record.read_text())


# --- Kubernetes training pod ---------------------------------------------------------------

def test_pod_kwargs_for_the_xray_spec_are_exact(xray, clean_env):
    from kubernetes.client import models as k8s

    clean_env.setenv("MLFLOW_TRACKING_URI", "http://mlflow.ml-platform:5000")
    params = xray["train", "train"].params
    assert xray["train", "train"].kind == "kubernetes_pod"
    run = run_for("xray_classifier__train")
    kwargs = kubernetes.pod_operator_kwargs("train", params, run=run)

    assert kwargs == {
        "name": "xray-classifier-train",
        "image": "ghcr.io/example/xray-train:1.4.2",
        "cmds": ["python", "-m", "pipespec.tasklib.model.runner"],
        "arguments": ["train", "--params-json", kubernetes.to_json(runner_job(params)),
                      "--result-file", "/airflow/xcom/return.json"],
        "namespace": "ml-training",
        "kubernetes_conn_id": "kubernetes_default",
        "service_account_name": None,
        "container_resources": k8s.V1ResourceRequirements(
            requests={"cpu": "4", "memory": "16Gi"}, limits={"cpu": "4", "memory": "16Gi", "nvidia.com/gpu": "1"}),
        "node_selector": {"node.kubernetes.io/instance-type": "g4dn.xlarge"},
        "tolerations": [k8s.V1Toleration(key="nvidia.com/gpu", operator="Exists", effect="NoSchedule")],
        "volumes": [k8s.V1Volume(name="training-data", persistent_volume_claim=k8s.V1PersistentVolumeClaimVolumeSource(
            claim_name="xray-pvc"))],
        "volume_mounts": [k8s.V1VolumeMount(name="training-data", mount_path="/data")],
        "env_vars": [k8s.V1EnvVar(name="MLFLOW_TRACKING_URI", value="http://mlflow.ml-platform:5000")],
        "labels": {"app": "pipespec", "pipeline": "xray_classifier",  # `:` and `+` are not allowed in labels
                   "pipespec/run": f"manual__2026-01-05T10_00_00_00_00-{sha8(RUN_ID)}"},
        "startup_timeout_seconds": 600,
        "get_logs": True,
        "do_xcom_push": True,
        "on_finish_action": "delete_pod",
    }
    # The runner reads the dataset itself: no compute settings, no local data paths.
    assert json.loads(kwargs["arguments"][2]) == runner_job(params)


def test_rendered_pod_is_valid_and_schedules_onto_a_gpu_node(xray, clean_env):
    from kubernetes.utils import parse_quantity

    pod = kubernetes.render_pod("train", xray["train", "train"].params, run=run_for("xray_classifier__train"))
    wire = kubernetes.validate_pod(pod)

    spec = wire["spec"]
    base, sidecar = spec["containers"]
    assert (base["name"], sidecar["name"]) == ("base", "airflow-xcom-sidecar")  # result comes back via XCom
    assert base["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert parse_quantity(base["resources"]["requests"]["memory"]) == 16 * 2**30
    assert parse_quantity(base["resources"]["requests"]["cpu"]) == 4
    assert spec["nodeSelector"] == {"node.kubernetes.io/instance-type": "g4dn.xlarge"}
    assert spec["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    assert {"name": "training-data", "persistentVolumeClaim": {"claimName": "xray-pvc"}} in spec["volumes"]
    assert {"name": "training-data", "mountPath": "/data"} in base["volumeMounts"]
    assert spec["restartPolicy"] == "Never"
    assert wire["metadata"]["namespace"] == "ml-training"
    assert DNS_LABEL.match(wire["metadata"]["name"]) and wire["metadata"]["name"].startswith("xray-classifier-train-")
    assert all(LABEL_VALUE.match(v) for v in wire["metadata"]["labels"].values())
    assert wire["metadata"]["labels"]["app"] == "pipespec"


def test_pod_validation_rejects_what_the_api_would(xray, clean_env):
    pod = kubernetes.render_pod("train", xray["train", "train"].params, run=run_for("xray_classifier__train"))
    pod.spec.containers[0]._name = None  # bypass the model's setter, as a loose dict in a pod template would
    with pytest.raises(ValueError, match="name"):
        kubernetes.validate_pod(pod)


def test_bad_resource_quantity_names_the_field(xray, clean_env):
    params = copy.deepcopy(xray["train", "train"].params)
    params["compute"]["resources"]["memory"] = "16GB"
    with pytest.raises(ValueError, match=r"compute\.resources\.memory `16GB`"):
        kubernetes.pod_operator_kwargs("train", params, run=run_for("d"))


def test_hostile_params_reach_the_pod_as_literal_text(xray, clean_env):
    params = copy.deepcopy(xray["train", "train"].params)
    params["model"]["params"]["note"] = HOSTILE
    pod = kubernetes.render_pod("train", params, run=run_for("xray_classifier__train"))
    wire = kubernetes.validate_pod(pod)
    args = wire["spec"]["containers"][0]["args"]
    assert json.loads(args[args.index("--params-json") + 1])["model"]["params"]["note"] == HOSTILE
    assert wire["spec"]["containers"][0]["command"] == ["python", "-m", "pipespec.tasklib.model.runner"]


@pytest.mark.parametrize("text", [RUN_ID, "scheduled__2026-01-05T10:00:00.123456+00:00", "x" * 200, "-lead", "_"])
def test_label_values_are_valid_and_distinct(text):
    value = kubernetes.label_value(text)
    assert LABEL_VALUE.match(value) and len(value) <= 63
    assert value != kubernetes.label_value(text + "+")


# --- Anyscale: the SDK's fake API behind the real hook ---------------------------------------------

@pytest.fixture
def anyscale_api(monkeypatch):
    from anyscale import Anyscale
    from anyscale._private.anyscale_client import FakeAnyscaleClient
    from anyscale._private.anyscale_client.fake_anyscale_client import OPENAPI_NO_VALIDATION
    from anyscale._private.sdk.timer import FakeTimer
    from anyscale.cli_logger import BlockLogger
    from anyscale.client.openapi_client.models import (
        ComputeTemplateConfig, DecoratedComputeTemplate, HaJobStates, RayRuntimeEnvConfig, ServiceEventCurrentState,
    )

    fake = FakeAnyscaleClient()
    for config_id, name in (("cc-llm", "llm-finetune-a10g"), ("cc-t4", "gpu-t4")):  # registered in the account
        config = ComputeTemplateConfig(cloud_id=fake.DEFAULT_CLOUD_ID, local_vars_configuration=OPENAPI_NO_VALIDATION)
        fake.add_compute_config(DecoratedComputeTemplate(
            id=config_id, name=name, config=config, local_vars_configuration=OPENAPI_NO_VALIDATION))

    # The fake leaves jobs pending and services starting forever, and keeps the runtime env as the
    # request's dict; the real API reports a typed runtime env and, later, the final state.
    submit, rollout = fake.submit_job, fake.rollout_service

    def submit_and_succeed(model):
        job = submit(model)
        job.last_job_run_id = f"{job.id}-run-1"
        fake.add_job_run_logs(job.last_job_run_id, backend.printed)  # what the job's process printed
        job.config = copy.deepcopy(model.config)
        known = {k: v for k, v in job.config.runtime_env.items() if k in RayRuntimeEnvConfig.openapi_types}
        job.config.runtime_env = RayRuntimeEnvConfig(**known, local_vars_configuration=OPENAPI_NO_VALIDATION)
        job.state.current_state = HaJobStates.SUCCESS
        return job

    def rollout_and_run(model):
        service = rollout(model)
        service.current_state = ServiceEventCurrentState.RUNNING
        return service

    fake.submit_job, fake.rollout_service = submit_and_succeed, rollout_and_run
    logins = []

    def client(*, auth_token, headers):  # replaces only the SDK client the hook would construct
        logins.append((auth_token, headers))
        return Anyscale._init_private(client=fake, logger=BlockLogger(), timer=FakeTimer())

    monkeypatch.setattr("anyscale_provider.hooks.anyscale.Anyscale", client)
    monkeypatch.setenv("AIRFLOW_CONN_ANYSCALE_CONN", json.dumps({"conn_type": "anyscale", "password": "fake-token"}))
    backend = SimpleNamespace(fake=fake, logins=logins, printed="")
    return backend


@pytest.fixture
def storage(tmp_path, clean_env):
    clean_env.setenv("PIPESPEC_STORAGE_ROOT", str(tmp_path / "storage"))
    return tmp_path / "storage"


def publish(uri: str, rows: list[dict]) -> str:
    """A published dataset as the data DAG leaves it; returns its run prefix."""
    import pyarrow as pa

    from pipespec.tasklib.published import mark_latest, run_prefix, write_manifest
    from pipespec.tasklib.storage import write_table

    prefix = run_prefix(uri, "scheduled__2026-01-04")
    ref = write_table(pa.Table.from_pylist(rows), f"{prefix}/data.parquet")
    write_manifest(prefix, {"data": ref.to_dict(), "run_id": "scheduled__2026-01-04"})
    mark_latest(uri, prefix)
    return prefix


VIGGO = [{"input": f"What makes game {i} from 2005 so good?", "output": f"request_explanation(name[G{i}])",
          "extra": i} for i in range(40)]


def test_llm_job_kwargs_for_the_feedback_spec_are_exact(feedback, storage, clean_env):
    clean_env.setenv("MLFLOW_TRACKING_URI", "http://mlflow:5000")
    task = feedback["train", "train"]
    assert task.kind == "anyscale_job"
    prefix = publish("s3://feedback/curated/", VIGGO)
    kwargs = anyscale_compute.job_operator_kwargs("train", task.params, run=run_for("feedback_llm_finetune__train"))

    tag = f"mistralai/Mistral-7B-Instruct-v0.1:feedback-llm-finetune-{sha8(RUN_ID)}"
    config = json.loads(kwargs["env_vars"].pop("PIPESPEC_LLMFORGE_CONFIG"))
    assert kwargs == {
        "conn_id": "anyscale_conn",
        "name": "feedback_llm_finetune-train",
        "entrypoint": "printenv PIPESPEC_LLMFORGE_CONFIG > pipespec-llmforge.yaml && llmforge dev finetune "
                      f"pipespec-llmforge.yaml --model-tag={tag} "
                      "--forward-best-checkpoint-remote-uri=s3://feedback/curated/_lora",
        "image_uri": "anyscale/ray-llm:2.44.0-py311-cu124",
        "containerfile": None,
        "compute_config": "llm-finetune-a10g",
        "working_dir": "s3://feedback/llm/workdir/",
        "requirements": ["llmforge==0.5.9"],
        "env_vars": {"MLFLOW_TRACKING_URI": "http://mlflow:5000"},
        "py_modules": None,
        "max_retries": 1,
        "job_timeout_seconds": 6 * 3600 * 2 + 600,
        "poll_interval": 60,
        "wait_for_completion": True,
        "extra_job_params": {"timeout_s": 6 * 3600, "tags": {
            "app": "pipespec", "pipeline": "feedback_llm_finetune", "run_id": RUN_ID}},
    }
    assert config == {
        "model_id": "mistralai/Mistral-7B-Instruct-v0.1",
        "train_path": f"{prefix}/finetune/train.jsonl",
        "valid_path": f"{prefix}/finetune/valid.jsonl",
        "context_length": 512, "num_devices": 4, "num_epochs": 3,
        "train_batch_size_per_device": 4, "eval_batch_size_per_device": 4, "learning_rate": 1e-4,
        "padding": "longest", "num_checkpoints_to_keep": 1,
        "lora_config": {"r": 8, "lora_alpha": 16, "lora_dropout": 0.05, "target_modules": llm.LORA_TARGET_MODULES,
                        "task_type": "CAUSAL_LM", "bias": "none", "modules_to_save": []},
    }
    # The JSONL LLMForge reads: every published row once, in chat form, split stably.
    from pipespec.tasklib.storage import read_text

    written = [json.loads(line) for name in ("train", "valid")
               for line in read_text(config[f"{name}_path"]).splitlines()]
    assert sorted(written, key=json.dumps) == sorted(llm.to_finetune_records(VIGGO, "input", "output"), key=json.dumps)
    assert 0 < len(read_text(config["valid_path"]).splitlines()) < 20


def test_llm_entrypoint_survives_a_real_shell_with_hostile_config(tmp_path):
    config = llm.finetune_config({"params": {"base_model": "org/model", "system_prompt": HOSTILE}},
                                 train_path="s3://b/it's $(touch pwned)/train.jsonl", valid_path=None)
    entrypoint, env = llm.finetune_job(config, tag="org/model:x`touch pwned`", lora_uri="s3://b/l o r a;touch pwned")
    argv = run_shell(entrypoint, tmp_path, ["llmforge"], env)
    assert argv == ["dev", "finetune", "pipespec-llmforge.yaml", "--model-tag=org/model:x`touch pwned`",
                    "--forward-best-checkpoint-remote-uri=s3://b/l o r a;touch pwned"]
    import yaml

    assert yaml.safe_load((tmp_path / "pipespec-llmforge.yaml").read_text()) == config  # JSON is YAML


def test_llm_data_problems_are_reported_with_their_place(feedback, storage):
    params = feedback["train", "train"].params
    publish("s3://feedback/curated/", [{"input": "fine", "output": "ok()"}, {"input": "  ", "output": "x()"}])
    with pytest.raises(ValueError, match=r"row 1: column `input` needs non-empty text"):
        anyscale_compute.job_operator_kwargs("train", params, run=run_for("d"))
    publish("s3://feedback/curated/", [{"text": "a", "output": "b"}])
    with pytest.raises(ValueError, match=r"data.parquet: no column `input` \(columns: text, output\)"):
        anyscale_compute.job_operator_kwargs("train", params, run=run_for("d"))


def test_llm_job_without_a_publication_fails_clearly(feedback, storage):
    with pytest.raises(FileNotFoundError, match="s3://feedback/curated/: nothing published yet"):
        anyscale_compute.job_operator_kwargs("train", feedback["train", "train"].params, run=run_for("d"))


def test_llm_unknown_model_param_is_named():
    with pytest.raises(ValueError, match=r"model.params.lora_rnak is not a parameter of llm_finetune"):
        llm.model_settings({"params": {"base_model": "m", "lora_rnak": 4}})
    with pytest.raises(ValueError, match="base_model is required"):
        llm.model_settings({"params": {}})


def test_finetune_records_are_chat_conversations():
    rows = [{"q": "Which 2005 games are great?", "a": "request_explanation(release_year[2005])", "other": 1}]
    assert llm.to_finetune_records(rows, "q", "a") == [{"messages": [
        {"role": "user", "content": "Which 2005 games are great?"},
        {"role": "assistant", "content": "request_explanation(release_year[2005])"}]}]
    assert llm.to_finetune_records(rows, "q", "a", system_prompt="Extract the function call.")[0]["messages"][0] == {
        "role": "system", "content": "Extract the function call."}
    with pytest.raises(ValueError, match=r"row 0: column `a` needs non-empty text for fine-tuning, found int 5"):
        llm.to_finetune_records([{"q": "x", "a": 5}], "q", "a")
    with pytest.raises(ValueError, match=r"row 2: column `q` needs non-empty text for fine-tuning, found missing"):
        llm.to_finetune_records([{"q": "x", "a": "y"}] * 2 + [{"a": "y"}], "q", "a")


def test_split_is_stable_and_independent_of_row_order():
    records = llm.to_finetune_records([{"i": f"in {n}", "o": f"out {n}"} for n in range(500)], "i", "o")
    train, valid = llm.split_records(records, 0.2, seed=3)
    again_train, again_valid = llm.split_records(list(reversed(records)), 0.2, seed=3)
    assert sorted(map(json.dumps, valid)) == sorted(map(json.dumps, again_valid))
    assert len(train) + len(valid) == 500 and 60 < len(valid) < 140
    assert llm.split_records(records, 0.2, seed=4)[1] != valid  # the seed matters
    with pytest.raises(ValueError, match="no training examples left"):
        llm.split_records([], 0.1)


def keras_on_anyscale_params(xray) -> dict:
    from pipespec.schemas.models.train import AnyscaleCompute

    params = copy.deepcopy(xray["train", "train"].params)
    params["compute"] = AnyscaleCompute(backend="anyscale", image_uri="anyscale/ray:2.44.0-py311",
                                        compute_config="gpu-t4", requirements=["tensorflow-cpu==2.21.0"],
                                        env={"TF_CPP_MIN_LOG_LEVEL": "2"}, timeout="2h", max_retries=0).model_dump()
    params["model"]["params"]["note"] = HOSTILE
    return params


def test_keras_job_runs_the_local_entry_point_and_quotes_every_word(xray, storage, clean_env, tmp_path):
    clean_env.setenv("MLFLOW_TRACKING_URI", "http://mlflow:5000")
    params, run = keras_on_anyscale_params(xray), run_for("xray_classifier__train")
    kwargs = anyscale_compute.job_operator_kwargs("train", params, run=run)
    assert {k: v for k, v in kwargs.items() if k != "entrypoint"} == {
        "conn_id": "anyscale_conn", "name": "xray_classifier-train", "image_uri": "anyscale/ray:2.44.0-py311",
        "containerfile": None, "compute_config": "gpu-t4", "working_dir": None,
        "requirements": ["tensorflow-cpu==2.21.0"],
        # The worker's storage root is local to it: only the MLflow server travels to Anyscale.
        "env_vars": {"TF_CPP_MIN_LOG_LEVEL": "2", "MLFLOW_TRACKING_URI": "http://mlflow:5000"},
        "py_modules": [str(anyscale_compute.package_folder())], "max_retries": 0,
        "job_timeout_seconds": 7200 + 600,
        "poll_interval": 60, "wait_for_completion": True,
        "extra_job_params": {"timeout_s": 7200, "tags": {"app": "pipespec", "pipeline": "xray_classifier",
                                                          "run_id": RUN_ID}},
    }
    argv = run_shell(kwargs["entrypoint"], tmp_path, ["python"])
    assert argv == ["-m", "pipespec.tasklib.model.runner", "train", "--params-json", kubernetes.to_json(runner_job(params))]
    assert json.loads(argv[-1])["model"]["params"]["note"] == HOSTILE


def test_the_runner_result_is_read_from_its_output():
    printed = 'Epoch 1/8\nPIPESPEC_RESULT {"version": "3"}\nPIPESPEC_RESULT {"version": "7", "run_id": "r"}\n'
    assert anyscale_compute.runner_result(printed, "job x") == {"version": "7", "run_id": "r"}
    failed = 'Traceback ...\nPIPESPEC_ERROR {"type": "ValueError", "message": "no column `image`"}\n'
    with pytest.raises(RuntimeError, match=r"job x printed no PIPESPEC_RESULT line; the runner failed with .*`image`"):
        anyscale_compute.runner_result(failed, "job x")
    with pytest.raises(RuntimeError, match=r"its last output: Killed"):
        anyscale_compute.runner_result("Epoch 1/8\nKilled", "job x")


def test_real_submit_operator_sends_the_llm_job(feedback, storage, anyscale_api):
    from anyscale_provider.operators.anyscale import SubmitAnyscaleJob

    params, run = feedback["train", "train"].params, run_for("feedback_llm_finetune__train")
    publish("s3://feedback/curated/", VIGGO)
    kwargs = anyscale_compute.job_operator_kwargs("train", params, run=run)
    operator = SubmitAnyscaleJob(task_id="train", **kwargs)
    operator.execute(None)

    sent = anyscale_api.fake.submitted_job
    assert anyscale_api.logins == [("fake-token", {"X-Anyscale-Source": "airflow"})]
    assert sent.name == "feedback_llm_finetune-train" and sent.tags == kwargs["extra_job_params"]["tags"]
    assert sent.config.entrypoint == kwargs["entrypoint"]
    assert sent.config.compute_config_id == "cc-llm"  # the named compute config, resolved by the SDK
    assert (sent.config.max_retries, sent.config.timeout_s) == (1, 6 * 3600)
    assert anyscale_api.fake.get_cluster_env_build_image_uri(sent.config.build_id).image_uri == kwargs["image_uri"]
    runtime_env = sent.config.runtime_env
    assert runtime_env["working_dir"] == "s3://feedback/llm/workdir/"
    assert runtime_env["pip"] == ["llmforge==0.5.9"]
    assert runtime_env["env_vars"] == kwargs["env_vars"]


def test_the_llm_adapter_becomes_the_challenger_version_once_per_run(feedback, storage, tmp_path, monkeypatch):
    from pipespec.tasklib.model import registry

    monkeypatch.chdir(tmp_path)  # MLflow's SQLite default puts artifacts in ./mlruns

    params, run = feedback["train", "train"].params, run_for("feedback_llm_finetune__train")
    publish("s3://feedback/curated/", VIGGO)
    kwargs = anyscale_compute.job_operator_kwargs("train", params, run=run)
    result = anyscale_compute.collect_result(params, run, kwargs, "job-1")
    config = json.loads(kwargs["env_vars"]["PIPESPEC_LLMFORGE_CONFIG"])
    tag = f"mistralai/Mistral-7B-Instruct-v0.1:feedback-llm-finetune-{sha8(RUN_ID)}"
    pointer = {"base_model": "mistralai/Mistral-7B-Instruct-v0.1", "model_tag": tag,
               "lora_storage_uri": "s3://feedback/curated/_lora", "adapter_uri": f"s3://feedback/curated/_lora/{tag}"}
    assert result == {"version": "1", "run_id": result["run_id"], "model_type": "llm_finetune",
                      "anyscale_job_id": "job-1", **pointer,
                      "train_path": config["train_path"], "valid_path": config["valid_path"]}
    assert registry.version_for("feedback_llm_finetune", registry.CHALLENGER) == "1"
    tags = registry.version_tags("feedback_llm_finetune", "1")
    assert {f"pipespec.{k}": v for k, v in pointer.items()}.items() <= tags.items()  # what rollout targets read
    downloaded = registry.download("feedback_llm_finetune", "1", tmp_path / "dl")
    assert json.loads((downloaded / "adapter.json").read_text()) == {**pointer, "llmforge_config": config}
    # A retry of the same run (the job id may differ) reuses the version instead of adding one.
    assert anyscale_compute.collect_result(params, run, kwargs, "job-2")["version"] == "1"
    other_run = {**run, "run_id": "manual__other"}
    assert anyscale_compute.collect_result(params, other_run, kwargs, "job-3")["version"] == "2"


def test_real_submit_operator_uploads_tasklib_and_reads_the_runner_result(xray, storage, clean_env, anyscale_api):
    from anyscale_provider.operators.anyscale import SubmitAnyscaleJob

    params, run = keras_on_anyscale_params(xray), run_for("xray_classifier__train")
    kwargs = anyscale_compute.job_operator_kwargs("train", params, run=run)
    anyscale_api.printed = 'Epoch 8/8\nPIPESPEC_RESULT {"model_type": "keras_image_classifier", "version": "7"}\n'
    job_id = SubmitAnyscaleJob(task_id="train", **kwargs).execute(None)

    sent = anyscale_api.fake.submitted_job.config
    assert sent.compute_config_id == "cc-t4" and sent.entrypoint == kwargs["entrypoint"]
    [uploaded] = sent.runtime_env["user_provided_py_modules"]  # one folder: the package with every layer
    assert Path(uploaded).name == "pipespec" and {"tasklib", "schemas", "compiler"} <= {
        p.name for p in Path(uploaded).iterdir()}
    assert all(uri.startswith("s3://fake-bucket/") for uri in sent.runtime_env["py_modules"])  # uploaded by the SDK
    assert anyscale_compute.collect_result(params, run, kwargs, job_id) == {
        "model_type": "keras_image_classifier", "version": "7", "anyscale_job_id": job_id}


# --- rollout targets ----------------------------------------------------------------------------

LLM_VERSION = {"pipeline": "feedback_llm_finetune", "version": "4", "model_uri": "models:/feedback_llm_finetune/4",
               "base_model": "mistralai/Mistral-7B-Instruct-v0.1", "lora_storage_uri": "s3://feedback/curated/_lora",
               "model_tag": "mistralai/Mistral-7B-Instruct-v0.1:feedback-llm-finetune-0123abcd"}


@pytest.mark.parametrize(("stage", "percent", "expected"), [
    ("shadow", None, 0), ("canary", 10, 10), ("full", None, None), ("rollback", None, None)])
def test_anyscale_service_kwargs_per_stage(feedback, stage, percent, expected):
    target = feedback["train", "promote"].params["target"]
    kwargs = targets.anyscale_service_kwargs(stage, target, LLM_VERSION, percent=percent)
    assert kwargs == {
        "conn_id": "anyscale_conn", "name": "feedback-intents-llm",
        "applications": [{
            "name": "feedback_llm_finetune", "route_prefix": "/", "import_path": "ray.serve.llm:build_openai_app",
            "args": {"llm_configs": [{
                "model_loading_config": {"model_id": "mistralai/Mistral-7B-Instruct-v0.1",
                                         "model_source": "mistralai/Mistral-7B-Instruct-v0.1"},
                "lora_config": {"dynamic_lora_loading_path": "s3://feedback/curated/_lora"}}]}}],
        "image_uri": None, "compute_config": None,
        "env_vars": {"PIPESPEC_PIPELINE": "feedback_llm_finetune", "PIPESPEC_MODEL_VERSION": "4",
                     "PIPESPEC_MODEL_URI": "models:/feedback_llm_finetune/4"},
        "in_place": False, "canary_percent": expected, "service_rollout_timeout_seconds": 1800,
        "poll_interval": 30, "wait_for_completion": True,
    }


def test_anyscale_service_keeps_the_spec_applications_and_refuses_to_guess():
    target = {"type": "anyscale_service", "name": "intents", "conn_id": "anyscale_conn", "compute_config": "serve-cpu",
              "image_uri": "anyscale/ray:2.44.0", "applications": [{"import_path": "serve_app:app", "name": "intents"}]}
    version = {"pipeline": "intents", "version": "2", "model_uri": "models:/intents/2"}
    kwargs = targets.anyscale_service_kwargs("shadow", target, version)
    assert kwargs["applications"] == target["applications"] and kwargs["applications"] is not target["applications"]
    assert (kwargs["compute_config"], kwargs["image_uri"]) == ("serve-cpu", "anyscale/ray:2.44.0")
    with pytest.raises(ValueError, match="lists no `applications`, and only fine-tuned LLMs have a default"):
        targets.anyscale_service_kwargs("full", {**target, "applications": []}, version)
    with pytest.raises(ValueError, match="canary needs a percent between 1 and 99"):
        targets.anyscale_service_kwargs("canary", target, version, percent=100)
    with pytest.raises(ValueError, match="unknown rollout stage `blue_green`"):
        targets.anyscale_service_kwargs("blue_green", target, version)


def test_real_rollout_operator_deploys_a_canary(feedback, anyscale_api):
    from anyscale_provider.operators.anyscale import RolloutAnyscaleService

    target = feedback["train", "promote"].params["target"]
    champion = {**LLM_VERSION, "version": "3", "model_uri": "models:/feedback_llm_finetune/3"}
    RolloutAnyscaleService(task_id="promote", **targets.anyscale_service_kwargs("full", target, champion)).execute(None)
    first = anyscale_api.fake.rolled_out_model
    assert first.canary_percent is None  # a new service takes all traffic, whatever the percent says

    kwargs = targets.anyscale_service_kwargs("canary", target, LLM_VERSION, percent=10)
    RolloutAnyscaleService(task_id="canary_10", **kwargs).execute(None)
    sent = anyscale_api.fake.rolled_out_model
    assert (sent.name, sent.canary_percent) == ("feedback-intents-llm", 10)
    application = sent.ray_serve_config["applications"][0]
    assert application["import_path"] == "ray.serve.llm:build_openai_app"
    assert application["args"] == kwargs["applications"][0]["args"]
    assert application["runtime_env"]["env_vars"] == kwargs["env_vars"]  # the version reaches the replicas
    assert first.ray_serve_config["applications"][0]["runtime_env"]["env_vars"]["PIPESPEC_MODEL_VERSION"] == "3"


XRAY_VERSION = {"pipeline": "xray_classifier", "version": "12", "model_uri": "models:/xray_classifier/12",
                "image": "ghcr.io/example/xray-serve:2.0.1"}
MODEL_ENV = [{"name": "PIPESPEC_PIPELINE", "value": "xray_classifier"},
             {"name": "PIPESPEC_MODEL_VERSION", "value": "12"},
             {"name": "PIPESPEC_MODEL_URI", "value": "models:/xray_classifier/12"}]
SERVE_TEMPLATE = {"metadata": {"annotations": {"pipespec/model-version": "12"}},
                  "spec": {"containers": [{"name": "xray-serve", "image": "ghcr.io/example/xray-serve:2.0.1",
                                           "env": MODEL_ENV}]}}


def test_kubernetes_patches_per_stage(xray):
    target = xray["train", "shadow"].params["target"]
    shadow = targets.kubernetes_deployment_patch("shadow", target, XRAY_VERSION)
    assert shadow == {"namespace": "ml-serving", "conn_id": "kubernetes_default", "traffic_percent": 0, "patches": [
        {"name": "xray-serve-shadow", "clone_of": "xray-serve", "body": {
            "metadata": {"labels": {"pipespec/track": "shadow"}, "annotations": {"pipespec/model-version": "12"}},
            "spec": {"replicas": 1, "template": SERVE_TEMPLATE}}}]}
    canary = targets.kubernetes_deployment_patch("canary", target, XRAY_VERSION, percent=10, stable_replicas=9)
    assert canary["patches"][0]["name"] == "xray-serve-canary"
    assert (canary["patches"][0]["body"]["spec"]["replicas"], canary["traffic_percent"]) == (1, 10)
    assert targets.kubernetes_deployment_patch("canary", target, XRAY_VERSION, percent=25,
                                               stable_replicas=4)["traffic_percent"] == 33  # pods come whole
    full = targets.kubernetes_deployment_patch("full", target, XRAY_VERSION)
    assert full["traffic_percent"] == 100 and full["patches"] == [
        {"name": "xray-serve", "clone_of": None, "body": {
            "metadata": {"annotations": {"pipespec/model-version": "12"}}, "spec": {"template": SERVE_TEMPLATE}}},
        {"name": "xray-serve-canary", "clone_of": None, "body": {"spec": {"replicas": 0}}},
        {"name": "xray-serve-shadow", "clone_of": None, "body": {"spec": {"replicas": 0}}}]
    assert targets.kubernetes_deployment_patch("rollback", target, XRAY_VERSION) == full


def test_canary_replicas_track_the_percent():
    assert [targets.canary_replicas(p, 9) for p in (10, 25, 50, 90)] == [1, 3, 9, 81]
    assert targets.canary_replicas(1, 1) == 1
    with pytest.raises(ValueError, match="at least one replica"):
        targets.canary_replicas(10, 0)


def stable_deployment() -> dict:
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "xray-serve", "namespace": "ml-serving", "labels": {"app": "xray-serve"},
                         "resourceVersion": "812", "uid": "3f1c", "generation": 4},
            "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "xray-serve"}},
                     "template": {"metadata": {"labels": {"app": "xray-serve", "tier": "model"}},
                                  "spec": {"containers": [{"name": "xray-serve", "image": "ghcr.io/x/serve:1",
                                                           "ports": [{"containerPort": 8000}]}]}}},
            "status": {"readyReplicas": 3}}


@pytest.mark.parametrize("track", ["canary", "shadow"])
def test_clones_are_valid_deployments_with_their_own_selector(track):
    from kubernetes.client import ApiClient

    clone = targets.clone_deployment(stable_deployment(), f"xray-serve-{track}", track)
    api = ApiClient()
    typed = api._ApiClient__deserialize(clone, "V1Deployment")
    assert api.sanitize_for_serialization(typed) == clone  # every field known to the Deployment model
    assert "status" not in clone and "resourceVersion" not in clone["metadata"]
    pod_labels, selector = clone["spec"]["template"]["metadata"]["labels"], clone["spec"]["selector"]["matchLabels"]
    assert selector.items() <= pod_labels.items() and selector["pipespec/track"] == track
    service_selector = stable_deployment()["spec"]["template"]["metadata"]["labels"]
    # The Service in front of the stable pods selects canary pods and never shadow pods.
    assert (service_selector.items() <= pod_labels.items()) == (track == "canary")
    assert clone["spec"]["template"]["spec"] == stable_deployment()["spec"]["template"]["spec"]


class FakeKubernetesApi:
    """Deployments over HTTP on 127.0.0.1, as the API server answers the calls used here; records requests."""

    def __init__(self, deployments: dict):
        import http.server
        import threading

        self.deployments, self.requests = deployments, []
        api = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output quiet
                pass

            def reply(self, status: int, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def handle_one(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length)) if length else None
                name = self.path.split("?")[0].rsplit("/deployments", 1)[1].strip("/")
                api.requests.append((self.command, name, self.headers.get("Content-Type") if length else None, body))
                if self.command == "POST":
                    api.deployments[body["metadata"]["name"]] = body
                    return self.reply(201, body)
                if name not in api.deployments:
                    return self.reply(404, {"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 404,
                                            "reason": "NotFound", "message": f'deployments "{name}" not found'})
                if self.command == "PATCH" and self.headers.get("Content-Type") != targets.STRATEGIC_MERGE:
                    return self.reply(415, {"kind": "Status", "apiVersion": "v1", "code": 415})
                return self.reply(200, api.deployments[name])

            do_GET = do_POST = do_PATCH = handle_one

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def client(self):
        from kubernetes.client import ApiClient, Configuration

        configuration = Configuration()
        configuration.host = f"http://127.0.0.1:{self.server.server_address[1]}"
        return ApiClient(configuration)


@pytest.fixture
def kubernetes_api():
    api = FakeKubernetesApi({"xray-serve": stable_deployment()})
    yield api
    api.server.shutdown()
    api.server.server_close()


def test_kubernetes_canary_then_full_send_these_requests(xray, kubernetes_api):
    from kubernetes.client import ApiClient

    target, client = xray["train", "shadow"].params["target"], kubernetes_api.client()
    canary = targets.kubernetes_deployment_patch("canary", target, XRAY_VERSION, percent=10, stable_replicas=3)
    assert targets.apply_kubernetes_rollout(client, canary) == [
        "xray-serve-canary: created from xray-serve", "xray-serve-canary: patched"]
    stable_wire = ApiClient().sanitize_for_serialization(
        ApiClient()._ApiClient__deserialize(stable_deployment(), "V1Deployment"))
    assert kubernetes_api.requests == [
        ("GET", "xray-serve-canary", None, None),
        ("GET", "xray-serve", None, None),
        ("POST", "", "application/json", targets.clone_deployment(stable_wire, "xray-serve-canary", "canary")),
        ("PATCH", "xray-serve-canary", targets.STRATEGIC_MERGE, canary["patches"][0]["body"])]
    assert kubernetes_api.deployments["xray-serve-canary"]["spec"]["replicas"] == 0  # no traffic before the patch

    kubernetes_api.requests.clear()
    full = targets.kubernetes_deployment_patch("full", target, XRAY_VERSION)
    assert targets.apply_kubernetes_rollout(client, full) == [
        "xray-serve: patched", "xray-serve-canary: patched", "xray-serve-shadow: absent, nothing to scale"]
    assert [(method, name, content_type) for method, name, content_type, _ in kubernetes_api.requests] == [
        ("GET", "xray-serve", None), ("PATCH", "xray-serve", targets.STRATEGIC_MERGE),
        ("GET", "xray-serve-canary", None), ("PATCH", "xray-serve-canary", targets.STRATEGIC_MERGE),
        ("GET", "xray-serve-shadow", None)]

