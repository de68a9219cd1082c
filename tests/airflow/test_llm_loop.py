"""Seed 000's loop, step by step, with only the Anyscale API faked at its SDK client: fine-tune
(a stand-in model trained here), a temporary evaluation service on 127.0.0.1, live scores of the
base model (baseline), champion and challenger, a decision on both accuracies, and teardown."""

from __future__ import annotations

import copy

import pyarrow as pa
import pytest

from pipespec.local.sample_data import viggo_rows
from pipespec.tasklib.compute import anyscale as anyscale_compute
from pipespec.tasklib.context import RunContext
from pipespec.tasklib.model import registry
from pipespec.tasklib.rollout import decide, live_evaluation
from pipespec.tasklib.storage import write_table
from tests.support.fake_anyscale import working_anyscale
from tests.support.paths import ROOT

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def compiled() -> dict:
    from pipespec.compiler.compile import compile_checked
    from pipespec.schemas.check import check_file

    checked = check_file(ROOT / "pipelines" / "feedback_llm_finetune.yaml")
    assert checked.ok, [d.message for d in checked.diagnostics]
    return {(dag.dag_id.rsplit("__", 1)[1], task.task_id): task for dag in compile_checked(checked).dags
            for task in dag.tasks}


def publish(uri: str, rows: list[dict], run_key: str) -> None:
    from pipespec.tasklib.published import mark_latest, run_prefix, write_manifest

    prefix = run_prefix(uri, run_key, "feedback_llm_finetune")
    ref = write_table(pa.Table.from_pylist(rows), f"{prefix}/data.parquet")
    write_manifest(prefix, {"data": ref.to_dict(), "run_id": run_key})
    mark_latest(uri, prefix)


def fine_tune(params: dict, run_id: str) -> dict:
    """What the train task does on Anyscale: SubmitAnyscaleJob, then register the adapter."""
    from anyscale_provider.operators.anyscale import SubmitAnyscaleJob

    run = {"dag_id": "feedback_llm_finetune__train", "task_id": "train", "run_id": run_id, "try_number": 1,
           "owner": "ml-support"}
    kwargs = anyscale_compute.job_operator_kwargs("train", params, run=run)
    job_id = SubmitAnyscaleJob(task_id="train", **kwargs).execute(None)
    return anyscale_compute.collect_result(params, run, kwargs, job_id)


def test_baseline_finetune_live_evaluation_decision_and_teardown(compiled, tmp_path, monkeypatch):
    monkeypatch.setenv("PIPESPEC_STORAGE_ROOT", str(tmp_path / "storage"))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.chdir(tmp_path)
    publish("s3://feedback/viggo_holdout/", viggo_rows(80, seed=99), "holdout")
    params = copy.deepcopy(compiled["train", "train"].params)
    target = {"type": "anyscale_service", "name": "feedback-intents-llm", "conn_id": "anyscale_conn"}
    live = {"baseline": True, "concurrency": 4, "timeout_s": 30, "max_retries": 2}
    evaluate_args = {"pipeline": "feedback_llm_finetune", "metric": "exact_match", "direction": "max",
                     "holdout": "s3://feedback/viggo_holdout/", "holdout_fraction": 0.2,
                     "dataset": params["dataset"], "model": params["model"], "live": live, "target": target}
    rules = [{"metric": "exact_match", "floor": 0.5, "min_improvement": 0.02}, {"metric": "slot_f1"}]

    with working_anyscale(monkeypatch) as anyscale:
        # Round 1: the initial curated set of 100 requests; no champion yet.
        publish(params["dataset"], viggo_rows(100, seed=1), "scheduled__2026-01-01")
        first = fine_tune(params, "scheduled__2026-01-01")
        ctx = RunContext(dag_id="feedback_llm_finetune__train", task_id="eval_service", run_id="r1", owner="ml-support")
        service = live_evaluation.deploy_eval_service(ctx, pipeline="feedback_llm_finetune", target=target,
                                                      trained=first)
        assert service["service"] == "feedback-intents-llm-eval" and "feedback-intents-llm-eval" in anyscale.servers
        scores = live_evaluation.evaluate_live(ctx, trained=first, **evaluate_args)
        baseline = scores["scores"]["baseline"]
        assert scores["champion"] is None and scores["rows"] == 80 and scores["tokens"] > 0
        assert scores["challenger"] > baseline["exact_match"] + 0.3  # fine-tuning beat the base model
        verdict = decide.decide(ctx, scores=scores, direction="max", floor=None, min_improvement=0, rules=rules)
        assert verdict["decision"] == "promote"
        registry.set_alias("feedback_llm_finetune", "champion", str(first["version"]))
        live_evaluation.terminate_eval_service(ctx, target=target)
        assert anyscale.terminated == ["feedback-intents-llm-eval"] and not anyscale.servers

        # Round 2: the expanded set of 500 requests; the challenger must beat the champion on both.
        publish(params["dataset"], viggo_rows(500, seed=2), "scheduled__2026-01-08")
        second = fine_tune(params, "scheduled__2026-01-08")
        live_evaluation.deploy_eval_service(ctx, pipeline="feedback_llm_finetune", target=target, trained=second)
        scores = live_evaluation.evaluate_live(ctx, trained=second, **evaluate_args)
        assert scores["champion_version"] == str(first["version"])
        assert scores["challenger"] > scores["champion"]
        verdict = decide.decide(ctx, scores=scores, direction="max", floor=None, min_improvement=0, rules=rules)
        assert verdict["decision"] == "promote", verdict["reason"]
        assert [rule["metric"] for rule in verdict["rules"]] == ["exact_match", "slot_f1"]
        live_evaluation.terminate_eval_service(ctx, target=target)

    # The service ran the target's LLM app: the base model, adapters loaded from the run's LoRA path.
    app = anyscale.services[0].ray_serve_config["applications"][0]["args"]["llm_configs"][0]
    assert app["lora_config"]["dynamic_lora_loading_path"] == "s3://feedback/curated/_lora"
    assert [job.name for job in anyscale.jobs] == ["feedback_llm_finetune-train"] * 2


def test_the_feedback_llm_spec_runs_its_whole_loop_as_a_dag(tmp_path, monkeypatch):
    """pipelines/feedback_llm_finetune.yaml, compiled and run with dag.test(): the fine-tune waits in
    the triggerer, the temporary service is a setup task and its termination the teardown, the live
    scores decide on both accuracies, and the full rollout goes to the Anyscale Service."""
    from pipespec.local.local_env import ensure_db
    from pipespec.local.sinks import AlertSinks
    from pipespec.tasklib.model import registry
    from tests.support.airflow_harness import run_dag

    ensure_db()
    monkeypatch.setenv("PIPESPEC_STORAGE_ROOT", str(tmp_path / "storage"))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.chdir(tmp_path)
    publish("s3://feedback/viggo_holdout/", viggo_rows(80, seed=99), "holdout")
    publish("s3://feedback/curated/", viggo_rows(300, seed=1), "scheduled__2026-01-01")
    with AlertSinks() as sinks, working_anyscale(monkeypatch) as anyscale:
        for key, value in sinks.connections().items():
            monkeypatch.setenv(key, value)
        run, states = run_dag(ROOT / "pipelines", "feedback_llm_finetune__train", monkeypatch, tmp_path / "cache")
        assert run.state == "success", states
        assert {task: states[(task, -1)] for task in ("train", "eval_service", "evaluate", "eval_teardown", "decide",
                                                        "promote", "reject", "report")} == {
            "train": "success", "eval_service": "success", "evaluate": "success", "eval_teardown": "success",
            "decide": "success", "promote": "success", "reject": "skipped", "report": "success"}
        scores = run.get_task_instance("evaluate").xcom_pull(task_ids="evaluate")
        assert scores["scores"]["baseline"]["exact_match"] < scores["challenger"]
        from pipespec.tasklib.storage import read_text

        report = run.get_task_instance("report").xcom_pull(task_ids="report")
        assert "exact_match" in report["markdown"] and "slot_f1" in report["markdown"]  # each rule, in the alert
        page = read_text(report["markdown_uri"])
        assert "Rules (all of 2 must improve; every floor holds):" in page
        assert "Base model (baseline) `exact_match`" in page
        assert anyscale.terminated == ["feedback-intents-llm-eval"] and "feedback-intents-llm-eval" not in anyscale.servers
        # The eval service and then the production service (the full rollout) were deployed.
        assert [service.name for service in anyscale.services] == ["feedback-intents-llm-eval", "feedback-intents-llm"]
        assert registry.version_for("feedback_llm_finetune", "champion") == "1"
        assert ("email", "promoted") in sinks.events()
