"""`dedupe` over hash partitions (issue 16): with more rows than one partition, the row hashes are
spooled by their top bits and each partition sorted alone, so memory stays flat in the source's
length; the first row of each key is kept, as with one partition, also across batches, partitions
and hash collisions."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipespec.tasklib import storage
from pipespec.tasklib.context import RunContext
from pipespec.tasklib.data import row_hash
from pipespec.tasklib.data import transform as transform_module
from pipespec.tasklib.data.transform import dedupe, transform

CTX = RunContext(dag_id="p__data", task_id="transform_1_dedupe", run_id="manual__1", map_index=0)


@pytest.fixture
def work(tmp_path, monkeypatch):
    monkeypatch.setenv("PIPESPEC_WORK_URI", (tmp_path / "work").as_uri())
    monkeypatch.setenv("PIPESPEC_DATA_ROOT", str(tmp_path))
    return tmp_path


def table(rows: int) -> pa.Table:
    rng = np.random.default_rng(3)
    keys = rng.integers(0, rows // 3, rows)
    text = pa.array([None if k % 17 == 0 else f"k{k}" for k in keys])
    return pa.table({"text": text, "n": pa.array(keys % 5, pa.int64()), "row": pa.array(np.arange(rows))})


def expected_firsts(data: pa.Table, keys: list[str]) -> list[int]:
    seen, firsts = set(), []
    for row in data.to_pylist():
        key = tuple(row[k] for k in keys)
        if key not in seen:
            seen.add(key)
            firsts.append(row["row"])
    return firsts


def run(work, data: pa.Table, keys: list[str]) -> list[int]:
    ref = storage.write_table(data, (work / "in.parquet").as_uri(), source="s").to_dict()
    out = transform(CTX, pipeline="p", transform={"dedupe": {"key": keys}}, ref=ref)
    return storage.read_table(out).column("row").to_pylist()


@pytest.mark.parametrize("keys", [["text"], ["text", "n"]])
def test_many_partitions_keep_the_first_row_of_each_key(work, monkeypatch, keys):
    data = table(3000)
    monkeypatch.setattr(transform_module, "PARTITION_ROWS", 200)  # 16 partitions, spooled to files
    monkeypatch.setattr(storage, "BATCH_ROWS", 128)  # and many batches
    assert run(work, data, keys) == expected_firsts(data, keys)


def test_partition_count_follows_the_rows(work, monkeypatch):
    data = table(3000)
    ref = storage.write_table(data, (work / "in.parquet").as_uri()).to_dict()
    monkeypatch.setattr(transform_module, "PARTITION_ROWS", 200)
    spooled: list[int] = []
    real = np.fromfile
    monkeypatch.setattr(np, "fromfile", lambda *a, **k: spooled.append(1) or real(*a, **k))
    with storage.open_parquet(ref) as file:
        mask = dedupe(file, {"key": ["text"]}, "s")
    assert len(spooled) == 16 and mask.dtype == np.bool_ and len(mask) == 3000
    assert np.flatnonzero(mask).tolist() == expected_firsts(data, ["text"])
    monkeypatch.setattr(transform_module, "PARTITION_ROWS", 1 << 18)
    spooled.clear()
    with storage.open_parquet(ref) as file:
        assert np.array_equal(dedupe(file, {"key": ["text"]}, "s"), mask)
    assert spooled == []  # one partition: no spool files


def test_hash_collisions_across_partitions_are_caught(work, monkeypatch):
    data = table(1000)
    real = row_hash.row_hashes
    # Only the top bits survive: rows of different keys share a hash within each partition.
    monkeypatch.setattr(row_hash, "row_hashes", lambda batch, columns: real(batch, columns) & np.uint64(0xF << 60))
    monkeypatch.setattr(transform_module, "PARTITION_ROWS", 100)
    assert run(work, data, ["text"]) == expected_firsts(data, ["text"])


def test_an_empty_source_keeps_nothing(work):
    data = table(30).slice(0, 0)
    assert run(work, data, ["text"]) == []
    assert pq.read_table(work / "in.parquet").num_rows == 0
