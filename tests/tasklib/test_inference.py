"""Batch inference: shard planning over real files (local and S3 through moto),
prediction with tiny real Keras models registered in a real MLflow registry,
and publication of the predictions Asset."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pyarrow as pa
import pyarrow.csv
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipespec.tasklib import inference, published
from pipespec.tasklib.context import RunContext
from pipespec.tasklib.model import registry
from tests.support.s3_server import s3_server  # noqa: F401 - fixture
from tests.tasklib.test_rollout import mlflow_registry, register_version  # noqa: F401 - fixture

pytestmark = pytest.mark.airflow  # Airflow's hooks and connections


@pytest.fixture(autouse=True)
def data_root(monkeypatch):
    """These tests read input from temporary folders: the platform allows that root explicitly."""
    monkeypatch.setenv("PIPESPEC_DATA_ROOT", tempfile.gettempdir())

TEXTS = ["great product love it", "love it", "terrible broken", "awful terrible", "great", "broken again"]


def ctx(task_id: str, map_index: int = -1, run_id: str = "scheduled__2026-01-01T00:00:00+00:00") -> RunContext:
    return RunContext(dag_id="shop__inference", task_id=task_id, run_id=run_id, map_index=map_index)


# --- input files ------------------------------------------------------------------------------

def write_input(directory: Path, format: str, sizes: list[int], row_group: int = 3, blank_lines: bool = True) -> int:
    """Files part-0..n with a global `id` column in file order (plus awkward text); returns the row count."""
    directory.mkdir(parents=True, exist_ok=True)
    first = 0
    for index, size in enumerate(sizes):
        rows = [{"id": first + i, "text": f'row {first + i}, "quoted"\nsecond line'} for i in range(size)]
        path = directory / f"part-{index}.{format}"
        if format == "parquet":
            schema = pa.schema([("id", pa.int64()), ("text", pa.string())])
            pq.write_table(pa.Table.from_pylist(rows, schema), path, row_group_size=row_group)
        elif format == "csv":
            pyarrow.csv.write_csv(pa.Table.from_pylist(rows), path) if rows else path.write_text("")
        else:
            lines = [json.dumps(r) for r in rows]
            path.write_text("\n\n".join(lines) if blank_lines else "\n".join(lines))
        first += size
    # What readers must ignore: markers, temporaries, other formats.
    (directory / "_SUCCESS").write_text("")
    (directory / f".tmp-1.{format}").write_text("garbage")
    (directory / "notes.txt").write_text("not data")
    return first


def ids_of(table) -> list[int]:
    return [int(v) for v in table.column("id").to_pylist()]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(format=st.sampled_from(["jsonl", "csv", "parquet"]),
       sizes=st.lists(st.integers(0, 25), min_size=1, max_size=4),
       shard_size=st.integers(1, 30), row_group=st.integers(1, 7))
def test_shards_cover_every_row_exactly_once(format, sizes, shard_size, row_group):
    with tempfile.TemporaryDirectory() as directory:
        total = write_input(Path(directory) / "in", format, sizes, row_group)
        shards = inference.plan_shards(ctx("plan_shards"), input=f"{directory}/in/",
                                       format=format, shard_size=shard_size)
        assert [s["start"] for s in shards] == list(range(0, total, shard_size))
        assert all(0 < s["stop"] - s["start"] <= shard_size for s in shards)
        assert (shards[-1]["stop"] if shards else 0) == total
        seen = [i for shard in shards for i in ids_of(inference.read_shard(shard))]
        assert seen == list(range(total))  # every row once, in order
        assert all(s["label"] == f"rows {s['start']}–{s['stop'] - 1}" for s in shards)
        json.dumps(shards)  # travels through XCom


def test_empty_or_missing_input(tmp_path):
    plan = lambda uri, fmt="jsonl": inference.plan_shards(ctx("plan_shards"), input=uri,  # noqa
                                                           format=fmt, shard_size=10)
    assert plan(f"{tmp_path}/nothing-yet/") == []
    write_input(tmp_path / "empty", "jsonl", [0, 0])
    assert plan(f"{tmp_path}/empty/") == []
    write_input(tmp_path / "empty_csv", "csv", [0])
    assert plan(f"{tmp_path}/empty_csv/", "csv") == []
    with pytest.raises(FileNotFoundError, match="missing.jsonl does not exist"):
        plan(f"{tmp_path}/missing.jsonl")
    with pytest.raises(ValueError, match="unsupported inference input format `xml`"):
        plan(f"{tmp_path}/empty/", "xml")


def test_single_file_input_and_bad_json_line(tmp_path):
    path = tmp_path / "batch.jsonl"
    path.write_text('{"id": 0}\n{"id": 1}\n{"id": 2, oops}\n')
    shards = inference.plan_shards(ctx("plan_shards"), input=str(path), format="jsonl", shard_size=2)
    assert [(s["uri"], s["start"], s["stop"]) for s in shards] == [(str(path), 0, 2), (str(path), 2, 3)]
    assert ids_of(inference.read_shard(shards[0])) == [0, 1]
    with pytest.raises(ValueError, match=r"batch.jsonl, line 3: not valid JSON"):
        inference.read_shard(shards[1])


def test_shards_over_s3(s3_server, monkeypatch):  # noqa: F811 - fixture
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", json.dumps({
        "conn_type": "aws", "login": "testing", "password": "testing",
        "extra": {"endpoint_url": s3_server.endpoint, "region_name": "us-east-1"}}))
    for name, ids in (("incoming/2026/a.jsonl", range(0, 4)), ("incoming/2026/b.jsonl", range(4, 9))):
        s3_server.put("shop", name, "\n".join(json.dumps({"id": i}) for i in ids).encode())
    s3_server.put("shop", "incoming/_SUCCESS", b"")
    shards = inference.plan_shards(ctx("plan_shards"), input="s3://shop/incoming/", format="jsonl",
                                   shard_size=3)
    assert [f["uri"] for f in shards[1]["files"]] == ["s3://shop/incoming/2026/a.jsonl",
                                                      "s3://shop/incoming/2026/b.jsonl"]
    assert [ids_of(inference.read_shard(s)) for s in shards] == [[0, 1, 2], [3, 4, 5], [6, 7, 8]]


# --- models -------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory) -> dict:
    """A text classifier and a tabular regressor trained by the task library's own Keras code on a
    few rows (TensorFlow is imported here, not at module level). The expected predictions are
    Keras' own `model.predict` for the whole input at once: inference must reproduce them row by
    row, whatever the sharding and however it calls the model."""
    import numpy as np

    from pipespec.tasklib.model import keras_models

    root = tmp_path_factory.mktemp("models")
    built = {}
    for name, spec, table in (
        ("text", {"type": "keras_text_classifier", "features": ["text"], "label": "label",
                  "params": {"epochs": 3, "max_tokens": 50, "sequence_length": 6, "embedding_dim": 4}},
         pa.table({"text": TEXTS, "label": ["pos", "pos", "neg", "neg", "pos", "neg"]})),
        ("tabular", {"type": "keras_tabular_regressor", "features": ["a", "b"], "label": "y",
                     "params": {"epochs": 3, "hidden_units": [4]}},
         pa.table({"a": [float(i) for i in range(10)], "b": [float(i % 3) for i in range(10)],
                   "y": [2.0 * i - i % 3 + 0.5 for i in range(10)]})),
    ):
        network, classes, meta = keras_models.fit(spec, keras_models.resolve_params(spec), table)
        directory = keras_models.save(network, classes, meta, root / name)
        loaded = keras_models.load(directory)
        scores = np.asarray(loaded.model.predict(keras_models._inputs(loaded.meta, table), verbose=0))
        values = [classes[i] for i in scores.argmax(axis=1)] if classes else scores.reshape(-1).tolist()
        built[name] = {"dir": directory, "table": table, "values": values,
                       "probability": scores.max(axis=1).tolist() if classes else None}
    return built


def champion(pipeline: str, model_dir: Path) -> str:
    version = register_version(pipeline, model_dir, challenger=False)
    registry.set_alias(pipeline, registry.CHAMPION, version)
    return version


def run_inference(pipeline: str, input_uri: str, format: str, shard_size: int, output: str,
                  run_id: str = "scheduled__2026-01-01T00:00:00+00:00") -> tuple[dict, list, list, dict]:
    """The inference DAG's steps in order, the mapped predict once per shard."""
    model = inference.load_champion(ctx("load_champion", run_id=run_id), pipeline=pipeline, alias="champion")
    shards = inference.plan_shards(ctx("plan_shards", run_id=run_id), input=input_uri,
                                   format=format, shard_size=shard_size)
    outputs = [inference.predict(ctx("predict", index, run_id), pipeline=pipeline, model=model,
                                 shard=shard) for index, shard in enumerate(shards)]
    result = inference.publish(ctx("publish_predictions", run_id=run_id), pipeline=pipeline, output=output,
                               shards=outputs)
    return model, shards, outputs, result


def read_published(output: str):
    from pipespec.tasklib.storage import filesystem

    latest = published.latest(output)
    assert latest is not None
    filesystem_, _ = filesystem(output)
    parts = [pq.read_table(filesystem(p["uri"])[1], filesystem=filesystem_) for p in latest.manifest["parts"]]
    return latest, parts


# --- prediction ---------------------------------------------------------------------------------

def test_text_classifier_end_to_end(mlflow_registry, tiny_models, monkeypatch):
    version = champion("shop", tiny_models["text"]["dir"])
    rows = [{"id": i, "text": t} for i, t in enumerate(TEXTS + ["love it again"])]
    incoming = mlflow_registry / "storage" / "shop" / "incoming"
    incoming.mkdir(parents=True)
    (incoming / "batch.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    downloads = []
    real_download = registry.download
    monkeypatch.setattr(registry, "download", lambda *a: downloads.append(a) or real_download(*a))

    model, shards, outputs, result = run_inference("shop", "s3://shop/incoming/", "jsonl", 3, "s3://shop/predictions/")

    assert model == {"version": version, "model_type": "keras_text_classifier", "alias": "champion",
                     "run_id": registry.client().get_model_version("shop", version).run_id}
    assert [s["label"] for s in shards] == ["rows 0–2", "rows 3–5", "rows 6–6"]
    assert len(downloads) == 1  # one download per worker, whatever the number of shards
    assert [o["label"] for o in outputs] == [s["label"] for s in shards]
    assert result == {"uri": "s3://shop/predictions/runs/shop/scheduled__2026-01-01T00_00_00_00_00", "rows": 7,
                      "model_version": version}
    latest, parts = read_published("s3://shop/predictions/")
    table = pa.concat_tables(parts)
    assert table.column_names == ["id", "text", "prediction", "probability", "model_version"]
    assert table.column("id").to_pylist() == list(range(7))
    assert set(table.column("model_version").to_pylist()) == {version}
    expected = tiny_models["text"]
    assert table.column("prediction").to_pylist()[:6] == expected["values"]
    assert table.column("probability").to_pylist()[:6] == pytest.approx(expected["probability"], abs=1e-5)
    assert set(table.column("prediction").to_pylist()) <= {"pos", "neg"}
    assert latest.data.rows == 7 and latest.manifest["model_version"] == version
    assert (mlflow_registry / "storage/shop/predictions/runs/shop/scheduled__2026-01-01T00_00_00_00_00/_SUCCESS").exists()
    # A worker with the model cached asks MLflow nothing: the run id came with load_champion's result.
    monkeypatch.setattr(registry, "client", lambda: pytest.fail("a shard queried the MLflow registry"))
    again = inference.predict(ctx("predict", 0), pipeline="shop", model=model,
                              shard=shards[0])
    assert again["sha256"] == outputs[0]["sha256"]  # and a retry writes the same bytes


def test_rerun_overwrites_only_its_own_run(mlflow_registry, tiny_models):
    champion("shop", tiny_models["text"]["dir"])
    incoming = mlflow_registry / "storage" / "shop" / "incoming"
    write_input(incoming, "jsonl", [5])
    run_inference("shop", "s3://shop/incoming/", "jsonl", 2, "s3://shop/predictions/", run_id="run-1")
    run_inference("shop", "s3://shop/incoming/", "jsonl", 2, "s3://shop/predictions/", run_id="run-2")
    run_dir = mlflow_registry / "storage/shop/predictions/runs/shop"  # keyed by pipeline, then run
    # run-2 again, with bigger shards: its old parts are replaced, run-1's are untouched
    _, _, _, result = run_inference("shop", "s3://shop/incoming/", "jsonl", 5, "s3://shop/predictions/", run_id="run-2")
    assert sorted(p.name for p in (run_dir / "run-2").glob("part-*")) == ["part-00000.parquet"]
    assert len(list((run_dir / "run-1").glob("part-*"))) == 3
    assert published.latest("s3://shop/predictions/").manifest["run_id"] == "run-2" and result["rows"] == 5


def test_tabular_regressor_on_parquet(mlflow_registry, tiny_models):
    version = champion("prices", tiny_models["tabular"]["dir"])
    incoming = mlflow_registry / "storage" / "prices" / "in"
    incoming.mkdir(parents=True)
    pq.write_table(tiny_models["tabular"]["table"], incoming / "x.parquet", row_group_size=4)
    run_inference("prices", "s3://prices/in/", "parquet", 3, "s3://prices/out/")
    _, parts = read_published("s3://prices/out/")
    result = pa.concat_tables(parts)
    assert result.column_names == ["a", "b", "y", "prediction", "model_version"]  # no probability: a regressor
    assert result.column("prediction").to_pylist() == pytest.approx(tiny_models["tabular"]["values"], abs=1e-4)
    assert result.column("model_version").to_pylist() == [version] * 10


def test_predict_refuses_unusable_input(mlflow_registry, tiny_models, tmp_path):
    version = champion("shop", tiny_models["text"]["dir"])
    model = {"version": version, "model_type": "keras_text_classifier"}
    for name, rows, message in (
        ("no_text.jsonl", [{"body": "hi"}], r"the model needs column\(s\) \['text'\]"),
        ("taken.jsonl", [{"text": "hi", "prediction": "x"}], r"already has column\(s\) \['prediction'\]"),
    ):
        (tmp_path / name).write_text("\n".join(json.dumps(r) for r in rows))
        [shard] = inference.plan_shards(ctx("plan_shards"), input=str(tmp_path / name),
                                        format="jsonl", shard_size=10)
        with pytest.raises(ValueError, match=message):
            inference.predict(ctx("predict", 0), pipeline="shop", model=model, shard=shard)


def test_missing_champion_is_a_clear_error(mlflow_registry):
    message = r"pipeline shop has no `champion` model yet: run the train DAG \(shop__train\) first"
    with pytest.raises(inference.NoChampion, match=message):  # no registered model at all
        inference.load_champion(ctx("load_champion"), pipeline="shop", alias="champion")
    register_version("shop")  # a challenger, but nothing promoted
    with pytest.raises(inference.NoChampion, match=message):
        inference.load_champion(ctx("load_champion"), pipeline="shop", alias="champion")


def test_publish_without_shards_keeps_latest(mlflow_registry):
    result = inference.publish(ctx("publish_predictions"), pipeline="shop", output="s3://shop/out/", shards=[])
    assert result == {"uri": None, "rows": 0, "model_version": None}
    assert published.latest("s3://shop/out/") is None



# --- the compiled inference DAG, run for real ---------------------------------------------------

DAG_SPEC = """\
pipeline: {name}
train: {{dataset: "s3://{name}/curated/", model: {{type: keras_text_classifier}}}}
inference: {{input: "s3://{name}/incoming/", output: "s3://{name}/predictions/", format: jsonl, shard_size: 3}}
"""


@pytest.mark.parametrize("rows", [7, 0])
def test_inference_dag(mlflow_registry, tiny_models, monkeypatch, rows):
    """load_champion → plan_shards → predict (mapped, one per shard) → publish, under dag.test();
    an empty input maps predict over zero shards, which skips publishing and still succeeds."""
    from pipespec.local.local_env import ensure_db
    from tests.support.airflow_harness import run_dag

    ensure_db()
    name = f"inference_dag_{rows}"
    pipelines = mlflow_registry / "pipelines"
    pipelines.mkdir()
    (pipelines / f"{name}.yaml").write_text(DAG_SPEC.format(name=name))
    champion(name, tiny_models["text"]["dir"])
    incoming = mlflow_registry / "storage" / name / "incoming"
    write_input(incoming, "jsonl", [rows])

    run, states = run_dag(pipelines, f"{name}__inference", monkeypatch, mlflow_registry / "cache")

    assert run.state == "success"
    if rows:
        labels = sorted(ti.rendered_map_index for ti in run.get_task_instances() if ti.task_id == "predict")
        assert labels == ["rows 0–2", "rows 3–5", "rows 6–6"]
        assert [states[("predict", i)] for i in range(3)] == ["success"] * 3
        assert states[("publish_predictions", -1)] == "success"
        _, parts = read_published(f"s3://{name}/predictions/")
        assert pa.concat_tables(parts).column("id").to_pylist() == list(range(rows))
    else:
        assert states[("predict", -1)] == "skipped"
        assert states[("publish_predictions", -1)] == "skipped"
        assert published.latest(f"s3://{name}/predictions/") is None


def test_missing_champion_fails_without_retries_in_airflow():
    """Retrying cannot create a champion: the adapter turns it into Airflow's no-retry failure."""
    from airflow.sdk.exceptions import AirflowFailException

    from pipespec.airflow.adapter import _call
    from pipespec.tasklib.context import RunContext
    from pipespec.tasklib.inference import NoChampion
    from pipespec.tasklib.steps import override

    def no_champion(ctx, **_):
        raise NoChampion("pipeline p has no `champion` model yet")

    override("inference.load_champion", no_champion)
    try:
        with pytest.raises(AirflowFailException, match="no `champion` model yet"):
            _call("inference.load_champion", RunContext(dag_id="p__inference", task_id="load_champion", run_id="r"), {}, {})
    finally:
        override("inference.load_champion", None)


def test_a_second_pipeline_cannot_publish_into_anothers_output(mlflow_registry, tiny_models):
    champion("shop", tiny_models["text"]["dir"])
    champion("rival", tiny_models["text"]["dir"])
    incoming = mlflow_registry / "storage" / "shop" / "incoming"
    write_input(incoming, "jsonl", [5])
    run_inference("shop", "s3://shop/incoming/", "jsonl", 5, "s3://shop/predictions/", run_id="run-1")
    with pytest.raises(PermissionError, match="published by pipeline `shop`"):
        run_inference("rival", "s3://shop/incoming/", "jsonl", 5, "s3://shop/predictions/", run_id="run-1")
    assert published.latest("s3://shop/predictions/").manifest["pipeline"] == "shop"
    assert len(list((mlflow_registry / "storage/shop/predictions/runs/shop/run-1").glob("part-*"))) == 1
