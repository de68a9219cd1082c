"""docs/spec-reference.md is generated from the models: current, complete (every field of
every model, walked here independently of the generator), and well-formed Markdown."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import typing
from datetime import datetime
from pathlib import Path

import pytest
import yaml
from pydantic import BaseModel, BeforeValidator

from pipespec.schemas import templates
from pipespec.schemas.catalog import METRICS, MODEL_TYPES
from pipespec.schemas.models import PipelineSpec
from pipespec.schemas.reference import OUTPUT, SHORT_FORMS, render_reference, type_text

from tests.support.paths import ROOT  # noqa: E402 - one home for where the checkout is
REFERENCE = ROOT / OUTPUT
UNESCAPED_PIPE = re.compile(r"(?<!\\)\|")


@pytest.fixture(scope="module")
def text() -> str:
    return render_reference()


def reachable_models() -> list[type[BaseModel]]:
    """Every model reachable from PipelineSpec through annotations and their metadata."""
    seen: dict[type[BaseModel], None] = {}

    def visit(obj: object) -> None:
        if isinstance(obj, type) and issubclass(obj, BaseModel):
            if obj not in seen:
                seen[obj] = None
                for info in obj.model_fields.values():
                    visit(info.annotation)
        else:
            for arg in typing.get_args(obj):
                visit(arg)

    visit(PipelineSpec)
    return list(seen)


MODELS = reachable_models()


def sections(text: str) -> dict[str, list[str]]:
    """`### Name` heading → the lines under it, up to the next heading."""
    out: dict[str, list[str]] = {}
    current = None
    for line in text.splitlines():
        if line.startswith("#"):
            current = line[4:] if line.startswith("### ") else None
            if current is not None:
                out[current] = []
        elif current is not None:
            out[current].append(line)
    return out


def cells(line: str) -> list[str]:
    return [c.strip() for c in UNESCAPED_PIPE.split(line)[1:-1]]


def rows(lines: list[str]) -> dict[str, list[str]]:
    """A section's table as field name → [type, default, description]."""
    table = [cells(line) for line in lines if line.startswith("| `")]
    return {row[0].strip("`"): row[1:] for row in table}


def test_committed_reference_is_current(text):
    assert REFERENCE.is_file(), f"{OUTPUT} is missing: run `pipespec reference` and commit the result"
    assert REFERENCE.read_text(encoding="utf-8") == text, (
        f"{OUTPUT} is stale: run `pipespec reference` and commit the result")


def test_the_walk_reaches_every_section_of_a_spec():
    """Guards the independent walk below: it would prove nothing if it found too little."""
    names = {m.__name__ for m in MODELS}
    assert {"PipelineSpec", "DataSection", "S3Source", "Dedupe", "NormalizeArgs", "TrainSection",
            "KubernetesCompute", "Toleration", "EvaluateSection", "CanaryArgs", "KubernetesTarget",
            "RetryPolicy", "EmailChannel", "InferenceSection", "Trigger", "AllOf", "AnyOf"} <= names
    assert len(MODELS) >= 45


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
def test_every_field_of_every_model_is_documented(text, model):
    section = sections(text).get(model.__name__)
    assert section is not None, f"{model.__name__} has no section in the reference"
    documented = rows(section)
    expected = {info.alias or name for name, info in model.model_fields.items()}
    assert set(documented) == expected, f"{model.__name__}: missing {expected - set(documented)}"
    for name, info in model.model_fields.items():
        kind, default, description = documented[info.alias or name]
        assert kind, f"{model.__name__}.{name} has no type"
        assert (default == "required") == info.is_required(), f"{model.__name__}.{name}: default {default!r}"
        assert description == " ".join((info.description or "").split()).replace("|", "\\|")


@pytest.mark.parametrize("model, name, kind, default", [
    ("PipelineSpec", "retries", "[Retries](#retries)", "`{count: 2, delay: 5m, backoff: constant}`"),
    ("DataSection", "sources", "list of [Source](#source) (at least 1 item, at most 64 items)", "required"),
    ("DataSection", "transforms", "list of [Transform](#transform) (at most 32 items)", "`[]`"),  # no short form: a no-op validator
    ("DataSection", "schedule", "[Schedule](#schedule) · [short form](#short-forms)", "`null`"),
    ("DataSection", "join", "[Join](#join) · [short form](#short-forms)", "`{type: union}`"),
    ("S3Source", "type", "`s3`", "required"),
    ("S3Source", "timeout", "duration (`90s`, `5m`, `2h`)", "`null`"),
    ("S3Source", "on_bad_rows", "one of `fail` \\| `skip`", "`fail`"),
    ("Threshold", "min_records", "integer ≥ 0", "`0`"),
    ("SampleArgs", "fraction", "number > 0, ≤ 1", "required"),
    ("RetryPolicy", "count", "integer ≥ 0, ≤ 50", "`null`"),  # constraints on an optional field
    ("Quality", "max_null_rate", "mapping of string → number ≥ 0, ≤ 1", "`{}`"),
    ("Resources", "cpu", "string", '`"1"`'),  # quoted: bare 1 would be a number in YAML
    ("Model", "features", "list of string", "`[text]`"),
    ("RolloutSection", "stages", "list of [Stage](#stage) (at most 16 items) · [short form](#short-forms)",
     "`[{full: null}]`"),
    ("RolloutSection", "target", "[Target](#target) · [short form](#short-forms)",
     "`{type: registry_alias, alias: champion}`"),
    ("TrainSection", "compute", "[Compute](#compute)", "`{backend: local}`"),
    ("Trigger", "cron", "cron", "`null`"),
    ("Trigger", "assets", "[AssetExpr](#assetexpr) or list of [AssetExpr](#assetexpr) (at most 64 items)", "`null`"),
    ("InferenceSection", "input", "data URI (`s3://bucket/prefix/`)", "required"),
    ("PipelineSpec", "description", "string (at most 2000 characters)", '`""`'),
])
def test_rendered_types_and_defaults(text, model, name, kind, default):
    assert rows(sections(text)[model])[name][:2] == [kind, default]


def test_nothing_pythonic_leaks(text):
    for leak in ("PydanticUndefined", "<class", "typing.", "NoneType", "Annotated", "FieldInfo", "ForwardRef",
                 " at 0x", "Literal["):
        assert leak not in text, f"{leak!r} in the reference"


def test_tables_are_well_formed_markdown(text):
    lines = text.splitlines()
    tables = 0
    i = 0
    while i < len(lines):
        if not lines[i].startswith("|"):
            i += 1
            continue
        assert lines[i - 1] == "", f"line {i + 1}: a table must follow a blank line"
        width = len(cells(lines[i]))
        assert re.fullmatch(r"\|(---\|)+", lines[i + 1]) and lines[i + 1].count("|") - 1 == width, (
            f"line {i + 2}: bad separator row")
        i += 2
        while i < len(lines) and lines[i].startswith("|"):
            assert lines[i].endswith(" |"), f"line {i + 1}: row does not end with a pipe"
            assert len(cells(lines[i])) == width, f"line {i + 1}: {len(cells(lines[i]))} cells, header has {width}"
            i += 1
        tables += 1
    assert tables >= len(MODELS) + 3  # one per model, short forms, model types, metrics


def github_slug(heading: str) -> str:
    return "".join(c for c in heading.lower() if c.isalnum() or c in "-_ ").replace(" ", "-")


def test_links_point_at_headings_and_headings_are_unique(text):
    headings = [github_slug(line.lstrip("#").strip()) for line in text.splitlines() if line.startswith("#")]
    assert len(headings) == len(set(headings)), "two headings share an anchor"
    targets = set(re.findall(r"\]\(#([^)]+)\)", text))
    assert targets and targets <= set(headings), f"dangling links: {targets - set(headings)}"


# --- short forms -------------------------------------------------------------------------------

MINIMAL = {"pipeline": "x", "data": {"sources": [{"name": "a", "type": "local", "path": "p", "format": "csv"}],
                                     "publishes": "s3://a/"}}


def spec_with(at: tuple, snippet: str) -> PipelineSpec:
    doc = json.loads(json.dumps(MINIMAL))
    if at[0] == "alerts":
        doc["alerts"] = [{"on": ["failure"]}]
    target = doc
    for key in at:
        target = target.setdefault(key, {}) if isinstance(key, str) else target[key]
    target.update(yaml.safe_load(snippet))
    return PipelineSpec.model_validate(doc)


@pytest.mark.parametrize("form", SHORT_FORMS, ids=lambda f: f.short)
def test_each_short_form_means_its_long_form(form):
    assert form.short != form.long
    assert spec_with(form.at, form.short) == spec_with(form.at, form.long)


def accepts_short_form(tp: object, meta: list) -> bool:
    """A BeforeValidator that declares a wider input than the type it produces (a no-op one does not)."""
    if typing.get_origin(tp) is typing.Annotated:
        tp, meta = tp.__origin__, [*tp.__metadata__, *meta]
    if any(isinstance(m, BeforeValidator) and m.json_schema_input_type != tp for m in meta):
        return True
    return any(accepts_short_form(arg, []) for arg in typing.get_args(tp) if not isinstance(arg, str))


def test_the_short_form_table_covers_exactly_the_fields_that_have_one(text):
    expected = {f"{m.__name__}.{name}" for m in MODELS for name, info in m.model_fields.items()
                if accepts_short_form(info.annotation, info.metadata)}
    listed = {ref for form in SHORT_FORMS for ref in form.fields}
    assert listed == expected, f"undocumented: {expected - listed}; not short forms: {listed - expected}"
    marked = {f"{model}.{name}" for model, lines in sections(text).items()
              for name, row in rows(lines).items() if "[short form](#short-forms)" in row[0]}
    assert marked == expected, f"not marked: {expected - marked}; marked wrongly: {marked - expected}"


# --- catalog, extends, environment -------------------------------------------------------------

def test_model_types_and_metrics_are_listed(text):
    table = {cells(line)[0].strip("`"): cells(line) for line in text.splitlines() if line.startswith("| `")}
    assert set(MODEL_TYPES) | set(METRICS) <= set(table)
    assert table["llm_finetune"][1:4] == ["structured_generation", "`anyscale`", "`exact_match`, `slot_f1`"]
    assert table["rmse"][1:] == ["`min` (lower is better)", "regression"]


def test_extends_rules_are_the_templates_docstring_word_for_word(text):
    rules = text[text.index("## `extends:` merge rules"):]
    position = 0
    for line in filter(None, (templates.__doc__ or "").strip().splitlines()):
        assert line + "\n" in rules[position:], f"docstring line missing or out of order: {line!r}"
        position = rules.index(line + "\n", position)


def test_an_unknown_type_fails_loudly_instead_of_printing_python():
    with pytest.raises(TypeError, match="cannot describe"):
        type_text(datetime)


def test_render_needs_no_airflow_and_ignores_the_hash_seed(text):
    code = ("import json, sys\nfrom pipespec.schemas.reference import render_reference\nsys.stdout.write(render_reference())\n"
            "heavy = {'airflow', 'tensorflow', 'keras', 'mlflow'}\n"
            "sys.stderr.write(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in heavy)))")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONHASHSEED": "12345"})
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stderr) == []
    assert proc.stdout == text


def test_reference_command_writes_and_checks(tmp_path, capsys):
    from pipespec.cli import main

    target = tmp_path / "ref.md"
    assert main(["reference", "--output", str(target)]) == 0 and target.read_text() == render_reference()
    assert main(["reference", "--check", "--output", str(target)]) == 0
    target.write_text("old")
    assert main(["reference", "--check", "--output", str(target)]) == 1
    assert "is stale: run `pipespec reference`" in capsys.readouterr().err
