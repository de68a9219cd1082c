"""Gates and publication on real Parquet files: counts, new records since the
last publication, quality, drift, and the atomic `_LATEST` switch."""

from __future__ import annotations

import json
from datetime import date

import numpy as np
import pyarrow as pa
import pytest

from pipespec.tasklib.context import RunContext
from pipespec.tasklib.data.measure import ks_pvalue, measure, psi
from pipespec.tasklib.data.publish import publish
from pipespec.tasklib.published import latest
from pipespec.tasklib.storage import write_table

THRESHOLD = {"min_records": 4, "min_new_records": 2}


@pytest.fixture(autouse=True)
def storage(tmp_path, monkeypatch):
    monkeypatch.setenv("PIPESPEC_STORAGE_ROOT", str(tmp_path / "store"))
    monkeypatch.setenv("PIPESPEC_WORK_URI", (tmp_path / "work").as_uri())
    return tmp_path


def ctx(run: str) -> RunContext:
    return RunContext(dag_id="p__data", task_id="measure", run_id=run)


def joined(rows: list[dict], name: str) -> dict:
    ref = write_table(pa.Table.from_pylist(rows), f"s3://bucket-a/joined/{name}.parquet")
    return {**ref.to_dict(), "sources": {"zendesk": {"rows": len(rows), "watermark": "2026-01-01T00:00:00"}}}


def rows(n: int, start: int = 0) -> list[dict]:
    return [{"text": f"message {i}", "label": "billing" if i % 2 else "shipping", "score": float(i)}
            for i in range(start, start + n)]


def run_gate(run: str, data: dict, threshold=THRESHOLD, quality=None, drift=None) -> dict:
    result = measure(ctx(run), pipeline="p", publishes="s3://bucket-a/curated/",
                     threshold=threshold, quality=quality, drift=drift, dataset=data)
    # measure is the data gate (the branch itself): its decision follows `passed`
    assert result["decision"] == ("pass" if result["passed"] else "blocked")
    return result


def do_publish(run: str, data: dict, measurement: dict) -> dict:
    return publish(ctx(run), pipeline="p", publishes="s3://bucket-a/curated/", spec_hash="h1",
                   dataset=data, measurement=measurement)


def test_first_publication_counts_everything_as_new_and_publishes_with_lineage(storage):
    data = joined(rows(6), "one")
    result = run_gate("run1", data)
    assert (result["rows"], result["new_rows"], result["decision"]) == (6, 6, "pass")
    out = do_publish("run1", data, result)
    published = latest("s3://bucket-a/curated/")
    assert published.data.rows == 6 and published.data.sha256 == data["sha256"]
    assert published.manifest["run_id"] == "run1" and published.manifest["spec_hash"] == "h1"
    assert published.manifest["sources"]["zendesk"]["watermark"] == "2026-01-01T00:00:00"
    assert out["manifest"].endswith("runs/p/run1/manifest.json")
    assert (storage / "store/bucket-a/curated/_LATEST").read_text().endswith("runs/p/run1")


def test_new_records_are_counted_against_the_last_publication():
    first = joined(rows(6), "one")
    do_publish("run1", first, run_gate("run1", first))
    second = joined(rows(7), "two")  # the same six plus one new record
    result = run_gate("run2", second)
    assert result["new_rows"] == 1 and result["decision"] == "blocked"
    assert result["reason"] == "1 new records, fewer than min_new_records 2"
    assert result["previous_run"] == "run1"


def test_too_few_records_blocks_with_numbers():
    result = run_gate("run1", joined(rows(3), "few"))
    assert result["decision"] == "blocked"
    assert "3 records, fewer than min_records 4" in result["reason"]


def test_quality_failures_block():
    data = joined(rows(6) + [{"text": None, "label": "x", "score": 99.0}] * 3, "nulls")
    result = run_gate("run1", data, quality={"required_columns": ["text", "missing"],
                                             "max_null_rate": {"text": 0.1},
                                             "ranges": {"score": {"min": 0, "max": 50}}})
    assert result["decision"] == "blocked"
    assert result["quality_failures"] == [
        "required column `missing` is missing",
        "column `text` is 33.3% null, above max_null_rate 10.0%",
        "column `score` has 99.0 above max 50",
    ]


def test_drift_is_a_reason_to_retrain_even_without_new_records():
    base = joined(rows(200), "base")
    do_publish("run1", base, run_gate("run1", base))
    shifted = [{**r, "score": r["score"] + 500} for r in rows(200)]
    drift = {"method": "psi", "threshold": 0.2, "columns": ["score"], "reference": None}
    strict = {"min_records": 4, "min_new_records": 10_000}
    calm = run_gate("run2", joined(rows(200), "same"), threshold=strict, drift=drift)
    assert calm["drifted"] is False and calm["decision"] == "blocked"
    moved = run_gate("run3", joined(shifted, "shifted"), threshold=strict, drift=drift)
    assert moved["drifted"] is True and moved["drift"]["score"] > 0.2 and moved["decision"] == "pass"


def test_psi_and_ks_agree_with_known_cases():
    rng = np.random.default_rng(0)
    same = rng.normal(size=5000)
    assert psi(same, rng.normal(size=5000)) < 0.05
    assert psi(same, rng.normal(loc=1.0, size=5000)) > 0.2
    assert ks_pvalue(same, rng.normal(size=5000)) > 0.05
    assert ks_pvalue(same, rng.normal(loc=0.3, size=5000)) < 0.001
    assert psi(np.array(["a"] * 50 + ["b"] * 50), np.array(["a"] * 90 + ["b"] * 10)) > 0.2


def test_rerun_of_a_run_rewrites_only_its_own_publication(storage):
    first = joined(rows(6), "one")
    do_publish("run1", first, run_gate("run1", first))
    second = joined(rows(8), "two")
    do_publish("run2", second, run_gate("run2", second))
    do_publish("run2", second, run_gate("run2", second))  # retry of run2
    runs = sorted(p.name for p in (storage / "store/bucket-a/curated/runs/p").iterdir())
    assert runs == ["run1", "run2"]
    manifest = json.loads((storage / "store/bucket-a/curated/runs/p/run1/manifest.json").read_text())
    assert manifest["data"]["rows"] == 6
    assert not list((storage / "store/bucket-a/curated").rglob(".tmp-*"))  # no half-written files left


# --- streaming: the numbers of the in-memory computation, without holding the rows --------

def mixed_rows(n: int, start: int = 0) -> list[dict]:
    """Nulls in some batches only (an int column pandas would turn to floats), and None beside "None"."""
    return [{"text": [f"message {i % 40}", None, "None"][i % 3] if i % 5 else f"unique {i}",
             "n": None if i % 11 == 0 else i % 13, "score": float(i % 17), "when": date(2026, 1, 1 + i % 28)}
            for i in range(start, start + n)]


def test_measure_streamed_over_many_batches_gives_the_in_memory_numbers(monkeypatch):
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from pipespec.tasklib import storage

    monkeypatch.setattr(storage, "BATCH_ROWS", 7)  # 300 rows: dozens of batches, each with and without nulls
    first = joined(mixed_rows(300), "one")
    do_publish("run1", first, run_gate("run1", first))
    second_rows = mixed_rows(250, start=120)
    second = joined(second_rows, "two")
    quality = {"max_null_rate": {"n": 0.05, "text": 0.5}, "ranges": {"score": {"min": 1, "max": 15},
                                                                     "when": {"max": date(2026, 1, 20)}}}
    drift = {"method": "psi", "threshold": 0.2, "columns": ["score", "n"], "reference": None}
    monkeypatch.setattr(pq.ParquetFile, "read", guarded_read(pq.ParquetFile.read, allowed={"score", "n"}))
    result = run_gate("run2", second, quality=quality, drift=drift)

    # The same numbers, computed the plain way: whole tables in memory, rows as Python tuples.
    published = {tuple(r.values()) for r in mixed_rows(300)}
    table, base = storage.read_table(second), storage.read_table(first)
    assert result["rows"] == 250
    assert result["new_rows"] == sum(tuple(r.values()) not in published for r in second_rows) > 0
    null_rate = table.column("n").null_count / 250
    low, high = pc.min_max(table.column("score")).values()
    assert result["quality_failures"] == [
        f"column `n` is {null_rate:.1%} null, above max_null_rate 5.0%",
        f"column `score` has {low.as_py()} below min 1",
        f"column `score` has {high.as_py()} above max 15",
        f"column `when` has {pc.max(table.column('when')).as_py()} above max 2026-01-20",
    ]
    assert result["drift"] == {column: psi(base.column(column).to_numpy(zero_copy_only=False),
                                           table.column(column).to_numpy(zero_copy_only=False))
                               for column in ("score", "n")}


def guarded_read(read, allowed: set[str]):
    """ParquetFile.read that fails the test unless it reads only some of the `allowed` columns."""
    def read_columns(self, columns=None, **kwargs):
        if columns is None or not set(columns) <= allowed:
            pytest.fail(f"read columns {columns}: measure must stream")
        return read(self, columns=columns, **kwargs)
    return read_columns


def test_ranges_and_null_rates_of_empty_and_all_null_columns():
    data = joined([{"text": None, "score": None}] * 3, "nulls")
    result = run_gate("run1", data, quality={"max_null_rate": {"score": 0.5}, "ranges": {"score": {"min": 0}}})
    assert result["quality_failures"] == ["column `score` is 100.0% null, above max_null_rate 50.0%"]


def test_publish_copies_the_bytes_and_refuses_a_changed_file(storage):
    from pipespec.tasklib.storage import filesystem, read_table, table_hash

    data = joined(rows(6), "one")
    out = do_publish("run1", data, run_gate("run1", data))
    _, source_path = filesystem(data["uri"])
    _, published_path = filesystem(out["uri"])
    assert open(published_path, "rb").read() == open(source_path, "rb").read()
    assert out["sha256"] == data["sha256"] == table_hash(read_table(data))
    assert latest("s3://bucket-a/curated/").data.schema == data["schema"]

    write_table(pa.Table.from_pylist(rows(5)), data["uri"])  # replaced behind its Ref's back
    with pytest.raises(ValueError, match=r"one.parquet: its content changed after it was written"):
        do_publish("run2", data, run_gate("run2", data))
    assert latest("s3://bucket-a/curated/").manifest["run_id"] == "run1"  # _LATEST not moved
    assert not list((storage / "store/bucket-a/curated").rglob(".tmp-*"))
    assert not (storage / "store/bucket-a/curated/runs/p/run2/data.parquet").exists()


def test_curate_joins_then_measures_in_one_step_and_publish_takes_its_result(storage):
    """The data DAG's `measure` task (data.curate): the union's Ref and the gate's measurement as one
    result, which publish reads as both its dataset and its measurement."""
    from pipespec.tasklib.data.curate import curate
    from pipespec.tasklib.storage import read_table

    def extracted(name: str, start: int, count: int) -> dict:
        ref = write_table(pa.Table.from_pylist(rows(count, start)), f"s3://bucket-a/work/{name}.parquet")
        return {**ref.to_dict(), "source": name, "watermark": "2026-01-01T00:00:00"}

    refs = [extracted("zendesk", 0, 4), extracted("slack", 4, 3)]

    def run(run_id: str) -> dict:
        return curate(ctx(run_id), pipeline="p", join={"type": "union"}, publishes="s3://bucket-a/curated/",
                      threshold=THRESHOLD, quality={"required_columns": ["text"]}, drift=None, refs=refs)

    first = run("run1")
    assert (first["rows"], first["new_rows"], first["decision"], first["reason"]) == (7, 7, "pass", "all gates passed")
    assert first["rows_by_source"] == {"zendesk": 4, "slack": 3} and first["join"] == "union"
    assert read_table(first).column("_source").to_pylist() == ["zendesk"] * 4 + ["slack"] * 3
    do_publish("run1", first, first)
    published = latest("s3://bucket-a/curated/")
    assert published.data.rows == 7 and published.data.sha256 == first["sha256"]
    assert published.manifest["sources"]["slack"]["watermark"] == "2026-01-01T00:00:00"
    assert published.manifest["measurement"]["reason"] == "all gates passed"
    again = run("run2")  # the same records: nothing new, so the gate blocks and says why
    assert (again["new_rows"], again["decision"]) == (0, "blocked")
    assert again["reason"] == "0 new records, fewer than min_new_records 2" and again["previous_run"] == "run1"
