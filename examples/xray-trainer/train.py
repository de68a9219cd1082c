"""The x-ray team's own trainer, run under pipespec's container contract v1
(docs/container-contract.md). In production it is the entrypoint of the team's image
(ghcr.io/example/xray-train); locally the platform policy maps that image to this folder.

Transfer-learning style, as the team's MobileNetV2 script: a convolutional base is built and
frozen, a new classification head is trained on top, then the top of the base is unfrozen and
fine-tuned at a lower learning rate. Here the base is small and seeded (no weight downloads).

    PIPESPEC_MODE=train:    read $PIPESPEC_TRAIN_DATA_URI, write model/ and metrics.json to the output
    PIPESPEC_MODE=evaluate: score $PIPESPEC_MODEL_DIR on $PIPESPEC_HOLDOUT_URI, write metrics.json
The output is $PIPESPEC_OUTPUT_DIR when set (local runs), else $PIPESPEC_OUTPUT_URI (object storage).
Exit codes: 0 done, 75 try again later, anything else a failure retrying cannot fix.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from urllib.parse import urlsplit
from urllib.request import url2pathname


def local_path(uri: str) -> str:
    parts = urlsplit(uri)
    return url2pathname(parts.path) if parts.scheme == "file" else uri


def read(uri: str, features: list[str], label: str):
    import numpy as np
    import pyarrow.parquet as pq

    table = pq.read_table(local_path(uri))
    pixels = np.asarray(table.column(features[0]).to_pylist(), dtype="float32")
    side = int(round(pixels.shape[1] ** 0.5))
    return pixels.reshape(-1, side, side, 1), table.column(label).to_pylist()


def build(keras, side: int, classes: int, seed: int):
    keras.utils.set_random_seed(seed)
    base = keras.Sequential([keras.layers.Input((side, side, 1)),
                             keras.layers.Conv2D(8, 3, activation="relu", padding="same"),
                             keras.layers.MaxPooling2D(),
                             keras.layers.Conv2D(16, 3, activation="relu", padding="same")], name="base")
    base.trainable = False  # phase 1: only the new head learns
    inputs = keras.layers.Input((side, side, 1))
    features = keras.layers.GlobalAveragePooling2D()(base(inputs, training=False))
    outputs = keras.layers.Dense(classes, activation="softmax")(keras.layers.Dropout(0.1)(features))
    return keras.Model(inputs, outputs), base


def train(params: dict, out: Path) -> dict:
    import keras
    import numpy as np

    hp = params["hyperparams"]
    x, labels = read(os.environ["PIPESPEC_TRAIN_DATA_URI"], params["features"], params["label"])
    classes = sorted(set(labels))
    y = np.array([classes.index(v) for v in labels])
    model, base = build(keras, x.shape[1], len(classes), int(hp.get("seed", 0)))
    model.compile(keras.optimizers.Adam(float(hp.get("learning_rate", 0.01))), "sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    model.fit(x, y, epochs=int(hp.get("head_epochs", 3)), batch_size=32, verbose=2)
    base.trainable = True  # phase 2: fine-tune everything, gently
    model.compile(keras.optimizers.Adam(float(hp.get("fine_tune_learning_rate", 0.001))),
                  "sparse_categorical_crossentropy", metrics=["accuracy"])
    history = model.fit(x, y, epochs=int(hp.get("fine_tune_epochs", 2)), batch_size=32, verbose=2)
    (out / "model").mkdir()
    model.save(out / "model" / "xray.keras")
    (out / "model" / "classes.json").write_text(json.dumps(classes))
    return {"accuracy": float(history.history["accuracy"][-1]), "loss": float(history.history["loss"][-1])}


def evaluate(params: dict) -> dict:
    import keras
    import numpy as np
    from sklearn.metrics import accuracy_score, f1_score, roc_auc_score

    model_dir = Path(os.environ["PIPESPEC_MODEL_DIR"])
    classes = json.loads((model_dir / "classes.json").read_text())
    x, labels = read(os.environ["PIPESPEC_HOLDOUT_URI"], params["features"], params["label"])
    probabilities = keras.models.load_model(model_dir / "xray.keras").predict(x, verbose=0)
    predicted = [classes[i] for i in np.argmax(probabilities, axis=1)]
    metrics = {"accuracy": accuracy_score(labels, predicted),
               "f1_macro": f1_score(labels, predicted, average="macro")}
    if len(classes) == 2 and len(set(labels)) == 2:
        metrics["roc_auc"] = roc_auc_score([classes.index(v) for v in labels], probabilities[:, 1])
    return {name: float(value) for name, value in metrics.items()}


def main() -> int:
    import tempfile

    params = json.loads(os.environ["PIPESPEC_PARAMS"])
    local = os.environ.get("PIPESPEC_OUTPUT_DIR")
    out = Path(local or tempfile.mkdtemp(prefix="xray-out-"))
    try:
        metrics = train(params, out) if os.environ["PIPESPEC_MODE"] == "train" else evaluate(params)
        (out / "metrics.json").write_text(json.dumps(metrics))
        if not local:  # a pod or a job: upload to the object store
            from pyarrow import fs

            remote, path = fs.FileSystem.from_uri(os.environ["PIPESPEC_OUTPUT_URI"])
            fs.copy_files(str(out), path, source_filesystem=fs.LocalFileSystem(), destination_filesystem=remote)
    except OSError as error:  # storage hiccups are worth a retry; bugs and bad data are not
        print(f"xray-train: {error}", file=sys.stderr)
        return 75
    print(f"xray-train: {os.environ['PIPESPEC_MODE']} done: {metrics}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
