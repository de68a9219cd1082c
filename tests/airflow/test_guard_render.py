"""Guardrails on the Airflow side (issue 10).

- No spec-controlled string ever reaches an Airflow template field in a form Jinja would render:
  every operator (and notifier) of every DAG that the examples, the golden valid cases and
  generated hostile specs build is rendered the way the task runner renders it, with a context
  that records any read of `var`, `conn` or `macros`.
- The loader renders each pipeline in isolation: whatever Airflow rejects in one pipeline becomes
  that pipeline's placeholder DAG, and every other pipeline still loads.
- Placeholder DAGs fit Airflow's id limit and never quote a source line.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
import textwrap
from collections import Counter
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Iterator

import pytest
import yaml

from pipespec.compiler import ir
from pipespec.compiler.build import BrokenSpec, RepoBuild
from pipespec.schemas.check import check_file
from pipespec.compiler.compile import compile_checked
from pipespec.schemas.diagnostics import Diagnostic

from tests.support.paths import ROOT  # noqa: E402 - one home for where the checkout is
PIPELINES = ROOT / "pipelines"
VALID = ROOT / "tests" / "cases" / "valid"
EXAMPLES = sorted(PIPELINES.glob("*.yaml"))
GOLDEN = sorted(VALID.glob("*.yaml"))
MARK = "{{ var.value.x }}"
FROM_XCOM = "{{ conn.from_xcom.password }}"  # what an upstream task returned: data too

APPROVAL_REPRO = """\
pipeline: approve
train: {dataset: s3://approve-bucket/curated/, model: {type: keras_text_classifier}}
evaluate: {metric: f1_macro}
rollout:
  stages: [{approval: {subject: "{{ conn.warehouse.password }} {{ var.value.api_key }}"}}, full]
"""


# --- rendering as the task runner does -------------------------------------------------------------

class Recorder:
    """Stands in for `var`, `conn` and `macros` in the context: remembers every read."""

    reads: list[str] = []

    def __init__(self, path: str) -> None:
        self._path = path

    def __getattr__(self, name: str) -> "Recorder":
        if name.startswith("__"):
            raise AttributeError(name)
        Recorder.reads.append(f"{self._path}.{name}")
        return Recorder(f"{self._path}.{name}")

    __getitem__ = __getattr__

    def __str__(self) -> str:
        return f"LEAKED<{self._path}>"


def context_for(dag: Any, task: Any) -> dict[str, Any]:
    ti = SimpleNamespace(dag_id=dag.dag_id, task_id=task.task_id, run_id="manual__1", map_index=0, try_number=1)
    return {"var": Recorder("var"), "conn": Recorder("conn"), "macros": Recorder("macros"), "ti": ti,
            "task_instance": ti, "dag": dag, "task": task, "run_id": "manual__1", "params": {},
            "dag_run": SimpleNamespace(conf={}), "ds": "2024-01-01"}


def strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from strings(item)
    elif isinstance(value, (list, tuple, set)):
        for item in value:
            yield from strings(item)


def runnable(task: Any) -> Any:
    """The operator the task runner renders: a mapped task is unmapped for one item first."""
    from airflow.sdk.definitions.mappedoperator import MappedOperator

    if not isinstance(task, MappedOperator):
        return task
    if hasattr(task, "op_kwargs_expand_input"):  # a TaskFlow step
        expand = task.op_kwargs_expand_input.value
        item = {k: (v[0] if isinstance(v, (list, tuple)) else v) for k, v in expand.items()}
        return task.unmap({"op_kwargs": item})
    # A mapped pod (inference in pods): its item is a shard plan_shards computed, not a spec value.
    return task.unmap({k: (v[0] if isinstance(v, (list, tuple)) else None) for k, v in task.expand_input.value.items()})


def render_like_the_runner(templated: Any, context: dict[str, Any]) -> list[str]:
    """Render `templated`'s template fields in place; fail if a spec string was rendered. Returns the strings."""
    before = Counter(s for f in templated.template_fields for s in strings(getattr(templated, f)))
    templated.render_template_fields(context)
    after = Counter(s for f in templated.template_fields for s in strings(getattr(templated, f)))
    what = f"{type(templated).__name__} {getattr(templated, 'task_id', '')}"
    assert Recorder.reads == [], f"{what} read {Recorder.reads} from the context"
    assert not before - after, f"{what} rendered {sorted(before - after)}"
    assert not any("LEAKED" in s for s in after), what
    return list(after.elements())


def assert_dags_render_nothing(dags: list[Any]) -> list[str]:
    """Walk every operator and callback of `dags`; return every string left in their template fields."""
    from pipespec.airflow.step_operators import SpecValuesAreData

    seen: list[str] = []
    for dag in dags:
        callbacks = [n for key in ("on_failure_callback", "on_retry_callback")
                     for n in dag.default_args.get(key, [])]
        for task in dag.tasks:
            # The one Jinja template pipespec writes itself; the label it shows is put in the context as data.
            assert task.map_index_template in (None, "{{ map_label }}"), task.task_id
            op = runnable(task)
            # The rule, by construction: every operator class pipespec builds treats spec strings as data ...
            assert isinstance(op, SpecValuesAreData) and not op.template_ext, (dag.dag_id, type(op))
            Recorder.reads = []
            # ... and, observed: rendering as the task runner does changes no string and reads no secret.
            seen += render_like_the_runner(op, context_for(dag, op))
        for notifier in callbacks:
            assert isinstance(notifier, SpecValuesAreData)
            Recorder.reads = []
            seen += render_like_the_runner(notifier, context_for(dag, dag.tasks[0]))
    return seen


@pytest.fixture
def xcom_is_data(monkeypatch):
    """Upstream outputs resolve to a Jinja-looking string, which must reach the step as written."""
    from airflow.sdk.definitions.xcom_arg import PlainXComArg

    monkeypatch.setattr(PlainXComArg, "resolve", lambda self, context: FROM_XCOM)


def render_file(path: Path) -> list[Any]:
    from pipespec.airflow.dag import render_pipeline

    checked = check_file(path)
    assert checked.ok and checked.spec is not None, checked.diagnostics
    return render_pipeline(compile_checked(checked))


def test_approval_subject_is_shown_as_written(tmp_path, xcom_is_data):
    """Issue 10 item 1: the subject was rendered with Airflow's full context (password and variable shown)."""
    spec = tmp_path / "approve.yaml"
    spec.write_text(APPROVAL_REPRO)
    train = next(d for d in render_file(spec) if d.dag_id == "approve__train")
    approval = train.get_task("approval")
    Recorder.reads = []
    render_like_the_runner(approval, context_for(train, approval))
    assert approval.subject == "{{ conn.warehouse.password }} {{ var.value.api_key }}"
    assert approval.body == "Approve to continue the rollout; reject to keep the champion."


@pytest.mark.parametrize("spec", EXAMPLES + GOLDEN, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_no_spec_string_is_rendered(spec, xcom_is_data):
    strings_left = assert_dags_render_nothing(render_file(spec))
    assert FROM_XCOM in strings_left or spec.name == "minimal.yaml"  # upstream outputs stayed data as well


# --- hostile specs: every free string holds Jinja ----------------------------------------------------

def _leaves(value: Any, path: tuple = ()) -> Iterator[tuple]:
    if isinstance(value, str):
        yield path
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _leaves(item, (*path, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _leaves(item, (*path, i))


def _set(data: Any, path: tuple, value: Any) -> None:
    for part in path[:-1]:
        data = data[part]
    data[path[-1]] = value


def _get(data: Any, path: tuple) -> Any:
    for part in path:
        data = data[part]
    return data


def hostile_spec(source: Path, workdir: Path) -> tuple[Path, int]:
    """`source` with templates merged in and Jinja in every string the checker still accepts.

    Each string becomes `{{ var.value.x }}`, or gets it appended, whichever `pipespec check`
    accepts; a field that accepts neither (names, URIs, enums) keeps its value.
    """
    shutil.copytree(source.parent, workdir, dirs_exist_ok=True)
    merged = check_file(source).node
    assert merged is not None
    data = merged.to_plain()
    data.pop("extends", None)
    target = workdir / f"hostile_{source.name}"
    hostile = 0
    for path in list(_leaves(data)):
        original = _get(data, path)
        for candidate in (MARK, f"{original} {MARK}"):
            _set(data, path, candidate)
            target.write_text(yaml.safe_dump(data, sort_keys=False))
            checked = check_file(target)
            if checked.ok and checked.spec is not None:
                hostile += 1
                break
        else:
            _set(data, path, original)
    target.write_text(yaml.safe_dump(data, sort_keys=False))
    return target, hostile


@pytest.mark.parametrize("spec", EXAMPLES + GOLDEN, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_hostile_variant_renders_nothing(spec, tmp_path, xcom_is_data):
    path, hostile = hostile_spec(spec, tmp_path / "spec")
    assert hostile or spec.parent == VALID, "the generator found no free string field in an example"
    strings_left = assert_dags_render_nothing(render_file(path))
    if hostile:  # not vacuous: the hostile strings did reach template fields, and stayed as written
        assert any(MARK in s for s in strings_left), "no hostile string reached a template field"


def test_every_stage_kind_and_backend_is_walked():
    """The walk above covers approval, both lazy compute backends and mapped tasks."""
    from airflow.sdk.definitions.mappedoperator import MappedOperator

    kinds = {type(t).__name__ for spec in EXAMPLES for d in render_file(spec) for t in d.tasks}
    assert {"ApprovalOperator", "LazyOperator", "StepOperator", "BranchStepOperator"} <= kinds | {
        t.operator_class.__name__ for spec in EXAMPLES for d in render_file(spec) for t in d.tasks
        if isinstance(t, MappedOperator)}


def test_dag_doc_that_looks_like_a_path_is_not_read(tmp_path):
    """Airflow reads a DAG `doc_md` that ends in `.md` as a file; the IR's doc is text, always."""
    from pipespec.airflow.dag import render_dag

    secret = tmp_path / "secret.md"
    secret.write_text("fernet_key = hunter2")
    spec = tmp_path / "approve.yaml"
    spec.write_text(APPROVAL_REPRO)
    dag_ir = compile_checked(check_file(spec)).dags[0]
    dag = render_dag(dataclasses.replace(dag_ir, doc_md=str(secret)))
    assert "hunter2" not in (dag.doc_md or "")
    assert str(secret) in dag.doc_md


# --- the loader: each pipeline in isolation -----------------------------------------------------------

GOOD = """\
pipeline: good
data:
  sources: [{name: a, type: local, path: a.csv, format: csv}]
  publishes: s3://good-bucket/x/
"""
BASE = """\
pipeline: base
data:
  sources: [{name: a, type: local, path: a.csv, format: csv}]
  publishes: s3://base-bucket/x/
train: {model: {type: keras_text_classifier}}
evaluate: {metric: f1_macro}
rollout: {stages: [shadow, approval, full]}
"""
GOOD_DAGS = {"good__data"}


@pytest.fixture(scope="module")
def base_ir(tmp_path_factory) -> ir.Pipeline:
    spec = tmp_path_factory.mktemp("base") / "base.yaml"
    spec.write_text(BASE)
    return compile_checked(check_file(spec))


def forge(base: ir.Pipeline, name: str, dag: str = "train", task: str | None = None, **changes: Any) -> ir.Pipeline:
    """`base` renamed, with one DAG (or one of its tasks) changed the way a hostile spec, or an IR
    cache entry nobody checked, could: what the renderer must survive without the checker's help."""
    def rename(d: ir.Dag) -> ir.Dag:
        d = dataclasses.replace(d, dag_id=d.dag_id.replace("base__", f"{name}__"))
        if not d.dag_id.endswith(f"__{dag}"):
            return d
        if task is None:
            return dataclasses.replace(d, **changes)
        return dataclasses.replace(d, tasks=tuple(
            dataclasses.replace(t, **changes) if t.task_id == task else t for t in d.tasks))
    return dataclasses.replace(base, name=name, spec_file=f"pipelines/{name}.yaml",
                               dags=tuple(rename(d) for d in base.dags))


def _duplicate(base: ir.Pipeline, name: str, task_id: str) -> ir.Pipeline:
    train = next(d for d in base.dags if d.dag_id.endswith("__train"))
    copy = dataclasses.replace(next(t for t in train.tasks if t.task_id == task_id))
    return forge(base, name, tasks=(*train.tasks, copy))


# Issue 10 item 6: each passed `pipespec check` and then raised while rendering (or, for the presets and
# the duplicate shadow, made the DagBag drop the DAG), taking every other pipeline's DAGs with it.
REPROS: dict[str, Any] = {
    "long_tag": lambda b, n: forge(b, n, tags=("pipespec", "x" * 101)),
    "s3_without_bucket": lambda b, n: forge(b, n, dag="data", task="publish", outlets=("s3:///x",)),
    "postgres_without_table": lambda b, n: forge(b, n, dag="data", task="publish", outlets=("postgres://host/db",)),
    "long_uri": lambda b, n: forge(b, n, dag="data", task="publish", outlets=("s3://b/" + "x" * 1600,)),
    "huge_delay": lambda b, n: forge(b, n, retry=ir.Retry(3, 99999999999 * 86400, False, None)),
    "huge_timeout": lambda b, n: forge(b, n, task="train", timeout_s=99999999999 * 86400),
    "huge_approval_timeout": lambda b, n: forge(
        b, n, task="approval", params={"pipeline": n, "timeout": "99999999999d", "subject": None}),
    "empty_schedule": lambda b, n: forge(b, n, schedule=ir.Schedule("assets", None, {})),
    "or_cron_alone": lambda b, n: forge(b, n, schedule=ir.Schedule("assets_or_cron", "0 0 * * *", None)),
    "once_preset": lambda b, n: forge(b, n, dag="data", schedule=ir.Schedule("cron", "@once")),
    "continuous_preset": lambda b, n: forge(b, n, dag="data", schedule=ir.Schedule("cron", "@continuous")),
    "duplicate_approval": lambda b, n: _duplicate(b, n, "approval"),
    "duplicate_shadow": lambda b, n: _duplicate(b, n, "shadow"),
}


@pytest.fixture
def good_dir(tmp_path) -> Path:
    pipelines = tmp_path / "pipelines"
    pipelines.mkdir()
    (pipelines / "good.yaml").write_text(GOOD)
    return pipelines


def load_with(pipelines: Path, extra: list[ir.Pipeline], monkeypatch, tmp_path) -> dict[str, Any]:
    """Load `pipelines/` as Airflow would, with `extra` pipelines added to what the build found."""
    import pipespec.airflow.loader as loader

    real = loader.build_repo

    def build(root: Path, cache: Path | None) -> RepoBuild:
        found = real(root, cache)
        return RepoBuild(pipelines=[*found.pipelines, *extra], broken=found.broken)

    monkeypatch.setattr(loader, "build_repo", build)
    namespace: dict[str, Any] = {}
    loader.load_dags(pipelines, namespace, tmp_path / "cache")
    return namespace


@pytest.mark.parametrize("repro", sorted(REPROS))
def test_a_pipeline_airflow_rejects_becomes_a_placeholder(repro, base_ir, good_dir, monkeypatch, tmp_path):
    name = f"bad_{repro}"
    namespace = load_with(good_dir, [REPROS[repro](base_ir, name)], monkeypatch, tmp_path)
    assert set(namespace) == GOOD_DAGS | {f"pipespec_invalid__{name}"}  # none of its DAGs, not even the good one
    placeholder = namespace[f"pipespec_invalid__{name}"]
    assert "invalid-spec" in placeholder.tags
    assert f"pipelines/{name}.yaml:1:1" in placeholder.doc_md
    assert "Airflow rejected" in placeholder.doc_md and "hint:" in placeholder.doc_md


def test_every_repro_at_once_through_the_dagbag(base_ir, good_dir, monkeypatch, tmp_path):
    """What the dag-processor does: import the loader file, validate, bag and serialize every DAG."""
    from airflow.dag_processing.dagbag import DagBag
    from airflow.serialization.serialized_objects import DagSerialization

    extra = [make(base_ir, f"bad_{name}") for name, make in sorted(REPROS.items())]
    import pipespec.airflow.loader as loader

    real = loader.build_repo
    monkeypatch.setattr(loader, "build_repo", lambda root, cache: RepoBuild(
        pipelines=[*real(root, cache).pipelines, *extra]))
    monkeypatch.setenv("PIPESPEC_PIPELINES", str(good_dir))
    monkeypatch.setenv("PIPESPEC_CACHE_DIR", str(tmp_path / "cache"))
    bag = DagBag(dag_folder=str(ROOT / "dags" / "pipespec_dags.py"))
    assert bag.import_errors == {}
    assert set(bag.dags) == GOOD_DAGS | {f"pipespec_invalid__bad_{name}" for name in REPROS}
    for dag in bag.dags.values():
        DagSerialization.to_dict(dag)


_SOURCES = "  sources: [{name: raw, type: local, path: raw.csv, format: csv}]\n"
_ROLLOUT = "train: {model: {type: keras_text_classifier}}\nevaluate: {metric: accuracy}\nrollout: {stages: %s}\n"
# The same repros as spec files: whichever layer catches one (`pipespec check` or the loader), it ends as
# its own placeholder and the good pipeline loads.
SPEC_REPROS = {
    "empty_schedule": "data:\n  schedule: {}\n" + _SOURCES + "  publishes: s3://r-bucket/empty/\n",
    "or_cron_alone": "data:\n  schedule: {or_cron: '@daily'}\n" + _SOURCES + "  publishes: s3://r-bucket/or/\n",
    "once_preset": "data:\n  schedule: '@once'\n" + _SOURCES + "  publishes: s3://r-bucket/once/\n",
    "continuous_preset": "data:\n  schedule: '@continuous'\n" + _SOURCES + "  publishes: s3://r-bucket/cont/\n",
    "long_tag": f"tags: [{'t' * 101}]\ndata:\n" + _SOURCES + "  publishes: s3://r-bucket/tag/\n",
    "s3_without_bucket": "data:\n" + _SOURCES + "  publishes: s3:///x\n",
    "postgres_without_table": "data:\n" + _SOURCES + "  publishes: postgres://host/db\n",
    "long_uri": "data:\n" + _SOURCES + f"  publishes: s3://r-bucket/{'a' * 1600}\n",
    "huge_delay": "retries: {delay: 99999999999d}\ndata:\n" + _SOURCES + "  publishes: s3://r-bucket/delay/\n",
    "huge_timeout": "data:\n" + _SOURCES.replace("csv}", "csv, timeout: 99999999999d}")
                    + "  publishes: s3://r-bucket/timeout/\n",
    "duplicate_approval": "data:\n" + _SOURCES + "  publishes: s3://r-bucket/appr/\n"
                          + _ROLLOUT % "[approval, approval, full]",
    "duplicate_shadow": "data:\n" + _SOURCES + "  publishes: s3://r-bucket/shadow/\n"
                        + _ROLLOUT % "[shadow, shadow, full]",
}


def test_issue_repros_as_specs_never_take_the_good_pipeline_down(good_dir, monkeypatch, tmp_path):
    from airflow.dag_processing.dagbag import DagBag

    for name, body in SPEC_REPROS.items():
        (good_dir / f"r_{name}.yaml").write_text(f"pipeline: r_{name}\n{body}")
    monkeypatch.setenv("PIPESPEC_PIPELINES", str(good_dir))
    monkeypatch.setenv("PIPESPEC_CACHE_DIR", str(tmp_path / "cache"))
    bag = DagBag(dag_folder=str(ROOT / "dags" / "pipespec_dags.py"))
    assert bag.import_errors == {}
    assert set(bag.dags) == GOOD_DAGS | {f"pipespec_invalid__r_{name}" for name in SPEC_REPROS}


def test_unexpected_render_error_is_isolated(good_dir, monkeypatch, tmp_path):
    import pipespec.airflow.loader as loader

    (good_dir / "other.yaml").write_text(GOOD.replace("good", "other"))
    real = loader.render_pipeline

    def render(pipeline: ir.Pipeline) -> list[Any]:
        if pipeline.name == "other":
            raise RuntimeError("boom in a provider")
        return real(pipeline)

    monkeypatch.setattr(loader, "render_pipeline", render)
    namespace: dict[str, Any] = {}
    loader.load_dags(good_dir, namespace, tmp_path / "cache")
    assert set(namespace) == GOOD_DAGS | {"pipespec_invalid__other"}
    assert "RuntimeError: boom in a provider" in namespace["pipespec_invalid__other"].doc_md
    monkeypatch.setenv("PIPESPEC_STRICT", "1")  # CI still fails on it
    with pytest.raises(loader.InvalidSpecs, match="boom in a provider"):
        loader.load_dags(good_dir, {}, tmp_path / "cache")


# --- placeholder DAGs: bounded ids, no source lines ----------------------------------------------------

def test_placeholder_id_fits_airflows_limit_and_stays_unique(good_dir, tmp_path, monkeypatch):
    """Issue 10 item 6: a broken spec whose file name is 235 characters made a 253-character DAG id."""
    from airflow.dag_processing.dagbag import DagBag

    for last in "ab":
        (good_dir / f"{'x' * 234}{last}.yaml").write_text("pipeline: [\n")
    (good_dir / "we-ird.yaml").write_text("pipeline: [\n")
    (good_dir / "we_ird.yaml").write_text("pipeline: [\n")
    monkeypatch.setenv("PIPESPEC_PIPELINES", str(good_dir))
    monkeypatch.setenv("PIPESPEC_CACHE_DIR", str(tmp_path / "cache"))
    bag = DagBag(dag_folder=str(ROOT / "dags" / "pipespec_dags.py"))
    assert bag.import_errors == {}
    placeholders = sorted(d for d in bag.dags if d.startswith("pipespec_invalid__"))
    assert len(placeholders) == 4, placeholders  # one each: none replaced another
    assert all(len(d) <= 250 for d in placeholders)
    assert "pipespec_invalid__we_ird" in placeholders  # short, plain names keep their readable id
    assert set(bag.dags) - set(placeholders) == GOOD_DAGS


@pytest.fixture
def leaky_dir(good_dir) -> Path:
    """A spec file holding what it should not (issue 10 item 3: a symlink to a worker's secret file;
    discovery now refuses symlinks out of the tree, but one inside it, or a pasted config, remains)."""
    (good_dir / "leak.yaml").write_text("fernet_key = hunter2-not-yaml\n")
    (good_dir / "typo.yaml").write_text(GOOD.replace("good", "typo").replace("sources:", "sorces:"))
    return good_dir


def test_placeholder_quotes_no_source_line(leaky_dir, tmp_path, monkeypatch, caplog):
    from pipespec.airflow.loader import InvalidSpecs, load_dags

    namespace: dict[str, Any] = {}
    with caplog.at_level(logging.ERROR, logger="pipespec"):
        load_dags(leaky_dir, namespace, tmp_path / "cache")
    leak, typo = namespace["pipespec_invalid__leak"], namespace["pipespec_invalid__typo"]
    # Still says where, what and how to fix it ...
    assert "leak.yaml:1:1" in leak.doc_md and "a spec must be a mapping" in leak.doc_md
    assert "typo.yaml:3:3" in typo.doc_md and "hint: did you mean `sources`" in typo.doc_md
    # ... but quotes no line of the file: not in the doc, the description, the task's error or the log.
    with pytest.raises(ValueError) as failure:
        leak.get_task("spec_has_errors").python_callable()
    for text in (leak.doc_md, leak.description, str(failure.value), caplog.text, typo.doc_md):
        assert "hunter2" not in text
        assert " | " not in text, text  # the reporter's source gutter
    assert "a spec must be a mapping" in str(failure.value)
    monkeypatch.setenv("PIPESPEC_STRICT", "1")  # the import error the UI shows
    with pytest.raises(InvalidSpecs) as strict:
        load_dags(leaky_dir, {}, tmp_path / "cache")
    assert "leak.yaml:1:1" in str(strict.value) and "hunter2" not in str(strict.value)


def test_placeholder_from_a_broken_build_entry_never_raises():
    """Whatever a BrokenSpec holds (no diagnostics, odd names), its placeholder is a valid DAG."""
    from pipespec.airflow.loader import placeholder_dag

    for broken in (BrokenSpec("pipelines/ü n i.yaml", []),
                   BrokenSpec("pipelines/.yaml", [Diagnostic("pipelines/.yaml", 1, 1, "", "m" * 5000, "h")])):
        dag = placeholder_dag(broken)
        dag.validate()
        assert len(dag.dag_id) <= 250 and len(dag.description) <= 1000


def test_normal_dag_docs_quote_nothing_but_validated_values(tmp_path):
    """A comment line in the spec (where a careless author pastes a token) never reaches the doc."""
    spec = tmp_path / "commented.yaml"
    spec.write_text("# token: hunter2-in-a-comment\n" + APPROVAL_REPRO.replace(
        "evaluate:", "# evaluate with the hunter2 holdout\nevaluate:"))
    for dag in render_file(spec):
        assert "hunter2" not in dag.doc_md
        assert all("hunter2" not in (t.doc_md or "") for t in dag.tasks)


def test_spec_files_whose_names_are_not_utf8_hide_no_dag(tmp_path):
    """The security review's repro: a broken spec named with a non-UTF-8 byte crashed the placeholder
    (hashing the name), and with it the whole DAG file."""
    from pipespec.airflow.loader import load_dags

    specs = tmp_path / "pipelines"
    shutil.copytree(ROOT / "pipelines", specs)
    for name in (b"a\xff.yaml", b"b" * 240 + b"\xff.yaml"):
        with open(os.path.join(os.fsencode(specs), name), "wb") as handle:
            handle.write(b"pipeline: [broken\n")
    namespace: dict[str, Any] = {}
    dag_ids = load_dags(specs, namespace)
    assert set(load_dags(ROOT / "pipelines", {})) < set(dag_ids)  # every good DAG still loads
    placeholders = [namespace[d] for d in dag_ids if d.startswith("pipespec_invalid__")]
    assert len(placeholders) == 2 and all("not valid UTF-8" in dag.doc_md for dag in placeholders)
    for dag in placeholders:
        dag.validate()
