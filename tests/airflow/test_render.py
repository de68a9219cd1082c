"""The example pipelines load into a real DagBag with the structure the spec describes."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from datetime import timedelta
from pathlib import Path

import pytest

from tests.support.paths import ROOT  # noqa: E402 - one home for where the checkout is
EXPECTED_DAGS = {
    "churn__data", "churn__train", "churn__inference", "feedback_llm_finetune__train",
    "feedback_llm_finetune__retrain",
    "genai_content__data", "genai_content__train", "genai_knowledge_base__data", "user_feedback__data", "user_feedback__train",
    "user_feedback__inference", "weekly_retrain__data", "weekly_retrain__train",
    "xray_classifier__data", "xray_classifier__train", "xray_own_code__train",
}


@pytest.fixture(scope="module")
def dagbag(tmp_path_factory):
    from airflow.dag_processing.dagbag import DagBag

    os.environ["PIPESPEC_CACHE_DIR"] = str(tmp_path_factory.mktemp("cache"))
    os.environ.pop("PIPESPEC_PIPELINES", None)
    return DagBag(dag_folder=str(ROOT / "dags" / "pipespec_dags.py"))


def edges(dag) -> set[tuple[str, str]]:
    return {(up, t.task_id) for t in dag.tasks for up in t.upstream_task_ids}


def test_examples_load_without_import_errors(dagbag):
    assert dagbag.import_errors == {}
    assert set(dagbag.dags) == EXPECTED_DAGS


def test_every_dag_is_documented(dagbag):
    for dag in dagbag.dags.values():
        pipeline = dag.dag_id.split("__")[0]
        assert f"pipelines/{pipeline}.yaml" in dag.doc_md
        assert "pipespec" in dag.tags and dag.dag_id.split("__")[1] in dag.tags
        assert dag.default_args["owner"] != "airflow"
        assert dag.description


def test_data_dag_maps_sources_and_transforms(dagbag):
    from airflow.sdk import Asset

    dag = dagbag.dags["user_feedback__data"]
    extract = dag.get_task("extract")
    assert extract.is_mapped and extract.map_index_template == "{{ map_label }}"
    assert [s["name"] for s in extract.op_kwargs_expand_input.value["item"]] == ["zendesk", "slack"]
    # Each source's transforms run inside its extract task (no task per transform).
    assert not [t.task_id for t in dag.tasks if t.task_id.startswith("transform_")]
    transforms = extract.partial_kwargs["op_kwargs"]["step_params"]["transforms"]
    assert [next(iter(t)) for t in transforms] == ["dedupe", "drop_empty", "normalize_text", "redact_pii"]
    # measure joins the sources and is the gate: no task of its own for the join
    assert {("extract", "measure"), ("measure", "publish"), ("measure", "notify_gate_blocked")} <= edges(dag)
    assert "join" not in dag.task_ids and dag.get_task("measure").op_kwargs["step"] == "data.curate"
    assert dag.get_task("publish").outlets == [Asset("s3://feedback/curated/")]
    assert dag.get_task("measure").inherits_from_skipmixin  # the gate is a branch, so the blocked path skips
    assert dag.timetable.expression == "0 0 * * *"  # @daily


def test_a_per_folder_source_maps_extract_over_the_planned_sources_and_keeps_them_policy_checked(dagbag):
    dag = dagbag.dags["genai_knowledge_base__data"]
    extract = dag.get_task("extract")
    assert extract.is_mapped and ("plan_sources", "extract") in edges(dag)
    assert dag.get_task("plan_sources").op_kwargs["step"] == "data.plan_sources"
    # Planned sources come from an upstream task, not the spec, yet the run-time policy checks each one.
    assert extract.partial_kwargs["op_kwargs"]["spec_items"] is True
    shards = dagbag.dags["user_feedback__inference"].get_task("predict")
    assert shards.partial_kwargs["op_kwargs"]["spec_items"] is False  # shards are pipespec's own work


def test_train_dag_trigger_rules_and_asset_schedule(dagbag):
    from airflow.sdk import Asset

    dag = dagbag.dags["user_feedback__train"]
    assert dag.timetable.asset_condition == Asset("s3://feedback/curated/")
    rules = {t.task_id: t.trigger_rule for t in dag.tasks}
    assert rules["rollback"] == "one_failed"
    assert rules["report"] == "none_failed_min_one_success"
    assert rules["reject"] == rules["promote"] == "all_success"
    assert {("decide", "shadow"), ("shadow", "promote"), ("decide", "reject"), ("reject", "notify_rejected"),
            ("promote", "rollback"), ("shadow", "rollback"), ("promote", "report"), ("reject", "report")} <= edges(dag)
    assert ("evaluate", "rollback") not in edges(dag)  # a failed evaluation must not trigger a rollback
    assert dag.get_task("promote").outlets == [Asset("model://user_feedback")]


def test_retries_from_spec_with_per_stage_overrides(dagbag):
    train = dagbag.dags["user_feedback__train"].get_task("train")
    assert train.retries == 3 and train.retry_delay == timedelta(minutes=2)
    assert train.retry_exponential_backoff and train.max_retry_delay == timedelta(minutes=30)
    genai = dagbag.dags["genai_content__data"]
    assert genai.get_task("extract").retries == 6
    assert genai.get_task("extract").partial_kwargs["retry_delay"] == timedelta(seconds=30)
    assert dagbag.dags["genai_content__train"].get_task("train").retries == 0  # the fine-tune is not retried
    assert dagbag.dags["weekly_retrain__train"].get_task("train").retries == 1


def test_asset_and_or_time_schedule(dagbag):
    from airflow.sdk import Asset, AssetAll, AssetAny
    from airflow.sdk.definitions.timetables.assets import AssetOrTimeSchedule

    timetable = dagbag.dags["genai_content__train"].timetable
    assert isinstance(timetable, AssetOrTimeSchedule)
    assert timetable.asset_condition == AssetAny(
        AssetAll(Asset("s3://content/curated/"), Asset("s3://content/style-guide/")), Asset("s3://feedback/curated/"))
    assert timetable.timetable.expression == "0 0 * * 0"  # @weekly


def test_inference_maps_shards_and_loads_champion(dagbag):
    from airflow.sdk import Asset

    dag = dagbag.dags["user_feedback__inference"]
    predict = dag.get_task("predict")
    assert predict.is_mapped and {"load_champion", "plan_shards"} == predict.upstream_task_ids
    assert dag.get_task("publish_predictions").outlets == [Asset("s3://feedback/predictions/")]


def test_compute_backends_render_lazily(dagbag):
    from pipespec.airflow.lazy import LazyOperator

    k8s = dagbag.dags["xray_classifier__train"].get_task("train")
    assert isinstance(k8s, LazyOperator) and k8s.operator == "kubernetes_pod"
    anyscale = dagbag.dags["feedback_llm_finetune__train"].get_task("train")
    assert isinstance(anyscale, LazyOperator) and anyscale.operator == "anyscale_job"
    approval = dagbag.dags["xray_classifier__train"].get_task("approval")
    assert type(approval).__name__ == "ApprovalOperator"


def test_parsing_imports_nothing_heavy_and_touches_no_network(tmp_path):
    # boto3 is left out on purpose: Airflow's amazon provider imports it to normalise any `s3://` Asset URI,
    # in hand-written DAGs just the same.
    probe = textwrap.dedent(f"""
        import socket, sys
        def no_network(*a, **k):
            raise AssertionError("network access during DAG parsing")
        socket.socket.connect = no_network
        socket.create_connection = no_network
        from airflow.dag_processing.dagbag import DagBag
        bag = DagBag(dag_folder={str(ROOT / 'dags' / 'pipespec_dags.py')!r})
        assert not bag.import_errors, bag.import_errors
        heavy = ["tensorflow", "mlflow", "anyscale", "anyscale_provider.operators.anyscale", "pyarrow", "ray",
                 "kubernetes.client", "airflow.providers.cncf.kubernetes.operators.pod", "slack_sdk"]
        print([m for m in heavy if m in sys.modules])
    """)
    env = {**os.environ, "PIPESPEC_CACHE_DIR": str(tmp_path)}
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_broken_spec_is_a_visible_placeholder(tmp_path, monkeypatch):
    from pipespec.airflow.loader import InvalidSpecs, load_dags

    pipelines = tmp_path / "pipelines"
    pipelines.mkdir()
    (pipelines / "good.yaml").write_text(
        "pipeline: good\ninference: null\ndata:\n  sources: [{name: a, type: local, path: a.csv, format: csv}]\n"
        "  publishes: s3://good-bucket/x/\n")
    (pipelines / "bad.yaml").write_text("pipeline: bad\ndata:\n  sources: []\n  publishes: s3://bad-bucket/x/\n")
    namespace: dict = {}
    load_dags(pipelines, namespace, tmp_path / "cache")
    assert set(namespace) == {"good__data", "pipespec_invalid__bad"}
    placeholder = namespace["pipespec_invalid__bad"]
    assert "invalid-spec" in placeholder.tags
    assert "bad.yaml:3:12" in placeholder.doc_md and "at least 1 item(s) here, not 0" in placeholder.doc_md
    monkeypatch.setenv("PIPESPEC_STRICT", "1")
    with pytest.raises(InvalidSpecs, match="bad.yaml:3:12"):
        load_dags(pipelines, {}, tmp_path / "cache")


def test_a_task_process_renders_only_its_own_dag(tmp_path, monkeypatch):
    """A task runner parses the DAG file with Airflow's parsing context naming its DAG: only that DAG
    is rendered (placeholders of broken specs still are); everything else renders every DAG."""
    from pipespec.airflow.loader import load_dags

    pipelines = tmp_path / "pipelines"
    pipelines.mkdir()
    for name in ("one", "two"):
        (pipelines / f"{name}.yaml").write_text(
            f"pipeline: {name}\ndata:\n  sources: [{{name: a, type: local, path: a.csv, format: csv}}]\n"
            f"  publishes: s3://{name}-bucket/x/\ntrain:\n  publishes: model://{name}\n"
            f"  model: {{type: keras_text_classifier}}\n")
    (pipelines / "bad.yaml").write_text("pipeline: bad\ndata:\n  sources: []\n  publishes: s3://bad-bucket/x/\n")
    everything = {"one__data", "one__train", "two__data", "two__train", "pipespec_invalid__bad"}
    namespace: dict = {}
    assert set(load_dags(pipelines, namespace, tmp_path / "cache")) == everything
    monkeypatch.setenv("_AIRFLOW_PARSING_CONTEXT_DAG_ID", "two__data")  # what the task runner sets
    monkeypatch.setenv("_AIRFLOW_PARSING_CONTEXT_TASK_ID", "measure")
    alone: dict = {}
    assert load_dags(pipelines, alone, tmp_path / "cache") == ["two__data", "pipespec_invalid__bad"]
    assert [t.task_id for t in alone["two__data"].tasks] == [t.task_id for t in namespace["two__data"].tasks]
    for dag_id in ("pipespec_invalid__bad", "nobody__data"):  # a placeholder's task, or a DAG no spec has
        monkeypatch.setenv("_AIRFLOW_PARSING_CONTEXT_DAG_ID", dag_id)
        assert set(load_dags(pipelines, {}, tmp_path / "cache")) == everything


def test_ir_cache_reused_and_invalidated_by_templates(tmp_path, monkeypatch):
    import pipespec.compiler.build as build

    pipelines = tmp_path / "pipelines"
    (pipelines / "templates").mkdir(parents=True)
    (pipelines / "templates" / "base.yaml").write_text("owner: team-a\n")
    (pipelines / "p.yaml").write_text(
        "pipeline: p\nextends: templates/base.yaml\ndata:\n  sources: [{name: a, type: local, path: a.csv, "
        "format: csv}]\n  publishes: s3://p-bucket/x/\n")
    first = build.build_repo(pipelines, tmp_path / "cache")
    calls = []
    import pipespec.schemas.check as check

    real = check.check_file
    monkeypatch.setattr(check, "check_file", lambda path, **kw: calls.append(path) or real(path, **kw))
    assert build.build_repo(pipelines, tmp_path / "cache").pipelines == first.pipelines
    assert calls == []  # served from the cache
    (pipelines / "templates" / "base.yaml").write_text("owner: team-b\n")
    rebuilt = build.build_repo(pipelines, tmp_path / "cache")
    assert len(calls) == 1 and rebuilt.pipelines[0].dags[0].owner == "team-b"
