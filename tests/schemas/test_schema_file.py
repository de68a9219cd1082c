"""The committed JSON Schema is current, and it accepts what the checker accepts,
so editors (yaml-language-server) do not flag valid specs."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from pipespec.schemas.check import display_name
from pipespec.cli import main
from pipespec.schemas.jsonschema import SCHEMA_ID, build_schema, render_schema
from pipespec.schemas.models import PipelineSpec
from pipespec.schemas.templates import resolve
from pipespec.schemas.yamlload import load_file

from tests.support.paths import ROOT  # noqa: E402 - one home for where the checkout is
SCHEMA_FILE = ROOT / "schemas" / "pipeline.schema.json"
PIPELINES = ROOT / "pipelines"
SPECS = sorted(PIPELINES.glob("*.yaml"))
ALL_SPEC_FILES = sorted(PIPELINES.rglob("*.yaml"))
MODELINE = "# yaml-language-server: $schema="


@pytest.fixture(scope="module")
def validator() -> jsonschema.protocols.Validator:
    schema = json.loads(SCHEMA_FILE.read_text())
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema, format_checker=cls.FORMAT_CHECKER)


def resolved(path: Path) -> dict:
    merged, _ = resolve(load_file(path), path, display_name)
    data = merged.to_plain()
    data.pop("extends", None)
    return data


def test_committed_schema_is_current():
    assert SCHEMA_FILE.read_text() == render_schema(), (
        f"{SCHEMA_FILE.relative_to(ROOT)} is stale: run `pipespec schema` and commit the result")


def test_schema_is_draft_2020_12_with_an_id():
    schema = json.loads(SCHEMA_FILE.read_text())
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"] == SCHEMA_ID
    assert schema["additionalProperties"] is False
    assert "pipeline" in schema["required"]


def test_schema_check_flags_a_stale_file(tmp_path, capsys):
    stale = tmp_path / "pipeline.schema.json"
    stale.write_text(render_schema().replace("Unique name", "Old name"))
    assert main(["schema", "--check", "--output", str(stale)]) == 1
    assert "is stale: run `pipespec schema`" in capsys.readouterr().err
    assert main(["schema", "--check", "--output", str(tmp_path / "missing.json")]) == 1


def test_schema_command_writes_the_rendered_schema(tmp_path, capsys):
    target = tmp_path / "out" / "pipeline.schema.json"
    assert main(["schema", "--output", str(target)]) == 0
    assert target.read_text() == render_schema()
    assert f"wrote {target}" in capsys.readouterr().out
    assert main(["schema", "--check", "--output", str(target)]) == 0


def test_render_is_deterministic():
    assert render_schema() == render_schema()
    assert json.loads(render_schema()) == build_schema()


@pytest.mark.parametrize("spec", SPECS, ids=lambda p: p.name)
def test_example_spec_validates_against_the_schema(validator, spec):
    data = resolved(spec)
    PipelineSpec.model_validate(data)  # the checker accepts it...
    errors = sorted(validator.iter_errors(data), key=lambda e: list(e.absolute_path))
    # ...so the schema that editors use must accept it too.
    assert not errors, "\n".join(f"{'.'.join(map(str, e.absolute_path))}: {e.message[:160]}" for e in errors)


# Short forms the models accept (BeforeValidators). Editors see only the JSON Schema,
# so each must be valid there as well.
MINIMAL = {"pipeline": "x", "data": {"sources": [{"name": "a", "type": "local", "path": "p", "format": "csv"}],
                                     "publishes": "s3://a/"}}


def _with(section: str, **values) -> dict:
    doc = json.loads(json.dumps(MINIMAL))
    doc.setdefault(section, {}).update(values)
    if section in ("train", "evaluate", "rollout", "inference"):
        doc.setdefault("train", {}).setdefault("model", {"type": "keras_text_classifier"})
    if section in ("evaluate", "rollout"):
        doc.setdefault("evaluate", {}).setdefault("metric", "accuracy")
    return doc


SHORTHANDS = {
    "data.schedule: cron string": _with("data", schedule="@daily"),
    "data.join: string": _with("data", join="union"),
    "transform column as string": _with("data", transforms=[{"drop_empty": "text"}]),
    "normalize_text: list": _with("data", transforms=[{"normalize_text": ["text"]}]),
    "rollout.stages: names": _with("rollout", stages=["shadow", "full"]),
    "canary: percent": _with("rollout", stages=[{"canary": 10}, {"full": None}]),
    "rollout.target: string": _with("rollout", target="registry_alias"),
    "alert email: list": {**MINIMAL, "alerts": [{"on": ["failure"], "email": ["a@example.com"]}]},
    "alert email: string": {**MINIMAL, "alerts": [{"on": ["failure"], "email": "a@example.com"}]},
    "inference.schedule: cron string": _with("inference", schedule="@hourly", input="s3://i/", output="s3://o/"),
}
LONGHANDS = {
    "data.schedule: mapping": _with("data", schedule={"cron": "@daily"}),
    "rollout.stages: mappings": _with("rollout", stages=[{"shadow": None}, {"canary": {"percent": 5}}, {"full": None}]),
    "alert email: mapping": {**MINIMAL, "alerts": [{"on": ["failure"], "email": {"to": ["a@example.com"]}}]},
    "asset expression": _with("train", schedule={"assets": {"any": [{"all": ["s3://a/", "s3://b/"]}, "s3://c/"]},
                                                 "or_cron": "@weekly"}, dataset="s3://a/"),
    "extends and append": {**MINIMAL, "extends": ["templates/base.yaml"], "tags+": ["x"]},
}


@pytest.mark.parametrize("doc", list(SHORTHANDS.values()) + list(LONGHANDS.values()),
                         ids=list(SHORTHANDS) + list(LONGHANDS))
def test_schema_accepts_what_the_models_accept(validator, doc):
    plain = {k: v for k, v in doc.items() if k != "extends" and not k.endswith("+")}
    PipelineSpec.model_validate(plain)
    errors = list(validator.iter_errors(doc))
    assert not errors, [e.message[:160] for e in errors]


@pytest.mark.parametrize("doc, where", [
    ({**MINIMAL, "descripton": "typo"}, "descripton"),
    ({**MINIMAL, "owner": 3}, "owner"),
    (_with("data", join="outer"), "data.join"),
    (_with("evaluate", direction="up"), "evaluate.direction"),
    ({"data": MINIMAL["data"]}, "pipeline"),
    (_with("train", model={"type": "random_forest"}), "train.model.type"),
], ids=["unknown-key", "wrong-type", "bad-join", "bad-direction", "missing-pipeline", "unknown-model"])
def test_schema_rejects_what_the_models_reject(validator, doc, where):
    assert list(validator.iter_errors(doc)), f"the schema accepted a bad {where}"


@pytest.mark.parametrize("spec", ALL_SPEC_FILES, ids=lambda p: p.relative_to(PIPELINES).as_posix())
def test_spec_files_start_with_the_schema_modeline(spec):
    first = spec.read_text().splitlines()[0]
    assert first.startswith(MODELINE), f"{spec.name} must start with `{MODELINE}<path>`"
    target = (spec.parent / first[len(MODELINE):].strip()).resolve()
    assert target == SCHEMA_FILE, f"{spec.name}: the modeline points at {target}, not at the schema file"
