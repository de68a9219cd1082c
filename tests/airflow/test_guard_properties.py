"""Property tests (issue 10): what `pipespec check` accepts, Airflow loads, and no spec takes another down.

Specs come from two generators:

- the JSON Schema (`schemas/pipeline.schema.json`) through hypothesis-jsonschema, with the free-text
  string kinds (Asset URIs, durations, crons, metrics) narrowed to plausible values so that a useful
  share of the specs passes `check`;
- mutations of every example, template and valid golden case: one leaf replaced by an edge value
  (huge or negative numbers, empty, long, unicode, Jinja, `../`, deep nesting, another type), a key
  deleted or a list item duplicated.

Whatever `check` accepts must compile, render, pass `DAG.validate()` and serialize and deserialize
as the dag-processor does; and whatever the spec beside it, the loader still loads a good spec's DAGs.
The runs are derandomized and database-less, so CI sees the same examples every time; a
counterexample becomes a `tests/cases/*/guard_prop_*.yaml` golden case and a fix in the rule's owner.
PIPESPEC_FUZZ_EXAMPLES=2000 runs a longer hunt.
"""

from __future__ import annotations

import copy
import functools
import json
import os
import shutil
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import pytest
import yaml
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from pipespec.schemas.catalog import METRICS
from pipespec.schemas.check import check_file
from pipespec.schemas.yamlload import load_file
from tests.schemas.test_guard_limits import load_like_the_dag_processor

from tests.support.paths import ROOT  # noqa: E402 - one home for where the checkout is
SCHEMA = ROOT / "schemas" / "pipeline.schema.json"
PIPELINES = ROOT / "pipelines"
VALID = ROOT / "tests" / "cases" / "valid"
SPECS = sorted(PIPELINES.glob("*.yaml")) + sorted(VALID.glob("*.yaml"))
TEMPLATES = sorted((PIPELINES / "templates").glob("*.yaml")) + sorted((VALID / "templates").glob("*.yaml"))

GOOD = """\
pipeline: good_neighbour
data:
  sources: [{name: a, type: local, path: a.csv, format: csv}]
  publishes: s3://good-neighbour/curated/
train: {model: {type: keras_text_classifier}}
evaluate: {metric: f1_macro}
rollout: {stages: [shadow, approval, full]}
"""
GOOD_DAGS = {"good_neighbour__data", "good_neighbour__train"}


def _examples(default: int) -> int:
    return int(os.environ.get("PIPESPEC_FUZZ_EXAMPLES", default))


def _settings(examples: int) -> settings:
    return settings(max_examples=_examples(examples), deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                           HealthCheck.filter_too_much, HealthCheck.data_too_large])


def _dump(data: Any) -> str:
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)


# --- the property ------------------------------------------------------------------------------------

def check_and_load(workdir: Path, spec: Any) -> bool:
    """Write `spec` beside the good spec; if `check` accepts it, it must load as the dag-processor loads it.
    Either way the good spec's DAGs load. Returns whether `check` accepted it."""
    import pipespec.airflow.loader as loader

    pipelines = workdir / "pipelines"
    target = pipelines / "spec.yaml"
    target.write_text(_dump(spec), encoding="utf-8")
    checked = check_file(target)
    accepted = checked.ok and checked.spec is not None
    namespace: dict[str, Any] = {}
    loaded = set(loader.load_dags(pipelines, namespace, None))
    assert GOOD_DAGS <= loaded, f"the good spec's DAGs are gone: {sorted(loaded)}"
    placeholders = {d for d in loaded if d.startswith(loader.PLACEHOLDER_PREFIX)}
    if not accepted:
        # One placeholder, named after the file at fault (the spec or a template it extends).
        assert len(placeholders) == 1 and len(loaded) == len(GOOD_DAGS) + 1, sorted(loaded)
        return False
    # Accepted: no placeholder (the loader isolates a spec Airflow rejects; check should have caught it) ...
    assert not placeholders, namespace[placeholders.pop()].doc_md
    # ... and every DAG validates, serializes, deserializes and schedules as the dag-processor does.
    from pipespec.compiler.compile import compile_checked

    dags = load_like_the_dag_processor(compile_checked(checked))
    assert {d.dag_id for d in dags} == loaded - GOOD_DAGS
    return True


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    """A spec tree: the good spec, the repo's templates (so `extends:` resolves) and a data folder."""
    root = tmp_path_factory.mktemp("prop")
    pipelines = root / "pipelines"
    shutil.copytree(PIPELINES, pipelines, ignore=shutil.ignore_patterns("*.yaml"), dirs_exist_ok=True)
    for templates in (PIPELINES / "templates", VALID / "templates"):  # the golden cases' templates too
        shutil.copytree(templates, pipelines / "templates", dirs_exist_ok=True)
    (pipelines / "good.yaml").write_text(GOOD)
    return root


# --- (a) specs generated from the JSON Schema -------------------------------------------------------

def _hypothesis_jsonschema_compat() -> None:
    """hypothesis-jsonschema 0.23 drives `many` with `.more()`, which Hypothesis 6.16x replaced by a
    context manager; adapt the one call site until a release supports the new form."""
    from hypothesis.internal.conjecture import utils
    from hypothesis_jsonschema import _from_schema

    if hasattr(utils.many, "more"):
        return

    class Many:
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            self._many = utils.many(*args, **kwargs).__enter__()
            self._next = iter(self._many)

        def more(self) -> bool:
            if next(self._next, False) is None:
                return True
            self._many.__exit__(None, None, None)
            return False

        def reject(self, why: str | None = None) -> None:
            self._many.reject(why)

    _from_schema.cu = types.SimpleNamespace(many=Many)


# Free-text string kinds, recognised by their description, narrowed to values `check` can accept.
NARROWED = {
    "Asset URI": {"enum": ["s3://bucket-a/curated/", "s3://bucket-b/x/", "model://other",
                           "postgres://host:5432/db/public/table"]},
    "The Asset published": {"enum": ["s3://bucket-a/curated/", "s3://bucket-c/published/"]},
    "A duration": {"enum": ["90s", "5m", "2h", "1d", "1h30m"]},
    "A cron expression": {"enum": ["@daily", "0 3 * * *", "*/15 * * * mon-fri", "@hourly"]},
    "A Kubernetes quantity": {"enum": ["500m", "4", "16Gi"]},
}


def _narrow(node: Any, defs: dict[str, Any], seen: tuple[str, ...] = ()) -> Any:
    """`node` with every `$ref` inlined (recursive Asset expressions two levels deep, which
    hypothesis-jsonschema cannot resolve otherwise) and the free-text kinds narrowed."""
    if isinstance(node, list):
        return [_narrow(item, defs, seen) for item in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        name = node["$ref"].rsplit("/", 1)[-1]
        return {"not": {}} if seen.count(name) >= 2 else _narrow(defs[name], defs, (*seen, name))
    if node.get("type") == "string":
        for prefix, narrowed in NARROWED.items():
            if node.get("description", "").startswith(prefix):
                return narrowed
        if node.get("title") == "Metric":
            return {"enum": sorted(METRICS)}
        if node.get("title") == "Path":  # local source paths: files in the data folder
            return {"enum": ["a.csv", "data/"]}
    return {key: _narrow(value, defs, seen) for key, value in node.items()}


@functools.cache
def section_strategies() -> dict[str, st.SearchStrategy]:
    """One strategy per top-level key of the spec, from its JSON Schema."""
    from hypothesis_jsonschema import from_schema

    _hypothesis_jsonschema_compat()
    schema = json.loads(SCHEMA.read_text())
    defs = schema.pop("$defs")
    schema["properties"]["tags"]["items"] = {"type": "string", "minLength": 1, "maxLength": 100}
    # `pipeline` keeps the seed's name, and `extends` needs templates: the mutations below cover it.
    return {key: from_schema(_narrow(sub, defs)) for key, sub in schema["properties"].items()
            if key not in ("pipeline", "extends")}


@st.composite
def schema_specs(draw: st.DrawFn) -> dict[str, Any]:
    """A spec whose sections are drawn from the JSON Schema, one to three at a time, the others taken
    from an example or golden case: a whole spec drawn at once almost never passes the cross-section
    checks, and costs about a second a draw."""
    strategies = section_strategies()
    spec = copy.deepcopy(_merged(draw(st.sampled_from(SPECS))))
    for key in draw(st.lists(st.sampled_from(sorted(strategies)), min_size=1, max_size=3, unique=True)):
        spec[key] = draw(strategies[key])
    return spec


ACCEPTED: list[bool] = []


@_settings(100)
@given(spec=schema_specs())
def test_specs_generated_from_the_schema(workdir, spec):
    ACCEPTED.append(check_and_load(workdir, spec))
    event("accepted" if ACCEPTED[-1] else "refused")


def test_the_schema_generator_reaches_accepted_specs():
    """Not vacuous: a good share of the generated specs passed `check` and went all the way through Airflow."""
    if not ACCEPTED:
        pytest.skip("runs after test_specs_generated_from_the_schema")
    assert sum(ACCEPTED) >= len(ACCEPTED) // 5, f"{sum(ACCEPTED)} of {len(ACCEPTED)} accepted"


# --- (b) mutations of every example, template and valid golden case ---------------------------------

# Edge values by the type of the leaf they replace; any of them, now and then, for a leaf of another type.
EDGE_STRINGS = ["", " ", "x" * 300, "é☃\u202e\U0001f600", "{{ var.value.x }}", "{% raw %}", "../../etc/passwd",
                "/etc/passwd", "s3://", "s3:///x", "file:///etc/passwd", "postgres://host/db", "99999999999d", "0s",
                "@once", "\x00", "a\nb", "kube-system", "a" * 64, "A", "0 0 31 2 *",
                "٣h", "１d", "０ 3 * * *", "*/٣ * * * *", "s3://b/" + "x" * 1500, "-1d", "1e400", "NaN", "~",
                "null", "0x10"]
EDGE_NUMBERS = [0, -1, 1, 2**31, 2**63, -(2**63), 10**30, 1e308, -0.0, 0.5, 1.0000001, float("inf"), float("nan")]
EDGE_OTHER: list[Any] = [None, True, [], {}, [[[[[["deep"]]]]]], {"a": {"b": {"c": {"d": {}}}}}]


def _edge(value: Any) -> st.SearchStrategy:
    same = (EDGE_STRINGS if isinstance(value, str) else EDGE_NUMBERS
            if isinstance(value, (int, float)) and not isinstance(value, bool) else EDGE_OTHER)
    return st.one_of(st.sampled_from(same), st.sampled_from(same + [f"{value}{value}" if isinstance(value, str) else
                                                                    value] + EDGE_STRINGS + EDGE_NUMBERS + EDGE_OTHER))


def _paths(value: Any, path: tuple = ()) -> Iterator[tuple]:
    yield path
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _paths(item, (*path, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _paths(item, (*path, i))


def _get(data: Any, path: tuple) -> Any:
    for part in path:
        data = data[part]
    return data


def _is_leaf(value: Any) -> bool:
    return not isinstance(value, (dict, list))


@functools.cache
def _as_written(path: Path) -> Any:
    return load_file(path).to_plain()  # pipespec's YAML 1.2 reading: `on:` stays a key


@functools.cache
def _merged(path: Path) -> Any:
    node = check_file(path).node
    assert node is not None
    data = node.to_plain()
    data.pop("extends", None)
    return data


def _users(template: Path) -> list[Path]:
    """The specs that read `template`, directly or through another template."""
    return [spec for spec in SPECS if template.resolve() in {f.resolve() for f in check_file(spec).files}]


TEMPLATE_USERS = {t: _users(t) for t in TEMPLATES}




def mutate(draw: st.DrawFn, data: Any) -> Any:
    """`data` with one to three mutations, mostly one edge value in a leaf, so that a good share of the
    mutants still passes `check`."""
    data = copy.deepcopy(data)
    for _ in range(draw(st.sampled_from([1, 1, 1, 2, 3]))):
        how = draw(st.sampled_from(["edge_leaf"] * 6 + ["edge_any", "delete", "duplicate", "swap_type"]))
        paths = [p for p in _paths(data) if p and (how != "edge_leaf" or _is_leaf(_get(data, p)))]
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent, key = _get(data, path[:-1]), path[-1]
        value = parent[key]
        if how.startswith("edge"):
            parent[key] = copy.deepcopy(draw(_edge(value)))
        elif how == "delete":
            del parent[key]
        elif how == "duplicate" and isinstance(value, list) and value:
            value.append(copy.deepcopy(draw(st.sampled_from(value))))
        elif how == "duplicate" and isinstance(parent, list):
            parent.insert(key, copy.deepcopy(value))
        else:  # a value of another type: a scalar as a list, a list as text, a mapping as its keys
            parent[key] = [value] if _is_leaf(value) else list(value) if isinstance(value, dict) else str(value)
    return data


@dataclass(frozen=True)
class Mutant:
    spec: Any
    template: tuple[str, Any] | None = None  # a mutated template (its file name, its content) the spec reads


@st.composite
def mutants(draw: st.DrawFn) -> Mutant:
    seed = draw(st.sampled_from(SPECS + TEMPLATES))
    if seed in TEMPLATES:  # a mutated template, seen through a spec that extends it
        return Mutant(_as_written(draw(st.sampled_from(TEMPLATE_USERS[seed]))),
                      (seed.name, mutate(draw, _as_written(seed))))
    return Mutant(mutate(draw, draw(st.sampled_from([_as_written(seed), _merged(seed)]))))


def _replaced(seed: str, path: tuple, value: Any) -> Mutant:
    spec = copy.deepcopy(_merged(ROOT / seed))
    _get(spec, path[:-1])[path[-1]] = value
    return Mutant(spec)


@_settings(300)
@given(mutant=mutants())
# Counterexamples found, pinned (and golden cases tests/cases/invalid/guard_prop_*.yaml).
@example(mutant=_replaced("pipelines/churn.yaml", ("data", "schedule"), "*/٣ * * * *"))
@example(mutant=_replaced("pipelines/churn.yaml", ("retries", "delay"), "１d"))
def test_mutated_examples_templates_and_golden_cases(workdir, mutant):
    templates = workdir / "pipelines" / "templates"
    if mutant.template is None:
        accepted = check_and_load(workdir, mutant.spec)
    else:
        name, content = mutant.template
        original = (templates / name).read_bytes()
        (templates / name).write_text(_dump(content), encoding="utf-8")
        try:
            accepted = check_and_load(workdir, mutant.spec)
        finally:
            (templates / name).write_bytes(original)
    event("accepted" if accepted else "refused")


def test_every_template_is_mutated_through_a_spec():
    assert all(TEMPLATE_USERS.values()), TEMPLATE_USERS


@pytest.mark.parametrize("seed", SPECS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_seed_loads_beside_the_good_spec(workdir, seed):
    """The unmutated seeds, as written and merged: accepted, and loaded."""
    assert check_and_load(workdir, _as_written(seed))
    assert check_and_load(workdir, _merged(seed))
