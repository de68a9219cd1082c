"""Evaluation is one step for every model type (issue 12): a plugin model (the acme gradient-boosting
type from examples/acme-plugin, installed editable) is scored by `model.evaluate` through the
model-type contract, and when the champion moves mid-rollout, promotion re-judges the challenger
against the new champion with `evaluate.rescore` for real (a fresh evaluation process, the holdout
drawn again the same way). Real MLflow registry (SQLite), real published Parquet data, real
scikit-learn models; nothing is swapped."""

from __future__ import annotations

import pyarrow as pa
import pytest

from pipespec.local.sample_data import tabular_rows
from pipespec.tasklib import published, storage
from pipespec.tasklib.model import evaluate, registry
from pipespec.tasklib.model.train import fit_and_register, job_params
from pipespec.tasklib.rollout import decide, stages
from tests.tasklib.test_rollout import ALIAS_TARGET, aliases, ctx, mlflow_registry  # noqa: F401 - fixture

pytestmark = pytest.mark.slow  # trains three models, scores in evaluation processes

PIPELINE, DATASET = "acme_rescore", "s3://acme_rescore/curated/"
FEATURES = ["f0", "f1", "f2"]
# One stump with a tiny step barely learns the linear rule; deeper, longer boosting learns it well.
WEAK = {"n_estimators": 1, "max_depth": 1, "learning_rate": 0.01, "seed": 1}
MEDIUM = {"n_estimators": 3, "max_depth": 1, "learning_rate": 0.5, "seed": 1}
STRONG = {"n_estimators": 60, "max_depth": 3, "learning_rate": 0.2, "seed": 1}


def acme(params: dict) -> dict:
    return {"type": "acme_gradient_boosting", "label": "label", "features": FEATURES, "params": params}


def publish(table: pa.Table, run: str = "data_run_1") -> None:
    """What the data DAG's publish step leaves behind: data, manifest, then _LATEST."""
    prefix = published.run_prefix(DATASET, run)
    ref = storage.write_table(table, f"{prefix}/data.parquet")
    published.write_manifest(prefix, {"run_id": run, "spec_hash": "s", "asset": DATASET, "data": ref.to_dict(),
                                      "sources": {"generated": {"rows": table.num_rows}}})
    published.mark_latest(DATASET, prefix)


def trained(params: dict, run_id: str) -> str:
    return fit_and_register(job_params(run_id, f"{PIPELINE}__train", pipeline=PIPELINE, dataset=DATASET,
                                       model=acme(params)))["version"]


def evaluated(version: str, run_id: str) -> dict:
    return evaluate.evaluate(ctx("evaluate", run_id), pipeline=PIPELINE, metric="accuracy", direction="max",
                             holdout=None, holdout_fraction=0.2, dataset=DATASET, model=acme(MEDIUM),
                             trained={"version": version}, min_improvement=0.01)


def test_plugin_challenger_is_rejudged_when_the_champion_moved(mlflow_registry, monkeypatch):  # noqa: F811
    publish(pa.Table.from_pylist(tabular_rows(400, seed=4)))
    weak = trained(WEAK, "run-weak")
    registry.set_alias(PIPELINE, registry.CHAMPION, weak)
    challenger = trained(MEDIUM, "run-medium")
    scores = evaluated(challenger, "run-medium")
    # The plugin model is scored like a built-in: every metric, class figures, the rescore job.
    assert (scores["challenger_version"], scores["champion_version"], scores["alias"]) == (challenger, weak, "champion")
    assert scores["scores"]["challenger"]["accuracy"] == scores["challenger"] > scores["champion"] + 0.05
    assert scores["classes"]["challenger"]["labels"] == ["churn", "stay"]
    assert scores["rescore_job"]["model"]["type"] == "acme_gradient_boosting"
    assert decide.decide(ctx("decide", "run-medium"), scores=scores, direction="max", floor=None,
                         min_improvement=0.01)["decision"] == "promote"

    # Mid-rollout another run crowned a stronger model, never scored on this challenger's holdout.
    strong = trained(STRONG, "run-strong")
    registry.set_alias(PIPELINE, registry.CHAMPION, strong)
    rescored = []
    real_rescore = evaluate.rescore
    monkeypatch.setattr(evaluate, "rescore", lambda job, version: rescored.append(real_rescore(job, version))
                        or rescored[-1])
    with pytest.raises(stages.ChampionChanged):
        stages.promote(ctx("promote", "run-medium"), pipeline=PIPELINE, target=ALIAS_TARGET, scores=scores)
    assert aliases(PIPELINE)["champion"] == strong

    [fresh] = rescored  # the real evaluation process, on the holdout drawn as evaluate drew it
    assert (fresh["challenger_version"], fresh["champion_version"]) == (challenger, strong)
    assert fresh["holdout_sha256"] == scores["holdout_sha256"] and fresh["challenger"] == scores["challenger"]
    assert fresh["champion"] > fresh["challenger"]
    assert set(fresh["scores"]["champion"]) >= {"accuracy", "roc_auc", "f1_macro"}


def test_holdout_evaluation_refuses_a_live_evaluated_model(mlflow_registry):  # noqa: F811
    """An LLM adapter is scored live (rollout.live_evaluation), never silently on a holdout here."""
    with pytest.raises(ValueError, match="`llm_finetune` needs its outputs generated by a served model.*live"):
        evaluate.evaluate(ctx("evaluate", "r"), pipeline="llm", metric="exact_match", direction="max", holdout=None,
                          holdout_fraction=0.2, dataset=DATASET,
                          model={"type": "llm_finetune", "label": "label", "features": ["text"]},
                          trained={"version": "1"})
