"""A pipeline whose model type and gate come from an installed plugin package (examples/acme-plugin,
installed editable) runs for real with dag.test(): train (scikit-learn in the training process) →
evaluate (the model-type contract's load/predict) → gates → decide → promote, or reject when the
plugin's gate vetoes. Real MLflow (SQLite), real published Parquet data; no step is swapped."""

from __future__ import annotations

import textwrap

import pyarrow as pa
import pytest

from pipespec.local.local_env import ensure_db
from pipespec.local.sample_data import tabular_rows
from pipespec.tasklib import published, storage
from pipespec.tasklib.model import registry
from tests.support.airflow_harness import run_dag

pytestmark = pytest.mark.slow  # trains in a subprocess, runs whole DAGs

SPEC = """\
pipeline: {name}
owner: acme-ml
train:
  dataset: s3://{name}/curated/
  model:
    type: acme_gradient_boosting
    label: label
    features: [f0, f1, f2]
    params: {{n_estimators: 30, max_depth: 2, seed: 1}}
evaluate:
  metric: accuracy
  floor: 0.6
  gates:
    - {{type: acme_min_holdout_rows, params: {{min_rows: {min_rows}}}}}
rollout: {{stages: [full]}}
retries: {{count: 0}}
"""


@pytest.fixture
def world(tmp_path, monkeypatch):
    ensure_db()
    monkeypatch.setenv("PIPESPEC_STORAGE_ROOT", str(tmp_path / "store"))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.chdir(tmp_path)
    registry.client().search_registered_models()  # MLflow's tables exist before processes share them
    return tmp_path


def publish(uri: str, table: pa.Table, run: str = "data_run_1") -> None:
    """What the data DAG's publish step leaves behind: data, manifest, then _LATEST."""
    prefix = published.run_prefix(uri, run)
    ref = storage.write_table(table, f"{prefix}/data.parquet")
    published.write_manifest(prefix, {"run_id": run, "spec_hash": "s", "asset": uri, "data": ref.to_dict(),
                                      "sources": {"generated": {"rows": table.num_rows}}})
    published.mark_latest(uri, prefix)


def run_pipeline(world, monkeypatch, name: str, min_rows: int) -> dict:
    pipelines = world / f"pipelines_{name}"
    pipelines.mkdir()
    (pipelines / f"{name}.yaml").write_text(SPEC.format(name=name, min_rows=min_rows))
    publish(f"s3://{name}/curated/", pa.Table.from_pylist(tabular_rows(300, seed=4)))
    _, states = run_dag(pipelines, f"{name}__train", monkeypatch, world / f"cache_{name}")
    return {task: state for (task, _), state in states.items()}


def test_plugin_model_trains_evaluates_passes_its_gate_and_is_promoted(world, monkeypatch):
    states = run_pipeline(world, monkeypatch, "acme_gbm", min_rows=20)
    assert states["train"] == states["evaluate"] == states["gates"] == states["decide"] == "success"
    assert states["promote"] == "success" and states["reject"] == "skipped"
    assert registry.version_for("acme_gbm", "champion") == "1"
    meta = registry.version_tags("acme_gbm", "1")
    assert meta["pipespec.model_type"] == "acme_gradient_boosting"
    run = registry.client().get_run(registry.client().get_model_version("acme_gbm", "1").run_id)
    assert run.data.metrics["holdout_accuracy"] > 0.8  # the linear rule is easy for boosted trees


def test_the_plugin_gate_vetoes_and_the_champion_stays_unset(world, monkeypatch):
    states = run_pipeline(world, monkeypatch, "acme_gbm_gated", min_rows=100000)
    assert states["gates"] == states["decide"] == "success"
    assert states["reject"] == "success" and states["promote"] == "skipped"
    assert registry.version_for("acme_gbm_gated", "champion") is None
    # Trained and registered, then retired by `reject`: the gate vetoed a model that met the floor.
    assert registry.client().get_model_version("acme_gbm_gated", "1").run_id
    assert registry.version_for("acme_gbm_gated", "challenger") is None
