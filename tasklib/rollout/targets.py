"""The exact requests a rollout stage sends to a serving target (pure builders), and
for Kubernetes the small function that sends them.

`version_info` describes the model version being rolled out:

    {"pipeline": str, "version": str, "model_uri": str,      # always
     "image": str,                                           # optional: serving image override
     "base_model": str, "lora_storage_uri": str, "model_tag": str}   # llm_finetune results

Stages are "shadow" (deployed, no traffic), "canary" (`percent` of traffic), "full"
and "rollback" (= full rollout of the version passed, normally the champion's).

Anyscale Service (`anyscale_service_kwargs`, for anyscale_provider's
RolloutAnyscaleService): every rollout deploys the service config carrying the
version in its environment, so each model version is a new service version, and
`canary_percent` sets its share of traffic: 0 for shadow, N for a canary, and None
for full/rollback, which lets Anyscale shift traffic to 100% and finish the rollout.

Kubernetes (`kubernetes_deployment_patch`): the stable Deployment `<d>` serves the
champion. A canary is a separate Deployment `<d>-canary` cloned from `<d>` (same pod
labels, so the Service sends it traffic; plus `pipespec/track: canary` in its selector;
as in the Kubernetes canary pattern, `<d>`'s own selector should carry a label canary
pods lack, such as `pipespec/track: stable`) with replicas proportional to the percent. A shadow
is `<d>-shadow`, whose pods carry none of `<d>`'s labels, so no Service selects
them. `full` patches `<d>` itself and scales the canary and shadow to zero;
`rollback` does the same with the champion's version. `apply_kubernetes_rollout`
sends the patches: it creates a missing clone from `<d>` (with zero replicas, so it
takes no traffic before its patch), sends every patch as a strategic merge patch
(named explicitly, not left to the client's guess), and treats scaling down a track
that never existed as done. Strategic merge patches merge containers by name:
the serving container is named like the Deployment unless the target says `container:`.

On Anyscale, a service that does not exist yet takes all traffic on its first
deployment, whatever `canary_percent` says (the SDK ignores it on creation).

Every serving target, built-in or an installed plugin's, is a `serving_target` plugin: `deploy`
calls its registered implementation with a `Deployment` (the stage, the target's validated
params, the version and its traffic share) and returns what the implementation reports.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

STAGES = ("shadow", "canary", "full", "rollback")
VERSION_ANNOTATION = "pipespec/model-version"
TRACK_LABEL = "pipespec/track"
STRATEGIC_MERGE = "application/strategic-merge-patch+json"
SERVICE_ROLLOUT_TIMEOUT_S = 1800
POLL_INTERVAL_S = 30


def canary_percent(stage: str, percent: int | None = None) -> int | None:
    """The traffic share of a stage: the canary's percent, 0 for shadow, None for the rest."""
    if stage not in STAGES:
        raise ValueError(f"unknown rollout stage `{stage}` (known: {', '.join(STAGES)})")
    if stage == "canary":
        if percent is None or not 0 < percent < 100:
            raise ValueError(f"a canary needs a percent between 1 and 99, got {percent}")
        return percent
    return 0 if stage == "shadow" else None


def model_env(version_info: Mapping[str, Any]) -> dict[str, str]:
    """What the serving code reads to load the version (and what makes each version distinct)."""
    return {"PIPESPEC_PIPELINE": str(version_info["pipeline"]),
            "PIPESPEC_MODEL_VERSION": str(version_info["version"]),
            "PIPESPEC_MODEL_URI": str(version_info["model_uri"])}


# --- Anyscale Service ------------------------------------------------------------------

def anyscale_service_kwargs(stage: str, target: Mapping[str, Any], version_info: Mapping[str, Any], *,
                            percent: int | None = None) -> dict[str, Any]:
    """Keyword arguments for RolloutAnyscaleService (besides task_id)."""
    return {
        "conn_id": target.get("conn_id") or "anyscale_conn",
        "name": target["name"],
        "applications": applications(target, version_info),
        "image_uri": version_info.get("image") or target.get("image_uri"),
        "compute_config": target.get("compute_config"),
        "env_vars": model_env(version_info),
        "in_place": False,  # in-place updates cannot carry a canary percent
        "canary_percent": canary_percent(stage, percent),
        "service_rollout_timeout_seconds": SERVICE_ROLLOUT_TIMEOUT_S,
        "poll_interval": POLL_INTERVAL_S,
        "wait_for_completion": True,
    }


def applications(target: Mapping[str, Any], version_info: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The spec's Ray Serve applications; for a fine-tuned LLM with none given, an OpenAI-compatible
    Ray Serve LLM app over the base model that loads the run's LoRA adapter by its model tag."""
    if target.get("applications"):
        return copy.deepcopy(list(target["applications"]))
    if not version_info.get("base_model"):
        raise ValueError(f"rollout target anyscale_service `{target['name']}` lists no `applications`, and only "
                         "fine-tuned LLMs have a default one: list the Ray Serve applications to deploy")
    return [{
        "name": str(version_info["pipeline"]),
        "route_prefix": "/",
        "import_path": "ray.serve.llm:build_openai_app",
        "args": {"llm_configs": [{
            "model_loading_config": {"model_id": version_info["base_model"],
                                     "model_source": version_info["base_model"]},
            # Requests for model `<model_tag>` load the adapter from <path>/<model_tag>.
            "lora_config": {"dynamic_lora_loading_path": version_info["lora_storage_uri"]},
        }]},
    }]


# --- Kubernetes ------------------------------------------------------------------------

def kubernetes_deployment_patch(stage: str, target: Mapping[str, Any], version_info: Mapping[str, Any], *,
                                percent: int | None = None, stable_replicas: int = 1) -> dict[str, Any]:
    """The Deployment patches of one stage, in order: {"namespace", "conn_id", "patches": [
    {"name", "body" (strategic merge patch), "clone_of" (create it from this one if missing) or None}],
    "traffic_percent": the challenger's share of pods once applied}."""
    share = canary_percent(stage, percent)
    deployment = target["deployment"]
    serve = _serving_template(target, version_info)
    if stage == "shadow":
        patches = [_clone_patch(f"{deployment}-shadow", deployment, "shadow", 1, serve)]
        traffic = 0
    elif stage == "canary":
        replicas = canary_replicas(share, stable_replicas)  # type: ignore[arg-type]
        patches = [_clone_patch(f"{deployment}-canary", deployment, "canary", replicas, serve)]
        traffic = round(100 * replicas / (replicas + stable_replicas))
    else:
        patches = [{"name": deployment, "clone_of": None, "body": {
            "metadata": {"annotations": {VERSION_ANNOTATION: str(version_info["version"])}},
            "spec": {"template": serve}}}]
        patches += [_scale_patch(f"{deployment}-{track}", 0) for track in ("canary", "shadow")]
        traffic = 100
    return {"namespace": target.get("namespace") or "default", "conn_id": target.get("conn_id") or "kubernetes_default",
            "patches": patches, "traffic_percent": traffic}


def canary_replicas(percent: int, stable_replicas: int) -> int:
    """Pods for `percent` of traffic beside `stable_replicas` (a Service balances per pod): at least one."""
    if stable_replicas < 1:
        raise ValueError(f"the stable Deployment needs at least one replica for a canary, has {stable_replicas}")
    return max(1, math.ceil(stable_replicas * percent / (100 - percent) - 1e-9))


def _serving_template(target: Mapping[str, Any], version_info: Mapping[str, Any]) -> dict[str, Any]:
    container: dict[str, Any] = {"name": target.get("container") or target["deployment"],
                                 "env": [{"name": k, "value": v} for k, v in model_env(version_info).items()]}
    image = version_info.get("image") or target.get("image")
    if image:
        container["image"] = image
    # A changed pod-template annotation is what makes Kubernetes roll the pods.
    return {"metadata": {"annotations": {VERSION_ANNOTATION: str(version_info["version"])}},
            "spec": {"containers": [container]}}


def _clone_patch(name: str, source: str, track: str, replicas: int, serve: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "clone_of": source, "body": {
        "metadata": {"labels": {TRACK_LABEL: track}, "annotations": dict(serve["metadata"]["annotations"])},
        "spec": {"replicas": replicas, "template": serve}}}


def _scale_patch(name: str, replicas: int) -> dict[str, Any]:
    return {"name": name, "clone_of": None, "body": {"spec": {"replicas": replicas}}}


def clone_deployment(base: Mapping[str, Any], name: str, track: str) -> dict[str, Any]:
    """A new Deployment (API wire form) from the stable one, for the canary or shadow track.

    Canary pods keep the stable pods' labels (the Service selects them) and add the track
    label; shadow pods get only `app: <name>` and the track label, so no Service selects them.
    """
    if track not in ("canary", "shadow"):
        raise ValueError(f"clones are for the canary or shadow track, not `{track}`")
    meta, spec = base.get("metadata") or {}, copy.deepcopy(dict(base.get("spec") or {}))
    template = spec.setdefault("template", {})
    template.setdefault("metadata", {})
    if track == "canary":
        pod_labels = {**(template["metadata"].get("labels") or {}), TRACK_LABEL: track}
        selector = {**((spec.get("selector") or {}).get("matchLabels") or {}), TRACK_LABEL: track}
    else:
        pod_labels = selector = {"app": name, TRACK_LABEL: track}
    template["metadata"]["labels"] = dict(pod_labels)
    spec["selector"] = {"matchLabels": dict(selector)}
    spec["replicas"] = 0  # the stage's patch sets the real count together with the new version
    spec.pop("paused", None)
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": meta.get("namespace"),
                     "labels": {**(meta.get("labels") or {}), TRACK_LABEL: track},
                     "annotations": {"pipespec/clone-of": meta.get("name", "")}},
        "spec": spec,
    }


def apply_kubernetes_rollout(api_client: Any, request: Mapping[str, Any]) -> list[str]:
    """Send the patches of `kubernetes_deployment_patch` through a kubernetes ApiClient
    (e.g. `KubernetesHook(conn_id).get_conn()`); returns what was done, for the task log."""
    from kubernetes.client import AppsV1Api
    from kubernetes.client.rest import ApiException

    apps, namespace, done = AppsV1Api(api_client), request["namespace"], []
    for patch in request["patches"]:
        name = patch["name"]
        try:
            apps.read_namespaced_deployment(name, namespace)
        except ApiException as exc:
            if exc.status != 404:
                raise
            if not patch["clone_of"]:
                done.append(f"{name}: absent, nothing to scale")
                continue
            base = api_client.sanitize_for_serialization(apps.read_namespaced_deployment(patch["clone_of"], namespace))
            track = patch["body"]["metadata"]["labels"][TRACK_LABEL]
            apps.create_namespaced_deployment(namespace, clone_deployment(base, name, track))
            done.append(f"{name}: created from {patch['clone_of']}")
        apps.patch_namespaced_deployment(name, namespace, patch["body"], _content_type=STRATEGIC_MERGE)
        done.append(f"{name}: patched")
    return done


# --- the serving-target contract (built-in and plugin targets alike) ---------------------------------

@dataclass(frozen=True)
class Deployment:
    """What a serving target's implementation gets for one stage.

    `stage` is shadow, canary, full or rollback; `percent` the challenger's traffic share (0 for a
    shadow, the canary's percent, None for full and rollback: all of it); `params` the target's
    settings validated by its params model (defaults filled); `version` the version_info above;
    `ctx` the run. The implementation returns a JSON-able dict that becomes part of the stage's result."""

    stage: str
    params: dict[str, Any]
    version: Mapping[str, Any]
    percent: int | None
    target: dict[str, Any]
    ctx: Any = None


def deploy(ctx: Any, stage: str, target: dict[str, Any], version_info: Mapping[str, Any], *,
           percent: int | None = None) -> dict[str, Any]:
    """Send `version_info` to the serving target for `stage` through its registered implementation."""
    from pipespec.schemas import plugins
    from pipespec.tasklib.steps import plugin_implementation

    kind = str(target["type"])
    implementation = plugin_implementation("serving_target", kind)
    settings = {k: v for k, v in target.items() if k != "type"}
    params = plugins.check_params("serving_target", kind, settings).model_dump()
    share = canary_percent(stage, percent)
    result = implementation(Deployment(stage, params, version_info, share, target, ctx))
    if result is not None and not isinstance(result, dict):
        raise TypeError(f"serving target `{kind}` returned a {type(result).__name__}, not a dict")
    return result or {}


def registry_alias(deployment: Deployment) -> dict[str, Any]:
    """The `registry_alias` target: the stage's alias move is the whole deployment (rollout.stages)."""
    return {}


def anyscale_service(deployment: Deployment) -> dict[str, Any]:
    """The `anyscale_service` target: a new service version (see anyscale_service_kwargs)."""
    from pipespec.tasklib.rollout import stages

    # The request builders take the spec's target and the canary's own percent (they default the rest).
    return {"service_id": stages._rollout_anyscale_service(deployment.ctx, deployment.stage, deployment.target,
                                                           dict(deployment.version), _canary(deployment))}


def kubernetes(deployment: Deployment) -> dict[str, Any]:
    """The `kubernetes` target: the stage's Deployment patches (see kubernetes_deployment_patch)."""
    from pipespec.tasklib.rollout import stages

    return stages._apply_kubernetes_patches(deployment.stage, deployment.target, dict(deployment.version),
                                            _canary(deployment))


def _canary(deployment: Deployment) -> int | None:
    return deployment.percent if deployment.stage == "canary" else None
