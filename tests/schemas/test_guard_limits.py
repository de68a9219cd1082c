"""Airflow's own limits are checked before Airflow sees them: what `check` accepts must load.

Every valid golden case (the `guard_limits_*` ones sit at Airflow's limits) goes the dag-processor's way:
compile, render, `DAG.validate()`, serialize (validated against Airflow's JSON Schema), deserialize and
compute the next run. The invalid `guard_limits_*` golden cases are the specs that used to pass `check`
and then raise while rendering; here each one is shown to still break Airflow when the check is skipped.
"""

from __future__ import annotations

import string
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipespec.schemas import asset_uri
from pipespec.schemas.check import check_file
from pipespec.compiler.compile import compile_checked, compile_spec
from pipespec.schemas.cron import PRESETS, UNSUPPORTED
from pipespec.schemas.models import PipelineSpec
from pipespec.schemas.models.common import MAX_DURATION_DAYS

pytestmark = pytest.mark.airflow  # renders DAGs

from tests.support.paths import CASES  # noqa: E402
VALID = sorted((CASES / "valid").glob("*.yaml"))
GUARD_INVALID = sorted((CASES / "invalid").glob("guard_limits_*.yaml"))


def load_like_the_dag_processor(pipeline) -> list:
    """Render, validate and serialize as `DagBag` and the dag-processor do; return the deserialized DAGs."""
    from airflow.serialization.serialized_objects import DagSerialization

    from pipespec.airflow.dag import render_pipeline

    loaded = []
    for dag in render_pipeline(pipeline):
        dag.validate()
        data = DagSerialization.to_dict(dag)  # also validates against Airflow's serialized-DAG JSON Schema
        serialized = DagSerialization.from_dict(data)
        # What the scheduler asks first; Airflow logs (not raises) a cron that never fires, and returns None.
        info = serialized.next_dagrun_info(last_automated_run_info=None)
        assert info is not None or "Cron" not in type(serialized.timetable).__name__, f"{dag.dag_id} never runs"
        loaded.append(serialized)
    return loaded


def load_file(path: Path) -> list:
    checked = check_file(path)
    assert checked.ok and checked.spec is not None, [d.message for d in checked.diagnostics]
    return load_like_the_dag_processor(compile_checked(checked))


def compile_dict(spec: dict):
    return compile_spec(PipelineSpec.model_validate(spec), "spec.yaml", "0" * 16, "/tmp")


@pytest.mark.parametrize("case", VALID, ids=lambda p: p.stem)
def test_every_valid_case_loads_as_airflow_would(case: Path):
    assert load_file(case)


def test_guard_cases_exist():
    assert len(GUARD_INVALID) >= 14
    assert any(p.name.startswith("guard_limits_") for p in VALID)


@pytest.mark.parametrize("case", GUARD_INVALID, ids=lambda p: p.stem)
def test_each_guard_case_is_refused_by_check(case: Path):
    # The golden test checks the exact diagnostics; here: refused, so the loader renders none of it.
    assert not check_file(case).ok


# --- schedules: one meaning each ------------------------------------------------------------------

DATA = {"sources": [{"name": "raw", "type": "local", "path": "data/raw/", "format": "csv"}],
        "publishes": "s3://bucket/curated/"}
TRAIN = {"model": {"type": "keras_text_classifier"}}
INFERENCE = {"input": "s3://bucket/in/", "output": "s3://bucket/out/"}


def _timetables(spec: dict) -> dict[str, str]:
    return {d.dag_id.split("__")[1]: type(d.timetable).__name__ for d in load_like_the_dag_processor(compile_dict(spec))}


def test_manual_is_one_explicit_form_for_every_dag():
    spec = {"pipeline": "manual_all", "data": {**DATA, "schedule": "manual"},
            "train": {**TRAIN, "schedule": "manual"}, "inference": {**INFERENCE, "schedule": "manual"}}
    assert _timetables(spec) == {"data": "NullTimetable", "train": "NullTimetable", "inference": "NullTimetable"}
    # Without `manual`, train and inference follow their Assets, as documented.
    spec = {"pipeline": "defaults", "data": DATA, "train": TRAIN, "inference": INFERENCE}
    assert _timetables(spec) == {"data": "NullTimetable", "train": "AssetTriggeredTimetable",
                                 "inference": "AssetTriggeredTimetable"}


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_every_accepted_preset_renders_as_cron_and_as_or_cron(preset: str):
    spec = {"pipeline": "presets", "data": {**DATA, "schedule": preset},
            "train": {**TRAIN, "schedule": {"assets": "s3://bucket/curated/", "or_cron": preset}}}
    assert _timetables(spec) == {"data": "CronDataIntervalTimetable", "train": "AssetOrTimeSchedule"}


@pytest.mark.parametrize("preset", sorted(UNSUPPORTED))
def test_unsupported_presets_would_break_rendering(preset: str):
    """Why `@once`/`@continuous` are refused: Airflow's cron timetables do not take them."""
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="not supported"):
        PipelineSpec.model_validate({"pipeline": "p", "data": {**DATA, "schedule": preset}})
    spec = PipelineSpec.model_validate({"pipeline": "p", "data": DATA})
    forced = spec.model_copy(update={"data": spec.data.model_copy(update={"schedule": _trigger(cron=preset)})})
    with pytest.raises(Exception):
        load_like_the_dag_processor(compile_spec(forced, "spec.yaml", "0" * 16, "/tmp"))


def _trigger(**fields):
    from pipespec.schemas.models.common import Trigger

    return Trigger.model_construct(**{"cron": None, "assets": None, "or_cron": None, **fields})


@pytest.mark.parametrize("fields", [{}, {"or_cron": "@daily"}, {"cron": "@daily", "assets": "s3://b/x/"},
                                    {"cron": "@daily", "or_cron": "@daily"}])
def test_compile_refuses_a_schedule_without_one_meaning(fields: dict):
    # Belt and braces behind semantics.schedules_have_one_meaning: never a silently dropped cron.
    spec = PipelineSpec.model_validate({"pipeline": "p", "data": DATA})
    forced = spec.model_copy(update={"data": spec.data.model_copy(update={"schedule": _trigger(**fields)})})
    with pytest.raises(ValueError, match="no single meaning"):
        compile_spec(forced, "spec.yaml", "0" * 16, "/tmp")


@pytest.mark.parametrize("cron", ["0 0 31 2 *", "0 0 30,31 2 *", "0 0 31 4,6,9,11 *", "0 0 31/5 2 *"])
def test_a_cron_that_never_fires_is_refused(cron: str):
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="never run"):
        PipelineSpec.model_validate({"pipeline": "p", "data": {**DATA, "schedule": cron}})


@pytest.mark.parametrize("cron", ["0 0 29 2 *", "0 0 31 2 mon", "0 0 31 1-2 *", "*/61 * * * *", "0 0 1-31/40 * *",
                                  "0 0 * jan-mar mon-fri", "0 0 * * 7", "30 2 10/7 * *", "* * * * sun"])
def test_unusual_crons_that_fire_load(cron: str):
    assert _timetables({"pipeline": "p", "data": {**DATA, "schedule": cron}}) == {"data": "CronDataIntervalTimetable"}


# --- limits at their edge load; one past them is refused -------------------------------------------

def test_limits_at_their_edge_load():
    longest_name = "p" * 63  # Identifier's limit; DAG ids add at most `__inference`
    tag = "t" * 100
    uri = "s3://bucket/" + "a" * (asset_uri.MAX_LENGTH - len("s3://bucket/"))
    year = f"{MAX_DURATION_DAYS}d"
    spec = {
        "pipeline": longest_name, "tags": [tag], "owner": "o" * 2000,
        "data": {**DATA, "publishes": uri,
                 "sources": [{**DATA["sources"][0], "timeout": year}]},
        "train": {**TRAIN, "schedule": {"assets": {"any": [uri, "postgres://db.example/warehouse/public/events"]},
                                        "or_cron": "@weekly"}},
        "evaluate": {"metric": "accuracy"},
        "rollout": {"stages": ["shadow", {"canary": 10}, {"canary": 50}, {"approval": {"timeout": year}}, "full"]},
        "retries": {"delay": year, "backoff": "exponential", "max_delay": year},
        "inference": {**INFERENCE, "schedule": "manual"},
        "external_assets": ["postgres://db.example/warehouse/public/events"],
    }
    dags = {d.dag_id: d for d in load_like_the_dag_processor(compile_dict(spec))}
    assert set(dags) == {f"{longest_name}__data", f"{longest_name}__train", f"{longest_name}__inference"}
    assert tag in dags[f"{longest_name}__data"].tags


@pytest.mark.parametrize("spec, message", [
    ({"tags": ["t" * 101]}, "1 to 100 characters"),
    ({"tags": [""]}, "1 to 100 characters"),
    ({"retries": {"delay": f"{MAX_DURATION_DAYS + 1}d"}}, "longer than 365 days"),
    ({"retries": {"delay": f"{MAX_DURATION_DAYS}d1s"}}, "longer than 365 days"),
    ({"data": {**DATA, "publishes": "s3://bucket/" + "a" * (asset_uri.MAX_LENGTH - 11)}}, "at most 1500"),
    # The Postgres sanitizer adds `:5432`: within the limit as written, over it as Airflow stores it.
    ({"data": {**DATA, "publishes": "postgres://h/d/s/" + "t" * (asset_uri.MAX_LENGTH - 17)}}, "normalised"),
    ({"data": {**DATA, "publishes": "airflow://x/y"}}, "reserved"),
    ({"data": {**DATA, "publishes": "s3://bucket:port/x"}}, "not a valid URI"),
])
def test_one_past_a_limit_is_refused(spec: dict, message: str):
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match=message):
        PipelineSpec.model_validate({"pipeline": "p", "data": DATA, **spec})


# --- Asset URIs: the Airflow-free mirror agrees with Airflow ---------------------------------------

URIS = [
    "s3://bucket/x/", "s3://bucket", "s3:///x", "s3://Bucket/a//b/?b=2&a=1#frag", "file:///data/curated/",
    "postgres://host/db", "postgres://host/db/schema/table", "postgres://host:5433/db//table/",
    "postgresql://host/db/s/t", "postgres://host:/db/s/t", "postgres:///db/s/t", "postgres://host:99999/d/s/t",
    "redshift://cluster/db/s/t", "redshift://cluster/db", "snowflake://acct/db/s/t", "snowflake://acct/db/s",
    "snowflake:///db/s/t", "x-custom://anything", "model://churn", "gs://bucket/p", "s3://u:pw@bucket/x",
    "airflow://x", "s3://[bad/x", "mlflow://models/a?x=1&x=2", "s3://bucket/a?q", "S3://bucket/x",
]


def _airflow(uri: str) -> str | None:
    import warnings

    from airflow.sdk import Asset

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return Asset(uri).uri
    except ValueError:
        return None


def _ours(uri: str) -> str | None:
    try:
        asset_uri.check(uri)
        return asset_uri.normalize(uri)
    except ValueError:
        return None


@pytest.mark.parametrize("uri", URIS)
def test_uri_rules_agree_with_airflow(uri: str):
    ours, theirs = _ours(uri), _airflow(uri)
    if ours is not None:
        assert ours == theirs, "accepted here, so Airflow must accept it and store the same URI"
    # Stricter on purpose only for user info (Airflow drops it, with a warning) and bad ports on any scheme.
    elif theirs is not None:
        assert "@" in uri or ":99999" in uri or "bucket:port" in uri, f"refused here but Airflow takes {uri!r}"


_URI_CHARS = string.ascii_lowercase + string.digits + "/:.?=&@#-_%[]"


@settings(max_examples=300, deadline=None)
@given(scheme=st.sampled_from(["s3", "postgres", "postgresql", "redshift", "snowflake", "file", "gs", "x-a"]),
       rest=st.text(_URI_CHARS, max_size=40))
def test_every_uri_check_accepts_airflow_stores_alike(scheme: str, rest: str):
    uri = f"{scheme}://{rest}"
    ours = _ours(uri)
    if ours is not None:
        assert _airflow(uri) == ours


def test_dag_and_task_ids_fit_airflow_keys():
    from airflow.sdk.definitions._internal.node import validate_key

    spec = {"pipeline": "p" * 63, "data": {**DATA, "transforms": [{"drop_empty": ["text"]}]}, "train": TRAIN,
            "evaluate": {"metric": "accuracy"},
            "rollout": {"stages": ["shadow", {"canary": 99}, "approval", "full"]},
            "alerts": [{"on": ["failure", "gate_blocked", "promoted", "rejected", "rolled_back"],
                        "slack": {"channel": "#ml"}}]}
    pipeline = compile_dict(spec)
    for dag in pipeline.dags:
        validate_key(dag.dag_id)
        ids = [t.task_id for t in dag.tasks]
        assert len(ids) == len(set(ids))
        for task_id in ids:
            validate_key(task_id)


def test_json_schema_accepts_manual_schedules():
    """Editors must not flag `schedule: manual`, which the checker accepts."""
    import json

    import jsonschema

    from pipespec.schemas.yamlload import load_file as load_yaml

    schema = json.loads((Path(__file__).parents[2] / "schemas" / "pipeline.schema.json").read_text())
    spec = load_yaml(CASES / "valid" / "guard_limits_manual_everywhere.yaml", "spec.yaml").to_plain()
    jsonschema.validate(spec, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**spec, "data": {**spec["data"], "schedule": 5}}, schema)
