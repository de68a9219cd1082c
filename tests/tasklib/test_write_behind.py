"""`storage.write_behind` (issue 16): the writer runs on a second thread while the step makes the next
table, and the step never returns or raises while that thread still writes: a timeout (Airflow's
SIGALRM) that lands while the step waits, a failing transform and a failing writer all end with the
writer done, nothing written after the failure, and the failure raised."""

from __future__ import annotations

import signal
import threading
import time

import pyarrow as pa
import pytest

from pipespec.tasklib import storage


def tables(count: int, fail_after: int | None = None):
    for index in range(count):
        if fail_after is not None and index == fail_after:
            raise ValueError("a transform failed")
        yield pa.table({"n": list(range(index * 10, index * 10 + 10))})


class SlowWriter:
    def __init__(self, seconds: float = 0.0, fail_at: int | None = None) -> None:
        self.seconds, self.fail_at = seconds, fail_at
        self.started: list[int] = []
        self.finished: list[int] = []
        self.threads: set[str] = set()

    def __call__(self, table: pa.Table) -> None:
        index = table.column("n")[0].as_py() // 10
        self.threads.add(threading.current_thread().name)
        self.started.append(index)
        if index == self.fail_at:
            raise OSError("the disk is full")
        time.sleep(self.seconds)
        self.finished.append(index)


def test_every_table_is_written_in_order_on_another_thread():
    write = SlowWriter()
    assert storage.write_behind(tables(7), write) == 70
    assert write.finished == list(range(7)) and write.threads == {"pipespec-write-behind"}


def test_a_failing_transform_is_raised_after_the_writer_is_done():
    write = SlowWriter(seconds=0.05)
    with pytest.raises(ValueError, match="a transform failed"):
        storage.write_behind(tables(10, fail_after=3), write)
    assert write.started == write.finished  # nothing left mid-write
    assert write.finished == [0, 1, 2][:len(write.finished)] and len(write.finished) <= 3


def test_a_failing_writer_stops_the_step_with_its_error():
    write = SlowWriter(fail_at=2)
    with pytest.raises(OSError, match="disk is full"):
        storage.write_behind(tables(50), write)
    assert write.finished == [0, 1] and write.started[-1] == 2


class Timeout(Exception):
    pass


def test_a_timeout_while_waiting_for_the_writer_is_raised_once_it_has_finished():
    """The crash this prevents: a SIGALRM timeout raised while the step waited, then the Parquet writer
    closed on the step's thread while the writer thread still wrote to it."""
    write = SlowWriter(seconds=0.4)

    def on_alarm(signum, frame):
        raise Timeout()

    previous = signal.signal(signal.SIGALRM, on_alarm)
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.6)  # lands while the step waits on the writer
        with pytest.raises(Timeout):
            storage.write_behind(tables(5), write)
        assert write.started == write.finished and 1 <= len(write.finished) < 5
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def test_a_real_parquet_write_interrupted_by_a_timeout_leaves_nothing_behind(tmp_path, monkeypatch):
    monkeypatch.setenv("PIPESPEC_DATA_ROOT", str(tmp_path))
    monkeypatch.setenv("PIPESPEC_WORK_URI", (tmp_path / "work").as_uri())
    big = pa.table({"text": [f"row {i} " * 20 for i in range(200_000)]})

    def on_alarm(signum, frame):
        raise Timeout()

    previous = signal.signal(signal.SIGALRM, on_alarm)
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.05)
        with pytest.raises(Timeout):
            storage.write_batches(iter(big.to_batches(max_chunksize=4096) * 20), big.schema,
                                  (tmp_path / "out.parquet").as_uri())
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert list(tmp_path.iterdir()) == []  # no output, no temporary file: the process is still alive to check
