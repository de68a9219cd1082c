"""The metrics a spec can name (`pipespec.schemas.catalog.METRICS`), computed by scikit-learn;
exact match and slot F1 of structured outputs are ours (no library scores them).

Classification metrics take true and predicted labels (any hashable values:
strings, ints, bools, even mixed): they are encoded as indices into one sorted
label list before scikit-learn sees them. Binary metrics (`precision`, `recall`,
`f1`) need a `positive` label; `roc_auc` takes one score column per class. Where
a metric is undefined for the data (binary precision on three classes, AUC on a
holdout with a single class) a `ValueError` says why, so a decision is never
taken on a meaningless number. Structured outputs such as
`request_explanation(release_year[2005], rating[excellent])` are parsed
leniently: a malformed string counts as wrong, it never raises.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from sklearn import metrics as sk

# --- classification ------------------------------------------------------------


def _encode(y_true: Sequence, y_pred: Sequence) -> tuple[np.ndarray, np.ndarray, list]:
    """Both label sequences as indices into the sorted union of their labels."""
    if len(y_true) != len(y_pred):
        raise ValueError(f"{len(y_true)} true labels but {len(y_pred)} predictions")
    if len(y_true) == 0:
        raise ValueError("no rows to score")
    labels = sorted(set(y_true) | set(y_pred), key=label_order_key)
    index = {label: i for i, label in enumerate(labels)}
    return (np.array([index[v] for v in y_true], dtype=np.int64),
            np.array([index[v] for v in y_pred], dtype=np.int64), labels)


def label_order_key(value: Any) -> tuple:
    """Sort key for class labels: numbers by value, anything else by text."""
    # Numbers sort as numbers, everything else by text; mixed types never raise.
    if isinstance(value, (bool, int, float, np.number)):
        return (0, float(value), "")
    return (1, 0.0, str(value))


def accuracy(y_true: Sequence, y_pred: Sequence) -> float:
    """The share of predictions equal to the truth."""
    true, pred, _ = _encode(y_true, y_pred)
    return float(sk.accuracy_score(true, pred))


def _binary(y_true: Sequence, y_pred: Sequence, positive: Any, classes: Sequence | None,
            name: str) -> tuple[float, float, float]:
    """(precision, recall, F1) of the positive label; ValueError for more than two classes."""
    seen = set(classes) if classes is not None else set(y_true) | set(y_pred)
    if len(seen) > 2:
        raise ValueError(f"`{name}` is a binary metric but there are {len(seen)} classes "
                         f"({', '.join(map(str, sorted(seen, key=label_order_key)))}): choose f1_macro or f1_weighted")
    _encode(y_true, y_pred)  # length checks
    true = np.array([v == positive for v in y_true])
    pred = np.array([v == positive for v in y_pred])
    # labels=[True]: defined even when the positive label never occurs (0, as zero_division=0 says).
    p, r, f, _ = sk.precision_recall_fscore_support(true, pred, labels=[True], average=None, zero_division=0)
    return float(p[0]), float(r[0]), float(f[0])


def precision(y_true: Sequence, y_pred: Sequence, positive: Any = 1, classes: Sequence | None = None) -> float:
    """Binary precision for the `positive` label; 0 when nothing is predicted positive."""
    return _binary(y_true, y_pred, positive, classes, "precision")[0]


def recall(y_true: Sequence, y_pred: Sequence, positive: Any = 1, classes: Sequence | None = None) -> float:
    """Binary recall for the `positive` label; 0 when nothing is positive."""
    return _binary(y_true, y_pred, positive, classes, "recall")[1]


def f1(y_true: Sequence, y_pred: Sequence, positive: Any = 1, classes: Sequence | None = None) -> float:
    """Binary F1 for the `positive` label; 0 when there are no positives."""
    return _binary(y_true, y_pred, positive, classes, "f1")[2]


def f1_macro(y_true: Sequence, y_pred: Sequence) -> float:
    """Unweighted mean F1 over every label that is true or predicted somewhere."""
    true, pred, _ = _encode(y_true, y_pred)
    return float(sk.f1_score(true, pred, average="macro", zero_division=0))


def f1_weighted(y_true: Sequence, y_pred: Sequence) -> float:
    """Mean F1 weighted by each label's true count."""
    true, pred, _ = _encode(y_true, y_pred)
    return float(sk.f1_score(true, pred, average="weighted", zero_division=0))


def roc_auc(y_true: Sequence, scores: Any, classes: Sequence, positive: Any = None) -> float:
    """Binary AUC of the positive class's score, or one-vs-rest macro AUC for more classes.

    `scores[:, j]` is the score of `classes[j]`. One-vs-rest averages over the
    classes that have both positive and negative rows in `y_true` (scikit-learn's
    multi-class AUC would refuse a holdout that lacks a class).
    """
    scores = np.asarray(scores, dtype=float)
    classes = list(classes)
    if scores.ndim != 2 or scores.shape != (len(y_true), len(classes)):
        raise ValueError(f"scores must have shape ({len(y_true)}, {len(classes)}), not {scores.shape}")
    truth = np.array(list(y_true), dtype=object)
    if len(classes) == 2:
        positive = classes[-1] if positive is None else positive
        is_positive = truth == positive
        if is_positive.all() or not is_positive.any():
            raise ValueError("roc_auc is undefined: the holdout has rows of only one class")
        return float(sk.roc_auc_score(is_positive, scores[:, classes.index(positive)]))
    aucs = [sk.roc_auc_score(truth == label, scores[:, j]) for j, label in enumerate(classes)
            if (truth == label).any() and not (truth == label).all()]
    if not aucs:
        raise ValueError("roc_auc is undefined: the holdout has rows of only one class")
    return float(np.mean(aucs))


def class_report(y_true: Sequence, y_pred: Sequence, classes: Sequence = ()) -> dict[str, Any]:
    """The confusion matrix and per-class precision, recall, F1 and support, for the report.

    Labels are `classes` (the model's, in output order) followed by any other label
    seen in the data; `confusion[i][j]` counts rows of label i predicted as label j.
    Returns {"labels": [str], "confusion": [[int]], "per_class": [{label, precision, recall, f1, support}]}.
    """
    true, pred, seen = _encode(y_true, y_pred)
    order = list(classes) + [label for label in seen if label not in set(classes)]
    index = [seen.index(label) if label in seen else -1 - i for i, label in enumerate(order)]
    matrix = sk.confusion_matrix(true, pred, labels=index)
    p, r, f, support = sk.precision_recall_fscore_support(true, pred, labels=index, average=None, zero_division=0)
    names = [str(label) for label in order]
    return {"labels": names, "confusion": matrix.tolist(),
            "per_class": [{"label": name, "precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]),
                           "support": int(support[i])} for i, name in enumerate(names)]}


# --- regression ------------------------------------------------------------------

def _numbers(y_true: Sequence, y_pred: Sequence) -> tuple[np.ndarray, np.ndarray]:
    true, pred = np.asarray(y_true, dtype=float).ravel(), np.asarray(y_pred, dtype=float).ravel()
    if true.shape != pred.shape:
        raise ValueError(f"{len(true)} true values but {len(pred)} predictions")
    if len(true) == 0:
        raise ValueError("no rows to score")
    return true, pred


def rmse(y_true: Sequence, y_pred: Sequence) -> float:
    """Root mean squared error."""
    return float(sk.root_mean_squared_error(*_numbers(y_true, y_pred)))


def mae(y_true: Sequence, y_pred: Sequence) -> float:
    """Mean absolute error."""
    return float(sk.mean_absolute_error(*_numbers(y_true, y_pred)))


# --- structured outputs ------------------------------------------------------------

_CALL = re.compile(r"^\s*(\w+)\s*\((.*)\)\s*$", re.DOTALL)
_SLOT = re.compile(r"\s*(\w+)\s*\[([^\[\]]*)\]\s*(?:,|$)")


def parse_structured(text: Any) -> tuple[str, list[tuple[str, str]]] | None:
    """`fn(slot[value], ...)` → (fn, [(slot, value), ...]); None when malformed."""
    if not isinstance(text, str):
        return None
    call = _CALL.match(text)
    if call is None:
        return None
    function, body = call.group(1), call.group(2)
    slots, position = [], 0
    while position < len(body):
        if not body[position:].strip():
            break
        slot = _SLOT.match(body, position)
        if slot is None:
            return None
        slots.append((slot.group(1), slot.group(2).strip()))
        position = slot.end()
    if body.rstrip().endswith(","):
        return None
    return function, slots


def _triples(text: Any) -> Counter:
    """The (function, slot, value) triples of an output; a slot-less call counts as one triple."""
    parsed = parse_structured(text)
    if parsed is None:
        return Counter()
    function, slots = parsed
    return Counter([(function, slot, value) for slot, value in slots] or [(function, "", "")])


def _normalise(text: Any) -> str | None:
    return " ".join(text.split()) if isinstance(text, str) else None


def exact_match(y_true: Sequence, y_pred: Sequence) -> float:
    """Share of outputs equal to the reference (whitespace-normalised)."""
    if len(y_true) != len(y_pred):
        raise ValueError(f"{len(y_true)} references but {len(y_pred)} predictions")
    if len(y_true) == 0:
        raise ValueError("no rows to score")
    return float(np.mean([_normalise(t) is not None and _normalise(t) == _normalise(p)
                          for t, p in zip(y_true, y_pred)]))


def slot_f1(y_true: Sequence, y_pred: Sequence) -> float:
    """Micro F1 over (function, slot, value) triples; a malformed prediction contributes no triples."""
    if len(y_true) != len(y_pred):
        raise ValueError(f"{len(y_true)} references but {len(y_pred)} predictions")
    if len(y_true) == 0:
        raise ValueError("no rows to score")
    matched = predicted = actual = 0
    for reference, prediction in zip(y_true, y_pred):
        truth, guess = _triples(reference), _triples(prediction)
        matched += sum((truth & guess).values())
        predicted += sum(guess.values())
        actual += sum(truth.values())
    return 2 * matched / (predicted + actual) if predicted + actual else 0.0


# --- all metrics of a task ------------------------------------------------------------

def classification_scores(y_true: Sequence, y_pred: Sequence, scores: Any, classes: Sequence,
                          positive: Any = None, required: str | None = None) -> dict[str, float | None]:
    """Every classification metric; None where it is undefined for this data, except
    `required` (the deciding metric), whose problem is raised."""
    positive = classes[-1] if positive is None and len(classes) else positive
    binary = dict(positive=positive, classes=classes)
    metrics: dict[str, Callable[[], float]] = {
        "accuracy": lambda: accuracy(y_true, y_pred),
        "precision": lambda: precision(y_true, y_pred, **binary),
        "recall": lambda: recall(y_true, y_pred, **binary),
        "f1": lambda: f1(y_true, y_pred, **binary),
        "f1_macro": lambda: f1_macro(y_true, y_pred),
        "f1_weighted": lambda: f1_weighted(y_true, y_pred),
        "roc_auc": lambda: roc_auc(y_true, scores, classes, positive),
    }
    return _defined(metrics, required)


def regression_scores(y_true: Sequence, y_pred: Sequence, required: str | None = None) -> dict[str, float | None]:
    """Every regression metric; None where undefined, except `required`, which raises."""
    return _defined({"rmse": lambda: rmse(y_true, y_pred), "mae": lambda: mae(y_true, y_pred)}, required)


def structured_scores(y_true: Sequence, y_pred: Sequence, required: str | None = None) -> dict[str, float | None]:
    """Every structured-output metric; None where undefined, except `required`, which raises."""
    return _defined({"exact_match": lambda: exact_match(y_true, y_pred),
                     "slot_f1": lambda: slot_f1(y_true, y_pred)}, required)


def _defined(metrics: dict[str, Callable[[], float]], required: str | None) -> dict[str, float | None]:
    if required is not None and required not in metrics:
        raise ValueError(f"metric `{required}` does not apply here; choose one of {', '.join(metrics)}")
    out: dict[str, float | None] = {}
    for name, compute in metrics.items():
        try:
            out[name] = compute()
        except ValueError:
            if name == required:
                raise
            out[name] = None
    return out
