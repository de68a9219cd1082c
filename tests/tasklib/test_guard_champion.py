"""Issue 10, items 10 and 11: no model becomes champion without beating the one serving.

Against a real MLflow registry (SQLite under tmp, as in test_rollout). Scoring a
model needs TensorFlow; here `_score_version` (load + predict + metrics) is the
one stand-in, so the registry, the holdout, evaluate's bookkeeping, decide and
promote all run for real.
"""

from __future__ import annotations

import multiprocessing
import threading
import time
from contextlib import nullcontext
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipespec.schemas.check import check_file
from pipespec.compiler.compile import compile_spec
from pipespec.tasklib.model import evaluate, registry
from pipespec.tasklib.rollout import decide, stages
from tests.tasklib.test_rollout import ALIAS_TARGET, aliases, ctx, mlflow_registry, register_version

HOLDOUT = pa.table({"text": ["a", "b", "c", "d"], "label": ["x", "y", "x", "y"]})
MODEL = {"type": "keras_text_classifier", "label": "label"}


def scored_as(monkeypatch, by_version: dict[str, float]) -> None:
    """Scoring a version gives f1_macro from `by_version` (the stand-in for loading and predicting),
    and no class figures (those are the report's, not the decision's)."""
    monkeypatch.setattr(evaluate, "_score_version",
                        lambda pipeline, version, table, model, metric, directory, holdout_sha256:
                        ({metric: by_version[version]}, None))


def run_evaluate(pipeline: str, challenger: str, tmp: Path, **job) -> dict:
    """evaluate's own process entry point (score_versions) on a fixed holdout, plus what the step adds."""
    holdout = tmp / f"holdout-{challenger}.parquet"
    pq.write_table(HOLDOUT, holdout)
    result = evaluate.score_versions({"pipeline": pipeline, "metric": "f1_macro", "direction": "max", "model": MODEL,
                                      "challenger_version": challenger, "holdout_path": str(holdout),
                                      "holdout_source": "fixed holdout", **job})
    rescore_job = {"pipeline": pipeline, "metric": "f1_macro", "direction": "max", "model": MODEL,
                   "challenger_version": challenger, "alias": job.get("alias", "champion")}
    return {**result, "min_improvement": 0.01, "rescore_job": rescore_job}


def decide_and_promote(pipeline: str, scores: dict, target: dict, run_id: str) -> str:
    decision = decide.decide(ctx("decide", run_id), scores=scores, direction="max", floor=0.3,
                             min_improvement=0.01)
    if decision["decision"] == "reject":
        stages.reject(ctx("reject", run_id), pipeline=pipeline, target=target, scores=scores)
        return "rejected"
    stages.promote(ctx("promote", run_id), pipeline=pipeline, target=target, scores=scores)
    return "promoted"


# --- item 10: evaluation compares against the alias serving loads -----------------------------------

PROD = {"type": "registry_alias", "alias": "prod"}


def test_custom_alias_is_compared_against(mlflow_registry, monkeypatch):
    """The repro: alias `prod`, v1 scores 0.95, then v2 scores 0.40: v2 must not become `prod`."""
    scored_as(monkeypatch, {"1": 0.95, "2": 0.40})
    v1 = register_version("served")
    first = run_evaluate("served", v1, mlflow_registry, alias="prod")
    assert first["champion_version"] is None and decide_and_promote("served", first, PROD, "r1") == "promoted"
    v2 = register_version("served")
    second = run_evaluate("served", v2, mlflow_registry, alias="prod")
    assert (second["alias"], second["champion_version"], second["champion"]) == ("prod", v1, 0.95)
    assert decide_and_promote("served", second, PROD, "r2") == "rejected"
    assert aliases("served")["prod"] == v1


def test_compiled_evaluate_gets_the_serving_alias(tmp_path):
    """The compiler hands evaluate the alias inference loads (and the rule promotion re-decides with)."""
    spec = tmp_path / "served.yaml"
    spec.write_text("""\
pipeline: served
data:
  sources:
    - {name: raw, type: local, path: data/raw/, format: csv}
  publishes: s3://bucket/served/
train:
  model: {type: keras_text_classifier}
evaluate:
  metric: accuracy
rollout:
  min_improvement: 0.02
  target: {type: registry_alias, alias: prod}
inference:
  schedule: "@daily"
  input: s3://bucket/served_in/
  output: s3://bucket/served_out/
""")
    checked = check_file(spec)
    assert checked.spec is not None, checked.diagnostics
    params = {(dag.dag_id, task.task_id): task.params
              for dag in compile_spec(checked.spec, "served.yaml", "h").dags for task in dag.tasks}
    assert params[("served__train", "evaluate")]["alias"] == "prod"
    assert params[("served__train", "evaluate")]["min_improvement"] == 0.02
    assert params[("served__inference", "load_champion")]["alias"] == "prod"


def test_scores_from_another_alias_are_decided_again(mlflow_registry, monkeypatch):
    """An evaluation that compared against an unset `champion` while `prod` serves v1 (a DAG compiled
    before the fix): promote sees that `prod` is not what was compared, and decides again."""
    scored_as(monkeypatch, {"1": 0.95, "2": 0.40})
    v1 = register_version("stale")
    stages.promote(ctx(run_id="r1"), pipeline="stale", target=PROD,
                   scores=run_evaluate("stale", v1, mlflow_registry, alias="prod"))
    v2 = register_version("stale")
    blind = run_evaluate("stale", v2, mlflow_registry)  # compared against `champion`: none
    assert blind["champion_version"] is None
    with pytest.raises(stages.ChampionChanged, match=r"`prod` moved from no version to v1 .*improvement -0.5500"):
        stages.promote(ctx(run_id="r2"), pipeline="stale", target=PROD, scores=blind)
    assert aliases("stale")["prod"] == v1
    assert "moved from no version to v1" in registry.version_tags("stale", v2)[stages.REJECTED_TAG]


# --- item 11: promotion is a compare-and-set ---------------------------------------------------------

def contenders(pipeline: str, tmp: Path, monkeypatch, better: float = 0.90, worse: float = 0.85) -> dict:
    """v1 is champion (0.80); v2 (`better`) and v3 (`worse`) were both evaluated against v1 and both
    beat it, so both runs reach promote."""
    scored_as(monkeypatch, {"1": 0.80, "2": better, "3": worse})
    v1 = register_version(pipeline, challenger=False)
    run_evaluate(pipeline, v1, tmp)  # records v1's score on the holdout
    registry.set_alias(pipeline, registry.CHAMPION, v1)
    v2, v3 = register_version(pipeline), register_version(pipeline)
    return {"better": run_evaluate(pipeline, v2, tmp), "worse": run_evaluate(pipeline, v3, tmp)}


def promote_outcome(pipeline: str, scores: dict, run_id: str) -> str:
    try:
        stages.promote(ctx(run_id=run_id), pipeline=pipeline, target=ALIAS_TARGET, scores=scores)
        return "promoted"
    except stages.ChampionChanged:
        return "rejected"


@pytest.mark.parametrize("order, outcomes", [
    (("better", "worse"), {"better": "promoted", "worse": "rejected"}),
    (("worse", "better"), {"worse": "promoted", "better": "promoted"}),  # better re-decided against worse: wins
])
def test_sequential_promoters(mlflow_registry, monkeypatch, order, outcomes):
    pipeline = f"seq_{order[0]}_first"
    runs = contenders(pipeline, mlflow_registry, monkeypatch)
    assert {name: promote_outcome(pipeline, runs[name], f"run-{name}") for name in order} == outcomes
    assert aliases(pipeline)["champion"] == runs["better"]["challenger_version"]
    if order[0] == "better":
        reason = registry.version_tags(pipeline, runs["worse"]["challenger_version"])[stages.REJECTED_TAG]
        assert "`champion` moved from v1 to v2" in reason and "0.8500" in reason and "0.9000" in reason


def racing(pipeline: str, runs: dict, first: str, monkeypatch) -> tuple[dict, list]:
    """`first` reads the champion under the lock and pauses there; the other promoter starts during the
    pause; then `first` goes on. Returns each one's outcome and (who, champion read) in order."""
    reads, paused, resume = [], threading.Event(), threading.Event()

    def hook(pipeline_: str, current: str | None) -> None:
        who = threading.current_thread().name
        reads.append((who, current))
        if who == first:
            paused.set()
            assert resume.wait(30)

    monkeypatch.setattr(stages, "_before_move", hook)
    outcomes: dict[str, str] = {}
    threads = {name: threading.Thread(name=name, target=lambda n=name: outcomes.__setitem__(
        n, promote_outcome(pipeline, runs[n], f"run-{n}"))) for name in runs}
    threads[first].start()
    assert paused.wait(30)
    second = next(name for name in runs if name != first)
    threads[second].start()
    time.sleep(1.5)  # the second promoter is now inside promote (waiting on the lock, if there is one)
    resume.set()
    for thread in threads.values():
        thread.join(300)  # MLflow on SQLite under a loaded CI machine can take minutes for both promotions
        assert not thread.is_alive(), f"{thread.name} is still promoting"
    return outcomes, reads


@pytest.mark.parametrize("first", ["better", "worse"])
def test_concurrent_promoters_the_better_model_wins(mlflow_registry, monkeypatch, first):
    pipeline = f"race_{first}_first"
    runs = contenders(pipeline, mlflow_registry, monkeypatch)
    outcomes, reads = racing(pipeline, runs, first, monkeypatch)
    v1, v2 = "1", runs["better"]["challenger_version"]
    second = "worse" if first == "better" else "better"
    # The second promoter read the champion only after the first had moved it.
    assert reads == [(first, v1), (second, runs[first]["challenger_version"])]
    assert outcomes[first] == "promoted" and outcomes["better"] == "promoted"
    assert aliases(pipeline)["champion"] == v2
    assert not any(name.endswith(registry.LOCK_SUFFIX) for name in _model_names())  # released


def test_without_the_lock_the_race_is_lost(mlflow_registry, monkeypatch):
    """Control: the same forced interleaving with the lock taken away crowns the worse model, so the
    test above would catch a promotion that is check-then-act."""
    pipeline = "race_unlocked"
    runs = contenders(pipeline, mlflow_registry, monkeypatch)
    monkeypatch.setattr(registry, "alias_lease", lambda *args, **kwargs: nullcontext(_NoLease()))
    outcomes, reads = racing(pipeline, runs, "worse", monkeypatch)
    assert reads == [("worse", "1"), ("better", "1")]  # both compared against v1; the worse moves last
    assert outcomes == {"better": "promoted", "worse": "promoted"}
    assert aliases(pipeline)["champion"] == runs["worse"]["challenger_version"]


class _NoLease:
    def verify(self) -> None:
        pass


def test_min_improvement_applies_on_redecision(mlflow_registry, monkeypatch):
    """v3 (0.85) won first; v2 (0.855) beats it by less than min_improvement 0.01: v3 stays."""
    pipeline = "redecide_rule"
    runs = contenders(pipeline, mlflow_registry, monkeypatch, better=0.855, worse=0.85)
    assert promote_outcome(pipeline, runs["worse"], "run-worse") == "promoted"
    assert promote_outcome(pipeline, runs["better"], "run-better") == "rejected"
    assert aliases(pipeline)["champion"] == runs["worse"]["challenger_version"]


def test_new_champion_scored_on_another_holdout_is_rescored(mlflow_registry, monkeypatch):
    """No record of the new champion on this holdout: both are scored again, on one holdout."""
    pipeline = "rescored"
    runs = contenders(pipeline, mlflow_registry, monkeypatch)
    v3 = runs["worse"]["challenger_version"]
    assert promote_outcome(pipeline, runs["worse"], "run-worse") == "promoted"
    registry.record_holdout_score(pipeline, v3, sha256="another-holdout", metric="f1_macro", value=0.99)
    calls = []

    def rescore(job: dict, champion_version: str) -> dict:
        calls.append((job["challenger_version"], champion_version, job["alias"]))
        return {"challenger": 0.70, "champion": 0.75}  # on fresh rows, v2 loses

    monkeypatch.setattr(evaluate, "rescore", rescore)
    assert promote_outcome(pipeline, runs["better"], "run-better") == "rejected"
    assert calls == [(runs["better"]["challenger_version"], v3, "champion")]
    assert aliases(pipeline)["champion"] == v3


# --- two real processes --------------------------------------------------------------------------

def _promote_in_process(pipeline: str, scores: dict, run_id: str, gate: str | None, marks: str) -> None:
    """A separate promoter process; with `gate`, it pauses after reading the champion until `gate` exists."""
    def hook(pipeline_: str, current: str | None) -> None:
        Path(marks, f"{run_id}.read").write_text(str(current))
        while gate and not Path(gate).exists():
            time.sleep(0.05)

    stages._before_move = hook
    Path(marks, f"{run_id}.outcome").write_text(promote_outcome(pipeline, scores, run_id))


@pytest.mark.parametrize("first", ["better", "worse"])
@pytest.mark.slow
def test_two_processes_race(mlflow_registry, monkeypatch, first):
    pipeline = f"procs_{first}_first"
    runs = contenders(pipeline, mlflow_registry, monkeypatch)
    second = "worse" if first == "better" else "better"
    marks, gate = mlflow_registry / "marks", mlflow_registry / "gate"
    marks.mkdir()
    spawn = multiprocessing.get_context("spawn")
    processes = {name: spawn.Process(target=_promote_in_process, args=(
        pipeline, runs[name], f"run-{name}", str(gate) if name == first else None, str(marks))) for name in runs}
    try:
        processes[first].start()
        _wait_for(marks / f"run-{first}.read")
        processes[second].start()
        time.sleep(5)  # long enough for the second to start and reach the lock
        assert not (marks / f"run-{second}.read").exists()  # it waits: nobody reads while `first` holds the lock
        gate.touch()
        for process in processes.values():
            process.join(120)
            assert process.exitcode == 0
    finally:
        for process in processes.values():
            if process.is_alive():
                process.kill()
    assert (marks / f"run-{second}.read").read_text() == runs[first]["challenger_version"]
    assert (marks / "run-better.outcome").read_text() == "promoted"
    assert aliases(pipeline)["champion"] == runs["better"]["challenger_version"]


def _wait_for(path: Path, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while not path.exists():
        assert time.monotonic() < deadline, f"{path.name} never appeared"
        time.sleep(0.05)


# --- the lock itself ----------------------------------------------------------------------------------

def _model_names() -> set[str]:
    return {m.name for m in registry.client().search_registered_models()}


def test_a_live_lock_is_waited_for_then_refused(mlflow_registry):
    with registry.alias_lease("locked", "champion", "dag/run-a/promote", ttl_s=60, wait_s=1):
        with pytest.raises(registry.LeaseTimeout, match="held by dag/run-a/promote"):
            with registry.alias_lease("locked", "champion", "dag/run-b/promote", ttl_s=60, wait_s=0.5):
                pass
    with registry.alias_lease("locked", "champion", "dag/run-b/promote", ttl_s=60, wait_s=1):
        pass  # released: free again


def test_a_dead_holders_lock(mlflow_registry):
    """A holder that died keeps the lock until it expires; its own retry takes it over at once."""
    name = registry.lock_name("dead", "champion")
    registry.client().create_registered_model(name, tags={"holder": "dag/run-a/promote", "token": "t0",
                                                          "expires_at": str(time.time() + 60)})
    with registry.alias_lease("dead", "champion", "dag/run-a/promote", ttl_s=60, wait_s=0) as lease:
        lease.verify()  # the retry of the same task
    registry.client().create_registered_model(name, tags={"holder": "dag/run-a/promote", "token": "t1",
                                                          "expires_at": str(time.time() - 1)})
    with registry.alias_lease("dead", "champion", "dag/run-b/promote", ttl_s=60, wait_s=0) as lease:
        lease.verify()  # expired: broken, then taken
    assert f"{name}.stale.t1" in _model_names() and name not in _model_names()


def test_a_lease_lost_under_the_holder_stops_the_move(mlflow_registry):
    with pytest.raises(registry.LeaseLost, match="nothing was moved"):
        with registry.alias_lease("lost", "champion", "dag/run-a/promote", ttl_s=60, wait_s=0) as lease:
            name = registry.lock_name("lost", "champion")
            registry.client().set_registered_model_tag(name, "token", "someone-else")
            lease.verify()
    # Not ours any more: left for its holder to release.
    assert registry.lock_name("lost", "champion") in _model_names()
