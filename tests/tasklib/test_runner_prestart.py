"""A runner process started ahead of its job (`runner.prestart`, used by `make demo`): it does its
imports while other steps run, then runs exactly one job, handed over on stdin with the worker's
environment of that moment, and reports results and errors like a process started for the job."""

from __future__ import annotations

import json

import pytest

from pipespec.tasklib.model import runner


@pytest.fixture
def prestarted(monkeypatch):
    monkeypatch.setattr(runner, "PRELOAD", ("json",))  # the hand-off is under test, not TensorFlow's import
    monkeypatch.setattr(runner, "_waiting", [])
    monkeypatch.setattr(runner, "_prestarting", False)
    runner.prestart()
    yield runner._waiting
    runner._stop_waiting()


def test_the_next_job_runs_in_the_process_started_ahead_then_another_waits(prestarted, tmp_path, monkeypatch):
    first = prestarted[0]
    # Storage set only after the process started: the job must read it (the worker's environment at
    # hand-off), and find the publication pointer written there.
    (tmp_path / "store" / "b" / "curated").mkdir(parents=True)
    (tmp_path / "store" / "b" / "curated" / "_LATEST").write_text("s3://b/curated/runs/r1")
    monkeypatch.setenv("PIPESPEC_STORAGE_ROOT", str(tmp_path / "store"))
    job = {"pipeline": "p", "dataset": "s3://b/curated/", "model": {"type": "keras_text_classifier", "label": "label",
                                                                   "features": ["text"]}, "run_id": "r"}
    with pytest.raises(runner.ProcessFailed, match="train it failed") as failed:
        runner.run("train", job, tmp_path, "train it")
    assert first.wait(timeout=60) == 1  # it took the job and exited with it
    assert "_LATEST points at s3://b/curated/runs/r1, which has no manifest.json" in str(failed.value)
    assert len(prestarted) == 1 and prestarted[0] is not first and prestarted[0].poll() is None
    assert json.loads((tmp_path / "train-params.json").read_text()) == job


def test_a_process_that_died_while_waiting_is_replaced_by_a_fresh_one(prestarted, tmp_path):
    dead = prestarted[0]
    dead.kill()
    dead.wait(timeout=30)
    with pytest.raises(runner.ProcessFailed, match="KeyError"):
        runner.run("evaluate", {"pipeline": "p"}, tmp_path, "evaluate nothing")
    assert prestarted and prestarted[0] is not dead


def test_without_a_job_the_waiting_process_exits_quietly(prestarted):
    process = prestarted.pop()
    process.stdin.close()  # the worker went away
    assert process.wait(timeout=30) == 0
