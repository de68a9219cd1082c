"""How fast is pipespec's batch inference, next to calling `model.predict` directly on the same rows?

What is measured, side by side in one run, each variant in a fresh Python process that imports
TensorFlow, Keras, pyarrow, MLflow and tasklib before its clock starts:

  direct model.predict   ONE script: load the saved Keras model (keras.models.load_model), read
                         all input Parquet files (pq.read_table of the folder), ONE `model.predict` on
                         the whole text column, take the argmax label and its probability, write one
                         Parquet file. Its batch size is the one pipespec predicts with
                         (pipespec.tasklib.model.keras_models.PREDICT_ROWS, 8,192 rows), so the comparison
                         measures pipespec's overhead, not batch-size tuning (batch size is most of
                         CPU inference time: 256-row batches take about 4x as long); --direct-batch
                         changes it. A single `model.predict` call pays its tf.data setup once, so it
                         is the fastest way to use `model.predict` by hand.
                         pipespec.tasklib.model.keras_models.predict calls `predict_on_batch` per chunk of
                         PREDICT_ROWS rows instead (no tf.data pipeline per shard).
  pipespec steps         the inference DAG's steps with a RunContext, as compiled (pipespec/compiler/compile.py
                         `_inference_dag`): inference.load_champion (the `champion` alias in the
                         MLflow registry) -> inference.plan_shards (shard_size rows) -> inference.predict
                         per shard (the first one downloads the model version from MLflow into an
                         empty cache and loads it) -> inference.publish (parts, manifest, _SUCCESS,
                         _LATEST). The shards run one after another in one process; Airflow would
                         run them as parallel mapped tasks, each in its own process, which adds a
                         TensorFlow import and a model load per shard (both printed) but divides
                         the predict time by the number of worker slots.

Setup (not timed, in its own process): a real Keras text classifier (pipespec.tasklib.model.keras_models,
keras_text_classifier, a few epochs) trained on pipespec.local.sample_data.feedback_rows, registered with
pipespec.tasklib.model.registry (MLFLOW_TRACKING_URI=sqlite under a temporary directory) and aliased
`champion`; 200,000 input rows (feedback_rows, another seed) written as 4 Parquet files.

Rows/s count input rows. Both variants must predict the same label for every row (and the same
probability within 1e-5), or the bench stops.

Target (wall seconds by default; --judge cpu uses user+sys CPU seconds):
  - pipespec steps >= 0.8x direct model.predict rows/s
Each variant runs --repeat times (default 2), alternating; the best run counts. About a minute on
2 cores, most of it setup and TensorFlow imports (--quick: 40,000 rows). Exit code 0 (a
measurement); with --assert, 1 when the target is missed.

    .venv/bin/python bench/inference_throughput.py [--rows 200000] [--shard-size 10000] [--quick]
                                                   [--repeat 2] [--direct-batch N] [--judge wall|cpu]
                                                   [--keep DIR] [--assert]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

# Measuring helpers shared by the benches live in data_throughput.py (bench/ is not a package;
# Python puts this script's folder on sys.path).
from data_throughput import (REPO, add_shared_options, child_env, load_note, machine, print_targets,  # noqa: E402
                             ran_as_child, run_child, run_python, timed, work_directory, write_measurement)

PIPELINE = "bench_inference"
INPUT = "s3://bench/incoming/"
OUTPUT = "s3://bench/predictions/"
INPUT_FILES = 4
TRAIN_ROWS = 3_000
MODEL = {"type": "keras_text_classifier", "label": "label", "features": ["text"],
         "params": {"epochs": 3, "max_tokens": 5000, "embedding_dim": 16, "sequence_length": 32, "seed": 42}}
TARGET_RATIO = 0.8


# =========================================================================== setup (not timed)

def child_setup(workdir: str, rows: str, out_file: str) -> None:
    """Train, register and alias the champion; write the input files."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from pipespec.tasklib import storage
    from pipespec.tasklib.model import keras_models, registry
    from pipespec.local.sample_data import feedback_rows

    start = time.perf_counter()
    params = keras_models.resolve_params(MODEL)
    training = pa.Table.from_pylist(feedback_rows(TRAIN_ROWS, seed=7))
    network, classes, meta = keras_models.fit(MODEL, params, training)
    model_dir = keras_models.save(network, classes, meta, Path(workdir) / "model")
    version = registry.register(PIPELINE, model_dir, params=params, metrics={"final_loss": meta["final_loss"]},
                                tags={"bench": "inference_throughput"}, run_name="bench")["version"]
    registry.set_alias(PIPELINE, registry.CHAMPION, version)
    trained = time.perf_counter() - start

    count = int(rows)
    table = pa.Table.from_pylist(feedback_rows(count, seed=11, noise=0.0)).drop_columns(["label"])
    table = table.append_column("id", pa.array(range(count), pa.int64()))
    filesystem, path = storage.filesystem(INPUT)
    filesystem.create_dir(path, recursive=True)
    per_file = -(-count // INPUT_FILES)
    for index in range(INPUT_FILES):
        pq.write_table(table.slice(index * per_file, per_file), f"{path}/part-{index:05d}.parquet")
    Path(out_file).write_text(json.dumps({"version": version, "model_dir": str(model_dir), "train_seconds": trained,
                                          "classes": classes, "final_loss": meta["final_loss"]}))


# =========================================================================== the variants

def warm_imports() -> dict[str, float]:
    """What both variants import before their clocks start; how long TensorFlow and Keras took."""
    start = time.perf_counter()
    import keras  # noqa: F401
    import tensorflow  # noqa: F401

    tensorflow_seconds = time.perf_counter() - start
    import numpy  # noqa: F401
    import pandas  # noqa: F401  (pyarrow imports it lazily)
    import pyarrow  # noqa: F401
    import pyarrow.parquet  # noqa: F401

    from pipespec.tasklib import inference  # noqa: F401
    from pipespec.tasklib.model import keras_models, registry  # noqa: F401

    registry.client()  # MLflow's modules
    return {"import_tensorflow_seconds": tensorflow_seconds, "import_seconds": time.perf_counter() - start}


def context(task_id: str, map_index: int = -1) -> Any:
    from pipespec.tasklib.context import RunContext

    return RunContext(dag_id=f"{PIPELINE}__inference", task_id=task_id, run_id="bench__2026-01-01",
                      map_index=map_index, logical_date="2026-01-01T00:00:00+00:00")


def child_ours(shard_size: str, out_file: str) -> None:
    """The inference steps in order, each shard after the other; each step's time is recorded."""
    imports = warm_imports()
    from pipespec.tasklib import inference

    steps: dict[str, float] = {}

    def step(name: str, work: Any) -> Any:
        start = time.perf_counter()
        result = work()
        steps[name] = steps.get(name, 0.0) + time.perf_counter() - start
        return result

    def run() -> dict:
        model = step("load_champion", lambda: inference.load_champion(context("load_champion"), pipeline=PIPELINE,
                                                                      alias="champion"))
        shards = step("plan_shards", lambda: inference.plan_shards(
            context("plan_shards"), input=INPUT, format="parquet", shard_size=int(shard_size)))
        predicted = []
        for index, shard in enumerate(shards):
            name = "predict (first shard)" if index == 0 else "predict (other shards)"
            predicted.append(step(name, lambda: inference.predict(context("predict", index), pipeline=PIPELINE,
                                                                  model=model, shard=shard)))
        published = step("publish", lambda: inference.publish(context("publish_predictions"), pipeline=PIPELINE,
                                                               output=OUTPUT, shards=predicted))
        return {"shards": len(shards), "parts": [p["uri"] for p in predicted], "published": published}

    write_measurement(run, out_file)
    measured = json.loads(Path(out_file).read_text())
    measured.update(imports, steps=steps, load_seconds=_load_seconds())
    Path(out_file).write_text(json.dumps(measured))


def _load_seconds() -> float:
    """What loading the model costs a fresh worker (it is cached after the first shard here)."""
    from pipespec.tasklib import inference
    from pipespec.tasklib.model import keras_models, registry

    version = registry.version_for(PIPELINE, "champion")
    directory = inference.cached_model_dir(PIPELINE, str(version))
    return timed(lambda: keras_models.load(directory))[1]["seconds"]


def child_direct(model_dir: str, batch_size: str, output: str, out_file: str) -> None:
    """What one would write by hand: load, read everything, predict, write."""
    warm_imports()
    import keras
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq
    import tensorflow as tf

    from pipespec.tasklib import storage
    from pipespec.tasklib.model.keras_models import PREDICT_ROWS

    batch = int(batch_size) or PREDICT_ROWS

    def run() -> dict:
        model = keras.models.load_model(Path(model_dir) / "model.keras")
        classes = json.loads((Path(model_dir) / "labels.json").read_text())
        meta = json.loads((Path(model_dir) / "pipespec.json").read_text())
        table = pq.read_table(storage.filesystem(INPUT)[1])
        texts = tf.constant(table["text"].to_numpy(zero_copy_only=False).reshape(-1, 1), dtype=tf.string)
        scores = np.asarray(model.predict({meta["inputs"]["text"]: texts}, batch_size=batch, verbose=0))
        best = scores.argmax(axis=1)
        table = table.append_column("prediction", pa.array(np.asarray(classes, dtype=object)[best], pa.string()))
        table = table.append_column("probability", pa.array(scores.max(axis=1).astype(float)))
        pq.write_table(table, output)
        return {"rows": table.num_rows, "batch_size": batch}

    write_measurement(run, out_file)


# =========================================================================== comparing and reporting

def compare(ours: dict, direct_file: Path) -> int:
    """The same label for every row, and the same probability within 1e-5 (else stop)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    from urllib.parse import unquote, urlparse

    # file:// work URIs, read directly: this process has none of the children's storage roots set.
    parts = [pq.read_table(unquote(urlparse(uri).path)) for uri in ours["result"]["parts"]]
    mine = pa.concat_tables(parts).sort_by("id")
    theirs = pq.read_table(direct_file).sort_by("id")
    if mine.num_rows != theirs.num_rows or not mine["id"].equals(theirs["id"]):
        raise SystemExit(f"the outputs differ: pipespec {mine.num_rows} rows, direct {theirs.num_rows}")
    if not mine["prediction"].equals(theirs["prediction"]):
        differ = int((np.asarray(mine["prediction"]) != np.asarray(theirs["prediction"])).sum())
        raise SystemExit(f"the predictions differ in {differ} of {mine.num_rows} rows")
    gap = float(np.abs(np.asarray(mine["probability"]) - np.asarray(theirs["probability"])).max())
    if gap > 1e-5:
        raise SystemExit(f"the probabilities differ by up to {gap}")
    if ours["result"]["published"]["rows"] != mine.num_rows:
        raise SystemExit(f"published {ours['result']['published']['rows']} rows, predicted {mine.num_rows}")
    return mine.num_rows


def report(rows: int, direct: dict, ours: dict, judge: str, shard_size: int) -> bool:
    key = "seconds" if judge == "wall" else "cpu"
    print(f"\n{'variant':<22} {'rows':>9} {'s':>7} {'rows/s':>9} {'cpu s':>7} {'peak RSS MB':>12} {'at start':>9}")
    print("-" * 81)
    for name, m in (("direct model.predict", direct), ("pipespec steps", ours)):
        print(f"{name:<22} {rows:>9,} {m['seconds']:>7.2f} {rows / m['seconds']:>9,.0f} {m['cpu']:>7.2f} "
              f"{m['peak_rss_mb']:>12.0f} {m['rss_before_mb']:>9.0f}")
    print(f"\ndirect: one model.predict over all rows, batch_size {direct['result']['batch_size']:,}")
    print(f"pipespec, by step ({ours['result']['shards']} shards of <= {shard_size:,} rows, one after another):")
    for name, seconds in ours["steps"].items():
        print(f"  {name:<26} {seconds:7.2f} s")
    print(f"\nper fresh worker process (each mapped shard in Airflow): import TensorFlow+Keras "
          f"{ours['import_tensorflow_seconds']:.1f} s, all imports {ours['import_seconds']:.1f} s, model load "
          f"{ours['load_seconds']:.2f} s; not in the times above (the direct script pays them once too)")
    ratio = (rows / ours[key]) / (rows / direct[key])
    return print_targets([(f"pipespec >= {TARGET_RATIO}x direct model.predict throughput ({judge})",
                           ratio >= TARGET_RATIO,
                           f"{rows / ours[key]:,.0f} vs {rows / direct[key]:,.0f} rows/s ({ratio:.2f}x)")])


# =========================================================================== main

def environment(root: Path) -> dict[str, str]:
    return child_env({**os.environ, "PYTHONPATH": str(REPO), "PIPESPEC_STORAGE_ROOT": str(root / "storage"),
                      "PIPESPEC_WORK_URI": (root / "work").as_uri(), "PIPESPEC_MODEL_CACHE": str(root / "models"),
                      "MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlflow.db'}", "AIRFLOW_HOME": str(root / "airflow"),
                      "TF_CPP_MIN_LOG_LEVEL": "2"})


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=200_000, help="input rows (default 200,000)")
    parser.add_argument("--shard-size", type=int, default=10_000, help="rows per shard (default 10,000)")
    parser.add_argument("--quick", action="store_true", help="40,000 rows")
    parser.add_argument("--repeat", type=int, default=2, help="runs of each variant, alternating; the best counts "
                        "(default 2: most of a run is the TensorFlow import, and a shared machine is noisy)")
    parser.add_argument("--direct-batch", type=int, default=0, help="model.predict's batch size in the direct "
                        "script (default: pipespec.tasklib.model.keras_models.PREDICT_ROWS, the rows per call pipespec uses)")
    add_shared_options(parser, judged="the target")
    args = parser.parse_args()
    if ran_as_child(args, {"setup": child_setup, "ours": child_ours, "direct": child_direct}):
        return 0

    rows = 40_000 if args.quick else args.rows
    load_before = os.getloadavg()[0]
    with work_directory(parser, args.keep, prefix="pipespec-bench-inference-") as root:
        env = environment(root)
        start = time.perf_counter()
        run_python([__file__, "--child", "setup", str(root), str(rows), str(root / "setup.json")], env)
        setup = json.loads((root / "setup.json").read_text())
        print(f"setup: trained and registered {PIPELINE} v{setup['version']} (loss {setup['final_loss']:.3f}, "
              f"{setup['train_seconds']:.1f} s), wrote {rows:,} input rows ({time.perf_counter() - start:.1f} s)",
              file=sys.stderr)
        directs, ours_runs = [], []
        for attempt in range(max(args.repeat, 1)):  # alternate, so that a busy spell hits both alike
            directs.append(run_child([__file__, "--child", "direct", setup["model_dir"], str(args.direct_batch),
                                      str(root / "direct.parquet"), str(root / "direct.json")], env))
            shutil.rmtree(root / "models", ignore_errors=True)  # every pipespec run downloads the model afresh
            ours_runs.append(run_child([__file__, "--child", "ours", str(args.shard_size), str(root / "ours.json")],
                                       env))
            print(f"run {attempt + 1}: direct {directs[-1]['seconds']:.2f} s, "
                  f"pipespec {ours_runs[-1]['seconds']:.2f} s", file=sys.stderr)
        key = "seconds" if args.judge == "wall" else "cpu"
        direct, ours = min(directs, key=lambda m: m[key]), min(ours_runs, key=lambda m: m[key])
        compared = compare(ours, root / "direct.parquet")

        print(f"\nbatch inference: {PIPELINE} (keras_text_classifier, {len(setup['classes'])} classes), "
              f"{compared:,} rows in {INPUT_FILES} Parquet files, the same predictions in both variants")
        print(f"machine: {machine()}; {load_note(load_before)}")
        passed = report(rows, direct, ours, args.judge, args.shard_size)
    return 1 if args.assert_ and not passed else 0


if __name__ == "__main__":
    sys.exit(main())
