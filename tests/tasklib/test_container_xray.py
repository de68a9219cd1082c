"""The x-ray team's own trainer (examples/xray-trainer/train.py) runs locally under the container
contract, as pipelines/xray_own_code.yaml describes it: the platform policy maps the team's image to
that folder; train (a Keras transfer-learning-style script on small generated images, no downloads)
registers a challenger; the team's own evaluate mode scores it on the holdout; the spec's decision
metric comes from that metrics.json."""

from __future__ import annotations

import pyarrow as pa
import pytest

from pipespec.compiler.compile import compile_checked
from pipespec.local.sample_data import bar_images
from pipespec.schemas.check import check_file
from pipespec.tasklib.context import RunContext
from pipespec.tasklib.model import container, evaluate, registry
from tests.airflow.test_plugin_dag import publish
from tests.support.paths import ROOT

pytestmark = pytest.mark.slow  # two TensorFlow processes


@pytest.fixture
def xray_world(tmp_path, monkeypatch):
    policy = tmp_path / "policy.yaml"
    policy.write_text(f"default: {{images: [ghcr.io/example/]}}\n"
                      f"local_images: {{ghcr.io/example/xray-train: {ROOT / 'examples' / 'xray-trainer'}}}\n")
    monkeypatch.setenv("PIPESPEC_POLICY", str(policy))
    monkeypatch.setenv("PIPESPEC_STORAGE_ROOT", str(tmp_path / "store"))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.chdir(tmp_path)
    registry.client().search_registered_models()
    publish("s3://xray-images/curated/", pa.Table.from_pylist(bar_images(160, seed=3)))
    return tmp_path


def test_the_xray_teams_own_trainer_trains_and_evaluates_locally(xray_world):
    checked = check_file(ROOT / "pipelines" / "xray_own_code.yaml")
    train_task = next(t for d in compile_checked(checked).dags for t in d.tasks if t.task_id == "train")
    params = train_task.params
    assert train_task.kind == "kubernetes_pod" and params["compute"]["resources"]["gpu"] == 1  # production
    model = params["model"]
    ctx = RunContext(dag_id="xray_own_code__train", task_id="train", run_id="run_1")
    trained = container.train(ctx, pipeline="xray_own_code", dataset=params["dataset"], model=model,
                              holdout=None, holdout_fraction=0.2, spec_hash="s")
    assert trained["version"] == "1" and trained["train_metrics"]["accuracy"] > 0.5
    assert registry.version_for("xray_own_code", "challenger") == "1"

    scores = evaluate.evaluate(RunContext("xray_own_code__train", "evaluate", "run_1"),
                                        pipeline="xray_own_code", metric="roc_auc", direction="max", holdout=None,
                                        holdout_fraction=0.2, dataset=params["dataset"], model=model, trained=trained)
    assert scores["champion"] is None and scores["holdout_rows"] > 10
    assert scores["challenger"] == scores["scores"]["challenger"]["roc_auc"] > 0.8  # bars are easy
