"""Seed 000's evaluation loop for a fine-tuned LLM: a temporary service, live scores, teardown.

1. `deploy_eval_service` (an Airflow setup task) deploys a temporary Anyscale Service,
   `<target name>-eval`, running the target's Ray Serve LLM application: it serves the base
   model and, by model id, every LoRA adapter fine-tuned for the pipeline, so the challenger,
   the champion and the base model answer from one place without touching production traffic.
2. `evaluate_live` sends the holdout's prompts to that service (or to any OpenAI-compatible
   endpoint named by an Airflow connection) and scores the answers (exact match, slot F1): the
   base model first, as the baseline, then the champion and the challenger. The result has
   `evaluate`'s form, so `decide`, the report and the rollout stages read it unchanged.
3. `terminate_eval_service` (the matching teardown task) terminates the temporary service,
   also when evaluation failed.

The service's URL and token come from the Anyscale API, never from the spec.
"""

from __future__ import annotations

from typing import Any, Literal

from pipespec.tasklib.context import RunContext
from pipespec.tasklib.errors import PermanentFailure
from pipespec.tasklib.guard import enforce_target
from pipespec.tasklib.model import registry

EVAL_SUFFIX = "-eval"
TERMINATE_DELAY_S = 0


def eval_service_name(target: dict) -> str:
    """The temporary service beside the production one."""
    return f"{target['name']}{EVAL_SUFFIX}"


def deploy_eval_service(ctx: RunContext, *, pipeline: str, target: dict, trained: dict) -> dict[str, Any]:
    """Deploy the temporary evaluation service for the run's adapter; {"service", "service_id"}."""
    from anyscale_provider.operators.anyscale import RolloutAnyscaleService

    from pipespec.tasklib.rollout.stages import version_info
    from pipespec.tasklib.rollout.targets import anyscale_service_kwargs

    if target.get("type") != "anyscale_service":
        raise PermanentFailure("a temporary evaluation service needs an anyscale_service rollout target")
    enforce_target(ctx.task_id, ctx.owner, target)
    temporary = {**target, "name": eval_service_name(target)}
    kwargs = anyscale_service_kwargs("full", temporary, version_info(pipeline, str(trained["version"])))
    operator = RolloutAnyscaleService(**{"task_id": f"{ctx.task_id}__anyscale", **kwargs, "do_xcom_push": False})
    return {"service": temporary["name"], "service_id": str(operator.execute(context={}))}


def terminate_eval_service(ctx: RunContext, *, target: dict) -> dict[str, Any]:
    """Terminate the temporary evaluation service (a teardown: runs whatever happened before)."""
    from anyscale_provider.hooks.anyscale import AnyscaleHook

    enforce_target(ctx.task_id, ctx.owner, target)  # the same policy as the deploy it undoes
    name = eval_service_name(target)
    AnyscaleHook(conn_id=target.get("conn_id") or "anyscale_conn").terminate_service(name, TERMINATE_DELAY_S)
    return {"terminated": name}


def evaluate_live(ctx: RunContext, *, pipeline: str, metric: str, direction: Literal["max", "min"],
                  holdout: str | None, holdout_fraction: float, dataset: str, model: dict[str, Any],
                  trained: dict[str, Any], live: dict[str, Any], target: dict | None = None,
                  alias: str = "champion", min_improvement: float = 0.0) -> dict[str, Any]:
    """Score the base model, the `alias` version and the challenger over the live endpoint."""
    from pipespec.tasklib.model import live_eval
    from pipespec.tasklib.model.data import holdout_data

    endpoint_for = _endpoints(live, target)
    held = holdout_data(dataset, model, holdout, holdout_fraction)
    prompts = [str(value) for value in held.table.column(model["features"][0]).to_pylist()]
    references = [str(value) for value in held.table.column(model["label"]).to_pylist()]
    limits = live_eval.Limits(concurrency=int(live.get("concurrency", 8)), timeout_s=float(live.get("timeout_s", 60)),
                              max_retries=int(live.get("max_retries", 4)))
    system_prompt = (model.get("params") or {}).get("system_prompt")

    def score(model_id: str) -> dict[str, Any]:
        return live_eval.score(endpoint_for(model_id), prompts, references, limits, system_prompt)

    challenger = score(_model_id(pipeline, str(trained["version"])))
    champion_version = registry.version_for(pipeline, alias)
    champion = score(_model_id(pipeline, champion_version)) if champion_version else None
    baseline = score(trained["base_model"]) if live.get("baseline") and trained.get("base_model") else None
    tokens = sum(s["prompt_tokens"] + s["completion_tokens"] for s in (challenger, champion, baseline) if s)
    return {"challenger": challenger[metric], "champion": champion[metric] if champion else None,
            "champion_version": champion_version, "challenger_version": str(trained["version"]),
            "metric": metric, "direction": direction, "alias": alias, "min_improvement": min_improvement,
            "holdout": held.source, "rows": len(prompts), "tokens": tokens,
            "scores": {"challenger": challenger, "champion": champion, "baseline": baseline}}


def _model_id(pipeline: str, version: str) -> str:
    """The served model id of a registered adapter: its model tag (set when it was registered)."""
    tags = registry.client().get_model_version(pipeline, version).tags or {}
    tag = tags.get("pipespec.model_tag")
    if not tag:
        raise PermanentFailure(f"{pipeline} v{version} has no pipespec.model_tag: it is not a fine-tuned adapter")
    return tag


def _endpoints(live: dict[str, Any], target: dict | None) -> Any:
    """model id -> Endpoint: the temporary Anyscale service, or the connection's server."""
    from pipespec.tasklib.model.live_eval import Endpoint, endpoint_from_connection

    if live.get("conn_id"):
        return lambda model_id: endpoint_from_connection(live["conn_id"], model_id)
    if not target or target.get("type") != "anyscale_service":
        raise PermanentFailure("live evaluation needs evaluate.live.conn_id or an anyscale_service rollout target")
    from anyscale_provider.hooks.anyscale import AnyscaleHook

    status = AnyscaleHook(conn_id=target.get("conn_id") or "anyscale_conn").get_service_status(
        eval_service_name(target))
    if not status.query_url:
        raise RuntimeError(f"service {eval_service_name(target)} has no query URL yet (state {status.state})")
    base_url = f"{status.query_url.rstrip('/')}/v1"
    return lambda model_id: Endpoint(base_url=base_url, model=model_id, api_key=status.query_auth_token or "none")
