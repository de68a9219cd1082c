"""Spec → IR. Decides the shape of every DAG; knows nothing about Airflow.

DESIGN.md section 3: `<pipeline>__data`, `<pipeline>__train`,
`<pipeline>__inference`, wired by Assets.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace
from pathlib import Path
from typing import Any

from pipespec import __version__
from pipespec.schemas.catalog import METRICS, metrics_for
from pipespec.schemas.assets import data_trigger, inference_trigger, model_asset, train_dataset, train_trigger
from pipespec.compiler.docs import dag_doc
from pipespec.compiler.ir import ALWAYS, Alert, Dag, Mapping, Pipeline, Retry, Schedule, Task
from pipespec.schemas.models import PipelineSpec
from pipespec.schemas.models.common import AllOf, AnyOf, Trigger, parse_duration
from pipespec.schemas.models.operations import RetryPolicy
from pipespec.schemas.models.rollout import Approval, ApprovalArgs, Canary, Full, Shadow

CALLBACK_EVENTS = ("failure", "retry")


def spec_hash(files: list[Path]) -> str:
    """A short hash of the spec's files and the pipespec version: what the DAGs are built from."""
    digest = hashlib.sha256(__version__.encode())
    for file in files:
        digest.update(file.name.encode())  # not the absolute path: the same spec hashes alike in any checkout
        digest.update(file.read_bytes())
    return digest.hexdigest()[:16]


def compile_checked(checked) -> Pipeline:
    """Compile a spec that `check_file` accepted; local paths resolve against its absolute directory,
    since workers do not share the parser's working directory."""
    return compile_spec(checked.spec, checked.display, spec_hash(checked.files), str(checked.file.resolve().parent))


def compile_spec(spec: PipelineSpec, spec_file: str, content_hash: str, spec_dir: str | None = None) -> Pipeline:
    """The IR of a validated spec: its data, train and inference DAGs."""
    dags = []
    if spec.data:
        dags.append(_data_dag(spec, spec_file, spec_dir or str(Path(spec_file).parent), content_hash))
    if spec.train:
        dags.append(_train_dag(spec, spec_file, content_hash, "train", _schedule(train_trigger(spec))))
        if spec.train.manual:  # seed 000's manually triggered retrain-and-rollout, beside the scheduled one
            dags.append(_train_dag(spec, spec_file, content_hash, "retrain", Schedule("none")))
    if spec.inference:
        dags.append(_inference_dag(spec, spec_file))
    return Pipeline(spec.pipeline, spec_file, content_hash, tuple(dags))


# --- shared ---------------------------------------------------------------

def _retry(spec: PipelineSpec, section: str | None = None) -> Retry:
    base = spec.retries
    over = getattr(base.overrides, section) if section else None
    over = over or RetryPolicy()
    delay = over.delay or base.delay
    max_delay = over.max_delay or base.max_delay
    return Retry(
        count=base.count if over.count is None else over.count,
        delay_s=parse_duration(delay),
        exponential=(over.backoff or base.backoff) == "exponential",
        max_delay_s=parse_duration(max_delay) if max_delay else None,
    )


def _schedule(trigger: Trigger | None) -> Schedule:
    """One meaning per form; semantics.schedules_have_one_meaning has refused every other combination."""
    if trigger is None:
        return Schedule("none")
    if trigger.every is not None:
        return Schedule("every", every_s=parse_duration(trigger.every))
    if trigger.cron is not None and trigger.assets is None and trigger.or_cron is None:
        return Schedule("cron", cron=trigger.cron)
    if trigger.assets is not None and trigger.cron is None:
        assets = _asset_expr(trigger.assets)
        if trigger.or_cron:
            return Schedule("assets_or_cron", cron=trigger.or_cron, assets=assets)
        return Schedule("assets", assets=assets)
    raise ValueError(f"schedule {trigger.model_dump(exclude_none=True)} has no single meaning")


def _asset_expr(expr: Any) -> Any:
    if isinstance(expr, str):
        return expr
    if isinstance(expr, list):
        return expr[0] if len(expr) == 1 and isinstance(expr[0], str) else {"all": [_asset_expr(e) for e in expr]}
    if isinstance(expr, AllOf):
        return {"all": [_asset_expr(e) for e in expr.all]}
    if isinstance(expr, AnyOf):
        return {"any": [_asset_expr(e) for e in expr.any]}
    raise TypeError(f"unexpected asset expression {expr!r}")


def _alerts(spec: PipelineSpec) -> tuple[Alert, ...]:
    # One channel per alert: built-in or an installed plugin's (its registered name and settings).
    return tuple(Alert(tuple(alert.on), *alert.channel()) for alert in spec.alerts)


def _notify(spec: PipelineSpec, event: str, upstream: tuple[str, ...], inputs: dict[str, str]) -> list[Task]:
    """An explicit alert task for `event`, only when some alert subscribes to it."""
    channels = [a for a in _alerts(spec) if event in a.events]
    if not channels:
        return []
    params = {"pipeline": spec.pipeline, "event": event,
              "channels": [a.target() for a in channels]}
    return [Task(f"notify_{event}", "alert.notify", params, inputs, upstream, doc=f"Send the `{event}` alert.")]


def _dag(spec: PipelineSpec, suffix: str, schedule: Schedule, spec_file: str, tasks: list[Task],
         description: str) -> Dag:
    dag_id = f"{spec.pipeline}__{suffix}"
    if spec.dag.workspace == "clean":
        tasks = _with_workspace(spec.pipeline, tasks)
    ids = [t.task_id for t in tasks]
    if len(set(ids)) != len(ids):  # Airflow would refuse the whole DAG file; semantics.py must have refused first
        raise ValueError(f"{dag_id}: task ids clash: {sorted({i for i in ids if ids.count(i) > 1})}")
    return Dag(
        dag_id=dag_id, schedule=schedule, description=description,
        doc_md=dag_doc(spec, suffix, spec_file), owner=spec.owner,
        tags=tuple(dict.fromkeys(("pipespec", *spec.tags, suffix))),
        retry=_retry(spec), alerts=tuple(a for a in _alerts(spec) if set(a.events) & set(CALLBACK_EVENTS)),
        tasks=tuple(tasks), max_active_runs=spec.dag.max_active_runs or 1,
        max_consecutive_failed_dag_runs=spec.dag.max_consecutive_failed_dag_runs,
    )


def _with_workspace(pipeline: str, tasks: list[Task]) -> list[Task]:
    """Wrap the DAG in Airflow's setup/teardown: the setup before every first task, the teardown
    (deleting the run's intermediate files, whatever happened) after every last one."""
    feeding = {u for t in tasks for u in t.upstream} | {t.teardown_of for t in tasks if t.teardown_of}
    setup = Task("workspace_setup", "workspace.prepare", {"pipeline": pipeline}, setup=True,
                 retry=Retry(1, 10, False, None), doc="Prepare this run's workspace; remove stale ones of killed runs.")
    wrapped = [replace(t, upstream=t.upstream or ("workspace_setup",)) for t in tasks]
    leaves = ("workspace_setup", *(t.task_id for t in tasks if t.task_id not in feeding))  # as as_teardown links it
    teardown = Task("workspace_teardown", "workspace.clean", {"pipeline": pipeline}, upstream=leaves,
                    trigger_rule="all_done", teardown_of="workspace_setup", retry=Retry(1, 10, False, None),
                    doc="Delete this run's intermediate files, whatever happened.")
    return [setup, *wrapped, teardown]


# --- data -----------------------------------------------------------------

def _data_dag(spec: PipelineSpec, spec_file: str, spec_dir: str, content_hash: str) -> Dag:
    data = spec.data
    assert data is not None
    retry = _retry(spec, "data")
    # Each step gets exactly the params its signature declares (tests/project/test_step_signatures.py).
    pipeline, publishes = spec.pipeline, data.publishes
    sources = tuple(s.model_dump() for s in data.sources)
    timeouts = [parse_duration(s.timeout) for s in data.sources if s.timeout]
    # Mapped instances share one execution timeout: the longest any source asks for.
    waits = []
    if data.wait_for is not None:
        waits = [Task("wait_for_data", "data.wait_for", data.wait_for.model_dump(), kind="s3_sensor",
                      retry=Retry(0, 0, False, None),
                      doc=f"Wait in the triggerer for `{data.wait_for.uri}` (at most {data.wait_for.timeout}).")]
    # A source's transforms run inside its extract task: a task (and a process start-up, and a
    # Parquet round trip) per transform would add no parallelism, only overhead.
    transforms = [t.model_dump(mode="json") for t in data.transforms]
    tasks, mapping = [*waits], Mapping("source", items=sources, label="name")
    if any(s.get("per_folder") for s in sources):
        # Folders are found when the run starts (seed 002): extract maps over the planned sources.
        tasks.append(Task("plan_sources", "data.plan_sources", {"spec_dir": spec_dir, "sources": list(sources)},
                          upstream=tuple(t.task_id for t in waits), retry=retry,
                          timeout_s=max(timeouts) if timeouts else None,
                          doc="List the folders under each `per_folder` source: one extract instance per folder."))
        mapping = Mapping("source", over="plan_sources", label="name", from_spec=True)
    tasks.append(Task("extract", "data.extract", {"pipeline": pipeline, "spec_dir": spec_dir,
                                                  "publishes": publishes, "transforms": transforms},
                      upstream=(tasks[-1].task_id,) if tasks else (), mapping=mapping,
                      retry=retry, timeout_s=max(timeouts) if timeouts else None,
                      doc="Read each source into Parquet and apply the spec's transforms; one mapped instance "
                          "per source (per folder, for a `per_folder` source)."))
    # `measure` joins the sources and measures the result in one task, and is the gate itself (a
    # branch): a task each for join, measure and the gate would cost a process start-up and a
    # scheduler hand-off apiece for no parallelism. Record counts are written whatever the gate decides.
    blocked = _notify(spec, "gate_blocked", ("measure",), {"details": "measure"})
    counts = []
    if data.record_counts is not None:
        counts = [Task("record_counts", "data.record_counts", {"pipeline": pipeline, **data.record_counts.model_dump()},
                       {"measurement": "measure"}, ("measure",), retry=retry,
                       doc=f"Write per-source record counts to `{data.record_counts.table}`.")]
    branches = {"pass": "publish", **({"blocked": blocked[0].task_id} if blocked else {}),
                **({ALWAYS: "record_counts"} if counts else {})}
    tasks.append(Task("measure", "data.curate", {
        "pipeline": pipeline, "join": data.join.model_dump(), "publishes": publishes,
        "threshold": data.threshold.model_dump(),
        "quality": data.quality.model_dump() if data.quality else None,
        "drift": data.drift.model_dump() if data.drift else None,
    }, {"refs": "extract"}, ("extract",), kind="branch", branches=branches, retry=retry,
        doc=f"{data.join.type.capitalize()} of all sources, then count records, new records, quality and drift; "
            f"publish only when the gates pass, otherwise skip (not fail)."))
    tasks += counts
    # The joined data's Ref and the measurement are one result (data.curate).
    tasks.append(Task("publish", "data.publish", {"pipeline": pipeline, "publishes": publishes, "spec_hash": content_hash},
                      {"dataset": "measure", "measurement": "measure"}, ("measure",),
                      outlets=(data.publishes,), retry=retry, doc=f"Move the data into `{data.publishes}`."))
    tasks += blocked
    return _dag(spec, "data", _schedule(data_trigger(spec)), spec_file, tasks,
                f"Curate data for {spec.pipeline}; publish {data.publishes} when the gate passes.")


# --- train ----------------------------------------------------------------

_KIND_BY_BACKEND = {"local": "python", "kubernetes": "kubernetes_pod", "anyscale": "anyscale_job", "ray": "ray_job"}


def _train_dag(spec: PipelineSpec, spec_file: str, content_hash: str, suffix: str, schedule: Schedule) -> Dag:
    train = spec.train
    assert train is not None
    base = {"pipeline": spec.pipeline}
    model_uri = model_asset(spec)
    evaluate = spec.evaluate
    tasks = [Task("train", "model.train", {
        **base, "dataset": train_dataset(spec), "model": train.model.model_dump(),
        "compute": train.compute.model_dump(), "spec_hash": content_hash,
        # Training must hold out exactly the rows evaluation scores on.
        "holdout": evaluate.holdout if evaluate else None,
        "holdout_fraction": evaluate.holdout_fraction if evaluate else 0.2,
    }, upstream=("cost_gate",) if train.cost_gate else (),
        kind=_KIND_BY_BACKEND[train.compute.backend], retry=_retry(spec, "train"),  # type: ignore[arg-type]
        doc=f"Train a `{train.model.type}` challenger on {train.compute.backend} compute.")]
    if train.cost_gate is not None:
        tasks = _cost_gate(spec, train.cost_gate) + tasks
    if evaluate is None:
        # Train-only pipelines register the model and make it champion directly.
        rollout_retry = _retry(spec, "rollout")
        tasks.append(Task("promote", "rollout.promote", {**base, "target": {"type": "registry_alias", "alias": "champion"}},
                          {"trained": "train"}, ("train",), outlets=(model_uri,), retry=rollout_retry,
                          doc="Register the model as champion."))
        tasks.append(Task("report", "report.write", {**base, "metric": metrics_for(train.model.type, train.model.params)[0]},
                          {"trained": "train"}, ("promote",), retry=rollout_retry,
                          doc="Write the training report (the version, its training metrics, curves and data)."))
        tasks += _notify(spec, "promoted", ("promote", "report"), {"trained": "train", "report": "report"})
    else:
        tasks += _evaluate_and_rollout(spec, base, model_uri)  # type: ignore[arg-type]
    return _dag(spec, suffix, schedule, spec_file, tasks,
                f"Train, evaluate and roll out {spec.pipeline} (champion/challenger)"
                + (", when triggered by hand." if schedule.kind == "none" else "."))


def _cost_gate(spec: PipelineSpec, gate: Any) -> list[Task]:
    """Estimate the fine-tune's cost first; over budget, alert (gate_blocked) instead of training."""
    assert spec.train is not None
    model = spec.train.model
    blocked = _notify(spec, "gate_blocked", ("cost_gate",), {"details": "cost_gate"})
    return [Task("cost_gate", "model.cost_gate", {
        "dataset": train_dataset(spec), "columns": [*model.features, model.label],
        "epochs": int((model.params or {}).get("epochs", 1)), **gate.model_dump(),
    }, kind="branch", branches={"pass": "train", **({"blocked": blocked[0].task_id} if blocked else {})},
        retry=_retry(spec, "train"), doc=f"Estimated tokens × price must stay under ${gate.budget_usd:,.2f}."),
        *blocked]


def _evaluation_tasks(spec: PipelineSpec, base: dict, params: dict, target: dict) -> list[Task]:
    """`evaluate` on a worker, or live: through a temporary evaluation service (setup/teardown) or a server."""
    evaluate = spec.evaluate
    assert evaluate is not None and spec.train is not None
    doc = f"Score challenger and champion on the same holdout ({evaluate.metric})."
    if evaluate.live is None:
        return [Task("evaluate", "model.evaluate", params, {"trained": "train"}, ("train",),
                     retry=_retry(spec, "evaluate"), doc=doc)]
    live = {**evaluate.live.model_dump(exclude={"timeout"}), "timeout_s": parse_duration(evaluate.live.timeout)}
    scored = Task("evaluate", "model.evaluate_live", {**params, "live": live, "target": target}, {"trained": "train"},
                  ("train",), retry=_retry(spec, "evaluate"),
                  doc=doc[:-1] + ", over the live endpoint" + (", after the base model" if live["baseline"] else "")
                  + ".")
    if evaluate.live.conn_id:
        return [scored]
    return [Task("eval_service", "rollout.deploy_eval_service", {**base, "target": target}, {"trained": "train"},
                 ("train",), retry=_retry(spec, "rollout"), setup=True,
                 doc="Deploy a temporary evaluation service serving the base model and the adapters."),
            Task(**{**scored.__dict__, "upstream": ("train", "eval_service")}),
            Task("eval_teardown", "rollout.terminate_eval_service", {"target": target}, {}, ("evaluate", "eval_service"),
                 trigger_rule="all_done", retry=_retry(spec, "rollout"), teardown_of="eval_service",
                 doc="Terminate the temporary evaluation service, whatever happened.")]


def _evaluate_and_rollout(spec: PipelineSpec, base: dict, model_uri: str) -> list[Task]:
    evaluate, rollout = spec.evaluate, spec.rollout
    assert evaluate is not None and spec.train is not None
    direction = evaluate.direction or METRICS[evaluate.metric].direction
    target = (rollout.target.model_dump() if rollout else {"type": "registry_alias", "alias": "champion"})
    tasks = _evaluation_tasks(spec, base, {
        **base, "metric": evaluate.metric, "direction": direction, "holdout": evaluate.holdout,
        "holdout_fraction": evaluate.holdout_fraction, "dataset": train_dataset(spec),
        "model": spec.train.model.model_dump(),
        # The champion is what serving loads; promotion re-decides with the same rule if it moved.
        "alias": _serving_alias(spec), "min_improvement": rollout.min_improvement if rollout else 0.0,
    }, target)
    scored = "evaluate"
    if evaluate.gates:
        tasks.append(Task("gates", "model.gates", {"gates": [g.model_dump() for g in evaluate.gates]},
                          {"scores": "evaluate"}, ("evaluate",), retry=_retry(spec, "evaluate"),
                          doc="Plugin gates: " + ", ".join(f"`{g.type}`" for g in evaluate.gates)
                              + "; any of them can veto the promotion."))
        scored = "gates"
    stages = rollout.stages if rollout else [Full()]
    rollout_retry = _retry(spec, "rollout")
    stage_tasks = [task for stage in stages for task in _stage_tasks(stage, base, target, rollout_retry, model_uri)]
    stage_ids = [t.task_id for t in stage_tasks]
    tasks.append(Task("decide", "rollout.decide_gated" if evaluate.gates else "rollout.decide", {
        "direction": direction, "floor": evaluate.floor,
        "min_improvement": rollout.min_improvement if rollout else 0.0, **_decision_rules(evaluate),
    }, {"scores": scored}, (scored,), kind="branch",
        branches={"promote": stage_ids[0], "reject": "reject"}, retry=rollout_retry,
        doc="Promote when the challenger clears the floor and beats the champion; else reject."))
    previous = "decide"
    for stage in stage_tasks:
        inputs = {} if stage.kind == "wait" else {"scores": "evaluate"}
        tasks.append(Task(**{**stage.__dict__, "upstream": (previous,), "inputs": inputs}))
        previous = stage.task_id
    tasks.append(Task("reject", "rollout.reject", {**base, "target": target}, {"scores": "evaluate"}, ("decide",),
                      retry=rollout_retry, doc="Keep the champion; retire the challenger."))
    # No data inputs: an input edge from `evaluate` would make a failed evaluation trigger a rollback.
    tasks.append(Task("rollback", "rollout.rollback", {**base, "target": target}, {},
                      tuple(stage_ids), trigger_rule="one_failed", retry=rollout_retry,
                      doc="A stage failed: restore the previous champion."))
    tasks += _notify(spec, "rolled_back", ("rollback",), {"details": "rollback"})
    tasks.append(Task("report", "report.write", {**base, "metric": evaluate.metric, **_decision_rules(evaluate)},
                      {"scores": "evaluate"},
                      (stage_ids[-1], "reject"), trigger_rule="none_failed_min_one_success", retry=rollout_retry,
                      doc="Write the training report (metrics, champion vs challenger)."))
    # After the report, so the alert links to it; each runs only on its own path.
    report_inputs = {"scores": "evaluate", "report": "report"}
    tasks += _notify(spec, "promoted", (stage_ids[-1], "report"), report_inputs)
    tasks += _notify(spec, "rejected", ("reject", "report"), report_inputs)
    return tasks


def _decision_rules(evaluate: Any) -> dict[str, Any]:
    """`evaluate.decision` as decide's `rules` and `combine`, each rule with its metric's direction."""
    if evaluate.decision is None:
        return {}
    rules = [{**rule.model_dump(), "direction": rule.direction or METRICS[rule.metric].direction}
             for rule in evaluate.decision.rules]
    return {"rules": rules, "combine": evaluate.decision.combine}


def _stage_tasks(stage: Any, base: dict, target: dict, retry: Retry, model_uri: str) -> list[Task]:
    """A stage's tasks. A shadow or canary `duration` is waited out in the triggerer (no worker slot),
    and a canary's guard is checked when its window ends."""
    if isinstance(stage, Shadow):
        args = stage.shadow.model_dump() if stage.shadow else {}
        deploy = Task("shadow", "rollout.shadow", {**base, "target": target, **args}, retry=retry,
                      doc="Deploy the challenger with no traffic.")
        return [deploy, *_window("shadow", args.get("duration"))]
    if isinstance(stage, Canary):
        percent, args = stage.canary.percent, stage.canary.model_dump()
        deploy = Task(f"canary_{percent}", "rollout.canary", {**base, "target": target, **args}, retry=retry,
                      doc=f"Send {percent}% of traffic to the challenger"
                          + ("." if args["duration"] else "; roll back if the guard trips."))
        if not args["duration"]:
            return [deploy]
        guard = Task(f"canary_{percent}_guard", "rollout.canary_guard", {**base, "guard": args["guard"]}, retry=retry,
                     doc="At the end of the canary window, roll back if the guard trips.")
        return [deploy, *_window(f"canary_{percent}", args["duration"]), guard]
    if isinstance(stage, Approval):
        args = (stage.approval or ApprovalArgs()).model_dump()
        return [Task("approval", "rollout.approval", {**base, **args}, kind="approval", retry=Retry(0, 0, False, None),
                     doc="A person approves the rollout in the Airflow UI.")]
    assert isinstance(stage, Full)
    return [Task("promote", "rollout.promote", {**base, "target": target}, retry=retry, outlets=(model_uri,),
                 doc="Move the champion alias to the challenger (atomic).")]


def _window(stage_id: str, duration: str | None) -> list[Task]:
    if not duration:
        return []
    return [Task(f"{stage_id}_window", "rollout.window", {"duration": duration}, kind="wait",
                 retry=Retry(0, 0, False, None), doc=f"Let the {stage_id} stage run for {duration} (deferred).")]


# --- inference --------------------------------------------------------------

def _serving_alias(spec: PipelineSpec) -> str:
    """The registry alias inference loads and promotion moves."""
    return spec.rollout.target.alias if spec.rollout and spec.rollout.target.type == "registry_alias" else "champion"


def _inference_dag(spec: PipelineSpec, spec_file: str) -> Dag:
    inference = spec.inference
    assert inference is not None
    retry = _retry(spec, "inference")
    alias = _serving_alias(spec)
    base = {"pipeline": spec.pipeline}
    compute = inference.compute.model_dump()
    in_pods = compute["backend"] == "kubernetes"
    tasks = [
        Task("load_champion", "inference.load_champion", {**base, "alias": alias}, retry=retry,
             doc=f"Resolve the `{alias}` model version; fail clearly if there is none."),
        Task("plan_shards", "inference.plan_shards", {"input": inference.input, "format": inference.format,
                                                       "shard_size": inference.shard_size},
             retry=retry, doc=f"Split the input into shards of {inference.shard_size} rows." if inference.shard_size
             else "Split the input into one shard per worker slot."),
        Task("predict", "inference.predict", {**base, **({"compute": compute} if in_pods else {})},
             {"model": "load_champion"}, ("load_champion", "plan_shards"),
             mapping=Mapping("shard", over="plan_shards", label="label"), kind="kubernetes_pod" if in_pods else "python",
             retry=retry, doc="Predict one shard" + (" in its own pod" if in_pods else "") + "; one mapped instance per shard."),
        Task("publish_predictions", "inference.publish", {**base, "output": inference.output},
             {"shards": "predict"}, ("predict",), outlets=(inference.output,), retry=retry,
             doc=f"Publish predictions to `{inference.output}`."),
    ]
    return _dag(spec, "inference", _schedule(inference_trigger(spec)), spec_file, tasks,
                f"Batch predictions for {spec.pipeline} with the champion model.")
