"""A `container` model runs locally end to end with dag.test(): the team's own code (a tiny
scikit-learn trainer that saves an MLflow model) in the folder the platform policy maps its image to,
under the container contract; the built-in metrics score it on the holdout; decide; promote. Then the
same code crashes, and then it writes no metrics: each time the train task fails with a clear error
and the champion stays where it was. Real MLflow (SQLite), real Parquet, real subprocesses."""

from __future__ import annotations

import textwrap

import pyarrow as pa
import pytest

from pipespec.local.local_env import ensure_db
from pipespec.local.sample_data import tabular_rows
from pipespec.tasklib.context import RunContext
from pipespec.tasklib.errors import PermanentFailure
from pipespec.tasklib.model import container, registry
from tests.airflow.test_plugin_dag import publish
from tests.support.airflow_harness import run_dag

pytestmark = pytest.mark.slow  # whole DAGs, subprocesses importing scikit-learn and MLflow

IMAGE_CODE = """\
import json, os, pathlib, sys
from urllib.parse import urlsplit

params = json.loads(os.environ["PIPESPEC_PARAMS"])
behaviour = params["hyperparams"].get("behaviour", "ok")
out = pathlib.Path(os.environ["PIPESPEC_OUTPUT_DIR"])
if behaviour == "crash":
    raise RuntimeError("the team's code crashed: column f9 does not exist")
import pyarrow.parquet as pq
from sklearn.linear_model import LogisticRegression
import mlflow.sklearn

rows = pq.read_table(urlsplit(os.environ["PIPESPEC_TRAIN_DATA_URI"]).path).to_pandas()
model = LogisticRegression().fit(rows[params["features"]], rows[params["label"]])
mlflow.sklearn.save_model(model, str(out / "model"))
if behaviour != "no_metrics":
    (out / "metrics.json").write_text(json.dumps({"accuracy": model.score(rows[params["features"]], rows[params["label"]])}))
print("trained", behaviour)
"""

SPEC = """\
pipeline: own_code
owner: acme-ml
train:
  dataset: s3://own-code/curated/
  model:
    type: container
    label: label
    features: [f0, f1, f2]
    params:
      image: ghcr.io/acme/churn-train:1.0
      command: [python, train.py]
      hyperparams: {{behaviour: {behaviour}}}
      timeout: 5m
evaluate: {{metric: accuracy, floor: 0.6}}
rollout: {{stages: [full]}}
retries: {{count: 0}}
"""


@pytest.fixture
def world(tmp_path, monkeypatch):
    ensure_db()
    image = tmp_path / "images" / "churn-train"
    image.mkdir(parents=True)
    (image / "train.py").write_text(IMAGE_CODE)
    policy = tmp_path / "platform" / "policy.yaml"
    policy.parent.mkdir()
    policy.write_text(textwrap.dedent("""\
        default: {images: [ghcr.io/acme/]}
        local_images: {ghcr.io/acme/churn-train: ../images/churn-train}
    """))
    monkeypatch.setenv("PIPESPEC_POLICY", str(policy))
    monkeypatch.setenv("PIPESPEC_STORAGE_ROOT", str(tmp_path / "store"))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.chdir(tmp_path)
    registry.client().search_registered_models()
    publish("s3://own-code/curated/", pa.Table.from_pylist(tabular_rows(200, seed=5)))
    (tmp_path / "pipelines").mkdir()
    return tmp_path


def run(world, monkeypatch, behaviour: str) -> dict:
    (world / "pipelines" / "own_code.yaml").write_text(SPEC.format(behaviour=behaviour))
    _, states = run_dag(world / "pipelines", "own_code__train", monkeypatch, world / "cache")
    return {task: state for (task, _), state in states.items()}


def test_own_code_trains_is_scored_and_promoted_then_failures_leave_the_champion(world, monkeypatch):
    states = run(world, monkeypatch, "ok")
    assert states["train"] == states["evaluate"] == states["decide"] == states["promote"] == "success"
    assert registry.version_for("own_code", "champion") == "1"
    assert registry.version_tags("own_code", "1")["pipespec.model_type"] == "container"

    for behaviour in ("crash", "no_metrics"):
        states = run(world, monkeypatch, behaviour)
        assert states["train"] == "failed", behaviour
        assert states["promote"] != "success" and states["evaluate"] != "success"
        assert registry.version_for("own_code", "champion") == "1", behaviour  # the champion is untouched


@pytest.mark.parametrize("behaviour, error", [
    ("crash", r"exit code 1(.|\n)*column f9 does not exist"),
    ("no_metrics", r"exited 0 but wrote no metrics\.json"),
])
def test_the_train_step_says_what_went_wrong(world, behaviour, error):
    model = {"type": "container", "label": "label", "features": ["f0", "f1", "f2"],
             "params": {"image": "ghcr.io/acme/churn-train:1.0", "command": ["python", "train.py"],
                        "hyperparams": {"behaviour": behaviour}}}
    ctx = RunContext(dag_id="own_code__train", task_id="train", run_id=f"r_{behaviour}")
    with pytest.raises(PermanentFailure, match=error):
        container.train(ctx, pipeline="own_code", dataset="s3://own-code/curated/", model=model, holdout=None,
                        holdout_fraction=0.2, spec_hash=None)
    assert registry.version_for("own_code", "challenger") is None  # nothing was registered
