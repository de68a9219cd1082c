"""The Keras model types of the catalog: build, fit, save, load, predict.

Preprocessing (text vectorisation, normalisation, target scaling) lives inside
the saved model, so whoever loads it (evaluation, batch inference, serving)
feeds the raw columns. A model directory holds:

    model.keras     the Keras model (inputs named after the feature columns)
    labels.json     classifiers: the class labels, in the order of the outputs
    pipespec.json   model type, task, features, label, resolved params, per-epoch history

Parameter checks and column checks need no TensorFlow, so a bad spec fails in
the worker before a training process starts. TensorFlow is imported only by
`fit`, `load` and `predict`.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipespec.schemas.catalog import MODEL_TYPES

from pipespec.tasklib.model.metrics import label_order_key

_COMMON = {"epochs": 5, "batch_size": 32, "seed": 42, "learning_rate": 0.01}
DEFAULTS: dict[str, dict[str, Any]] = {
    "keras_text_classifier": {**_COMMON, "max_tokens": 20000, "embedding_dim": 32, "sequence_length": 64,
                              "positive_label": None},
    "keras_image_classifier": {**_COMMON, "epochs": 8, "learning_rate": 0.003, "image_size": None, "filters": 16,
                               "positive_label": None},
    "keras_tabular_classifier": {**_COMMON, "epochs": 10, "hidden_units": [32, 16], "positive_label": None},
    "keras_tabular_regressor": {**_COMMON, "epochs": 10, "hidden_units": [32, 16]},
}
_POSITIVE_INTS = {"epochs", "batch_size", "max_tokens", "embedding_dim", "sequence_length", "image_size", "filters"}
FORMAT = 1
# Rows per model call when predicting: big batches are what make CPU inference fast (256-row batches
# were 3-5x slower), and a bound keeps memory flat on a large shard or holdout. Image models take
# fewer rows, so that one call's first convolution output stays within PREDICT_VALUES floats (64 MB).
PREDICT_ROWS = 8192
PREDICT_VALUES = 1 << 24


@dataclass(frozen=True)
class Loaded:
    """A saved model, loaded: the network, its metadata and class labels."""

    model: Any  # keras.Model
    meta: dict[str, Any]
    classes: list  # class labels in output order; [] for regressors


@dataclass(frozen=True)
class Prediction:
    """Predicted values, and class probabilities for classifiers."""

    values: list  # predicted labels (classifiers) or numbers (regressors)
    scores: np.ndarray | None  # class probabilities, one column per class; None for regressors


# --- checks (no TensorFlow) ----------------------------------------------------------

def resolve_params(model: dict[str, Any]) -> dict[str, Any]:
    """The model's params with defaults filled in; unknown names and bad values are errors."""
    kind = model["type"]
    if kind not in DEFAULTS:
        backends = ", ".join(sorted(MODEL_TYPES[kind].backends)) if kind in MODEL_TYPES else "none"
        raise ValueError(f"model type `{kind}` cannot be trained by the Keras trainer (it runs on: {backends})")
    given = dict(model.get("params") or {})
    unknown = sorted(set(given) - set(DEFAULTS[kind]))
    if unknown:
        raise ValueError(f"train.model.params: unknown parameter(s) {', '.join(unknown)} for `{kind}`; "
                         f"known: {', '.join(sorted(DEFAULTS[kind]))}")
    params = {**DEFAULTS[kind], **given}
    for name in _POSITIVE_INTS & set(params):
        value = params[name]
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise ValueError(f"train.model.params.{name}: expected a positive integer, got {value!r}")
    if isinstance(params["seed"], bool) or not isinstance(params["seed"], int):
        raise ValueError(f"train.model.params.seed: expected an integer, got {params['seed']!r}")
    rate = params["learning_rate"]
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 < rate < 10:
        raise ValueError(f"train.model.params.learning_rate: expected a number in (0, 10), got {rate!r}")
    if "hidden_units" in params:
        units = params["hidden_units"]
        units = [units] if isinstance(units, int) and not isinstance(units, bool) else units
        if not isinstance(units, list) or not all(isinstance(u, int) and not isinstance(u, bool) and u > 0
                                                  for u in units):
            raise ValueError(f"train.model.params.hidden_units: expected positive integers, got {units!r}")
        params["hidden_units"] = units
    return params


def task_of(model_type: str) -> str:
    """The task of a model type (`classification`, `regression`, ...)."""
    return MODEL_TYPES[model_type].task


def check_columns(model: dict[str, Any], params: dict[str, Any], table: Any, source: str) -> dict[str, Any]:
    """Check the column types the model type needs; returns params with `image_size` settled."""
    kind, features = model["type"], model["features"]
    if kind in ("keras_text_classifier", "keras_image_classifier") and len(features) != 1:
        raise ValueError(f"`{kind}` takes exactly one feature column, got {features}")
    if kind == "keras_text_classifier":
        _check_text(table, features[0], source)
    elif kind == "keras_image_classifier":
        params = {**params, "image_size": _check_image(table, features[0], params["image_size"], source)}
    else:
        for name in features:
            if not _numeric(table.schema.field(name).type):
                raise TypeError(f"{source}: feature `{name}` has type {table.schema.field(name).type}; tabular "
                                "models take numeric columns (encode categories as numbers in a transform)")
    label_type = table.schema.field(model["label"]).type
    if task_of(kind) == "regression" and not _numeric(label_type):
        raise TypeError(f"{source}: label `{model['label']}` has type {label_type}; a regressor needs numbers")
    return params


def _check_text(table: Any, name: str, source: str) -> None:
    import pyarrow as pa

    kind = table.schema.field(name).type
    if not (pa.types.is_string(kind) or pa.types.is_large_string(kind)):
        raise TypeError(f"{source}: text column `{name}` has type {kind}, expected string")


def _check_image(table: Any, name: str, size: int | None, source: str) -> int:
    """The image side length: `size` if given, else inferred from the first row; every row must match."""
    import pyarrow as pa
    import pyarrow.compute as pc

    kind = table.schema.field(name).type
    if not (pa.types.is_list(kind) or pa.types.is_large_list(kind) or pa.types.is_fixed_size_list(kind)) \
            or not _numeric(kind.value_type):
        raise TypeError(f"{source}: image column `{name}` has type {kind}; expected a list of numbers "
                        "(grayscale pixels, row by row)")
    lengths = pc.list_value_length(table.column(name)).to_numpy(zero_copy_only=False)
    side = size or (math.isqrt(int(lengths[0])) if len(lengths) else 0)
    wrong = np.flatnonzero(lengths != side * side)
    if len(wrong):
        raise ValueError(f"{source}: image column `{name}`: {len(wrong)} row(s) do not hold {side}x{side}="
                         f"{side * side} pixels (one has {int(lengths[wrong[0]])})"
                         + ("" if size else "; set train.model.params.image_size"))
    return side


def _numeric(kind: Any) -> bool:
    import pyarrow as pa

    return pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind) \
        or pa.types.is_decimal(kind)


def _input_name(feature: str) -> str:
    """Keras input names must be plain identifiers; the metadata maps columns to them."""
    return "in_" + re.sub(r"\W", "_", feature)


# --- fit, save, load, predict --------------------------------------------------------

def fit(model: dict[str, Any], params: dict[str, Any], table: Any) -> tuple[Any, list, dict[str, Any]]:
    """Train on `table` with fixed seeds; returns (keras model, classes, metadata)."""
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(params["seed"])
    tf.config.experimental.enable_op_determinism()  # same seed and data → same weights
    kind, task = model["type"], task_of(model["type"])
    meta = {"format": FORMAT, "model_type": kind, "task": task, "features": list(model["features"]),
            "label": model["label"], "inputs": {f: _input_name(f) for f in model["features"]}, "params": params}
    inputs = _inputs(meta, table)
    raw_labels = table.column(model["label"]).to_pylist()
    if task == "classification":
        classes = sorted(set(raw_labels), key=label_order_key)
        if len(classes) < 2:
            raise ValueError(f"label `{model['label']}` has a single value {classes!r} in the training data: "
                             "nothing to learn")
        positive = params.get("positive_label")
        if positive is not None and positive not in classes:
            raise ValueError(f"train.model.params.positive_label {positive!r} is not a label ({classes})")
        meta["positive_label"] = classes[-1] if positive is None else positive
        index = {label: i for i, label in enumerate(classes)}
        targets = np.array([index[v] for v in raw_labels], dtype=np.int64)
        loss = "sparse_categorical_crossentropy"
    else:
        classes, targets, loss = [], np.asarray(raw_labels, dtype=np.float32), "mse"
    network = _BUILDERS[kind](keras, params, meta, inputs, targets, len(classes))
    # The metric is only watched (the training report's curves): it does not change the weights.
    watched = ["accuracy"] if task == "classification" else ["mae"]
    network.compile(optimizer=keras.optimizers.Adam(params["learning_rate"]), loss=loss, metrics=watched)
    history = network.fit(inputs, targets, epochs=params["epochs"], batch_size=params["batch_size"],
                          shuffle=True, verbose=2)
    meta["final_loss"] = float(history.history["loss"][-1])
    meta["history"] = {name: [float(value) for value in values] for name, values in history.history.items()}
    return network, classes, meta


def _text(keras: Any, params: dict, meta: dict, inputs: dict, targets: Any, classes: int) -> Any:
    feature = meta["features"][0]
    name = meta["inputs"][feature]
    vectorize = keras.layers.TextVectorization(max_tokens=params["max_tokens"], name="vectorize",
                                               output_sequence_length=params["sequence_length"])
    vectorize.adapt(inputs[name][:, 0])
    text = keras.Input(shape=(1,), dtype="string", name=name)
    x = vectorize(text)
    x = keras.layers.Embedding(vectorize.vocabulary_size(), params["embedding_dim"], mask_zero=True)(x)
    x = keras.layers.GlobalAveragePooling1D()(x)
    outputs = keras.layers.Dense(classes, activation="softmax")(x)
    return keras.Model({name: text}, outputs)


def _tabular(keras: Any, params: dict, meta: dict, inputs: dict, targets: Any, classes: int) -> Any:
    columns = {name: keras.Input(shape=(1,), dtype="float32", name=name) for name in meta["inputs"].values()}
    x = keras.layers.Concatenate()(list(columns.values())) if len(columns) > 1 else next(iter(columns.values()))
    normalize = keras.layers.Normalization()
    normalize.adapt(np.concatenate(list(inputs.values()), axis=1))
    x = normalize(x)
    for units in params["hidden_units"]:
        x = keras.layers.Dense(units, activation="relu")(x)
    if classes:
        outputs = keras.layers.Dense(classes, activation="softmax")(x)
    else:
        # Train in standard units, answer in the label's units: the scaling is part of the model.
        mean, std = float(np.mean(targets)), float(np.std(targets)) or 1.0
        outputs = keras.layers.Rescaling(scale=std, offset=mean)(keras.layers.Dense(1)(x))
    return keras.Model(columns, outputs)


def _image(keras: Any, params: dict, meta: dict, inputs: dict, targets: Any, classes: int) -> Any:
    size, name = params["image_size"], meta["inputs"][meta["features"][0]]
    pixels = inputs[name]
    mean, std = float(pixels.mean()), float(pixels.std()) or 1.0
    image = keras.Input(shape=(size * size,), dtype="float32", name=name)
    x = keras.layers.Rescaling(scale=1 / std, offset=-mean / std)(image)
    x = keras.layers.Reshape((size, size, 1))(x)
    x = keras.layers.Conv2D(params["filters"], 3, padding="same", activation="relu")(x)
    x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Conv2D(params["filters"] * 2, 3, padding="same", activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(classes, activation="softmax")(x)
    return keras.Model({name: image}, outputs)


_BUILDERS = {"keras_text_classifier": _text, "keras_tabular_classifier": _tabular,
             "keras_tabular_regressor": _tabular, "keras_image_classifier": _image}


def _inputs(meta: dict[str, Any], table: Any) -> dict[str, Any]:
    """The raw columns as the model's named inputs."""
    out = {}
    for feature, name in meta["inputs"].items():
        if feature not in table.column_names:
            raise KeyError(f"the model reads column `{feature}`, which the data does not have "
                           f"(it has {', '.join(table.column_names)})")
        column = table.column(feature)
        if meta["model_type"] == "keras_text_classifier":
            import tensorflow as tf  # Keras' array adapters take no string arrays; tensors they take

            out[name] = tf.constant(column.to_numpy(zero_copy_only=False).reshape(-1, 1), dtype=tf.string)
        elif meta["model_type"] == "keras_image_classifier":
            flat = np.asarray(column.combine_chunks().flatten().to_numpy(zero_copy_only=False), dtype=np.float32)
            pixels = meta["params"]["image_size"] ** 2
            if flat.size != table.num_rows * pixels:
                raise ValueError(f"image column `{feature}`: the model takes {pixels} pixels per row, "
                                 f"the data has {flat.size} in {table.num_rows} rows")
            out[name] = flat.reshape(table.num_rows, pixels)
        else:
            out[name] = np.asarray(column.to_numpy(zero_copy_only=False), dtype=np.float32).reshape(-1, 1)
    return out


def save(network: Any, classes: list, meta: dict[str, Any], directory: Path) -> Path:
    """Save a network with its labels and metadata to `directory`; the directory."""
    directory.mkdir(parents=True, exist_ok=True)
    network.save(directory / "model.keras")
    if meta["task"] == "classification":
        (directory / "labels.json").write_text(json.dumps(classes))
    (directory / "pipespec.json").write_text(json.dumps(meta, indent=2, sort_keys=True, default=str))
    return directory


def load(directory: Path) -> Loaded:
    """A model saved by `save`; ValueError for another format."""
    import keras

    meta = json.loads((directory / "pipespec.json").read_text())
    if meta.get("format") != FORMAT:
        raise ValueError(f"{directory}: model format {meta.get('format')!r}, this task library reads {FORMAT}")
    labels = directory / "labels.json"
    classes = json.loads(labels.read_text()) if labels.exists() else []
    return Loaded(keras.models.load_model(directory / "model.keras"), meta, classes)


def rows_per_call(meta: dict[str, Any]) -> int:
    """How many rows `predict` gives the model at once (see PREDICT_ROWS)."""
    if meta["model_type"] != "keras_image_classifier":
        return PREDICT_ROWS
    activations = meta["params"]["image_size"] ** 2 * meta["params"]["filters"]
    return max(1, min(PREDICT_ROWS, PREDICT_VALUES // activations))


def predict(loaded: Loaded, table: Any, chunk_rows: int | None = None) -> Prediction:
    """The model's answers for every row of `table`: evaluation, training metrics and batch inference
    all predict here.

    One compiled call per chunk of `chunk_rows` rows (`predict_on_batch`; default
    `rows_per_call`), converting only that chunk's columns, so memory stays bounded by the chunk
    whatever the table's size.
    `model.predict` would build a tf.data pipeline on every call, which was most of the time of a
    10,000-row inference shard. The outputs are exactly those of
    `model.predict(inputs, batch_size=chunk_rows)`: the same rows go through the same function.
    """
    chunk_rows = rows_per_call(loaded.meta) if chunk_rows is None else chunk_rows
    if chunk_rows < 1:
        raise ValueError(f"chunk_rows must be positive, got {chunk_rows}")
    chunks = [np.asarray(loaded.model.predict_on_batch(_inputs(loaded.meta, table.slice(start, chunk_rows))))
              for start in range(0, table.num_rows, chunk_rows)]
    width = len(loaded.classes) if loaded.meta["task"] == "classification" else 1
    output = np.concatenate(chunks) if chunks else np.zeros((0, width), np.float32)
    if loaded.meta["task"] == "classification":
        return Prediction([loaded.classes[i] for i in output.argmax(axis=1)], output)
    return Prediction(output.reshape(-1).astype(float).tolist(), None)
