"""Rollout stages against a real MLflow registry (SQLite under tmp).

The registry_alias target runs for real end to end; the Anyscale and Kubernetes
targets run the real operator / Kubernetes client and are cut off only where
they would leave the machine (the Anyscale SDK calls; the Kubernetes API, which
is a local HTTP server here that records the exact request).
"""

from __future__ import annotations

import json
import os
import shutil
import threading
import types
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from pipespec.tasklib.context import RunContext
from pipespec.tasklib.model import registry
from pipespec.tasklib.rollout import decide, stages

pytestmark = pytest.mark.airflow  # Airflow's hooks and connections

GUARD = {"max_drop": 0.02}
ALIAS_TARGET = {"type": "registry_alias", "alias": "champion"}


# --- a fresh MLflow registry per test (shared with test_inference / test_report) --------------

def _migrated_template() -> Path:
    """An empty, migrated MLflow DB, made once per machine: migrating costs ~10 s, a copy nothing."""
    import mlflow
    from mlflow import MlflowClient

    template = Path(os.environ["AIRFLOW_HOME"]) / f"mlflow-template-{mlflow.__version__}.db"
    if not template.exists():
        template.parent.mkdir(parents=True, exist_ok=True)
        staging = template.with_name(f".{uuid.uuid4().hex}.db")
        MlflowClient(tracking_uri=f"sqlite:///{staging}").search_experiments()
        staging.replace(template)
    return template


@pytest.fixture
def mlflow_registry(tmp_path, monkeypatch) -> Path:
    db = tmp_path / "mlflow.db"
    shutil.copy(_migrated_template(), db)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{db}")
    monkeypatch.chdir(tmp_path)  # MLflow's default artifact root is ./mlruns
    monkeypatch.setenv("PIPESPEC_STORAGE_ROOT", str(tmp_path / "storage"))
    monkeypatch.setenv("PIPESPEC_MODEL_CACHE", str(tmp_path / "model-cache"))
    return tmp_path


def register_version(pipeline: str, model_dir: Path | None = None, challenger: bool = True) -> str:
    """Register a model version the way train does (and make it the challenger)."""
    if model_dir is None:
        model_dir = Path(f"model-{uuid.uuid4().hex[:8]}")
        model_dir.mkdir()
        (model_dir / "pipespec.json").write_text(json.dumps(
            {"model_type": "keras_text_classifier", "features": ["text"], "label": "label"}))
    version = registry.register(pipeline, model_dir, params={}, metrics={}, tags={}, run_name="test")["version"]
    if challenger:
        registry.set_alias(pipeline, registry.CHALLENGER, version)
    return version


def aliases(pipeline: str) -> dict[str, str]:
    return {alias: str(version) for alias, version in registry.client().get_registered_model(pipeline).aliases.items()}


def scores_for(challenger_version: str, challenger: float, champion: float | None,
               champion_version: str | None = None, direction: str = "max") -> dict:
    return {"metric": "f1_macro", "direction": direction, "challenger": challenger, "champion": champion,
            "challenger_version": challenger_version, "champion_version": champion_version, "holdout_rows": 40,
            "scores": {"challenger": {"f1_macro": challenger, "accuracy": 0.9},
                       "champion": None if champion is None else {"f1_macro": champion, "accuracy": 0.85}}}


def ctx(task_id: str = "promote", run_id: str = "manual__run-a") -> RunContext:
    return RunContext(dag_id="p__train", task_id=task_id, run_id=run_id)


def full_rollout(pipeline: str, scores: dict, run_id: str = "manual__run-a", target: dict = ALIAS_TARGET) -> dict:
    """decide → shadow → canary → promote / reject, as the compiled train DAG orders them."""
    decision = decide.decide(ctx("decide", run_id), scores=scores, direction=scores["direction"],
                             floor=0.5, min_improvement=0.01)
    if decision["decision"] == "reject":
        return stages.reject(ctx("reject", run_id), pipeline=pipeline, target=target, scores=scores)
    stages.shadow(ctx("shadow", run_id), pipeline=pipeline, target=target, scores=scores)
    stages.canary(ctx("canary_10", run_id), pipeline=pipeline, target=target, percent=10, guard=GUARD, scores=scores)
    return stages.promote(ctx("promote", run_id), pipeline=pipeline, target=target, scores=scores)


# --- the champion/challenger lifecycle ------------------------------------------------------------

def test_first_model_becomes_champion(mlflow_registry):
    v1 = register_version("intents")
    result = full_rollout("intents", scores_for(v1, 0.8, None))
    assert result == {"champion": v1, "previous": None, "alias": "champion"}
    assert aliases("intents") == {"champion": v1}  # shadow, canary and challenger are cleaned up
    assert registry.version_tags("intents", v1)[stages.CANARY_TAG] == "10"


def test_better_model_promotes_and_records_previous_champion(mlflow_registry):
    v1 = register_version("intents")
    full_rollout("intents", scores_for(v1, 0.7, None), run_id="run-1")
    v2 = register_version("intents")
    result = full_rollout("intents", scores_for(v2, 0.8, 0.7, v1), run_id="run-2")
    assert result["champion"] == v2 and result["previous"] == v1
    assert aliases("intents") == {"champion": v2, "previous_champion": v1}


def test_worse_model_is_rejected_and_champion_kept(mlflow_registry):
    v1 = register_version("intents")
    full_rollout("intents", scores_for(v1, 0.8, None), run_id="run-1")
    v2 = register_version("intents")
    result = full_rollout("intents", scores_for(v2, 0.75, 0.8, v1), run_id="run-2")
    assert result["champion"] == v1 and result["rejected"] == v2
    assert aliases("intents") == {"champion": v1}
    reason = registry.version_tags("intents", v2)[stages.REJECTED_TAG]
    assert "f1_macro 0.7500 vs champion 0.8000" in reason


def test_train_only_pipeline_promotes_the_trained_version(mlflow_registry):
    v1 = register_version("plain", challenger=False)
    result = stages.promote(ctx(), pipeline="plain", target=ALIAS_TARGET, trained={"version": v1, "run_id": "x"})
    assert result["champion"] == v1 and aliases("plain") == {"champion": v1}


def test_custom_serving_alias(mlflow_registry):
    target = {"type": "registry_alias", "alias": "production"}
    v1 = register_version("custom")
    stages.promote(ctx(run_id="r1"), pipeline="custom", target=target, scores=scores_for(v1, 0.8, None))
    v2 = register_version("custom")
    stages.promote(ctx(run_id="r2"), pipeline="custom", target=target, scores=scores_for(v2, 0.9, 0.8, v1))
    assert aliases("custom") == {"production": v2, "previous_production": v1}
    stages.rollback(ctx("rollback", run_id="r2"), pipeline="custom", target=target)
    assert aliases("custom")["production"] == v1


def test_missing_challenger_is_a_clear_error(mlflow_registry):
    register_version("nochal", challenger=False)
    with pytest.raises(stages.NoChallenger, match="pipeline nochal has no `challenger` model version"):
        stages.shadow(ctx("shadow"), pipeline="nochal", target=ALIAS_TARGET)


# --- canary guard and rollback --------------------------------------------------------------------

@pytest.mark.parametrize("direction, challenger, champion, trips", [
    ("max", 0.70, 0.80, True),    # accuracy-like: 0.10 lower
    ("max", 0.79, 0.80, False),   # within max_drop
    ("min", 0.30, 0.20, True),    # rmse-like: 0.10 higher
    ("min", 0.21, 0.20, False),
])
def test_canary_guard(mlflow_registry, direction, challenger, champion, trips):
    v1 = register_version("guarded")
    stages.promote(ctx(run_id="r1"), pipeline="guarded", target=ALIAS_TARGET, scores=scores_for(v1, 0.5, None))
    v2 = register_version("guarded")
    scores = scores_for(v2, challenger, champion, v1, direction)
    run = lambda: stages.canary(ctx("canary_10", "r2"), pipeline="guarded", target=ALIAS_TARGET,  # noqa: E731
                                percent=10, guard=GUARD, scores=scores)
    if trips:
        with pytest.raises(stages.CanaryGuardTripped, match="more than max_drop 0.02"):
            run()
    else:
        assert run()["canary_challenger"] == challenger
    assert aliases("guarded")["canary"] == v2 and aliases("guarded")["champion"] == v1


def test_failed_canary_rolls_back_to_the_champion(mlflow_registry):
    v1 = register_version("canaried")
    full_rollout("canaried", scores_for(v1, 0.8, None), run_id="r1")
    v2 = register_version("canaried")
    scores = scores_for(v2, 0.70, 0.80, v1)
    stages.shadow(ctx("shadow", "r2"), pipeline="canaried", target=ALIAS_TARGET, scores=scores)
    with pytest.raises(stages.CanaryGuardTripped):
        stages.canary(ctx("canary_10", "r2"), pipeline="canaried", target=ALIAS_TARGET, percent=10, guard=GUARD,
                      scores=scores)
    result = stages.rollback(ctx("rollback", "r2"), pipeline="canaried", target=ALIAS_TARGET)
    assert result == {"champion": v1, "rolled_back": v2, "restored": False}
    assert aliases("canaried") == {"champion": v1}
    assert registry.version_tags("canaried", v2)[stages.ROLLED_BACK_TAG] == "r2"


def test_rollback_after_promotion_restores_previous_champion(mlflow_registry):
    v1 = register_version("restore")
    full_rollout("restore", scores_for(v1, 0.8, None), run_id="r1")
    v2 = register_version("restore")
    full_rollout("restore", scores_for(v2, 0.9, 0.8, v1), run_id="r2")
    assert aliases("restore")["champion"] == v2
    result = stages.rollback(ctx("rollback", "r2"), pipeline="restore", target=ALIAS_TARGET)
    assert result == {"champion": v1, "rolled_back": v2, "restored": True}
    assert aliases("restore")["champion"] == v1


def test_rollback_of_another_run_leaves_the_champion_alone(mlflow_registry):
    v1 = register_version("other")
    full_rollout("other", scores_for(v1, 0.8, None), run_id="r1")
    v2 = register_version("other")
    full_rollout("other", scores_for(v2, 0.9, 0.8, v1), run_id="r2")
    v3 = register_version("other")  # r3's challenger fails before any stage claimed it
    result = stages.rollback(ctx("rollback", "r3"), pipeline="other", target=ALIAS_TARGET)
    assert result == {"champion": v2, "rolled_back": v3, "restored": False}
    assert aliases("other") == {"champion": v2, "previous_champion": v1}


def test_rollback_without_any_champion_keeps_none(mlflow_registry):
    v1 = register_version("fresh")
    stages.shadow(ctx("shadow", "r1"), pipeline="fresh", target=ALIAS_TARGET, scores=scores_for(v1, 0.8, None))
    result = stages.rollback(ctx("rollback", "r1"), pipeline="fresh", target=ALIAS_TARGET)
    assert result["champion"] is None and aliases("fresh") == {}


# --- crash safety -------------------------------------------------------------------------------

class Crash(RuntimeError):
    pass


def crash_on(monkeypatch, name: str, call: int) -> None:
    """Make registry.<name> raise on its `call`-th call (1-based) and pass through otherwise."""
    real, calls = getattr(registry, name), []

    def flaky(*args, **kwargs):
        calls.append(args)
        if len(calls) == call:
            raise Crash(f"{name} call {call} crashed")
        return real(*args, **kwargs)

    monkeypatch.setattr(registry, name, flaky)


def two_champions(pipeline: str) -> tuple[str, str, dict]:
    v1 = register_version(pipeline)
    full_rollout(pipeline, scores_for(v1, 0.8, None), run_id="r1")
    v2 = register_version(pipeline)
    scores = scores_for(v2, 0.9, 0.8, v1)
    stages.shadow(ctx("shadow", "r2"), pipeline=pipeline, target=ALIAS_TARGET, scores=scores)
    return v1, v2, scores


def promotion_that_crashes(pipeline: str, monkeypatch, name: str, call: int):
    """v1 champion, v2 challenger through shadow, then a promotion of v2 that crashes at the
    `call`-th registry `name` call; returns (v1, v2, scores)."""
    v1, v2, scores = two_champions(pipeline)
    with monkeypatch.context() as patch:
        crash_on(patch, name, call)
        with pytest.raises(Crash):
            stages.promote(ctx("promote", "r2"), pipeline=pipeline, target=ALIAS_TARGET, scores=scores)
    return v1, v2, scores


# promote: set_alias 1 = previous_champion, 2 = champion; delete_alias 1..3 = shadow, canary, challenger
PROMOTE_CRASHES = [("set_alias", 1), ("set_alias", 2), ("delete_alias", 1), ("delete_alias", 3)]


@pytest.mark.parametrize("name, call", PROMOTE_CRASHES)
def test_promote_crash_then_rerun_converges(mlflow_registry, monkeypatch, name, call):
    pipeline = f"crash_promote_{name}_{call}"
    v1, v2, scores = promotion_that_crashes(pipeline, monkeypatch, name, call)
    assert aliases(pipeline)["champion"] in (v1, v2)  # a complete champion at every moment
    result = stages.promote(ctx("promote", "r2"), pipeline=pipeline, target=ALIAS_TARGET, scores=scores)
    assert result["champion"] == v2 and result["previous"] == v1
    assert aliases(pipeline) == {"champion": v2, "previous_champion": v1}


@pytest.mark.parametrize("name, call", PROMOTE_CRASHES)
def test_promote_crash_then_rollback_restores(mlflow_registry, monkeypatch, name, call):
    pipeline = f"crash_rollback_{name}_{call}"
    v1, v2, scores = promotion_that_crashes(pipeline, monkeypatch, name, call)
    result = stages.rollback(ctx("rollback", "r2"), pipeline=pipeline, target=ALIAS_TARGET)
    assert result["champion"] == v1 and result["rolled_back"] == v2
    assert aliases(pipeline)["champion"] == v1
    assert not {"shadow", "canary", "challenger"} & set(aliases(pipeline))


@pytest.mark.parametrize("name, call", [("set_alias", 1), ("delete_alias", 1), ("delete_alias", 2)])
def test_rollback_crash_then_rerun_converges(mlflow_registry, monkeypatch, name, call):
    pipeline = f"crash_rb_{name}_{call}"
    v1, v2, scores = two_champions(pipeline)
    stages.promote(ctx("promote", "r2"), pipeline=pipeline, target=ALIAS_TARGET, scores=scores)
    with monkeypatch.context() as patch:
        crash_on(patch, name, call)
        with pytest.raises(Crash):
            stages.rollback(ctx("rollback", "r2"), pipeline=pipeline, target=ALIAS_TARGET)
    assert aliases(pipeline)["champion"] in (v1, v2)
    stages.rollback(ctx("rollback", "r2"), pipeline=pipeline, target=ALIAS_TARGET)
    assert aliases(pipeline) == {"champion": v1, "previous_champion": v1}


# --- deployment targets ---------------------------------------------------------------------------

@pytest.fixture
def target_builders(monkeypatch):
    """The real request builders, recorded: (builder, args, kwargs, result) per call."""
    from pipespec.tasklib.rollout import targets

    calls: list[tuple] = []
    for name in ("anyscale_service_kwargs", "kubernetes_deployment_patch"):
        monkeypatch.setattr(targets, name, _recording(calls, name, getattr(targets, name)))
    return calls


def _recording(calls: list, name: str, builder):
    def build(*args, **kwargs):
        result = builder(*args, **kwargs)
        calls.append((name, args, kwargs, result))
        return result
    return build


@pytest.fixture
def anyscale_sdk(monkeypatch):
    """The two Anyscale SDK calls the operator makes, recorded; everything above them is real."""
    from anyscale.service.models import ServiceState
    from anyscale_provider.hooks.anyscale import AnyscaleHook

    deployed: list[dict] = []

    def deploy_service(self, configs, in_place, canary_percent, max_surge_percent):
        deployed.append({"config": configs, "canary_percent": canary_percent, "conn_id": self.conn_id})
        return f"service-{len(deployed)}"

    monkeypatch.setattr(AnyscaleHook, "deploy_service", deploy_service)
    monkeypatch.setattr(AnyscaleHook, "get_service_status",
                        lambda self, service_name: types.SimpleNamespace(state=ServiceState.RUNNING))
    return deployed


ANYSCALE = {"type": "anyscale_service", "name": "intents-svc", "conn_id": "anyscale_conn", "compute_config": None,
            "image_uri": None, "applications": [{"name": "intents", "import_path": "serve:app"}]}


def test_anyscale_service_target(mlflow_registry, target_builders, anyscale_sdk):
    v1 = register_version("svc")
    stages.promote(ctx(run_id="r1"), pipeline="svc", target=ANYSCALE, scores=scores_for(v1, 0.8, None))
    v2 = register_version("svc")
    stages.shadow(ctx("shadow", "r2"), pipeline="svc", target=ANYSCALE, scores=scores_for(v2, 0.9, 0.8, v1))
    with pytest.raises(stages.CanaryGuardTripped):
        stages.canary(ctx("canary_10", "r2"), pipeline="svc", target=ANYSCALE, percent=10, guard=GUARD,
                      scores=scores_for(v2, 0.5, 0.8, v1))
    result = stages.rollback(ctx("rollback", "r2"), pipeline="svc", target=ANYSCALE)

    assert [(args[0], args[2]["version"]) for _, args, _, _ in target_builders] == \
        [("full", v1), ("shadow", v2), ("canary", v2), ("rollback", v1)]  # rollback serves the champion again
    assert [kwargs["percent"] for _, _, kwargs, _ in target_builders] == [None, None, 10, None]
    assert all(args[1] is ANYSCALE and args[2]["model_uri"] == f"models:/svc/{args[2]['version']}"
               for _, args, _, _ in target_builders)
    # The real operator turned each builder's kwargs into exactly this SDK request.
    assert [r["canary_percent"] for r in anyscale_sdk] == [None, 0, 10, None]
    for (_, _, _, kwargs), request in zip(target_builders, anyscale_sdk, strict=True):
        assert request["config"].name == kwargs["name"] == "intents-svc"
        assert request["config"].applications == kwargs["applications"]
        assert request["config"].env_vars == kwargs["env_vars"]
        assert request["conn_id"] == "anyscale_conn"
    assert anyscale_sdk[1]["config"].env_vars["PIPESPEC_MODEL_VERSION"] == v2
    assert result["service_id"] == "service-4"
    assert aliases("svc") == {"champion": v1}


def test_anyscale_llm_version_tags_reach_the_service(mlflow_registry, target_builders, anyscale_sdk):
    """A fine-tuned LLM's adapter (version tags written by train) becomes the default Ray Serve LLM app."""
    target = {**ANYSCALE, "applications": []}
    v1 = register_version("llm")
    for key, value in {"base_model": "mistralai/Mistral-7B-Instruct-v0.1", "model_tag": "mistral:llm-1",
                       "lora_storage_uri": "s3://feedback/lora"}.items():
        registry.client().set_model_version_tag("llm", v1, f"pipespec.{key}", value)
    stages.promote(ctx(), pipeline="llm", target=target, scores=scores_for(v1, 0.8, None))
    app = anyscale_sdk[0]["config"].applications[0]
    assert app["args"]["llm_configs"][0]["lora_config"] == {"dynamic_lora_loading_path": "s3://feedback/lora"}
    assert target_builders[0][1][2]["model_tag"] == "mistral:llm-1"


def test_anyscale_failure_keeps_the_registry_unchanged(mlflow_registry, target_builders, monkeypatch):
    from anyscale_provider.hooks.anyscale import AnyscaleHook

    def refused(self, **kwargs):
        raise RuntimeError("Anyscale refused the rollout")

    monkeypatch.setattr(AnyscaleHook, "deploy_service", refused)
    v1 = register_version("refused")
    with pytest.raises(RuntimeError, match="refused"):
        stages.promote(ctx(), pipeline="refused", target=ANYSCALE, scores=scores_for(v1, 0.8, None))
    assert "champion" not in aliases("refused")  # the registry never names what the target refused


class KubernetesApi:
    """A local stand-in for the Kubernetes API server's Deployments: records every request;
    GET / POST / PATCH (a plain recursive merge) against an in-memory store."""

    def __init__(self, deployments: dict[str, dict]) -> None:
        self.deployments, self.requests = deployments, []
        api = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self, status: int, body: dict) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(json.dumps(body).encode())

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(length)) if length else None
                api.requests.append({"method": self.command, "path": self.path, "body": body,
                                     "content_type": self.headers.get("Content-Type")})
                name = self.path.rstrip("/").rsplit("/", 1)[-1]
                if self.command == "POST":
                    api.deployments[body["metadata"]["name"]] = body
                    return self._answer(201, body)
                if name not in api.deployments:
                    return self._answer(404, {"kind": "Status", "apiVersion": "v1", "status": "Failure",
                                              "reason": "NotFound", "code": 404})
                if self.command == "PATCH":
                    _merge(api.deployments[name], body)
                return self._answer(200, api.deployments[name])

            do_GET = do_POST = do_PATCH = _handle  # noqa: N815 - http.server API

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def kube_config(self) -> dict:
        return {"apiVersion": "v1", "kind": "Config", "current-context": "test",
                "clusters": [{"name": "test", "cluster": {"server": self.url}}],
                "contexts": [{"name": "test", "context": {"cluster": "test", "user": "test"}}],
                "users": [{"name": "test", "user": {"token": "t"}}]}


def _merge(into: dict, patch: dict) -> None:
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = value


def stable_deployment(name: str, namespace: str, replicas: int) -> dict:
    labels = {"app": name}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": namespace},
            "spec": {"replicas": replicas, "selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels},
                                  "spec": {"containers": [{"name": name, "image": "serve:1"}]}}}}


@pytest.fixture
def kubernetes_api(monkeypatch):
    api = KubernetesApi({"xray-serve": stable_deployment("xray-serve", "ml-serving", 3)})
    monkeypatch.setenv("AIRFLOW_CONN_KUBE_TEST", json.dumps(
        {"conn_type": "kubernetes", "extra": {"kube_config": json.dumps(api.kube_config())}}))
    yield api
    api.server.shutdown()
    api.server.server_close()


def test_kubernetes_target(mlflow_registry, target_builders, kubernetes_api):
    target = {"type": "kubernetes", "deployment": "xray-serve", "namespace": "ml-serving",
              "conn_id": "kube_test", "image": None}
    v1 = register_version("xray")
    scores = scores_for(v1, 0.9, None)
    stages.shadow(ctx("shadow"), pipeline="xray", target=target, scores=scores)
    stages.canary(ctx("canary_25"), pipeline="xray", target=target, percent=25, guard=GUARD, scores=scores)
    result = stages.promote(ctx(), pipeline="xray", target=target, scores=scores)

    base = "/apis/apps/v1/namespaces/ml-serving/deployments"
    assert [(r["method"], r["path"]) for r in kubernetes_api.requests] == [
        ("PATCH", f"{base}/xray-serve-shadow"), ("GET", f"{base}/xray-serve"), ("POST", base),
        ("PATCH", f"{base}/xray-serve-shadow"),                     # shadow: clone, then patch the clone
        ("GET", f"{base}/xray-serve"),                               # canary: size it against the stable one
        ("PATCH", f"{base}/xray-serve-canary"), ("GET", f"{base}/xray-serve"), ("POST", base),
        ("PATCH", f"{base}/xray-serve-canary"),
        ("PATCH", f"{base}/xray-serve"), ("PATCH", f"{base}/xray-serve-canary"),
        ("PATCH", f"{base}/xray-serve-shadow")]                     # full: serve v1, scale the clones to 0
    patches = [r for r in kubernetes_api.requests if r["method"] == "PATCH"]
    assert {r["content_type"] for r in patches} == {stages.STRATEGIC_MERGE}
    planned = [(f"{base}/{item['name']}", item["body"]) for *_, plan in target_builders for item in plan["patches"]]
    applied = [(r["path"], r["body"]) for r in patches]  # a patch that met a 404 is sent again after the clone
    assert [p for i, p in enumerate(applied) if i == 0 or p != applied[i - 1]] == planned
    assert target_builders[1][2] == {"percent": 25, "stable_replicas": 3}
    deployments = kubernetes_api.deployments
    assert deployments["xray-serve-canary"]["spec"]["replicas"] == 0  # after full rollout
    assert deployments["xray-serve"]["spec"]["template"]["metadata"]["annotations"]["pipespec/model-version"] == v1
    assert result["deployment"] == "ml-serving/xray-serve" and result["traffic_percent"] == 100
    assert aliases("xray") == {"champion": v1}


# --- the compiled train DAG with the real stages ----------------------------------------------

TRAIN_SPEC = """\
pipeline: {name}
train: {{dataset: "s3://{name}/curated/", model: {{type: keras_text_classifier}}}}
evaluate: {{metric: f1_macro, floor: 0.5}}
rollout: {{min_improvement: 0.01, stages: [shadow, {{canary: {{percent: 10, guard: {{max_drop: 0.02}}}}}}, full]}}
retries: {{count: 0}}
"""


@pytest.mark.parametrize("challenger, canary_challenger, expected", [
    (0.9, 0.9, "promoted"),
    (0.9, 0.5, "rolled back"),  # decide promotes, the canary slice disagrees
    (0.7, 0.7, "rejected"),
])
def test_train_dag_with_real_stages(mlflow_registry, monkeypatch, challenger, canary_challenger, expected):
    """Train and evaluate are stand-ins (they register a version and report scores); decide, the
    stages, rollback and the report are the real steps, wired by the compiled DAG's trigger rules."""
    from pipespec.local.local_env import ensure_db
    from tests.support.airflow_harness import run_dag, steps

    ensure_db()
    name = f"train_dag_{expected.replace(' ', '_')}"
    pipelines = mlflow_registry / "pipelines"
    pipelines.mkdir()
    (pipelines / f"{name}.yaml").write_text(TRAIN_SPEC.format(name=name))
    v1 = register_version(name, challenger=False)
    registry.set_alias(name, registry.CHAMPION, v1)
    monkeypatch.setattr(stages, "canary_metric", lambda pipeline, version, scores: (canary_challenger, 0.8))

    def train(ctx, **_):
        return {"version": register_version(name), "run_id": "x"}

    def evaluate(ctx, trained, **_):
        return scores_for(trained["version"], challenger, 0.8, v1)

    with steps(model_train=train, model_evaluate=evaluate):
        run, states = run_dag(pipelines, f"{name}__train", monkeypatch, mlflow_registry / "cache")

    v2 = str(int(v1) + 1)
    champion_after = {"promoted": v2, "rolled back": v1, "rejected": v1}[expected]
    assert aliases(name)["champion"] == champion_after
    assert not {"shadow", "canary", "challenger"} & set(aliases(name))
    if expected == "rolled back":
        assert run.state == "failed"  # the failed canary stays visible
        assert states[("canary_10", -1)] == "failed" and states[("rollback", -1)] == "success"
        assert registry.version_tags(name, v2)[stages.ROLLED_BACK_TAG] == run.run_id
    else:
        assert run.state == "success" and states[("rollback", -1)] == "skipped"
        assert states[("report", -1)] == "success"
        logged = registry.client().list_artifacts(registry.client().get_model_version(name, v2).run_id, "report")
        assert {"report/report.md", "report/report.html"} <= {a.path for a in logged}
        assert any(a.path.endswith(".png") for a in logged)  # its charts


def test_a_serving_target_the_policy_refuses_sends_no_request(mlflow_registry, target_builders, kubernetes_api):
    """Without a policy file `kube-system` is refused: the worker checks before any Kubernetes request."""
    from pipespec.tasklib.guard import PolicyRefused

    target = {"type": "kubernetes", "deployment": "xray-serve", "namespace": "kube-system",
              "conn_id": "kube_test", "image": None}
    v1 = register_version("xray")
    with pytest.raises(PolicyRefused, match="kube-system"):
        stages.shadow(ctx("shadow"), pipeline="xray", target=target, scores=scores_for(v1, 0.9, None))
    assert kubernetes_api.requests == [] and target_builders == []
