"""Rollout stages: a small state machine over registry aliases, plus the serving
target's deployment request.

Aliases on the pipeline's registered model (one per pipeline):

    challenger          the candidate of the current run (set by train)
    shadow / canary     the challenger is deployed with no / some traffic
    <alias>             what serving and inference load (`champion` unless the
                        registry_alias target names another alias)
    previous_<alias>    the champion before the last promotion, for rollback

Every alias move is one registry call, and the calls are ordered so that a crash
between any two leaves a complete champion in place and a rerun converges:

    promote   previous_<alias> <- champion; <alias> <- challenger; drop shadow, canary, challenger
    rollback  <alias> <- previous_<alias> (only if this run's challenger became champion);
              drop shadow, canary

Promotion is a compare-and-set. Evaluate recorded which version the challenger
beat; promote re-reads `<alias>` under a registry lock (registry.alias_lease) and
moves it only if it still names that version. If another run moved it meanwhile,
the challenger is judged again against the new champion, on the same holdout and
with the same metric, direction and min_improvement, and is rejected (the task
fails, without retries) unless it still wins. Rollback moves the alias under the
same lock.

For `anyscale_service` and `kubernetes` targets each stage also sends the
deployment request (built by `pipespec.tasklib.rollout.targets`) *before* recording the
version in the registry, so the registry never names a version the target
refused. Rollback deploys the champion it ends with, which takes canary traffic
away from a failed challenger.
"""

from __future__ import annotations

import logging
from typing import Any

from pipespec.tasklib.context import RunContext
from pipespec.tasklib.errors import PermanentFailure
from pipespec.tasklib.guard import enforce_target
from pipespec.tasklib.model import registry
from pipespec.tasklib.rollout import decide
from pipespec.tasklib.rollout.targets import SERVICE_ROLLOUT_TIMEOUT_S

log = logging.getLogger(__name__)

SHADOW = "shadow"
CANARY = "canary"
CANARY_TAG = "pipespec.canary_percent"
REJECTED_TAG = "pipespec.rejected"
ROLLED_BACK_TAG = "pipespec.rolled_back"
# Which Airflow run rolled a version out: lets rollback find "this run's challenger"
# even after a crashed promote already dropped the `challenger` alias.
ROLLOUT_RUN_TAG = "pipespec.rollout_run_id"


class NoChallenger(LookupError):
    """No challenger version to roll out."""


class CanaryGuardTripped(PermanentFailure):
    """The challenger did worse on its canary slice than the guard allows: the DAG rolls back at once
    (checking the same window again cannot change the verdict)."""


class ChampionChanged(PermanentFailure):
    """The serving alias moved after evaluation, and the challenger does not beat the new champion."""


# --- stages -----------------------------------------------------------------

def shadow(ctx: RunContext, *, pipeline: str, target: dict, scores: dict | None = None,
           duration: str | None = None) -> dict:
    """Deploy the challenger with no traffic; `duration` is how long it should run so (recorded, not waited)."""
    version = _challenger(pipeline, scores)
    _claim(ctx, pipeline, version)
    deployment = _deploy(ctx, "shadow", pipeline, target, version)
    registry.set_alias(pipeline, SHADOW, version)
    return {"stage": "shadow", "version": version, "duration": duration, **deployment}


def canary(ctx: RunContext, *, pipeline: str, target: dict, percent: int, guard: dict,
           duration: str | None = None, scores: dict | None = None) -> dict:
    """Send `percent`% of traffic to the challenger. Without a `duration` the guard is checked at once
    (a trip raises, and the DAG rolls back); with one, `canary_guard` checks it when the window ends."""
    version = _challenger(pipeline, scores)
    _claim(ctx, pipeline, version)
    registry.client().set_model_version_tag(pipeline, version, CANARY_TAG, str(percent))
    deployment = _deploy(ctx, "canary", pipeline, target, version, percent=percent)
    registry.set_alias(pipeline, CANARY, version)
    observed = {} if duration else check_guard(pipeline, version, scores or {},
                                               max_drop=float(guard.get("max_drop", 0.0)))
    return {"stage": "canary", "version": version, "percent": percent, "duration": duration, **observed, **deployment}


def canary_guard(ctx: RunContext, *, pipeline: str, guard: dict, scores: dict | None = None) -> dict:
    """At the end of the canary's window: the guard on what the canary served; a trip raises (rollback)."""
    version = _challenger(pipeline, scores)
    return {"stage": "canary_guard", "version": version,
            **check_guard(pipeline, version, scores or {}, max_drop=float(guard.get("max_drop", 0.0)))}


def promote(ctx: RunContext, *, pipeline: str, target: dict, scores: dict | None = None,
            trained: dict | None = None) -> dict:
    """Make the challenger the champion: one alias move, after recording the champion it replaces.

    A rerun after a crash anywhere in here finishes the job: once the champion alias
    already names the challenger, only the clean-up is left (and `previous` is not
    overwritten with the challenger itself).
    """
    alias = serving_alias(target)
    version = _challenger(pipeline, scores, trained)
    _claim(ctx, pipeline, version)
    with _lease(ctx, pipeline, alias) as lease:
        current = registry.version_for(pipeline, alias)
        _before_move(pipeline, current)
        # Train-only pipelines (no scores) promote unconditionally; a rerun after a crash finds its own version.
        if scores is not None and current not in (version, scores.get("champion_version")):
            verdict = redecide(ctx, pipeline, scores, current)
            if verdict["decision"] != "promote":
                reason = (f"`{alias}` moved from {_v(scores.get('champion_version'))} to {_v(current)} after "
                          f"evaluation; against it, {scores['metric']} {_fmt(verdict['challenger'])}: "
                          f"{verdict['reason']}")
                registry.client().set_model_version_tag(pipeline, version, REJECTED_TAG, reason)
                _retire(pipeline, version, (SHADOW, CANARY), also_challenger=True)
                raise ChampionChanged(f"{pipeline} v{version} is not promoted: {reason}")
            log.info("pipespec: %s moved to %s since evaluation; v%s still wins: %s", alias, _v(current), version,
                     verdict["reason"])
        deployment = _deploy(ctx, "promote", pipeline, target, version)
        if current != version:
            lease.verify()  # a holder that outlived its lease must not write
            if current is not None:
                registry.set_alias(pipeline, previous_alias(alias), current)
            registry.set_alias(pipeline, alias, version)  # the atomic move
    _retire(pipeline, version, (SHADOW, CANARY), also_challenger=True)
    return {"champion": version, "previous": registry.version_for(pipeline, previous_alias(alias)),
            "alias": alias, **deployment}


def reject(ctx: RunContext, *, pipeline: str, target: dict, scores: dict) -> dict:
    """Keep the champion; retire the challenger and say why on the version itself."""
    version = _challenger(pipeline, scores)
    reason = rejection_reason(scores)
    registry.client().set_model_version_tag(pipeline, version, REJECTED_TAG, reason)
    _retire(pipeline, version, (SHADOW, CANARY), also_challenger=True)
    return {"champion": registry.version_for(pipeline, serving_alias(target)), "rejected": version, "reason": reason}


def rollback(ctx: RunContext, *, pipeline: str, target: dict) -> dict:
    """A stage failed: restore the previous champion if this run's challenger had replaced it.

    Never deletes the champion alias, so a registry that had a champion keeps one.
    """
    alias = serving_alias(target)
    candidate = _this_runs_challenger(ctx, pipeline)
    with _lease(ctx, pipeline, alias) as lease:
        before = registry.version_for(pipeline, alias)
        previous = registry.version_for(pipeline, previous_alias(alias))
        champion = before
        if candidate is not None and before == candidate and previous not in (None, candidate):
            lease.verify()
            registry.set_alias(pipeline, alias, previous)
            champion = previous
    deployment: dict[str, Any] = {}
    if champion is not None:
        deployment = _deploy(ctx, "rollback", pipeline, target, champion)
    elif target["type"] != "registry_alias":
        log.warning("pipespec: %s has no champion to restore on %s; the target keeps what it runs",
                    pipeline, target["type"])
    if candidate is not None:
        registry.client().set_model_version_tag(pipeline, candidate, ROLLED_BACK_TAG, ctx.run_id)
        _retire(pipeline, candidate, (), also_challenger=True)
    for stage_alias in (SHADOW, CANARY):
        registry.delete_alias(pipeline, stage_alias)
    return {"champion": champion, "rolled_back": candidate, "restored": champion != before, **deployment}


# --- compare-and-set -------------------------------------------------------

# The longest a promoter holds the lock: one serving-target rollout (the deploy happens under it,
# so the target never ends on the loser) plus a margin. Waiting promoters wait that long, then
# break a lock whose holder died (registry.alias_lease).
LOCK_TTL_S = SERVICE_ROLLOUT_TIMEOUT_S + 600
LOCK_WAIT_S = LOCK_TTL_S + 60


def _lease(ctx: RunContext, pipeline: str, alias: str):
    return registry.alias_lease(pipeline, alias, f"{ctx.dag_id}/{ctx.run_id}/{ctx.task_id}",
                                ttl_s=LOCK_TTL_S, wait_s=LOCK_WAIT_S)


def _before_move(pipeline: str, current: str | None) -> None:
    """Between reading the alias and moving it, under the lock: a seam where tests force races."""


def redecide(ctx: RunContext, pipeline: str, scores: dict, current: str | None) -> dict:
    """decide() again, with `current` as the champion: its score on the very holdout the challenger was
    scored on (recorded by its own evaluation), else both scored afresh on one holdout."""
    from pipespec.tasklib.model import evaluate

    challenger, champion = scores["challenger"], None
    if current is not None:
        champion = registry.holdout_score(pipeline, current, sha256=scores.get("holdout_sha256", ""),
                                          metric=scores["metric"])
        if champion is None:
            if not scores.get("rescore_job"):
                return {"decision": "reject", "challenger": challenger, "champion": None,
                        "reason": f"v{current} was never scored on this holdout, and this evaluation "
                                  "cannot be repeated to compare with it"}
            fresh = evaluate.rescore(scores["rescore_job"], current)
            challenger, champion = fresh["challenger"], fresh["champion"]
    return decide.decide(ctx, scores={"challenger": challenger, "champion": champion},
                         direction=scores["direction"], floor=None,  # the floor was met at decide
                         min_improvement=float(scores.get("min_improvement") or 0.0))


# --- the canary guard -----------------------------------------------------

def canary_metric(pipeline: str, version: str, scores: dict) -> tuple[float | None, float | None]:
    """(challenger, champion) values of the decision metric on the canary slice.

    The hook point for live metrics: a serving system that reports per-version
    traffic metrics plugs in here. Until one does, the holdout scores from
    `evaluate` stand in, so the guard still refuses a challenger that is worse
    than the champion by more than the allowed drop.
    """
    return scores.get("challenger"), scores.get("champion")


def check_guard(pipeline: str, version: str, scores: dict, *, max_drop: float) -> dict:
    """The canary's metric values; CanaryGuardTripped when the challenger drops more than `max_drop`."""
    challenger, champion = canary_metric(pipeline, version, scores)
    result = {"canary_challenger": challenger, "canary_champion": champion}
    if challenger is None or champion is None:
        return result  # nothing to compare against (first model): the guard has no baseline
    sign = -1 if scores.get("direction") == "min" else 1
    drop = sign * (champion - challenger)
    if drop > max_drop:
        metric = scores.get("metric", "metric")
        raise CanaryGuardTripped(
            f"canary guard tripped for {pipeline} version {version}: {metric} {challenger:.4f} vs champion "
            f"{champion:.4f} is a drop of {drop:.4f}, more than max_drop {max_drop}")
    return result


def rejection_reason(scores: dict) -> str:
    """Why a challenger was rejected, in words."""
    metric, challenger, champion = scores.get("metric", "metric"), scores.get("challenger"), scores.get("champion")
    text = f"{metric} {_fmt(challenger)}"
    if champion is not None:
        text += f" vs champion {_fmt(champion)}"
    return text + " (did not clear the floor or the required improvement)"


# --- helpers ----------------------------------------------------------------

def serving_alias(target: dict) -> str:
    """The alias that serves for a target: its own for `registry_alias`, else `champion`."""
    if target.get("type") == "registry_alias":
        return str(target.get("alias") or registry.CHAMPION)
    return registry.CHAMPION


def previous_alias(alias: str) -> str:
    """The alias that remembers what `alias` pointed at before, for rollback."""
    return f"previous_{alias}"


def _challenger(pipeline: str, scores: dict | None = None, trained: dict | None = None) -> str:
    """The version this run rolls out: named by evaluate (or train), else the `challenger` alias."""
    version = (scores or {}).get("challenger_version") or (trained or {}).get("version") \
        or registry.version_for(pipeline, registry.CHALLENGER)
    if version is None:
        raise NoChallenger(f"pipeline {pipeline} has no `challenger` model version: the train step registers one")
    return str(version)


def _claim(ctx: RunContext, pipeline: str, version: str) -> None:
    registry.client().set_model_version_tag(pipeline, version, ROLLOUT_RUN_TAG, ctx.run_id)


def _this_runs_challenger(ctx: RunContext, pipeline: str) -> str | None:
    """The version a stage of this run claimed; else the `challenger` alias (a stage failed before claiming)."""
    found = registry.client().search_model_versions(
        f"name='{pipeline}' and tags.`{ROLLOUT_RUN_TAG}` = '{ctx.run_id}'")
    if found:
        return str(max(int(v.version) for v in found))
    return registry.version_for(pipeline, registry.CHALLENGER)


def _retire(pipeline: str, version: str, aliases: tuple[str, ...], *, also_challenger: bool) -> None:
    for alias in aliases:
        registry.delete_alias(pipeline, alias)
    # `challenger` may already name a newer run's candidate: only drop it while it is ours.
    if also_challenger and registry.version_for(pipeline, registry.CHALLENGER) == version:
        registry.delete_alias(pipeline, registry.CHALLENGER)


def _v(version: str | None) -> str:
    return f"v{version}" if version is not None else "no version"


def _fmt(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, (int, float)) else str(value)


# --- serving targets ----------------------------------------------------------

# Our stage names → the request builders' (pipespec.tasklib.rollout.targets) stage names.
TARGET_STAGES = {"shadow": "shadow", "canary": "canary", "promote": "full", "rollback": "rollback"}
# Version tags a train step may set that targets need (llm_finetune: the adapter to serve).
VERSION_INFO_TAGS = ("image", "base_model", "lora_storage_uri", "model_tag")
STRATEGIC_MERGE = "application/strategic-merge-patch+json"


def _deploy(ctx: RunContext, stage: str, pipeline: str, target: dict, version: str,
            percent: int | None = None) -> dict:
    """Send `version` to the serving target for `stage`; the registry alias alone needs no request."""
    kind = target["type"]
    if kind == "registry_alias":
        return {}
    enforce_target(ctx.task_id, ctx.owner, target)  # before any request reaches the serving platform
    from pipespec.tasklib.rollout.targets import deploy

    # Every target, built-in or an installed plugin's, through its registered implementation.
    return deploy(ctx, TARGET_STAGES[stage], target, version_info(pipeline, version), percent=percent)


def version_info(pipeline: str, version: str) -> dict:
    """What a target needs to know about the version it serves (see pipespec.tasklib.rollout.targets)."""
    model_version = registry.client().get_model_version(pipeline, version)
    info = {"pipeline": pipeline, "version": version, "run_id": model_version.run_id,
            "source": model_version.source, "model_uri": f"models:/{pipeline}/{version}"}
    tags = model_version.tags or {}
    for key in VERSION_INFO_TAGS:
        value = tags.get(f"pipespec.{key}") or tags.get(key)
        if value:
            info[key] = value
    return info


def _rollout_anyscale_service(ctx: RunContext, stage: str, target: dict, info: dict, percent: int | None) -> str:
    from anyscale_provider.operators.anyscale import RolloutAnyscaleService

    from pipespec.tasklib.rollout.targets import anyscale_service_kwargs

    kwargs = anyscale_service_kwargs(stage, target, info, percent=percent)
    # The operator runs inside this task, not as a task of its own: no XCom push.
    operator = RolloutAnyscaleService(**{"task_id": f"{ctx.task_id}__anyscale", **kwargs, "do_xcom_push": False})
    return str(operator.execute(context={}))


def _apply_kubernetes_patches(stage: str, target: dict, info: dict, percent: int | None) -> dict:
    """Apply the stage's Deployment patches in order; create a missing canary/shadow clone first."""
    from airflow.providers.cncf.kubernetes.hooks.kubernetes import KubernetesHook
    from kubernetes.client.exceptions import ApiException

    from pipespec.tasklib.rollout.targets import TRACK_LABEL, clone_deployment, kubernetes_deployment_patch

    namespace = target.get("namespace") or "default"
    apps = KubernetesHook(conn_id=target.get("conn_id") or "kubernetes_default").apps_v1_client
    stable_replicas = 1
    if stage == "canary":  # the canary's pod count is relative to the stable Deployment's
        stable_replicas = apps.read_namespaced_deployment(target["deployment"], namespace).spec.replicas or 1
    plan = kubernetes_deployment_patch(stage, target, info, percent=percent, stable_replicas=stable_replicas)

    def patch(item: dict) -> None:
        # The client would label a dict body as a JSON patch: say what it is.
        apps.patch_namespaced_deployment(name=item["name"], namespace=plan["namespace"], body=item["body"],
                                         _content_type=STRATEGIC_MERGE)

    for item in plan["patches"]:
        try:
            patch(item)
        except ApiException as exc:
            if exc.status != 404:
                raise
            if item["clone_of"] is None:
                continue  # scaling down a canary/shadow that was never created: nothing to do
            base = apps.api_client.sanitize_for_serialization(
                apps.read_namespaced_deployment(item["clone_of"], plan["namespace"]))
            clone = clone_deployment(base, item["name"], item["body"]["metadata"]["labels"][TRACK_LABEL])
            apps.create_namespaced_deployment(plan["namespace"], clone)
            patch(item)
    return {"deployment": f"{plan['namespace']}/{target['deployment']}", "traffic_percent": plan["traffic_percent"]}
