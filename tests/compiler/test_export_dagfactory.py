"""`pipespec export --to dag-factory`: the exported YAML, loaded by dag-factory 1.1.0's
public loader, gives the DAGs that `pipespec.airflow.dag.render_pipeline` builds.

Everything Airflow is done once, in the module-scoped `built` fixture: export
every example spec (and a few synthetic IR pipelines for the schedule and
escaping cases the examples lack), load each file with
`dagfactory.load_yaml_dags`, and render our own DAGs. Where dag-factory cannot
give the same thing, the test asserts the documented difference.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from pipespec.compiler import ir
from pipespec.compiler.build import build_repo
from pipespec.compiler.export_dagfactory import ExportError, UpstreamOutput, export_dagfactory

pytestmark = pytest.mark.airflow  # renders DAGs

# dag-factory 1.1.0 reads these when `dagfactory.settings` is imported (telemetry.should_emit):
# [dag_factory] enable_telemetry, DO_NOT_TRACK, SCARF_NO_ANALYTICS.
os.environ["AIRFLOW__DAG_FACTORY__ENABLE_TELEMETRY"] = "False"
os.environ["DO_NOT_TRACK"] = "1"
os.environ["SCARF_NO_ANALYTICS"] = "true"

from tests.support.paths import ROOT  # noqa: E402 - one home for where the checkout is
EXAMPLES = build_repo(ROOT / "pipelines")  # skips pipelines/templates/
RETRY = ir.Retry(2, 60, False, None)


def _yaml(text: str) -> Any:
    return yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))


def _synthetic_dag(dag_id: str, schedule: ir.Schedule, params: dict | None = None) -> ir.Dag:
    tasks = (ir.Task("first", "data.extract", params or {"pipeline": "synthetic"}),
             ir.Task("second", "data.join", {"pipeline": "synthetic"}, {"refs": "first"}, ("first",)))
    return ir.Dag(dag_id, schedule, "synthetic", "doc", "owner", ("pipespec",), RETRY, (), tasks)


# Asset expressions the examples do not have: plain all/any, and the shapes `__and__`/`__or__`
# would fold differently (one-item group; a group whose first item is a group of the same kind).
SYNTHETIC = ir.Pipeline("synthetic", "synthetic.yaml", "0", (
    _synthetic_dag("synthetic__all", ir.Schedule("assets", assets={"all": ["s3://a/", "s3://b/", "s3://c/"]})),
    _synthetic_dag("synthetic__any_of_all", ir.Schedule("assets", assets={
        "any": [{"all": ["s3://a/", "s3://b/"]}, "s3://c/", {"any": ["s3://d/", "s3://e/"]}]})),
    _synthetic_dag("synthetic__one_item", ir.Schedule("assets", assets={"all": ["s3://a/"]})),
    _synthetic_dag("synthetic__left_nested", ir.Schedule("assets", assets={"all": [{"all": ["s3://a/", "s3://b/"]},
                                                                                     "s3://c/"]})),
    _synthetic_dag("synthetic__single_or_cron", ir.Schedule("assets_or_cron", cron="15 4 * * 1-5",
                                                            assets="s3://a/")),
    _synthetic_dag("synthetic__manual", ir.Schedule("none"), params={
        "cmd": "echo $HOME ${HOME} $$ \\$HOME", "a$HOME": ["$PATH", {"k": "x$"}], "plain": "100", "yes": "no"}),
))
# dag-factory maps only TaskFlow tasks over another task's output, so a mapped pod has no form there.
MAPPED_PODS = {p.name for p in EXAMPLES.pipelines
               if any(t.kind == "kubernetes_pod" and t.mapping for d in p.dags for t in d.tasks)}
EXPORTABLE = [p for p in EXAMPLES.pipelines if p.name not in MAPPED_PODS]
PIPELINES = [*EXPORTABLE, SYNTHETIC]
DAG_IDS = [dag.dag_id for p in PIPELINES for dag in p.dags]


@dataclass
class Built:
    texts: dict[str, str] = field(default_factory=dict)  # pipeline name -> exported YAML
    ir: dict[str, ir.Dag] = field(default_factory=dict)
    ours: dict[str, Any] = field(default_factory=dict)
    theirs: dict[str, Any] = field(default_factory=dict)
    telemetry_calls: list = field(default_factory=list)


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Built:
    import dagfactory
    from dagfactory import load_yaml_dags, telemetry

    from pipespec.airflow.dag import render_pipeline

    assert dagfactory.__version__ == "1.1.0"
    assert telemetry.should_emit() is False
    out = Built()
    folder = tmp_path_factory.mktemp("dagfactory")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(telemetry, "emit_usage_metrics", lambda metrics: out.telemetry_calls.append(metrics))
        for pipeline in PIPELINES:
            text = out.texts[pipeline.name] = export_dagfactory(pipeline)
            path = folder / f"{pipeline.name}.yaml"
            path.write_text(text, encoding="utf-8")
            # config_filepath (not a folder scan): a broken file raises instead of being logged and skipped.
            load_yaml_dags(globals_dict=out.theirs, config_filepath=str(path), defaults_config_path=str(folder))
            out.ours.update({dag.dag_id: dag for dag in render_pipeline(pipeline)})
            out.ir.update({dag.dag_id: dag for dag in pipeline.dags})
    return out


def test_examples_are_exported(built):
    assert {p.name for p in EXAMPLES.pipelines} == {
        "churn", "feedback_llm_finetune", "genai_content", "genai_knowledge_base", "user_feedback", "weekly_retrain",
        "xray_classifier", "xray_own_code"}
    assert not EXAMPLES.broken
    assert MAPPED_PODS == {"churn"}  # inference in pods (seed 003)


def test_a_mapped_pod_is_refused_with_a_clear_error():
    churn = next(p for p in EXAMPLES.pipelines if p.name == "churn")
    with pytest.raises(ExportError, match=r"churn__inference\.predict: a mapped pod .* has no dag-factory form"):
        export_dagfactory(churn)


def test_no_telemetry(built):
    from dagfactory import telemetry

    assert telemetry.should_emit() is False
    assert built.telemetry_calls == []


def test_same_dag_ids(built):
    assert set(built.theirs) == set(built.ours) == set(DAG_IDS)


@pytest.mark.parametrize("dag_id", DAG_IDS)
def test_same_tasks_and_edges(built, dag_id):
    ours, theirs = built.ours[dag_id], built.theirs[dag_id]
    assert set(theirs.task_ids) == set(ours.task_ids) == {t.task_id for t in built.ir[dag_id].tasks}
    for task in ours.tasks:
        twin = theirs.get_task(task.task_id)
        assert twin.upstream_task_ids == task.upstream_task_ids, task.task_id
        assert twin.downstream_task_ids == task.downstream_task_ids, task.task_id
        assert type(twin) is type(task), task.task_id
        assert twin.trigger_rule == task.trigger_rule, task.task_id
        assert (twin.retries, twin.retry_delay, twin.retry_exponential_backoff, twin.max_retry_delay) == (
            task.retries, task.retry_delay, task.retry_exponential_backoff, task.max_retry_delay), task.task_id
        assert twin.outlets == task.outlets, task.task_id
        assert twin.doc_md == task.doc_md, task.task_id
        assert twin.owner == task.owner, task.task_id


@pytest.mark.parametrize("dag_id", DAG_IDS)
def test_same_mapping(built, dag_id):
    from airflow.sdk.definitions.mappedoperator import MappedOperator

    ours, theirs = built.ours[dag_id], built.theirs[dag_id]
    for task in ours.tasks:
        twin = theirs.get_task(task.task_id)
        mapped = built.ir[dag_id].task(task.task_id).mapping is not None
        assert task.is_mapped is twin.is_mapped is mapped, task.task_id
        assert isinstance(twin, MappedOperator) is isinstance(task, MappedOperator) is mapped, task.task_id
        if not mapped:
            continue
        assert twin.map_index_template == task.map_index_template == "{{ map_label }}"
        ours_items = task.op_kwargs_expand_input.value["item"]
        their_items = twin.op_kwargs_expand_input.value["item"]
        assert set(twin.op_kwargs_expand_input.value) == set(task.op_kwargs_expand_input.value) == {"item"}
        if isinstance(ours_items, list):  # static items
            assert their_items == ours_items
        else:  # the output of the task mapped over, as an XComArg (dag-factory's `+task`)
            assert (their_items.operator.task_id, their_items.key) == (ours_items.operator.task_id, ours_items.key)
        keys = ("step", "step_params", "map_arg", "map_label")
        ours_kwargs, their_kwargs = task.partial_kwargs["op_kwargs"], twin.partial_kwargs["op_kwargs"]
        assert {k: their_kwargs[k] for k in keys} == {k: ours_kwargs[k] for k in keys}


@pytest.mark.parametrize("dag_id", DAG_IDS)
def test_same_schedule(built, dag_id):
    from airflow.serialization.encoders import coerce_to_core_timetable, encode_timetable

    ours, theirs = built.ours[dag_id].timetable, built.theirs[dag_id].timetable
    assert type(theirs) is type(ours)
    if type(ours).__eq__ is not object.__eq__:  # attrs timetables compare by value; NullTimetable does not
        assert theirs == ours
    assert encode_timetable(theirs) == encode_timetable(ours)  # includes the serialized asset expression
    core_ours, core_theirs = coerce_to_core_timetable(ours), coerce_to_core_timetable(theirs)
    assert (core_theirs.summary, core_theirs.description) == (core_ours.summary, core_ours.description)


def test_schedule_syntax(built):
    """dag-factory's `__and__`/`__or__` where its fold is exact; `__type__` objects where it is not."""
    docs = {name: _yaml(text) for name, text in built.texts.items()}
    synthetic = docs["synthetic"]
    assert set(synthetic["synthetic__all"]["schedule"]) == {"__and__"}
    assert set(synthetic["synthetic__any_of_all"]["schedule"]) == {"__or__"}
    assert synthetic["synthetic__one_item"]["schedule"]["__type__"] == "airflow.sdk.AssetAll"
    assert synthetic["synthetic__left_nested"]["schedule"]["__type__"] == "airflow.sdk.AssetAll"
    assert synthetic["synthetic__manual"]["schedule"] is None
    or_cron = docs["genai_content"]["genai_content__train"]["schedule"]
    assert or_cron["__type__"] == "airflow.sdk.AssetOrTimeSchedule"
    assert or_cron["timetable"] == {"__type__": "airflow.sdk.CronTriggerTimetable", "__args__": ["@weekly"],
                                    "timezone": "UTC"}
    assert docs["xray_classifier"]["xray_classifier__data"]["schedule"] == {
        "__type__": "airflow.sdk.CronDataIntervalTimetable", "__args__": ["*/30 * * * *"], "timezone": "UTC"}


@pytest.mark.parametrize("dag_id", DAG_IDS)
def test_same_dag_arguments(built, dag_id):
    from pipespec.airflow.dag import START_DATE

    ours, theirs = built.ours[dag_id], built.theirs[dag_id]
    assert theirs.start_date == ours.start_date == START_DATE
    assert (theirs.catchup, theirs.max_active_runs, theirs.description) == (
        False, ours.max_active_runs, ours.description)
    assert {k: theirs.default_args[k] for k in ("owner", "retries", "retry_delay", "retry_exponential_backoff")} == {
        k: ours.default_args[k] for k in ("owner", "retries", "retry_delay", "retry_exponential_backoff")}
    assert theirs.default_args.get("max_retry_delay") == ours.default_args.get("max_retry_delay")
    # Documented differences: dag-factory tags its DAGs and appends the YAML it read to doc_md.
    assert set(theirs.tags) == set(ours.tags) | {"dagfactory"}
    assert theirs.doc_md.startswith(ours.doc_md + "\n## YML DAG\n```yaml\n")
    # Callbacks: dag-factory builds one notifier (a list is rejected), the renderer passes a list of one.
    for key in ("on_failure_callback", "on_retry_callback"):
        if key not in ours.default_args:
            assert key not in theirs.default_args
            continue
        [notifier] = ours.default_args[key]
        twin = theirs.default_args[key]
        assert type(twin) is type(notifier)
        assert (twin.pipeline, twin.event, twin.channels) == (notifier.pipeline, notifier.event, notifier.channels)


@pytest.mark.parametrize("dag_id", DAG_IDS)
def test_same_serialized_dag(built, dag_id):
    """Airflow's own serialization (what the scheduler and UI see) is equal but for the documented fields."""
    from airflow.serialization.serialized_objects import DagSerialization

    ours = DagSerialization.to_dict(built.ours[dag_id])["dag"]
    theirs = DagSerialization.to_dict(built.theirs[dag_id])["dag"]
    ours_tasks = {t["__var"]["task_id"]: t["__var"] for t in ours.pop("tasks")}
    their_tasks = {t["__var"]["task_id"]: t["__var"] for t in theirs.pop("tasks")}
    # fileloc: where DAG() was called (pipespec/airflow/dag.py vs dagfactory/dagbuilder.py); the dag-processor
    # sets it to the DAG file it parsed. tags and doc_md: see test_same_dag_arguments.
    for key in ("fileloc", "tags", "doc_md"):
        ours.pop(key), theirs.pop(key)
    # dag-factory does not pass this DAG argument on (documented in the export module).
    ours.pop("max_consecutive_failed_dag_runs", None), theirs.pop("max_consecutive_failed_dag_runs", None)
    assert theirs == ours
    assert set(their_tasks) == set(ours_tasks)
    for task_id, task in ours_tasks.items():
        twin = their_tasks[task_id]
        # dag-factory 1.x has no setup/teardown: the export keeps the edge and the teardown's all_done rule.
        task.pop("is_setup", None), task.pop("is_teardown", None)
        if "partial_kwargs" in task:
            # A mapped task's partial XComArg is serialized as an xcomref; an UpstreamOutput as its str(),
            # which is the XComArg's str(): the xcom_pull template.
            ours_inputs = task["partial_kwargs"]["op_kwargs"]["__var"].pop("inputs")["__var"]
            their_inputs = twin["partial_kwargs"]["op_kwargs"]["__var"].pop("inputs")["__var"]
            assert set(their_inputs) == set(ours_inputs)
            for arg, ref in ours_inputs.items():
                assert ref["__type"] == "xcomref"
                assert their_inputs[arg] == (f"{{{{ task_instance.xcom_pull(task_ids='{ref['__var']['task_id']}', "
                                             f"dag_id='{dag_id}', key='return_value') }}}}")
        assert twin == task, task_id


class _FakeTI:
    """Records the XCom pulls a rendering makes; returns a value naming what was pulled."""

    def __init__(self) -> None:
        self.pulls: list[dict] = []

    def xcom_pull(self, task_ids=None, key="return_value", default=None, map_indexes=None, **kwargs):
        self.pulls.append({"task_ids": task_ids, "key": key, "map_indexes": map_indexes, **kwargs})
        return {"pulled": task_ids, "key": key, "map_indexes": map_indexes}


def _rendered_inputs(task) -> tuple[Any, list[dict]]:
    from airflow.sdk.execution_time.lazy_sequence import LazyXComSequence

    kwargs = task.partial_kwargs["op_kwargs"] if task.is_mapped else task.op_kwargs
    ti = _FakeTI()
    rendered = task.render_template(kwargs["inputs"], {"ti": ti, "task": task})
    plain = {arg: (("lazy sequence", value._xcom_arg.operator.task_id, value._xcom_arg.key)
                   if isinstance(value, LazyXComSequence) else value) for arg, value in rendered.items()}
    return plain, ti.pulls


@pytest.mark.parametrize("dag_id", DAG_IDS)
def test_inputs_resolve_like_xcomargs(built, dag_id):
    """Each `inputs` entry resolves, when Airflow renders op_kwargs, to what the renderer's XComArg gives."""
    checked = 0
    for task_ir in built.ir[dag_id].tasks:
        if task_ir.kind not in ("python", "branch"):
            continue
        ours = built.ours[dag_id].get_task(task_ir.task_id)
        theirs = built.theirs[dag_id].get_task(task_ir.task_id)
        kwargs = theirs.partial_kwargs["op_kwargs"] if theirs.is_mapped else theirs.op_kwargs
        assert kwargs["inputs"] == {arg: UpstreamOutput(source, dag_id) for arg, source in task_ir.inputs.items()}
        assert _rendered_inputs(theirs) == _rendered_inputs(ours)
        checked += bool(task_ir.inputs)
    assert checked or not any(t.inputs for t in built.ir[dag_id].tasks)


def test_step_arguments(built):
    """step/step_params/branches/inputs keys reach run_step and run_branch as the renderer passes them."""
    from pipespec.airflow.adapter import run_branch, run_step

    for dag_id, dag_ir in built.ir.items():
        for task_ir in dag_ir.tasks:
            if task_ir.kind not in ("python", "branch") or task_ir.mapping is not None:
                continue
            ours = built.ours[dag_id].get_task(task_ir.task_id)
            theirs = built.theirs[dag_id].get_task(task_ir.task_id)
            assert theirs.python_callable is ours.python_callable is (run_step if task_ir.kind == "python"
                                                                       else run_branch)
            assert set(theirs.op_kwargs) == set(ours.op_kwargs)
            for key in set(ours.op_kwargs) - {"inputs"}:
                assert theirs.op_kwargs[key] == ours.op_kwargs[key], (dag_id, task_ir.task_id, key)


def test_approval_and_lazy_operators(built):
    seen = set()
    for dag_id, dag_ir in built.ir.items():
        for task_ir in dag_ir.tasks:
            ours = built.ours[dag_id].get_task(task_ir.task_id)
            theirs = built.theirs[dag_id].get_task(task_ir.task_id)
            if task_ir.kind == "approval":
                fields = ("subject", "body", "defaults", "response_timeout", "options", "multiple")
                assert {f: getattr(theirs, f) for f in fields} == {f: getattr(ours, f) for f in fields}
            elif task_ir.kind in ("kubernetes_pod", "anyscale_job"):
                # `operator` reaches LazyOperator through the task's default_args (dag-factory reserves the key).
                fields = ("operator", "builder", "step_params")
                assert {f: getattr(theirs, f) for f in fields} == {f: getattr(ours, f) for f in fields}
                assert theirs.operator == task_ir.kind
            else:
                continue
            seen.add(task_ir.kind)
    assert seen == {"approval", "kubernetes_pod", "anyscale_job"}


def test_dollar_signs_survive_expandvars(built):
    """dag-factory expands $VARS in the raw file; every `$` is written as `\\x24` in a double-quoted scalar."""
    assert os.environ.get("HOME")
    text = built.texts["synthetic"]
    assert "$" not in text.split("\n", 2)[2]
    expected = SYNTHETIC.dags[-1].tasks[0].params
    assert built.theirs["synthetic__manual"].get_task("first").op_kwargs["step_params"] == expected
    assert built.ours["synthetic__manual"].get_task("first").op_kwargs["step_params"] == expected


def test_export_is_plain_yaml_in_ir_order(built):
    for pipeline in EXPORTABLE:
        doc = _yaml(built.texts[pipeline.name])
        assert list(doc) == [dag.dag_id for dag in pipeline.dags]
        for dag in pipeline.dags:
            assert list(doc[dag.dag_id]["tasks"]) == [t.task_id for t in dag.tasks]
            assert doc[dag.dag_id]["catchup"] is False


# --- Airflow-free ---------------------------------------------------------------------------------

def _one_task_pipeline(task: ir.Task) -> ir.Pipeline:
    dag = ir.Dag("p__data", ir.Schedule("none"), "d", "doc", "o", (), RETRY, (), (task,))
    return ir.Pipeline("p", "p.yaml", "0", (dag,))


@pytest.mark.parametrize("params", [
    {"__type__": "os.system"}, {"nested": {"__args__": []}}, {"list": [{"__and__": []}]},
    {"x": {"__or__": []}}, {"__join__": ["a", "b"]},
])
def test_reserved_keys_are_refused(params):
    with pytest.raises(ExportError, match="dag-factory syntax"):
        export_dagfactory(_one_task_pipeline(ir.Task("t", "data.extract", params)))


def test_task_reference_lookalike_is_refused():
    with pytest.raises(ExportError, match="output of a task"):
        export_dagfactory(_one_task_pipeline(ir.Task("t", "+extract", {})))


def test_export_needs_neither_airflow_nor_dagfactory():
    import subprocess
    import sys

    code = (
        "import importlib.abc, sys\n"
        "class Block(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('airflow', 'dagfactory'):\n"
        "            raise ImportError(name + ' is blocked')\n"
        "sys.meta_path.insert(0, Block())\n"
        "from pathlib import Path\n"
        "from pipespec.compiler.build import build_repo\n"
        "from pipespec.compiler.export_dagfactory import export_dagfactory\n"
        "for pipeline in build_repo(Path('pipelines')).pipelines:\n"
        f"    if pipeline.name not in {sorted(MAPPED_PODS)!r}:\n"
        "        assert export_dagfactory(pipeline).count('decorator: pipespec.airflow.step_operators.step_task') > 0\n"
        "print('ok')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr
