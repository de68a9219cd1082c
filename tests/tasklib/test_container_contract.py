"""The container contract's local runner, for real: tiny programs in a folder the platform policy maps
an image to, run as subprocesses. What the code sees (contract variables, connection values, nothing
of the worker's environment), what it may run (only the image folder's own code, no shell), and what
its exit codes and outputs mean."""

from __future__ import annotations

import json
import os
import textwrap
from pathlib import Path

import pytest

from pipespec.tasklib.errors import PermanentFailure
from pipespec.tasklib.model import container

IMAGE = "ghcr.io/acme/trainer:1.0"


@pytest.fixture
def image_folder(tmp_path, monkeypatch):
    """A policy mapping IMAGE to a folder, and that folder."""
    folder = tmp_path / "images" / "trainer"
    folder.mkdir(parents=True)
    policy = tmp_path / "platform" / "policy.yaml"
    policy.parent.mkdir()
    policy.write_text("local_images:\n  ghcr.io/acme/trainer: ../images/trainer\n")
    monkeypatch.setenv("PIPESPEC_POLICY", str(policy))
    return folder


def script(folder: Path, body: str, name: str = "main.py") -> None:
    (folder / name).write_text(textwrap.dedent(body))


def run(folder: Path, env: dict, command=("python", "main.py"), args=(), timeout_s=60) -> None:
    argv = container.local_argv(list(command), list(args), container.local_folder(IMAGE))
    container.run_local(argv, folder, env, timeout_s, "test container")


def test_the_policy_maps_the_image_whatever_its_tag(image_folder):
    assert container.local_folder("ghcr.io/acme/trainer:2.5") == image_folder.resolve()
    with pytest.raises(PermanentFailure, match="local_images"):
        container.local_folder("ghcr.io/other/trainer:1.0")


def test_the_code_sees_the_contract_and_nothing_of_the_worker(image_folder, tmp_path, monkeypatch):
    monkeypatch.setenv("WORKER_SECRET", "do-not-leak")
    script(image_folder, """
        import json, os, pathlib, sys
        out = pathlib.Path(os.environ["PIPESPEC_OUTPUT_DIR"])
        (out / "seen.json").write_text(json.dumps({"env": dict(os.environ), "cwd": os.getcwd(), "argv": sys.argv[1:]}))
    """)
    out = tmp_path / "out"
    out.mkdir()
    env = container.contract_env("train", data_uri="file:///data/train.parquet", holdout_uri=None,
                                 params={"hyperparams": {"depth": 3}}, output_uri=out.as_uri(), output_dir=str(out))
    run(image_folder, env, args=["--depth", "3; rm -rf /"])
    seen = json.loads((out / "seen.json").read_text())
    assert "WORKER_SECRET" not in seen["env"] and "AIRFLOW_HOME" not in seen["env"]
    assert seen["env"]["PIPESPEC_CONTRACT"] == "1" and seen["env"]["PIPESPEC_MODE"] == "train"
    assert json.loads(seen["env"]["PIPESPEC_PARAMS"]) == {"hyperparams": {"depth": 3}}
    assert seen["env"]["PIPESPEC_TRAIN_DATA_URI"] == "file:///data/train.parquet"
    assert seen["cwd"] == str(image_folder.resolve())
    assert seen["argv"] == ["--depth", "3; rm -rf /"]  # one argument, never a shell


@pytest.mark.parametrize("command", [["/bin/sh", "-c", "id"], ["python", "-c", "print(1)"], ["python", "../x.py"],
                                     ["python", "missing.py"], ["sh"]])
def test_only_the_image_folders_own_code_runs_locally(image_folder, command):
    (image_folder.parent / "x.py").write_text("print('outside')\n")
    with pytest.raises(PermanentFailure, match="inside the folder|interpreter options"):
        container.local_argv(command, [], container.local_folder(IMAGE))


def test_a_crash_is_a_permanent_failure_with_the_last_lines(image_folder, tmp_path):
    script(image_folder, "raise SystemExit('the data has no label column')\n")
    with pytest.raises(PermanentFailure, match=r"exit code 1.*not retried(.|\n)*no label column"):
        run(image_folder, {})


def test_exit_75_asks_for_a_retry(image_folder):
    script(image_folder, "import sys; print('bucket unreachable'); sys.exit(75)\n")
    with pytest.raises(container.ContainerFailed, match="asks to be retried"):
        run(image_folder, {})


def test_a_run_past_its_timeout_is_stopped(image_folder):
    script(image_folder, "import time; time.sleep(60)\n")
    with pytest.raises(container.ContainerFailed, match="longer than its timeout"):
        run(image_folder, {}, timeout_s=1)


def test_outputs_must_hold_metrics_and_a_model(tmp_path):
    with pytest.raises(PermanentFailure, match="wrote no metrics.json"):
        container.read_outputs(tmp_path, "train", "x")
    (tmp_path / "metrics.json").write_text(json.dumps({"accuracy": 0.9, "note": "text is ignored"}))
    with pytest.raises(PermanentFailure, match="wrote no model"):
        container.read_outputs(tmp_path, "train", "x")
    with pytest.raises(PermanentFailure, match="no finite `roc_auc`"):
        container.read_outputs(tmp_path, "evaluate", "x", metric="roc_auc")
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "MLmodel").write_text("flavors: {}\n")
    outputs = container.read_outputs(tmp_path, "train", "x", metric="accuracy")
    assert outputs.metrics == {"accuracy": 0.9} and outputs.mlflow_model


@pytest.mark.airflow  # connections are looked up through Airflow
def test_connections_become_env_by_prefix(monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_WAREHOUSE", "postgres://ml:pw@db.internal:5432/features")
    env = container.connection_env({"FEATURES": "warehouse"})
    assert env["FEATURES_HOST"] == "db.internal" and env["FEATURES_LOGIN"] == "ml"
    assert env["FEATURES_PASSWORD"] == "pw" and env["FEATURES_PORT"] == "5432"
    assert env["FEATURES_URI"].startswith("postgres://ml:pw@db.internal:5432")


def test_the_train_step_refuses_an_image_the_policy_does_not_allow(image_folder, monkeypatch, tmp_path):
    from pipespec.tasklib.context import RunContext

    policy = tmp_path / "platform" / "policy.yaml"
    policy.write_text("default: {images: [ghcr.io/other/]}\nlocal_images:\n  ghcr.io/acme/trainer: ../images/trainer\n")
    model = {"type": "container", "label": "label", "features": ["f0"],
             "params": {"image": IMAGE, "command": ["python", "main.py"]}}
    script(image_folder, "raise SystemExit('must never run')\n")
    with pytest.raises(Exception, match="not from an allowed registry"):
        container.train(RunContext("p__train", "train", "r1"), pipeline="p", dataset="s3://b/curated/", model=model,
                        holdout=None, holdout_fraction=0.2, spec_hash=None)
