"""data.join: union with schema alignment, inner/left joins, lineage; and the data
DAG running the real mapped transforms and join through Airflow (dag.test())."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest

from pipespec.tasklib import storage
from pipespec.tasklib.context import RunContext
from pipespec.tasklib.data.curate import curate as real_curate
from pipespec.tasklib.data.join import join as join_step
from pipespec.local.local_env import ensure_db
from tests.support.airflow_harness import run_dag, steps

pytestmark = pytest.mark.airflow  # Airflow's hooks and connections

CTX = RunContext(dag_id="support__data", task_id="join", run_id="scheduled__2024-05-01T00:00:00+00:00")


@pytest.fixture
def work(tmp_path, monkeypatch):
    monkeypatch.setenv("PIPESPEC_WORK_URI", (tmp_path / "work").as_uri())
    monkeypatch.setenv("PIPESPEC_DATA_ROOT", str(tmp_path))  # the inputs written beside the work area
    return tmp_path


def refs_for(work: Path, tables: dict[str, pa.Table]) -> list[dict]:
    """Refs as extract/transform hand them over, extract's extra keys included."""
    return [{**storage.write_table(table, (work / f"{name}.parquet").as_uri(), source=name).to_dict(),
             "files": 2, "new_files": 1, "bad_rows": 0, "watermark": f"2024-05-0{index + 1}T00:00:00+00:00"}
            for index, (name, table) in enumerate(tables.items())]


def run(work: Path, tables: dict[str, pa.Table], kind: str = "union", on: list[str] | None = None, lazy=False):
    refs = refs_for(work, tables)
    given = (ref for ref in refs) if lazy else refs
    out = join_step(CTX, pipeline="support", join={"type": kind, "on": on or []}, refs=given)
    return out, storage.read_table(out), refs


# --- union --------------------------------------------------------------------

def test_union_aligns_schemas_and_records_each_rows_source(work):
    out, result, refs = run(work, {
        "zendesk": pa.table({"text": ["a", "b"], "label": ["x", "y"], "score": [1, 2]}),
        "slack": pa.table({"score": [0.5], "text": pa.array(["c"], pa.large_string()), "channel": ["#help"]}),
        "survey": pa.table({"text": pa.array([None], pa.null()), "label": ["z"]}),
    }, lazy=True)  # Airflow hands mapped outputs over as a lazy sequence
    assert result.schema == pa.schema([("text", pa.large_string()), ("label", pa.string()), ("score", pa.float64()),
                                       ("channel", pa.string()), ("_source", pa.string())])
    assert result.to_pydict() == {
        "text": ["a", "b", "c", None],
        "label": ["x", "y", None, "z"],
        "score": [1.0, 2.0, 0.5, None],
        "channel": [None, None, "#help", None],
        "_source": ["zendesk", "zendesk", "slack", "survey"],
    }
    assert out["rows"] == 4 and out["rows_by_source"] == {"zendesk": 2, "slack": 1, "survey": 1}
    assert out["join"] == "union" and out["sha256"] == storage.table_hash(result)
    assert out["uri"] == (work / "work").as_uri() + \
        "/support/support__data/scheduled__2024-05-01T00_00_00_00_00/join/joined.parquet"
    # Lineage: what each source contributed, extract's keys passed through for the manifest.
    assert list(out["sources"]) == ["zendesk", "slack", "survey"]
    for ref in refs:
        assert out["sources"][ref["source"]] == {k: v for k, v in ref.items() if k != "source"}
    assert out["sources"]["slack"]["watermark"] == "2024-05-02T00:00:00+00:00"


def test_union_streams_batch_by_batch(work, monkeypatch):
    monkeypatch.setattr(storage, "BATCH_ROWS", 2)
    _, result, _ = run(work, {"a": pa.table({"x": [1, 2, 3, 4, 5]}), "b": pa.table({"y": ["p", "q", "r"]})})
    assert result.to_pydict() == {"x": [1, 2, 3, 4, 5, None, None, None], "y": [None] * 5 + ["p", "q", "r"],
                                  "_source": ["a"] * 5 + ["b"] * 3}


def test_union_type_conflict_names_the_column_and_the_sources(work):
    with pytest.raises(ValueError) as error:
        run(work, {"zendesk": pa.table({"id": [1]}), "crm": pa.table({"id": [2.5]}), "slack": pa.table({"id": ["x"]})})
    assert str(error.value).startswith(
        "join `union`: column `id` is double in source(s) `zendesk`, `crm` but string in source `slack`")


def test_union_refuses_to_overwrite_an_existing_source_column(work):
    with pytest.raises(ValueError, match="source `old` already has a column `_source`"):
        run(work, {"new": pa.table({"a": [1]}), "old": pa.table({"a": [2], "_source": ["x"]})})


def test_union_cast_that_would_lose_values_is_an_error(work):
    big = pa.table({"n": pa.array([2**63], pa.uint64())})  # int64 + uint64 unify to int64
    with pytest.raises(ValueError, match=r"source `b`: column `n` \(uint64\) cannot become int64"):
        run(work, {"a": pa.table({"n": [1]}), "b": big})


def test_union_of_one_source(work):
    out, result, _ = run(work, {"only": pa.table({"a": [1, 2]})})
    assert result.to_pydict() == {"a": [1, 2], "_source": ["only", "only"]}
    assert out["rows_by_source"] == {"only": 2}


def test_rerun_writes_the_same_bytes(work):
    tables = {"a": pa.table({"k": [1, 2]}), "b": pa.table({"k": [3]})}
    first, _, _ = run(work, tables)
    second, _, _ = run(work, tables)
    assert first == second


# --- inner / left -------------------------------------------------------------

ORDERS = pa.table({"id": [3, 1, 2, 1], "text": ["c", "a", "b", "a again"]})
LABELS = pa.table({"id": pa.array([1, 2, 2, 4], pa.int32()), "label": ["x", "y", "y2", "w"],
                   "text": ["t1", "t2", "t2b", "t4"]})
EXTRA = pa.table({"id": [2, 3], "weight": [0.5, 0.7]})


def test_inner_join_in_source_order_with_suffixes(work):
    out, result, _ = run(work, {"orders": ORDERS, "labels": LABELS, "extra": EXTRA}, "inner", ["id"])
    assert result.to_pydict() == {
        "id": [2, 2], "text": ["b", "b"], "label": ["y", "y2"], "text_labels": ["t2", "t2b"], "weight": [0.5, 0.5]}
    assert out["join"] == "inner" and out["rows"] == 2 and "rows_by_source" not in out
    assert set(out["sources"]) == {"orders", "labels", "extra"}


def test_left_join_keeps_every_left_row_in_order(work):
    _, result, _ = run(work, {"orders": ORDERS, "labels": LABELS}, "left", ["id"])
    assert result.to_pydict() == {
        "id": [3, 1, 2, 2, 1],
        "text": ["c", "a", "b", "b", "a again"],
        "label": [None, "x", "y", "y2", "x"],
        "text_labels": [None, "t1", "t2", "t2b", "t1"],
    }


def test_join_result_is_deterministic_on_larger_input(work):
    left = pa.table({"id": list(range(5000)), "v": list(range(5000))})
    right = pa.table({"id": list(range(4999, -1, -1)), "w": list(range(5000))})
    first, result, _ = run(work, {"l": left, "r": right}, "inner", ["id"])
    again, _, _ = run(work, {"l": left, "r": right}, "inner", ["id"])
    assert result.column("v").to_pylist() == list(range(5000))
    assert first["sha256"] == again["sha256"]


def test_join_on_several_keys(work):
    a = pa.table({"k1": [1, 1, 2], "k2": ["x", "y", "x"], "a": [10, 11, 12]})
    b = pa.table({"k2": ["y", "x"], "k1": [1, 2], "b": [21, 22]})
    _, result, _ = run(work, {"a": a, "b": b}, "inner", ["k1", "k2"])
    assert result.to_pydict() == {"k1": [1, 2], "k2": ["y", "x"], "a": [11, 12], "b": [21, 22]}


def test_missing_key_names_the_source(work):
    with pytest.raises(ValueError) as error:
        run(work, {"orders": ORDERS, "labels": pa.table({"ids": [1]})}, "inner", ["id"])
    assert str(error.value) == ("source `labels`: join `inner` names column `id`, which does not exist; "
                                "columns: ids (did you mean `ids`?)")


def test_incompatible_key_types(work):
    with pytest.raises(ValueError, match=r"join `left`: key `id` is int64 in `orders` but string in source `crm`"):
        run(work, {"orders": ORDERS, "crm": pa.table({"id": ["1"]})}, "left", ["id"])


def test_key_join_needs_keys(work):
    with pytest.raises(ValueError, match=r"join `inner` needs key columns"):
        run(work, {"a": ORDERS, "b": LABELS}, "inner", [])


def test_no_sources_and_repeated_names(work):
    with pytest.raises(ValueError, match="no sources arrived"):
        join_step(CTX, pipeline="p", join={"type": "union", "on": []},
                  refs=iter([]))
    refs = refs_for(work, {"a": pa.table({"x": [1]})})
    with pytest.raises(ValueError, match="repeated: a"):
        join_step(CTX, pipeline="p", join={"type": "union", "on": []},
                  refs=refs + refs)


# --- through Airflow: mapped transforms feed the join --------------------------

SPEC = """\
pipeline: {name}
data:
  sources:
    - {{name: zendesk, type: local, path: z.jsonl, format: jsonl}}
    - {{name: slack, type: local, path: s.jsonl, format: jsonl}}
  transforms:
    - {{dedupe: {{key: text}}}}
    - {{filter: "len(text) > 3"}}
    - {{redact_pii: [text]}}
  join: union
  publishes: s3://curated-{name}/data/
"""

SOURCES = {
    "zendesk": pa.table({"text": ["mail ann@example.com", "mail ann@example.com", "no", "card 4111 1111 1111 1111"],
                         "label": ["a", "a", "b", "c"]}),
    "slack": pa.table({"text": ["call +44 20 7946 0958", "order 4111111111111112"], "label": ["d", "e"]}),
}


def test_data_dag_runs_real_transforms_and_join(tmp_path, monkeypatch):
    ensure_db()
    monkeypatch.setenv("PIPESPEC_WORK_URI", (tmp_path / "work").as_uri())
    monkeypatch.setenv("PIPESPEC_STORAGE_ROOT", str(tmp_path / "store"))  # the gate looks for a last publication
    name = "join_e2e"
    (tmp_path / "pipelines").mkdir()
    (tmp_path / "pipelines" / f"{name}.yaml").write_text(SPEC.format(name=name))
    measured = []

    def extract(ctx, source, pipeline, transforms=(), **_):
        """Stands in for reading the source; the spec's transforms are the real ones, applied in this
        task as the fused extract does (one data.transform per transform gives the same bytes)."""
        from pipespec.tasklib.data.transform import transform

        ref = storage.write_table(SOURCES[source["name"]], storage.work_uri(ctx, pipeline, "raw.parquet"),
                                  source=source["name"]).to_dict()
        for spec in transforms:
            ref = transform(ctx, pipeline=pipeline, transform=spec, ref=ref)
        return {**ref, "watermark": f"mark-{source['name']}", "files": 1}

    def curate(ctx, **kwargs):
        """The real step (`measure` joins, then measures), its result kept for the test."""
        measured.append(real_curate(ctx, **kwargs))
        return measured[-1]

    with steps(data_extract=extract, data_curate=curate, data_publish=lambda ctx, **_: {}):
        run, states = run_dag(tmp_path / "pipelines", f"{name}__data", monkeypatch, tmp_path / "cache")
    assert run.state == "success", states
    assert {states[("extract", i)] for i in (0, 1)} == {"success"}  # the transforms ran inside extract
    assert not [task for task, _ in states if task == "join"]  # measure joins: no task of its own
    joined = measured[0]
    assert (joined["rows"], joined["new_rows"], joined["decision"]) == (4, 4, "pass")  # nothing published before
    assert states[("publish", -1)] == "success"
    result = storage.read_table(joined)
    assert sorted(zip(result.column("_source").to_pylist(), result.column("text").to_pylist())) == [
        ("slack", "call [PHONE]"), ("slack", "order 4111111111111112"),
        ("zendesk", "card [CARD]"), ("zendesk", "mail [EMAIL]")]
    assert joined["rows_by_source"] == {"zendesk": 2, "slack": 2}
    assert {n: s["watermark"] for n, s in joined["sources"].items()} == {"zendesk": "mark-zendesk",
                                                                         "slack": "mark-slack"}
