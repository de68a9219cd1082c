"""Shard sizes for batch inference (issue 16): without `shard_size`, one shard per worker slot (each
mapped task is a process that imports TensorFlow and loads the model once); a spec's small
`shard_size` is kept but warned about, because start-up then dominates."""

from __future__ import annotations

import logging

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipespec.tasklib import inference
from pipespec.tasklib.context import RunContext

CTX = RunContext(dag_id="shop__inference", task_id="plan_shards", run_id="manual__2026-01-01")


@pytest.fixture
def input_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("PIPESPEC_DATA_ROOT", str(tmp_path))
    directory = tmp_path / "in"
    directory.mkdir()
    for index, rows in enumerate((150_000, 100_000, 50_001)):
        pq.write_table(pa.table({"id": pa.array(range(rows), pa.int64())}), directory / f"part-{index}.parquet")
    return directory


@pytest.mark.parametrize(("rows", "slots", "size"), [
    (1_000_000, 2, 500_000),  # one shard per slot
    (1_000_001, 2, 500_001),
    (30_000, 8, inference.MIN_SHARD_ROWS),  # a small input stays in one task
    (10**9, 4, inference.MAX_SHARD_ROWS),  # a huge one: more shards than slots, each bounded
    (0, 2, inference.MIN_SHARD_ROWS),
])
def test_auto_shard_size(rows, slots, size):
    assert inference.auto_shard_size(rows, slots) == size


def test_unset_shard_size_gives_one_shard_per_worker_slot(input_dir, monkeypatch):
    monkeypatch.setenv("PIPESPEC_WORKER_SLOTS", "2")
    shards = inference.plan_shards(CTX, input=str(input_dir), format="parquet")
    assert [(s["start"], s["stop"]) for s in shards] == [(0, 150_001), (150_001, 300_001)]
    assert [len(s["files"]) for s in shards] == [2, 2]  # the middle file is split between them
    monkeypatch.setenv("PIPESPEC_WORKER_SLOTS", "1")
    assert len(inference.plan_shards(CTX, input=str(input_dir), format="parquet")) == 1


def test_worker_slots_default_to_the_cpus(monkeypatch):
    monkeypatch.delenv("PIPESPEC_WORKER_SLOTS", raising=False)
    assert inference.worker_slots() >= 1
    monkeypatch.setenv("PIPESPEC_WORKER_SLOTS", "not a number")
    assert inference.worker_slots() >= 1


def test_a_small_spec_shard_size_is_kept_and_warned_about(input_dir, caplog):
    with caplog.at_level(logging.WARNING, "pipespec.tasklib.inference"):
        shards = inference.plan_shards(CTX, input=str(input_dir), format="parquet", shard_size=50_000)
    assert len(shards) == 7 and shards[-1]["stop"] == 300_001
    assert "shard_size 50000 splits 300001 rows into 7 mapped tasks" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, "pipespec.tasklib.inference"):
        inference.plan_shards(CTX, input=str(input_dir), format="parquet", shard_size=400_000)
    assert "shard_size" not in caplog.text  # one shard: nothing to warn about


def test_a_non_positive_shard_size_is_refused(input_dir):
    with pytest.raises(ValueError, match="shard_size must be positive"):
        inference.plan_shards(CTX, input=str(input_dir), format="parquet", shard_size=0)
