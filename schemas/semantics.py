"""Checks across fields of one spec, after the models accepted it.

Each check is a small function yielding (path, message, hint); the caller
turns paths into file:line:col through the merged YAML tree.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from pipespec.schemas.assets import train_dataset
from pipespec.schemas.models.common import MANUAL, Trigger
from pipespec.schemas import plugins
from pipespec.schemas.catalog import METRICS, metrics_for
from pipespec.schemas.diagnostics import YamlPath
from pipespec.schemas.models import PipelineSpec
from pipespec.schemas.models.rollout import Approval, Canary, Full, Shadow
from pipespec.schemas.validation_errors import did_you_mean

Finding = tuple[YamlPath, str, str]
Check = Callable[[PipelineSpec], Iterator[Finding]]
CHECKS: list[Check] = []


def check(fn: Check) -> Check:
    """Register a cross-field check (a decorator)."""
    CHECKS.append(fn)
    return fn


def run_checks(spec: PipelineSpec) -> list[Finding]:
    """Every finding of every registered check, in registration order."""
    return [finding for fn in CHECKS for finding in fn(spec)]


@check
def sections_need_their_inputs(spec: PipelineSpec) -> Iterator[Finding]:
    """Each section has the section it reads from, and the pipeline runs something."""
    if spec.train and train_dataset(spec) is None:
        yield ("train",), "`train` has no data to train on", "add a `data:` section, or set `train.dataset` to an Asset"
    for section, needs in (("evaluate", "train"), ("rollout", "evaluate"), ("inference", "train")):
        if getattr(spec, section) is not None and getattr(spec, needs) is None:
            yield (section,), f"`{section}` needs a `{needs}` section", f"add `{needs}:` or remove `{section}:`"
    if not (spec.data or spec.train or spec.inference):
        yield ("pipeline",), "the pipeline has nothing to run", "add at least one of `data`, `train`, `inference`"


@check
def metric_suits_model(spec: PipelineSpec) -> Iterator[Finding]:
    """The metric exists, applies to the model type, and its direction and floor make sense."""
    if not spec.evaluate:
        return
    metric = spec.evaluate.metric
    if metric not in METRICS:
        yield ("evaluate", "metric"), f"unknown metric `{metric}`", did_you_mean(metric, sorted(METRICS))
        return
    if spec.train and plugins.lookup("model", spec.train.model.type):  # unchecked in declared mode
        model_type, params = spec.train.model.type, spec.train.model.params
        allowed = metrics_for(model_type, params)
        if metric not in allowed:
            yield (("evaluate", "metric"), f"metric `{metric}` does not apply to `{model_type}`",
                   f"{plugins.model_task(model_type, params)} models support: {', '.join(allowed)}")
    natural = METRICS[metric].direction
    if spec.evaluate.direction and spec.evaluate.direction != natural:
        better = "higher" if natural == "max" else "lower"
        yield (("evaluate", "direction"), f"`{metric}` is better when {better}; `direction: {spec.evaluate.direction}`"
               " would promote worse models", f"remove `direction` or set it to `{natural}`")
    bounded = metric not in {"rmse", "mae"}
    if bounded and spec.evaluate.floor is not None and not 0 <= spec.evaluate.floor <= 1:
        yield ("evaluate", "floor"), f"`{metric}` lies between 0 and 1; floor {spec.evaluate.floor} can never be met", \
            "write the floor as a fraction, e.g. 0.7"


@check
def compute_can_train_model(spec: PipelineSpec) -> Iterator[Finding]:
    """The compute backend can train the model type."""
    if not spec.train:
        return
    model_type, backend = spec.train.model.type, spec.train.compute.backend
    found = plugins.lookup("model", model_type)
    if found is None:  # unchecked in declared mode, and listed as such
        return
    allowed = found.plugin.backends
    if backend not in allowed:
        yield (("train", "compute", "backend"), f"`{model_type}` cannot train on `{backend}` compute",
               f"use backend: {' or '.join(sorted(allowed))}")


@check
def pod_image_is_named_once(spec: PipelineSpec) -> Iterator[Finding]:
    """A Kubernetes pod runs `compute.image`, or a `container` model's own image: one of them."""
    if not spec.train or spec.train.compute.backend != "kubernetes":
        return
    container = spec.train.model.type == "container"
    if container and spec.train.compute.image:
        yield (("train", "compute", "image"), "a `container` model runs its own image in the pod",
               "remove `compute.image`; the image is `train.model.params.image`")
    elif not container and not spec.train.compute.image:
        yield (("train", "compute"), "a Kubernetes pod needs `image`", "set `image:` to the training image, "
               "pinned by tag or digest")


@check
def job_image_is_named_once(spec: PipelineSpec) -> Iterator[Finding]:
    """An Anyscale job of a `container` model runs the model's own image."""
    if spec.train and spec.train.compute.backend == "anyscale" and spec.train.model.type == "container" \
            and spec.train.compute.image_uri:
        yield (("train", "compute", "image_uri"), "a `container` model runs its own image in the job",
               "remove `compute.image_uri`; the image is `train.model.params.image`")


@check
def target_matches_compute(spec: PipelineSpec) -> Iterator[Finding]:
    """The rollout target can serve what the compute backend trains."""
    if not (spec.rollout and spec.train):
        return
    target, backend = spec.rollout.target.type, spec.train.compute.backend
    if target == "anyscale_service" and backend != "anyscale":
        yield (("rollout", "target", "type"), "an Anyscale Service serves models trained on Anyscale",
               "set `train.compute.backend: anyscale`, or roll out to `registry_alias` or `kubernetes`")
    if target == "kubernetes" and backend == "anyscale":
        yield (("rollout", "target", "type"), "models trained on Anyscale are rolled out as an Anyscale Service",
               "use `target: {type: anyscale_service, name: ...}`")


@check
def anyscale_service_knows_what_to_serve(spec: PipelineSpec) -> Iterator[Finding]:
    """An Anyscale Service for a non-LLM model lists its applications."""
    if not (spec.rollout and spec.train) or spec.rollout.target.type != "anyscale_service":
        return
    if spec.train.model.type != "llm_finetune" and not spec.rollout.target.applications:
        yield (("rollout", "target"), "an Anyscale Service for a non-LLM model needs `applications`",
               "list the Ray Serve applications to deploy (pipespec provides a default only for `llm_finetune`)")


@check
def filters_are_valid_expressions(spec: PipelineSpec) -> Iterator[Finding]:
    """Every `filter:` is an expression the filter step accepts."""
    # The expression checker is standard-library only: the same rules the filter step enforces.
    from pipespec.schemas.expressions import check_expression

    if not spec.data:
        return
    for index, transform in enumerate(spec.data.transforms):
        expression = getattr(transform, "filter", None)
        if isinstance(expression, str):
            for problem in check_expression(expression):
                yield ("data", "transforms", index, "filter"), f"invalid filter: {problem}", \
                    "filters use column names, constants, comparisons, and/or/not and len/lower/upper/..."


@check
def stages_in_order(spec: PipelineSpec) -> Iterator[Finding]:
    """Rollout stages come in order, once each, canaries growing, `full` last."""
    if not spec.rollout:
        return
    stages = spec.rollout.stages
    order = {Shadow: 0, Canary: 1, Approval: 2, Full: 3}
    fulls = [i for i, s in enumerate(stages) if isinstance(s, Full)]
    if fulls != [len(stages) - 1]:
        yield ("rollout", "stages"), "`full` must appear exactly once, as the last stage", \
            "end the list with `full`: shadow → canary → approval → full"
    last_rank, last_percent = -1, 0
    seen: set[str] = set()
    for index, stage in enumerate(stages):
        if isinstance(stage, (Shadow, Approval)) and _name(stage) in seen:
            # Each stage is one task named after it; canaries differ by percent, `full` is checked above.
            longer = "raise its `timeout`" if isinstance(stage, Approval) else "raise its `duration`"
            yield (("rollout", "stages", index), f"stage `{_name(stage)}` appears twice",
                   f"list `{_name(stage)}` once; to wait longer, {longer}")
        seen.add(_name(stage))
        rank = order[type(stage)]
        if rank < last_rank and not isinstance(stage, Full):
            yield (("rollout", "stages", index), f"stage `{_name(stage)}` comes too late",
                   "order stages as shadow → canary → approval → full")
        if isinstance(stage, Canary):
            if stage.canary.percent <= last_percent:
                yield (("rollout", "stages", index), "canary percentages must increase",
                       f"{stage.canary.percent}% follows {last_percent}%")
            last_percent = stage.canary.percent
        last_rank = max(last_rank, rank)


def _name(stage: object) -> str:
    return type(stage).__name__.lower()


@check
def join_has_keys(spec: PipelineSpec) -> Iterator[Finding]:
    """Key joins have keys and two sources; unions have no keys."""
    if not spec.data:
        return
    join = spec.data.join
    if join.type in ("inner", "left") and not join.on:
        yield ("data", "join"), f"a `{join.type}` join needs key columns", "add `on: [id]`"
    if join.type == "union" and join.on:
        yield ("data", "join", "on"), "a `union` does not use `on`", "remove `on`, or use `type: inner`"
    if join.type in ("inner", "left") and len(spec.data.sources) < 2:
        yield ("data", "join"), f"a `{join.type}` join needs at least two sources", "use `join: union`"


@check
def source_names_unique(spec: PipelineSpec) -> Iterator[Finding]:
    """No two sources share a name."""
    if not spec.data:
        return
    seen: set[str] = set()
    for index, source in enumerate(spec.data.sources):
        if source.name in seen:
            yield ("data", "sources", index, "name"), f"source name `{source.name}` is used twice", \
                "names identify mapped task instances: make them unique"
        seen.add(source.name)
    # A `per_folder` source's instances are named `<source>__<folder>`.
    per_folder = [s.name for s in spec.data.sources if getattr(s, "per_folder", False)]
    for index, source in enumerate(spec.data.sources):
        owner = next((name for name in per_folder if source.name.startswith(f"{name}__")), None)
        if owner is not None:
            yield ("data", "sources", index, "name"), \
                f"source name `{source.name}` could be the name of a folder of `per_folder` source `{owner}`", \
                f"instances of `{owner}` are named `{owner}__<folder>`: name this source otherwise"


@check
def schedules_have_one_meaning(spec: PipelineSpec) -> Iterator[Finding]:
    """Each schedule is a cron, Assets, or Assets-or-cron, never ambiguous."""
    for section in ("data", "train", "inference"):
        body = getattr(spec, section)
        schedule = body.schedule if body else None
        if not isinstance(schedule, Trigger):
            continue
        at = (section, "schedule")
        if schedule.every is not None:
            if schedule.cron is not None or schedule.assets is not None or schedule.or_cron is not None:
                yield (at + ("every",), "`every` stands alone: it is a timedelta schedule",
                       "remove `every`, or the cron and Assets beside it")
            continue
        if schedule.cron is None and schedule.assets is None:
            if schedule.or_cron is None:
                yield (at, "a schedule needs `cron` or `assets`",
                       f"write `schedule: {MANUAL}` for a DAG that runs only when triggered")
            else:
                yield (at + ("or_cron",), "`or_cron` needs `assets`: it is the time half of Assets-or-time",
                       "for a time-only schedule write `cron:`")
        elif schedule.cron is not None and schedule.assets is not None:
            yield (at + ("cron",), "`cron` together with `assets` has no single meaning",
                   "to run on the Assets or the cron, whichever comes first, write `or_cron:`; "
                   "to run on one of them, remove the other")
        elif schedule.cron is not None and schedule.or_cron is not None:
            yield (at + ("or_cron",), "`or_cron` needs `assets`: it is the time half of Assets-or-time",
                   "remove `or_cron`, or replace `cron` with `assets`")


@check
def alerts_can_fire(spec: PipelineSpec) -> Iterator[Finding]:
    """Every alert event is one the spec's sections can emit."""
    # What emits each event (compile.py): every train DAG promotes (directly when there is no `evaluate`),
    # `decide` rejects and `rollback` rolls back whenever there is an `evaluate`, the gate blocks in `data`.
    needs = {"promoted": "train", "rejected": "evaluate", "rolled_back": "evaluate", "gate_blocked": "data"}
    for index, alert in enumerate(spec.alerts):
        for event in alert.on:
            section = needs.get(event)
            if section and getattr(spec, section) is None:
                yield (("alerts", index, "on"), f"event `{event}` never happens: the spec has no `{section}` section",
                       f"remove `{event}` or add `{section}:`")


@check
def overrides_name_present_sections(spec: PipelineSpec) -> Iterator[Finding]:
    """Retry overrides name only sections the spec has."""
    for section in type(spec.retries.overrides).model_fields:
        if getattr(spec.retries.overrides, section) is not None and getattr(spec, section) is None:
            yield (("retries", "overrides", section), f"override for `{section}`, which this spec does not have",
                   "remove it")


@check
def backoff_settings_agree(spec: PipelineSpec) -> Iterator[Finding]:
    """`max_delay` comes only with exponential backoff."""
    if spec.retries.max_delay and spec.retries.backoff != "exponential":
        yield ("retries", "max_delay"), "`max_delay` only applies to exponential backoff", \
            "set `backoff: exponential` or remove `max_delay`"


@check
def lifecycle_settings_fit(spec: PipelineSpec) -> Iterator[Finding]:
    """Decision rules name metrics of the model; drift-only retraining measures drift; a live evaluation
    has an endpoint to reach."""
    data, evaluate = spec.data, spec.evaluate
    if data and data.threshold.retrain_on == "drift" and data.drift is None:
        yield (("data", "threshold", "retrain_on"), "`retrain_on: drift` needs `data.drift` to measure drift",
               "add `drift: {method: psi, threshold: 0.2, columns: [...]}`, or remove `retrain_on`")
    if not evaluate:
        return
    allowed = None
    if spec.train and plugins.lookup("model", spec.train.model.type):  # unchecked in declared mode
        allowed = metrics_for(spec.train.model.type, spec.train.model.params)
    for index, rule in enumerate(evaluate.decision.rules if evaluate.decision else []):
        at = ("evaluate", "decision", "rules", index, "metric")
        if rule.metric not in METRICS:
            yield at, f"unknown metric `{rule.metric}`", did_you_mean(rule.metric, sorted(METRICS))
        elif allowed is not None and rule.metric not in allowed:
            yield at, f"`{rule.metric}` does not apply to `{spec.train.model.type}`", f"use one of {', '.join(allowed)}"
        elif rule.direction and rule.direction != METRICS[rule.metric].direction:
            natural = METRICS[rule.metric].direction
            better = "higher" if natural == "max" else "lower"
            yield (at[:-1] + ("direction",), f"`{rule.metric}` is better when {better}; `direction: {rule.direction}`"
                   " would promote worse models", f"remove `direction` or set it to `{natural}`")
    target = spec.rollout.target.type if spec.rollout else None
    if evaluate.live and not evaluate.live.conn_id and target != "anyscale_service":
        yield (("evaluate", "live"), "a live evaluation needs an endpoint: `conn_id`, or an anyscale_service "
                                     "rollout target whose temporary evaluation service it deploys",
               "set `evaluate.live.conn_id` to an OpenAI-compatible server's connection")
