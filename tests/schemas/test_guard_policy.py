"""The platform policy (schemas/policy.py): compute settings, connections and URIs a spec may use.

Each repro of issue 10 item 5 is checked three ways: `pipespec check` without a policy file
(the built-in safe defaults), with a policy file, and at run time in the request builders,
which must refuse before any part of the request exists.
"""

from __future__ import annotations

import copy
import json
import textwrap
from pathlib import Path

import pytest

from pipespec.schemas.check import check_file
from pipespec.cli import main
from pipespec.schemas.policy import POLICY_ENV, Policy, PolicyFileError, Rules, check_conn_id, check_image, check_uri, load_policy

from tests.support.paths import ROOT  # noqa: E402 - one home for where the checkout is
RUN = {"dag_id": "p__train", "task_id": "train", "run_id": "manual__1", "map_index": -1, "try_number": 1,
       "logical_date": None, "data_interval_start": None, "data_interval_end": None, "owner": "team-a"}

K8S = "{backend: kubernetes, image: ghcr.io/acme/train:1.0, namespace: team-a-jobs}"
ANYSCALE = "{backend: anyscale, image_uri: anyscale/ray:2.44.0-py311}"


@pytest.fixture(autouse=True)
def no_policy_env(monkeypatch):
    monkeypatch.delenv(POLICY_ENV, raising=False)
    return monkeypatch


def write_spec(tmp_path: Path, compute: str, owner: str = "team-a", extra: str = "") -> Path:
    """A train-only spec whose compute mapping is line 6 (`compute:` at col 3, its value at col 12)."""
    path = tmp_path / "specs" / "p.yaml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(f"pipeline: p\nowner: {owner}\ntrain:\n  dataset: s3://team-a-data/curated/\n"
                    f"  model: {{type: keras_text_classifier}}\n  compute: {compute}\n"
                    f"external_assets: [s3://team-a-data/curated/]\n{extra}", encoding="utf-8")
    return path


def write_policy(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "platform" / "policy.yaml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


TEAM_A = """\
    default:
      namespaces: [shared-jobs]
    teams:
      team-a:
        images: [ghcr.io/acme/]
        namespaces: [team-a-jobs]
        service_accounts: [team-a-trainer]
        pvcs: [team-a-pvc]
        conn_ids: [kubernetes_default, anyscale_conn, team_a_k8s]
        buckets: [team-a-data]
        limits: {max_cpu: "4", max_memory: 16Gi, max_gpus: 1, max_retries: 3, max_timeout: 4h}
"""


def problems(path: Path, policy: Policy | None = None) -> list[tuple[int, int, str, str]]:
    return sorted((d.line, d.col, d.message, d.hint) for d in check_file(path, policy).diagnostics)


def only(found: list[tuple[int, int, str, str]]) -> tuple[int, int, str, str]:
    assert len(found) == 1, found
    return found[0]


# --- without a policy file: the built-in safe defaults ------------------------------------------

@pytest.mark.parametrize("compute, at, message, rule", [
    ("{backend: kubernetes, image: ghcr.io/acme/train:1.0, namespace: kube-system}", "kube-system",
     "namespace `kube-system` belongs to Kubernetes itself", "built-in namespaces"),
    ("{backend: kubernetes, image: ghcr.io/acme/train:1.0, service_account: cluster-admin}", "cluster-admin",
     "service account `cluster-admin` is not allowed", "built-in service_accounts"),
    ("{backend: kubernetes, image: ghcr.io/acme/train:1.0, tolerations: [{key: node-role.kubernetes.io/control-plane,"
     " operator: Exists}]}", "node-role", "would schedule training onto the control plane", "built-in tolerations"),
    ("{backend: kubernetes, image: ghcr.io/acme/train:1.0, tolerations: [{operator: Exists, key: ''}]}", "{operator",
     "a toleration without a key tolerates every taint", "built-in tolerations"),
    ("{backend: kubernetes, image: ghcr.io/acme/train}", "ghcr.io", "image `ghcr.io/acme/train` is not pinned",
     "built-in images"),
    ("{backend: anyscale, working_dir: /opt/airflow}", "/opt", "working_dir `/opt/airflow` is a local path",
     "built-in working_dir"),
    ("{backend: anyscale, containerfile: Containerfile}", "Containerfile}",
     "a containerfile is read from the Airflow worker", "built-in containerfile"),
    ("{backend: anyscale, requirements: ['--extra-index-url https://evil.example/simple', x]}", "'--",
     "is a pip option, not a requirement", "built-in requirements"),
    ("{backend: anyscale, requirements: ['x @ file:///etc/passwd']}", "'x", "installs from a URL",
     "built-in requirements"),
    ("{backend: anyscale, requirements: ['-e .']}", "'-e", "is a pip option", "built-in requirements"),
    ("{backend: anyscale, env: {MLFLOW_TRACKING_URI: 'http://evil.example'}}", "MLFLOW",
     "`MLFLOW_TRACKING_URI` is reserved for the platform", "built-in env"),
    ("{backend: anyscale, env: {pip_index_url: 'http://evil.example'}}", "pip_", "`pip_index_url` is reserved",
     "built-in env"),
    # Ray jobs run the same runner with the platform's MLflow and storage access: the same rules.
    ("{backend: ray, env: {MLFLOW_TRACKING_URI: 'http://evil.example'}}", "MLFLOW",
     "`MLFLOW_TRACKING_URI` is reserved for the platform", "built-in env"),
    ("{backend: ray, env: {PYTHONWARNINGS: 'ignore::antigravity.x'}}", "PYTHONWARNINGS",
     "is reserved", "built-in env"),
])
def test_safe_defaults_without_a_policy_file(tmp_path, compute, at, message, rule):
    line, col, found, hint = only(problems(write_spec(tmp_path, compute)))
    assert (line, col) == (6, len("  compute: ") + compute.index(at) + 1) and message in found
    assert hint.endswith(f"policy rule `{rule}`")


def test_ordinary_compute_passes_without_a_policy_file(tmp_path):
    assert problems(write_spec(tmp_path, K8S + "\nretries: {count: 40}\n")) == []
    assert problems(write_spec(tmp_path, "{backend: kubernetes, image: ghcr.io/acme/t@sha256:" + "a" * 64 +
                               ", service_account: default, volumes: [{name: d, claim: any-pvc, mount_path: /d}]}")) == []
    assert problems(write_spec(tmp_path, "{backend: anyscale, working_dir: 's3://team-a-data/wd.zip', requirements: "
                               "['llmforge==0.5.9', 'requests[socks]>=2; python_version > \"3.8\"'], "
                               "env: {TF_CPP_MIN_LOG_LEVEL: '2'}}")) == []


def test_env_problem_points_at_the_key_and_never_at_the_value(tmp_path):
    spec = write_spec(tmp_path, "\n    backend: anyscale\n    env:\n      AWS_ENDPOINT_URL: http://evil.example\n")
    line, col, message, _ = only(problems(spec))
    assert (line, col) == (9, 7) and "`AWS_ENDPOINT_URL` is reserved" in message


def test_no_policy_file_means_no_restriction_on_connections_volumes_or_uris(tmp_path):
    assert check_conn_id(None, "anyone", "prod_warehouse") == []
    assert check_uri(None, "anyone", "s3://any-bucket/x/") == []
    assert [v.message for v in check_uri(None, "anyone", "file:///data/../etc/")] == [
        "URI `file:///data/../etc/` has `.` or `..` segments"]


# --- with a policy file -------------------------------------------------------------------------

@pytest.mark.parametrize("compute, message, rule", [
    ("{backend: kubernetes, image: ghcr.io/acme/train:1.0, namespace: team-b-jobs}",
     "namespace `team-b-jobs` is not allowed", "teams.team-a.namespaces"),
    ("{backend: kubernetes, image: ghcr.io/acme/train:1.0, namespace: team-a-jobs, service_account: admin}",
     "service account `admin` is not allowed", "teams.team-a.service_accounts"),
    ("{backend: kubernetes, image: ghcr.io/acme/train:1.0, namespace: team-a-jobs, volumes: [{name: d, claim: "
     "team-b-pvc, mount_path: /d}]}", "PersistentVolumeClaim `team-b-pvc` is not allowed", "teams.team-a.pvcs"),
    ("{backend: kubernetes, image: ghcr.io/acme/train:1.0, namespace: team-a-jobs, conn_id: prod_cluster}",
     "connection `prod_cluster` is not allowed", "teams.team-a.conn_ids"),
    ("{backend: kubernetes, image: evil.example/acme/train:1.0, namespace: team-a-jobs}",
     "image `evil.example/acme/train:1.0` is not from an allowed registry", "teams.team-a.images"),
    ("{backend: kubernetes, image: ghcr.io/acme-evil/train:1.0, namespace: team-a-jobs}",
     "is not from an allowed registry", "teams.team-a.images"),
    ("{backend: kubernetes, image: ghcr.io/acme/train:1.0, namespace: team-a-jobs, resources: {cpu: '5'}}",
     "`5` is more than this team may request", "teams.team-a.limits.max_cpu"),
    ("{backend: kubernetes, image: ghcr.io/acme/train:1.0, namespace: team-a-jobs, resources: {memory: 17Gi}}",
     "`17Gi` is more than this team may request", "teams.team-a.limits.max_memory"),
    ("{backend: kubernetes, image: ghcr.io/acme/train:1.0, namespace: team-a-jobs, resources: {gpu: 2}}",
     "2 GPUs is more than this team may request", "teams.team-a.limits.max_gpus"),
    ("{backend: anyscale, image_uri: ghcr.io/acme/ray:2.44, working_dir: 's3://team-b-data/wd.zip'}",
     "URI `s3://team-b-data/wd.zip` is outside this team's buckets", "teams.team-a.buckets"),
    ("{backend: anyscale, image_uri: ghcr.io/acme/ray:2.44, working_dir: /opt/airflow}",
     "working_dir `/opt/airflow` is a local path", "built-in working_dir"),
    ("{backend: anyscale, image_uri: ghcr.io/acme/ray:2.44, timeout: 5h}",
     "timeout `5h` is longer than this team may set", "teams.team-a.limits.max_timeout"),
    ("{backend: anyscale, image_uri: ghcr.io/acme/ray:2.44, max_retries: 4}",
     "4 retries is more than this team may set", "teams.team-a.limits.max_retries"),
])
def test_policy_file_violations_name_the_rule(tmp_path, compute, message, rule):
    policy = load_policy(write_policy(tmp_path, TEAM_A))
    line, _, found, hint = only(problems(write_spec(tmp_path, compute), policy))
    assert line == 6 and message in found
    assert hint.endswith(f"policy rule `{rule}`")


def test_what_the_policy_allows_passes(tmp_path):
    policy = load_policy(write_policy(tmp_path, TEAM_A))
    spec = write_spec(tmp_path, "{backend: kubernetes, image: ghcr.io/acme/train:1.0, namespace: team-a-jobs, "
                      "service_account: team-a-trainer, conn_id: team_a_k8s, resources: {cpu: 4000m, memory: 16Gi, "
                      "gpu: 1}, volumes: [{name: d, claim: team-a-pvc, mount_path: /d}]}", extra="retries: {count: 3}\n")
    assert problems(spec, policy) == []


def test_team_a_allowance_does_not_extend_to_team_b(tmp_path):
    policy = load_policy(write_policy(tmp_path, TEAM_A))
    assert problems(write_spec(tmp_path, K8S, owner="team-a"), policy) == []
    found = problems(write_spec(tmp_path, K8S, owner="team-b"), policy)
    assert [(m, h.rsplit("; ", 1)[1]) for _, _, m, h in found] == [
        ("namespace `team-a-jobs` is not allowed for this team", "policy rule `default.namespaces`")]


def test_uris_and_connections_anywhere_in_the_spec_are_checked(tmp_path):
    policy = load_policy(write_policy(tmp_path, TEAM_A))
    spec = write_spec(tmp_path, K8S, extra="alerts: [{on: [failure], slack: {channel: '#a', conn_id: team_b_slack}}]\n"
                                           "inference: {input: 's3://team-b-data/in/', output: 's3://team-a-data/out/'}\n")
    found = problems(spec, policy)
    assert [(line, message) for line, _, message, _ in found] == [
        (8, "connection `team_b_slack` is not allowed for this team"),
        (9, "URI `s3://team-b-data/in/` is outside this team's buckets and prefixes")]


@pytest.mark.parametrize("uri, allowed", [
    ("s3://team-a-data/x.parquet", True), ("S3://TEAM-A-DATA/x", True), ("s3://team-a-data-evil/x", False),
    ("s3://shared/public/x", True), ("s3://shared/public", True), ("s3://shared/publicity/x", False),
    ("s3://shared/public/../private/x", False), ("s3://shared/public/%2e%2e/private/x", False),
    ("file:///srv/team-a/x.csv", True), ("file:///srv/team-a-evil/x.csv", False), ("file:///etc/passwd", False),
    ("https://team-a-data/x", False),  # a bucket name is an object store's, not any host's
])
def test_check_uri_matches_buckets_and_prefixes_on_boundaries(uri, allowed):
    policy = Policy(teams={"a": Rules(buckets=["team-a-data"], uri_prefixes=["s3://shared/public/", "file:///srv/team-a"])})
    assert (check_uri(policy, "a", uri) == []) is allowed


def test_images_match_registry_and_repository_prefixes():
    policy = Policy(default=Rules(images=["ghcr.io/acme/", "anyscale/", "library/python"]))
    allowed = ["ghcr.io/acme/x:1", "GHCR.io/acme/x/y:1", "anyscale/ray:2.44", "python:3.12", "docker.io/anyscale/ray:2"]
    refused = ["ghcr.io/acme-evil/x:1", "ghcr.io/acmex:1", "evil.io/anyscale/ray:1", "pythonx:1", "evil/python:1"]
    assert [i for i in allowed if check_image(policy, None, i)] == []
    assert [i for i in refused if not check_image(policy, None, i)] == []


# --- the policy file itself ---------------------------------------------------------------------

def test_policy_file_errors_have_file_line_col(tmp_path):
    path = write_policy(tmp_path, "default:\n  namespace: [x]\nteams:\n  a: {limits: {max_gpus: two}}\n")
    with pytest.raises(PolicyFileError) as caught:
        load_policy(path)
    found = [(d.file, d.line, d.col, d.message, d.hint) for d in caught.value.diagnostics]
    assert found == [(str(path), 2, 3, "unknown key `namespace`", "did you mean `namespaces`?"),
                     (str(path), 4, 26, "expected an integer, got `two` (a string)", "Most GPUs one training pod "
                                                                                       "may request.")]


def test_policy_file_is_loaded_safely(tmp_path):
    with pytest.raises(PolicyFileError, match=r"policy\.yaml:1:10: YAML tag `!!python/object"):
        load_policy(write_policy(tmp_path, "default: !!python/object:os.system {}\n"))
    with pytest.raises(PolicyFileError, match="a policy file must be a mapping"):
        load_policy(write_policy(tmp_path, "[]\n"))


def test_example_policy_loads_and_admits_the_example_pipelines(capsys):
    policy = load_policy(ROOT / "docs" / "policy.example.yaml")
    assert policy.teams["ml-imaging"].pvcs == ["xray-pvc"]
    assert main(["check", "--policy", str(ROOT / "docs" / "policy.example.yaml"), str(ROOT / "pipelines")]) == 0
    assert "all good" in capsys.readouterr().out


def test_cli_reports_violations_with_policy_flag_and_env(tmp_path, capsys, no_policy_env):
    policy = write_policy(tmp_path, TEAM_A)
    spec = write_spec(tmp_path, "{backend: kubernetes, image: ghcr.io/acme/train:1.0, namespace: team-b-jobs}")
    assert main(["check", str(spec)]) == 0  # the built-in rules allow any ordinary namespace
    capsys.readouterr()
    assert main(["check", "--format", "json", "--policy", str(policy), str(spec)]) == 1
    [finding] = json.loads(capsys.readouterr().out)["diagnostics"]
    assert (finding["line"], finding["col"], finding["code"], finding["path"]) == (6, 76, "policy",
                                                                                   "train.compute.namespace")
    no_policy_env.setenv(POLICY_ENV, str(policy))
    assert main(["check", str(spec)]) == 1
    assert "policy rule `teams.team-a.namespaces`" in capsys.readouterr().out


def test_cli_refuses_a_broken_or_misplaced_policy(tmp_path, capsys):
    spec = write_spec(tmp_path, K8S)
    broken = write_policy(tmp_path, "teams:\n  a: {namespaces: team-a}\n")
    assert main(["check", "--policy", str(broken), str(spec)]) == 2
    assert "policy.yaml:2:19: error: expected a list" in capsys.readouterr().err
    inside = spec.parent / "policy.yaml"
    inside.write_text(TEAM_A)
    assert main(["check", "--policy", str(inside), str(spec)]) == 2
    assert "the policy file lies inside the spec directory" in capsys.readouterr().err
    assert main(["check", "--policy", str(tmp_path / "missing.yaml"), str(spec)]) == 2
    assert "no such policy file" in capsys.readouterr().err


# --- run time: the request builders refuse before building anything ------------------------------

def train_params(compute: dict) -> dict:
    return {"pipeline": "p", "dataset": "s3://team-a-data/curated/", "compute": compute, "spec_hash": "h",
              "model": {"type": "keras_text_classifier", "label": "label", "features": ["text"], "params": {}},
              "holdout": None, "holdout_fraction": 0.2}


def k8s(**settings) -> dict:
    from pipespec.schemas.models.train import KubernetesCompute

    return KubernetesCompute(backend="kubernetes", image="ghcr.io/acme/train:1.0", **settings).model_dump()


def anyscale(**settings) -> dict:
    from pipespec.schemas.models.train import AnyscaleCompute

    return AnyscaleCompute(backend="anyscale", image_uri="ghcr.io/acme/ray:2.44", **settings).model_dump()


@pytest.fixture
def builders_must_not_build(monkeypatch):
    """Any step past the policy check fails the test: the request must never exist."""
    from pipespec.tasklib.compute import anyscale as anyscale_compute
    from pipespec.tasklib.compute import kubernetes, llm

    def built(*args, **kwargs):
        raise AssertionError("the request was built despite the policy")

    for module, name in ((kubernetes, "runner_job"), (kubernetes, "container_resources"),
                         (anyscale_compute, "runner_job"), (llm, "prepare_data")):
        monkeypatch.setattr(module, name, built)
    return monkeypatch


@pytest.mark.parametrize("compute, refused", [
    (dict(namespace="kube-system"), "train.compute.namespace: namespace `kube-system` belongs to Kubernetes"),
    (dict(service_account="cluster-admin"), "train.compute.service_account: service account `cluster-admin`"),
    (dict(tolerations=[{"key": "node-role.kubernetes.io/master", "operator": "Exists"}]),
     "train.compute.tolerations[0].key: `node-role.kubernetes.io/master` would schedule training onto the control"),
    (dict(node_selector={"node-role.kubernetes.io/control-plane": ""}), "selects control-plane nodes"),
])
def test_pod_builder_refuses_without_a_policy_file(builders_must_not_build, compute, refused):
    from pipespec.tasklib.compute import kubernetes
    from pipespec.tasklib.guard import PolicyRefused
    from pipespec.tasklib.errors import PermanentFailure

    with pytest.raises(PolicyRefused, match="task `train` refused by the platform policy") as caught:
        kubernetes.pod_operator_kwargs("train", train_params(k8s(**compute)), run=RUN)
    assert refused in str(caught.value)
    assert isinstance(caught.value, PermanentFailure)  # no retries: a retry cannot change the answer


@pytest.mark.parametrize("model_type", ["keras_text_classifier", "llm_finetune"])
@pytest.mark.parametrize("compute, refused", [
    (dict(working_dir="/opt/airflow"), "working_dir `/opt/airflow` is a local path"),
    (dict(containerfile="/etc/passwd"), "a containerfile is read from the Airflow worker's disk"),
    (dict(requirements=["--extra-index-url https://evil.example/simple"]), "is a pip option"),
    (dict(env={"MLFLOW_TRACKING_URI": "http://evil.example"}), "`MLFLOW_TRACKING_URI` is reserved"),
])
def test_anyscale_builder_refuses_without_a_policy_file(builders_must_not_build, model_type, compute, refused):
    from pipespec.tasklib.compute import anyscale as anyscale_compute
    from pipespec.tasklib.guard import PolicyRefused

    params = train_params(anyscale(**compute))
    params["model"]["type"] = model_type
    with pytest.raises(PolicyRefused, match=refused):
        anyscale_compute.job_operator_kwargs("train", params, run=RUN)


def test_builders_enforce_the_workers_policy_file_per_team(tmp_path, builders_must_not_build):
    from pipespec.tasklib.compute import anyscale as anyscale_compute
    from pipespec.tasklib.compute import kubernetes
    from pipespec.tasklib.guard import PolicyRefused

    builders_must_not_build.setenv(POLICY_ENV, str(write_policy(tmp_path, TEAM_A)))
    for owner in ("team-b", None):  # another team (the DAG owner, from the run); no owner gets `default`
        with pytest.raises(PolicyRefused, match="namespace `team-a-jobs` is not allowed"):
            kubernetes.pod_operator_kwargs("train", train_params(k8s(namespace="team-a-jobs")),
                                           run={**RUN, "owner": owner})
    with pytest.raises(PolicyRefused, match=r"PersistentVolumeClaim `team-b-pvc`"):
        kubernetes.pod_operator_kwargs("train", train_params(k8s(namespace="team-a-jobs", volumes=[
            {"name": "d", "claim": "team-b-pvc", "mount_path": "/d"}])), run=RUN)
    with pytest.raises(PolicyRefused, match=r"train.dataset: URI `s3://team-b-data/x/`"):
        params = train_params(anyscale())
        anyscale_compute.job_operator_kwargs("train", {**params, "dataset": "s3://team-b-data/x/"}, run=RUN)
    with pytest.raises(PolicyRefused, match=r"connection `prod_anyscale`"):
        anyscale_compute.job_operator_kwargs("train", train_params(anyscale(conn_id="prod_anyscale")), run=RUN)


def test_builders_build_what_the_policy_allows(tmp_path, monkeypatch):
    from pipespec.tasklib.compute import kubernetes

    monkeypatch.setenv(POLICY_ENV, str(write_policy(tmp_path, TEAM_A)))
    kwargs = kubernetes.pod_operator_kwargs("train", train_params(k8s(
        namespace="team-a-jobs", service_account="team-a-trainer",
        volumes=[{"name": "d", "claim": "team-a-pvc", "mount_path": "/d"}])), run=RUN)
    assert (kwargs["namespace"], kwargs["service_account_name"]) == ("team-a-jobs", "team-a-trainer")


def test_a_broken_policy_file_on_the_worker_refuses(tmp_path, builders_must_not_build):
    from pipespec.tasklib.compute import kubernetes
    from pipespec.tasklib.guard import PolicyRefused

    builders_must_not_build.setenv(POLICY_ENV, str(write_policy(tmp_path, "default: {namespaces: ml}\n")))
    with pytest.raises(PolicyRefused, match=r"policy file is invalid:\n.*policy\.yaml:1:23: expected a list"):
        kubernetes.pod_operator_kwargs("train", train_params(k8s()), run=RUN)
    builders_must_not_build.setenv(POLICY_ENV, str(tmp_path / "gone.yaml"))
    with pytest.raises(PolicyRefused, match="cannot read the policy file"):
        kubernetes.pod_operator_kwargs("train", train_params(k8s()), run=RUN)


def test_spec_env_never_overrides_the_platforms_variables(monkeypatch):
    """Even a params dict that skipped every check cannot redirect the job's MLflow server."""
    from pipespec.tasklib.compute import anyscale as anyscale_compute

    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow.platform:5000")
    monkeypatch.setattr("pipespec.tasklib.compute.anyscale.enforce_train", lambda task_id, params, owner: None)
    params = train_params(copy.deepcopy(anyscale()))
    params["compute"]["env"] = {"MLFLOW_TRACKING_URI": "http://evil.example", "TF_CPP_MIN_LOG_LEVEL": "2"}
    kwargs = anyscale_compute.job_operator_kwargs("train", params, run=RUN)
    assert kwargs["env_vars"] == {"MLFLOW_TRACKING_URI": "http://mlflow.platform:5000", "TF_CPP_MIN_LOG_LEVEL": "2"}


def test_resource_quantities_are_checked_when_the_spec_is(tmp_path):
    """A limit compares amounts, so an amount must be readable before any pod is requested."""
    line, col, message, _ = only(problems(write_spec(tmp_path, K8S.replace("}", ", resources: {memory: 16GB}}"))))
    assert (line, message) == (6, "`16GB` is not a Kubernetes quantity (examples: 500m or 4 for cpu, 512Mi or 16Gi "
                                  "for memory)")


# --- run time: every step, through the adapter -----------------------------------------------------

@pytest.mark.airflow
def test_every_step_is_refused_at_run_time_what_the_policy_refuses(tmp_path, monkeypatch):
    """A spec that reaches a worker without `check` (stale cache, `pipespec run`) still cannot use a
    connection or a bucket the team is not allowed, whatever the step."""
    from airflow.sdk.exceptions import AirflowFailException

    from pipespec.airflow import adapter
    from pipespec.tasklib.context import RunContext

    policy = write_policy(tmp_path, "default: {conn_ids: [], buckets: []}\n"
                                    "teams:\n  team-a:\n    conn_ids: [team_a_db]\n    buckets: [team-a]\n")
    monkeypatch.setenv("PIPESPEC_POLICY", str(policy))
    called = []
    monkeypatch.setattr(adapter, "resolve", lambda step: lambda ctx, **kw: called.append(kw) or "ran")

    def run(owner: str, params: dict) -> object:
        ctx = RunContext(dag_id="p__data", task_id="extract", run_id="r", owner=owner)
        return adapter._call("data.extract", ctx, params, params)

    source = {"name": "db", "type": "sql", "conn_id": "team_a_db", "query": "select 1"}
    assert run("team-a", {"source": source, "publishes": "s3://team-a/curated/"}) == "ran"
    with pytest.raises(AirflowFailException, match=r"connection `team_a_db` is not allowed"):
        run("team-b", {"source": source})
    with pytest.raises(AirflowFailException, match=r"team-b-or-any"):
        run("team-a", {"uri": "s3://team-b-or-any/x/"})
    assert len(called) == 1  # refused steps never ran


# --- who a spec may say it belongs to ------------------------------------------------------------

OWNED = """\
    default: {buckets: [shared]}
    teams:
      ml-growth: {buckets: [growth], spec_paths: ["growth/*"]}
      ml-support: {buckets: [feedback]}
    """
GROWTH_SPEC = ("pipeline: {name}\nowner: ml-growth\ndata:\n  sources: [{{name: raw, type: s3, "
               "uri: \"s3://growth/churn/\", format: parquet}}]\n  publishes: s3://growth/{name}/\n")


def test_a_spec_cannot_claim_a_team_outside_that_teams_folder(tmp_path, capsys, no_policy_env):
    """The security review's repro: `owner: ml-growth` from the attacker's folder got growth's buckets."""
    from pipespec.cli import main

    policy = write_policy(tmp_path, OWNED)
    specs = tmp_path / "pipelines"
    for folder, name in (("growth", "churn"), ("attacker", "evil"), ("attacker/growth", "nested")):
        (specs / folder).mkdir(parents=True, exist_ok=True)
        (specs / folder / f"{name}.yaml").write_text(GROWTH_SPEC.format(name=name))
    (specs / "attacker" / "templates").mkdir()  # a nested templates/ must not move the specs folder
    assert main(["check", "--policy", str(policy), str(specs)]) == 1
    out = capsys.readouterr().out
    assert "growth/churn.yaml" not in out  # the team's own spec is fine
    for where in ("attacker/evil.yaml", "attacker/growth/nested.yaml"):
        assert f"`{where}` may not name team `ml-growth` as its owner" in out
    assert "teams.ml-growth.spec_paths" in out and out.count("error:") == 2


def test_the_loader_applies_the_owner_rule_under_the_workers_policy(tmp_path, monkeypatch):
    from pipespec.compiler.build import build_repo

    monkeypatch.setenv("PIPESPEC_POLICY", str(write_policy(tmp_path, OWNED)))
    specs = tmp_path / "pipelines"
    (specs / "growth").mkdir(parents=True)
    (specs / "growth" / "churn.yaml").write_text(GROWTH_SPEC.format(name="churn"))
    (specs / "evil.yaml").write_text(GROWTH_SPEC.format(name="evil"))
    result = build_repo(specs)
    assert [p.name for p in result.pipelines] == ["churn"]
    assert "may not name team `ml-growth`" in result.broken[0].diagnostics[0].message


def test_a_team_without_spec_paths_cannot_be_claimed_once_others_have_them(tmp_path, no_policy_env):
    """The second review's repro: with `ml-growth` tied to its folder, `ml-platform` (no `spec_paths`,
    kube-system rights) was anyone's for the writing of `owner: ml-platform`."""
    from pipespec.cli import main

    policy = write_policy(tmp_path, OWNED.rstrip(" ") + "      ml-platform: {namespaces: [kube-system]}\n")
    specs = tmp_path / "pipelines"
    (specs / "attacker").mkdir(parents=True)
    (specs / "attacker" / "x.yaml").write_text(GROWTH_SPEC.format(name="x").replace("ml-growth", "ml-platform"))
    assert main(["check", "--policy", str(policy), str(specs)]) == 1
    assert owner_refused(check_file(specs / "attacker" / "x.yaml", load_policy(policy), specs), "ml-platform")


def owner_refused(checked, team: str) -> bool:
    return any(f"may not name team `{team}` as its owner" in d.message for d in checked.diagnostics)


@pytest.mark.airflow
def test_steps_refuse_non_s3_data_uris_at_run_time(tmp_path, monkeypatch):
    """A stale cache or a hand-run DAG carrying `file://` or `//` never reaches the storage layer."""
    from pipespec.tasklib.guard import PolicyRefused, enforce_params

    monkeypatch.delenv(POLICY_ENV, raising=False)
    for uri in ("file:///tmp/storage/otherbucket/pii/", "s3://shared//growth/churn/", "s3://b/../x"):
        with pytest.raises(PolicyRefused):
            enforce_params("plan_shards", "team-a", {"input": uri})
    enforce_params("plan_shards", "team-a", {"input": "s3://team-a/in/", "publishes": "model://p"})
