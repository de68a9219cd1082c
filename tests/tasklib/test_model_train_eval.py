"""Training and evaluation for real: published Parquet datasets, the training
subprocess, TensorFlow on tiny data, MLflow on SQLite.

Each model type trains once in a scenario; the four scenarios run at the same
time (each spends most of its time starting TensorFlow processes) in one
module-scoped fixture, and the tests then check different things about what
happened. The text scenario trains twice with the
same seed, once through the worker step and once through the runner's command
line (as a Kubernetes pod or an Anyscale job would), and evaluates the second
against the first as champion: identical scores show both reproducibility and
that both paths do the same work.
"""

from __future__ import annotations

import json
import os
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from pipespec.tasklib import published, storage
from pipespec.local import sample_data
from pipespec.tasklib.context import RunContext
from pipespec.tasklib.model import data, keras_models, registry, runner
from pipespec.tasklib.model.evaluate import evaluate
from pipespec.tasklib.model.train import job_params, manifest_tag, train
from pipespec.local.sample_data import feedback_rows

pytestmark = pytest.mark.slow  # trains TensorFlow models

LOCAL = {"backend": "local"}


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """Storage, MLflow and the working directory (MLflow puts artifacts under ./mlruns) in a temp dir."""
    root = tmp_path_factory.mktemp("model")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PIPESPEC_STORAGE_ROOT", str(root / "store"))
        patch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{root / 'mlflow.db'}")
        patch.chdir(root)
        # Where the environment forbids bytecode caches, every training process would compile
        # TensorFlow's sources again (~12 s of CPU each): let them cache it in the test home.
        patch.delenv("PYTHONDONTWRITEBYTECODE", raising=False)
        patch.setenv("PYTHONPYCACHEPREFIX", str(Path(os.environ["AIRFLOW_HOME"]) / "pycache"))
        registry.client().search_registered_models()  # creates the MLflow tables before processes share them
        yield root


def ctx(pipeline: str, run: str, task: str = "train") -> RunContext:
    return RunContext(dag_id=f"{pipeline}__train", task_id=task, run_id=run)


def publish(uri: str, table: pa.Table, run: str = "data_run_1", spec_hash: str = "spec-1") -> storage.Ref:
    """What the data DAG's publish step leaves behind: data, manifest, then _LATEST."""
    prefix = published.run_prefix(uri, run)
    ref = storage.write_table(table, f"{prefix}/data.parquet")
    published.write_manifest(prefix, {"run_id": run, "spec_hash": spec_hash, "asset": uri, "data": ref.to_dict(),
                                      "sources": {"generated": {"rows": table.num_rows}}})
    published.mark_latest(uri, prefix)
    return ref


def run_evaluate(pipeline: str, model: dict, trained: dict, metric: str, dataset: str, holdout: str | None = None):
    from pipespec.schemas.catalog import METRICS

    return evaluate(ctx(pipeline, trained.get("_run", "run1"), "evaluate"), pipeline=pipeline, metric=metric,
                    direction=METRICS[metric].direction, holdout=holdout, holdout_fraction=0.2, dataset=dataset,
                    model=model, trained=trained)


# --- data generators: tiny, deterministic, with a signal a small model finds fast -----

def tabular(n: int, seed: int, target: str) -> pa.Table:
    return pa.Table.from_pylist(sample_data.tabular_rows(n, seed, target))


def images(n: int, seed: int, size: int = 16) -> pa.Table:
    """A bright horizontal or vertical bar on a noisy background."""
    return pa.Table.from_pylist(sample_data.bar_images(n, seed, size))


# --- text: two trainings (step and command line), one evaluation ---------------------

TEXT = {"type": "keras_text_classifier", "label": "label", "features": ["text"],
        "params": {"epochs": 6, "seed": 7, "max_tokens": 500, "embedding_dim": 16, "sequence_length": 16}}
TEXT_DATA = "s3://intents/curated/"


def text_scenario(store: Path) -> dict:
    ref = publish(TEXT_DATA, pa.Table.from_pylist(feedback_rows(300, seed=11)))
    first = train(ctx("intents", "run1"), pipeline="intents", dataset=TEXT_DATA, model=TEXT, compute=LOCAL)
    versions_after_first = len(registry.client().search_model_versions("name = 'intents'"))
    retried = train(ctx("intents", "run1"), pipeline="intents", dataset=TEXT_DATA, model=TEXT, compute=LOCAL)
    registry.set_alias("intents", registry.CHAMPION, first["version"])
    job = job_params("run2", "intents__train", pipeline="intents", dataset=TEXT_DATA, model=TEXT)
    result_file = store / "cli-result.json"
    runner.spawn(runner.command_line("train", job, str(result_file), python=sys.executable), "train in a pod")
    second = {**json.loads(result_file.read_text()), "_run": "run2"}
    challenger_alias = registry.version_for("intents", registry.CHALLENGER)
    scores = run_evaluate("intents", TEXT, second, "f1_macro", TEXT_DATA)
    return {"ref": ref, "first": first, "retried": retried, "second": second, "scores": scores,
            "versions_after_first": versions_after_first, "challenger_alias": challenger_alias}


def test_training_registers_a_challenger_with_the_step_result(text):
    first = text["first"]
    assert first["version"] == "1" and text["versions_after_first"] == 1
    assert first["model_type"] == "keras_text_classifier" and first["dataset_run"] == "data_run_1"
    assert first["rows_train"] + first["rows_holdout"] == 300
    assert 30 <= first["rows_holdout"] <= 90  # about a fifth
    assert set(first) == {"version", "run_id", "model_type", "dataset_run", "rows_train", "rows_holdout"}


def test_tensorflow_never_loads_in_the_worker(store):
    """`train` in a fresh interpreter where importing TensorFlow or Keras fails: it must still succeed,
    because only its runner subprocess trains (this test process may have loaded TensorFlow already)."""
    import subprocess
    import textwrap

    code = textwrap.dedent("""
        import importlib.abc, sys
        class Block(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in ("tensorflow", "keras"):
                    raise ImportError(name + " must not load in the worker")
        sys.meta_path.insert(0, Block())
        import pyarrow as pa
        from pipespec.tasklib.model.train import train
        from pipespec.local.sample_data import feedback_rows
        from tests.tasklib.test_model_train_eval import LOCAL, TEXT, ctx, publish
        publish("s3://worker/curated/", pa.Table.from_pylist(feedback_rows(60, seed=1)))
        result = train(ctx("worker", "run1"), pipeline="worker", dataset="s3://worker/curated/", model=TEXT,
                       compute=LOCAL)
        print("trained version", result["version"], "tensorflow" in sys.modules)
    """)
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run([sys.executable, "-c", code], cwd=root, env=dict(os.environ), capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().splitlines()[-1] == "trained version 1 False"


def test_a_retry_of_the_same_run_reuses_its_version(text):
    assert text["retried"]["version"] == text["first"]["version"]
    assert text["retried"]["run_id"] == text["first"]["run_id"]


def test_the_command_line_trains_the_same_way_and_moves_the_challenger_alias(text):
    second = text["second"]
    assert second["version"] == "2" and text["challenger_alias"] == "2"
    assert second["rows_train"] == text["first"]["rows_train"]
    assert registry.version_for("intents", registry.CHAMPION) == "1"  # training never touches the champion


def test_versions_carry_their_lineage(text):
    tags = registry.version_tags("intents", "1")
    assert tags["pipespec.run_id"] == "run1" and tags["pipespec.dataset"] == TEXT_DATA
    assert tags["pipespec.dataset_sha256"] == text["ref"].sha256
    assert tags["pipespec.spec_hash"] == "spec-1" and tags["pipespec.dataset_run"] == "data_run_1"
    manifest = json.loads(tags["pipespec.manifest"])
    assert manifest["data"]["sha256"] == text["ref"].sha256 and manifest["sources"]["generated"]["rows"] == 300
    assert registry.version_tags("intents", "2")["pipespec.run_id"] == "run2"
    run = registry.client().get_run(text["first"]["run_id"])
    assert run.data.params["model_type"] == "keras_text_classifier" and run.data.params["max_tokens"] == "500"
    assert run.data.metrics["train_accuracy"] > 0.8


def test_the_saved_model_holds_its_preprocessing_and_labels(text, tmp_path):
    directory = registry.download("intents", "1", tmp_path)
    assert json.loads((directory / "labels.json").read_text()) == ["account", "billing", "quality", "returns",
                                                                    "shipping"]
    meta = json.loads((directory / "pipespec.json").read_text())
    assert meta["model_type"] == "keras_text_classifier" and meta["features"] == ["text"]
    assert meta["dataset_sha256"] == text["ref"].sha256 and (directory / "model.keras").stat().st_size > 0
    epochs = meta["params"]["epochs"]
    assert set(meta["history"]) == {"loss", "accuracy"} and all(len(v) == epochs for v in meta["history"].values())
    assert meta["history"]["loss"][-1] == meta["final_loss"] < meta["history"]["loss"][0]  # the report's curves


def test_evaluation_scores_both_on_the_same_holdout_reproducibly(text):
    scores = text["scores"]
    assert (scores["challenger_version"], scores["champion_version"]) == ("2", "1")
    assert scores["metric"] == "f1_macro" and scores["direction"] == "max"
    assert scores["challenger"] > 0.6  # five intents: chance is about 0.2
    assert scores["challenger"] == scores["champion"]  # same seed, same rows → the same model
    assert scores["scores"]["challenger"] == scores["scores"]["champion"]
    holdout = data.holdout_data(TEXT_DATA, TEXT)
    assert scores["holdout_rows"] == text["first"]["rows_holdout"] == holdout.table.num_rows
    assert scores["holdout_sha256"] == storage.table_hash(holdout.table)
    every = scores["scores"]["challenger"]
    assert every["precision"] is None  # binary metrics are undefined for five classes
    assert all(0 <= every[k] <= 1 for k in ("accuracy", "f1_macro", "f1_weighted", "roc_auc"))
    run = registry.client().get_run(text["second"]["run_id"])
    assert run.data.metrics["holdout_f1_macro"] == pytest.approx(scores["challenger"])
    # The report's figures: one confusion matrix per version over exactly the holdout rows.
    classes = scores["classes"]["challenger"]
    assert classes == scores["classes"]["champion"] and len(classes["labels"]) == 5
    assert sum(map(sum, classes["confusion"])) == sum(c["support"] for c in classes["per_class"]) == holdout.table.num_rows
    # mlflow.data: the MLflow UI lists what scored this version
    (scored_on,) = [i.dataset for i in run.inputs.dataset_inputs if [t.value for t in i.tags] == ["evaluation"]]
    assert scored_on.digest == scores["holdout_sha256"][:16] and '"num_rows": %d' % holdout.table.num_rows \
        in scored_on.profile


# --- tabular classifier: a fixed holdout file that overlaps the dataset ---------------

TABULAR = {"type": "keras_tabular_classifier", "label": "label", "features": ["f0", "f1", "f2"],
           "params": {"epochs": 15, "hidden_units": [16], "seed": 3}}


def churn_scenario(store: Path) -> tuple[dict, dict]:
    holdout = tabular(80, seed=2, target="class")
    storage.write_table(holdout, "s3://churn/holdout.parquet")
    dataset = pa.concat_tables([tabular(240, seed=1, target="class"), holdout.slice(0, 20)])
    publish("s3://churn/curated/", dataset)
    trained = train(ctx("churn", "run1"), pipeline="churn", dataset="s3://churn/curated/", model=TABULAR,
                    compute=LOCAL, holdout="s3://churn/holdout.parquet")
    scores = run_evaluate("churn", TABULAR, trained, "roc_auc", "s3://churn/curated/", "s3://churn/holdout.parquet")
    return trained, scores


def test_tabular_classifier_trains_without_the_fixed_holdout_rows(churn):
    trained, scores = churn
    assert trained["rows_train"] == 240 and trained["rows_holdout"] == 80  # the 20 copies stay out of training
    assert scores["holdout_rows"] == 80 and scores["holdout_source"] == "holdout s3://churn/holdout.parquet"


def test_tabular_classifier_scores_well_with_no_champion(churn):
    _, scores = churn
    assert scores["champion"] is None and scores["champion_version"] is None and scores["scores"]["champion"] is None
    assert scores["challenger"] > 0.9 and scores["scores"]["challenger"]["accuracy"] > 0.8  # chance: 0.5
    every = scores["scores"]["challenger"]
    assert all(every[k] is not None and 0 <= every[k] <= 1 for k in ("precision", "recall", "f1", "f1_macro"))


# --- tabular regressor: the default seeded split -------------------------------------

REGRESSOR = {"type": "keras_tabular_regressor", "label": "label", "features": ["f0", "f1", "f2"],
             "params": {"epochs": 30, "hidden_units": [16], "seed": 5}}


def demand_scenario(store: Path) -> tuple[pa.Table, dict, dict]:
    table = tabular(300, seed=4, target="number")
    publish("s3://demand/curated/", table)
    trained = train(ctx("demand", "run1"), pipeline="demand", dataset="s3://demand/curated/", model=REGRESSOR,
                    compute=LOCAL)
    return table, trained, run_evaluate("demand", REGRESSOR, trained, "rmse", "s3://demand/curated/")


def test_tabular_regressor_beats_predicting_the_mean(scenarios):
    table, trained, scores = scenarios["demand"].result()
    spread = float(np.std(table.column("label").to_numpy()))  # the rmse of always predicting the mean
    assert scores["direction"] == "min" and scores["champion"] is None
    assert 0 < scores["challenger"] < 0.5 * spread
    assert 0 < scores["scores"]["challenger"]["mae"] <= scores["challenger"]
    assert scores["holdout_rows"] == trained["rows_holdout"] and trained["rows_train"] + trained["rows_holdout"] == 300


# --- image classifier: a fixed holdout that is itself a published Asset ---------------

IMAGE = {"type": "keras_image_classifier", "label": "label", "features": ["image"],
         "params": {"epochs": 8, "image_size": 16, "seed": 1}}


def xray_scenario(store: Path) -> tuple[dict, dict]:
    publish("s3://xray/curated/", images(160, seed=1))
    publish("s3://xray/holdout/", images(40, seed=2), run="holdout_v1")
    trained = train(ctx("xray", "run1"), pipeline="xray", dataset="s3://xray/curated/", model=IMAGE,
                    compute=LOCAL, holdout="s3://xray/holdout/")
    return trained, run_evaluate("xray", IMAGE, trained, "roc_auc", "s3://xray/curated/", "s3://xray/holdout/")


def test_image_classifier_learns_bars(scenarios):
    trained, scores = scenarios["xray"].result()
    assert trained["rows_train"] == 160 and scores["holdout_rows"] == 40
    assert scores["challenger"] > 0.9 and scores["scores"]["challenger"]["accuracy"] > 0.8
    assert registry.version_for("xray", registry.CHALLENGER) == trained["version"]


# --- the prediction helper that evaluation, training metrics and batch inference share ---

def test_predictions_are_model_predicts_for_every_model_type(scenarios, tmp_path):
    """keras_models.predict calls the model once per chunk of rows (no tf.data pipeline per call):
    its answers are exactly Keras' `model.predict` at that batch size, chunked or not, and within
    float32 rounding of the 256-row batches it used before, with the same labels."""
    models = {"intents": (TEXT_DATA, scenarios["text"].result()["first"]),
              "churn": ("s3://churn/curated/", scenarios["churn"].result()[0]),
              "demand": ("s3://demand/curated/", scenarios["demand"].result()[1]),
              "xray": ("s3://xray/curated/", scenarios["xray"].result()[0])}
    for pipeline, (dataset, trained) in models.items():
        loaded = keras_models.load(registry.download(pipeline, trained["version"], tmp_path / pipeline))
        table, _ = data.load_published(dataset)
        inputs = keras_models._inputs(loaded.meta, table)
        for chunk in (7, keras_models.rows_per_call(loaded.meta)):  # 7: many chunks and a partial last one
            expected = np.asarray(loaded.model.predict(inputs, batch_size=chunk, verbose=0))
            got = keras_models.predict(loaded, table, chunk_rows=chunk)
            if loaded.classes:
                assert np.array_equal(got.scores, expected), (pipeline, chunk)
                assert got.values == [loaded.classes[i] for i in expected.argmax(axis=1)]
            else:
                assert got.scores is None and got.values == expected.reshape(-1).tolist(), (pipeline, chunk)
        before = np.asarray(loaded.model.predict(inputs, batch_size=256, verbose=0))
        got = keras_models.predict(loaded, table)
        now = got.scores if loaded.classes else np.asarray(got.values).reshape(-1, 1)
        assert np.allclose(now, before, rtol=1e-5, atol=1e-6), pipeline
        if loaded.classes:
            assert (now.argmax(axis=1) == before.argmax(axis=1)).all(), pipeline
        assert keras_models.rows_per_call(loaded.meta) == (4096 if pipeline == "xray" else 8192)  # 16x16, 16 filters
        empty = keras_models.predict(loaded, table.slice(0, 0))
        assert empty.values == [] and (empty.scores is None if not loaded.classes
                                       else empty.scores.shape == (0, len(loaded.classes)))


# --- all four at once ----------------------------------------------------------------

@pytest.fixture(scope="module")
def scenarios(store):
    runs = {"text": text_scenario, "churn": churn_scenario, "demand": demand_scenario, "xray": xray_scenario}
    with ThreadPoolExecutor(max_workers=len(runs)) as pool:
        yield {name: pool.submit(run, store) for name, run in runs.items()}


@pytest.fixture
def text(scenarios):
    return scenarios["text"].result()


@pytest.fixture
def churn(scenarios):
    return scenarios["churn"].result()


# --- failures: clear, early, and carried out of the subprocess ------------------------

def test_training_without_a_published_dataset_says_so(store):
    with pytest.raises(FileNotFoundError, match=r"dataset s3://empty/curated/: nothing published yet"):
        train(ctx("empty", "run1"), pipeline="empty", dataset="s3://empty/curated/", model=TEXT, compute=LOCAL)


def test_evaluation_without_the_holdout_says_so(store):
    publish("s3://noholdout/curated/", pa.Table.from_pylist(feedback_rows(20, seed=1)))
    with pytest.raises(FileNotFoundError, match="holdout s3://noholdout/missing/: nothing published there"):
        run_evaluate("noholdout", TEXT, {"version": "1"}, "f1_macro", "s3://noholdout/curated/",
                     "s3://noholdout/missing/")


def test_spec_mistakes_fail_in_the_worker_before_a_process_starts(store):
    publish("s3://mistakes/curated/", pa.Table.from_pylist(feedback_rows(20, seed=1)))
    cases = [
        ({**TEXT, "params": {"epoch": 3}}, LOCAL, ValueError, "unknown parameter.*epoch.*known: batch_size"),
        ({**TEXT, "params": {"epochs": 0}}, LOCAL, ValueError, "epochs: expected a positive integer"),
        ({**TEXT, "features": ["ts", "text"]}, LOCAL, ValueError, "exactly one feature column"),
        ({**TEXT, "features": ["body"]}, LOCAL, KeyError, "no column `body` .*it has text, label, ts"),
        ({**TABULAR, "features": ["text"]}, LOCAL, TypeError, "feature `text` has type string"),
        ({**TEXT, "type": "llm_finetune"}, LOCAL, ValueError, "trains on Anyscale only"),
        (TEXT, {"backend": "kubernetes"}, ValueError, "runs as its own operator"),
    ]
    for model, compute, error, message in cases:
        with pytest.raises(error, match=message):
            train(ctx("mistakes", "run1"), pipeline="mistakes", dataset="s3://mistakes/curated/", model=model,
                  compute=compute)
    ragged = pa.table({"image": [[0.0] * 256, [0.0] * 250], "label": ["a", "b"]})
    with pytest.raises(ValueError, match=r"image column `image`: 1 row\(s\) do not hold 16x16=256 pixels"):
        keras_models.check_columns(IMAGE, keras_models.resolve_params({**IMAGE, "params": {}}), ragged, "data")
    assert keras_models.check_columns(IMAGE, {"image_size": None}, images(2, seed=0), "data")["image_size"] == 16
    with pytest.raises(TypeError, match="label `label` has type string; a regressor needs numbers"):
        keras_models.check_columns(REGRESSOR, {}, tabular(4, seed=0, target="class"), "data")
    with pytest.raises(ValueError, match="`rmse` does not apply to `keras_text_classifier`"):
        run_evaluate("mistakes", TEXT, {"version": "1"}, "rmse", "s3://mistakes/curated/")
    with pytest.raises(ValueError, match="`llm_finetune` needs its outputs generated"):
        run_evaluate("mistakes", {**TEXT, "type": "llm_finetune"}, {"version": "1"}, "exact_match",
                     "s3://mistakes/curated/")


def test_a_failing_process_raises_its_error_and_last_lines(store):
    with pytest.raises(runner.ProcessFailed, match=r"(?s)exit code 1\): boom.*last lines.*loading\nboom"):
        runner.spawn([sys.executable, "-c", "import sys; print('loading'); sys.exit('boom')"], "demo")
    job = job_params("r", "gone__train", pipeline="gone", dataset="s3://gone/curated/", model=TEXT)
    with pytest.raises(runner.ProcessFailed, match=r"FileNotFoundError: dataset s3://gone/curated/: nothing"):
        runner.spawn(runner.command_line("train", job, python=sys.executable), "train in a pod")


# --- the split and the lineage tag, without TensorFlow -------------------------------

def test_the_holdout_split_is_stable_and_keyed_on_features():
    table = pa.Table.from_pylist(feedback_rows(400, seed=3))
    keys = data.row_keys(table, ["text"])
    reordered = table.take(pa.array(np.arange(400)[::-1]))
    assert (data.row_keys(reordered, ["text"]) == keys[::-1]).all()  # a row's side does not depend on order
    relabelled = table.set_column(1, "label", pa.array(["x"] * 400))
    assert (data.row_keys(relabelled, ["text"]) == keys).all()  # nor on its label
    share = data.in_holdout(keys, 0.2).mean()
    assert 0.12 < share < 0.28
    assert (data.in_holdout(keys, 0.3) >= data.in_holdout(keys, 0.2)).all()  # a larger holdout only adds rows
    image = images(4, seed=0)
    assert len(set(data.row_keys(image, ["image"]).tolist())) == 4


def test_the_manifest_tag_stays_valid_json_within_the_limit():
    manifest = {"run_id": "r1", "spec_hash": "h", "data": {"sha256": "abc", "uri": "s3://b/k"},
                "sources": {f"source_{i}": {"rows": i, "watermark": "x" * 50} for i in range(400)}}
    tag = manifest_tag(manifest)
    assert len(tag) <= 7000
    summary = json.loads(tag)
    assert summary["truncated"] and summary["run_id"] == "r1" and summary["data"]["sha256"] == "abc"
    assert len(summary["sources"]) == 400
    small = {"run_id": "r1", "data": {"sha256": "abc"}}
    assert json.loads(manifest_tag(small)) == small
    huge = {"run_id": "r1", "note": "n" * 9000, "data": {"sha256": "abc", "uri": "s3://b/k"}}
    assert json.loads(manifest_tag(huge)) == {"run_id": "r1", "data_sha256": "abc", "data_uri": "s3://b/k",
                                              "truncated": True}


# --- the holdout prediction training keeps: evaluate scores without loading the model -----

def test_training_keeps_its_holdout_prediction_exactly_as_the_saved_model_predicts(scenarios, tmp_path):
    """The local train step predicts evaluate's holdout with the fitted model still in memory; what it
    keeps is what the saved and reloaded model predicts on those rows, for a classifier and a regressor."""
    from pipespec.tasklib.model.evaluate import cached_prediction

    for pipeline, dataset, model, trained, fixed in (
            ("intents", TEXT_DATA, TEXT, scenarios["text"].result()["first"], None),
            ("demand", "s3://demand/curated/", REGRESSOR, scenarios["demand"].result()[1], None)):
        held = data.holdout_data(dataset, model, fixed)
        sha256 = storage.table_hash(held.table)
        loaded, kept = cached_prediction(pipeline, trained["version"], model, held.table, sha256, tmp_path / pipeline)
        assert loaded.model is None  # nothing was loaded
        reloaded = keras_models.load(registry.download(pipeline, trained["version"], tmp_path / f"{pipeline}-model"))
        fresh = keras_models.predict(reloaded, held.table)
        assert kept.values == fresh.values and loaded.classes == reloaded.classes, pipeline
        assert (kept.scores is None) == (fresh.scores is None)
        if fresh.scores is not None:
            assert kept.scores.dtype == fresh.scores.dtype and np.array_equal(kept.scores, fresh.scores)
        assert loaded.meta == reloaded.meta
        # Other rows (here: one row fewer) have another hash: nothing is reused for them.
        other = held.table.slice(1)
        assert cached_prediction(pipeline, trained["version"], model, other, storage.table_hash(other),
                                 tmp_path / f"{pipeline}-other") is None


def test_evaluate_scores_kept_predictions_in_the_worker_without_a_process(scenarios, monkeypatch):
    """Both versions kept their prediction of this holdout: evaluate starts no TensorFlow process, and
    scores them exactly as the process that loads both models does."""
    from pipespec.tasklib.model import evaluate as evaluate_module

    trained = scenarios["text"].result()["first"]  # also the champion: both kept their prediction
    assert registry.version_for("intents", registry.CHAMPION) == trained["version"]
    job = {"pipeline": "intents", "metric": "f1_macro", "direction": "max", "model": TEXT,
           "challenger_version": trained["version"], "alias": registry.CHAMPION, "dataset": TEXT_DATA,
           "holdout": None, "holdout_fraction": 0.2, "run_id": "kept"}

    def no_process(*args, **kwargs):
        raise AssertionError("evaluate started a process although both predictions were kept")

    with monkeypatch.context() as patch:
        patch.setattr(runner, "run", no_process)
        in_process = run_evaluate("intents", TEXT, {**trained, "_run": "kept"}, "f1_macro", TEXT_DATA)
    # The same scores from the process that loads and predicts both models.
    held = data.holdout_data(TEXT_DATA, TEXT)
    with monkeypatch.context() as patch:
        patch.setattr(evaluate_module, "cached_prediction", lambda *args, **kwargs: None)
        patch.setattr(evaluate_module, "_all_predicted", lambda *args, **kwargs: False)
        loaded_both = evaluate_module._run({**job, "champion_version": trained["version"]}, "evaluate", held.table,
                                           held.source)
    assert in_process["scores"] == loaded_both["scores"] and in_process["classes"] == loaded_both["classes"]
    assert in_process["challenger"] == in_process["champion"]
