"""The metrics a spec can name (`pipespec.schemas.catalog.METRICS`), in plain numpy.

Classification metrics take true and predicted labels (any hashable values:
strings, ints, bools). Binary metrics (`precision`, `recall`, `f1`) need a
`positive` label; `roc_auc` takes one score column per class. Where a metric is
undefined for the data (binary precision on three classes, AUC on a holdout
with a single class) a `ValueError` says why, so a decision is never taken on
a meaningless number. Structured outputs such as
`request_explanation(release_year[2005], rating[excellent])` are parsed
leniently: a malformed string counts as wrong, it never raises.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

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


def _counts(y_true: Sequence, y_pred: Sequence) -> tuple[np.ndarray, np.ndarray, np.ndarray, list]:
    """Per label: true positives, predicted count, actual count."""
    true, pred, labels = _encode(y_true, y_pred)
    size = len(labels)
    tp = np.bincount(true[true == pred], minlength=size).astype(float)
    return tp, np.bincount(pred, minlength=size).astype(float), np.bincount(true, minlength=size).astype(float), labels


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    # 0/0 counts as 0 (a class never predicted has precision 0), like sklearn's zero_division=0.
    return np.divide(numerator, denominator, out=np.zeros_like(numerator), where=denominator > 0)


def _f1_per_label(y_true: Sequence, y_pred: Sequence) -> tuple[np.ndarray, np.ndarray, list]:
    tp, predicted, actual, labels = _counts(y_true, y_pred)
    return _ratio(2 * tp, predicted + actual), actual, labels


def accuracy(y_true: Sequence, y_pred: Sequence) -> float:
    """The share of predictions equal to the truth."""
    true, pred, _ = _encode(y_true, y_pred)
    return float(np.mean(true == pred))


def _binary(y_true: Sequence, y_pred: Sequence, positive: Any, classes: Sequence | None,
            name: str) -> tuple[float, float, float]:
    """(true positives, predicted positives, actual positives) for the positive label."""
    seen = set(classes) if classes is not None else set(y_true) | set(y_pred)
    if len(seen) > 2:
        raise ValueError(f"`{name}` is a binary metric but there are {len(seen)} classes "
                         f"({', '.join(map(str, sorted(seen, key=label_order_key)))}): choose f1_macro or f1_weighted")
    _encode(y_true, y_pred)  # length checks
    true = np.array([v == positive for v in y_true])
    pred = np.array([v == positive for v in y_pred])
    return float(np.sum(true & pred)), float(np.sum(pred)), float(np.sum(true))


def precision(y_true: Sequence, y_pred: Sequence, positive: Any = 1, classes: Sequence | None = None) -> float:
    """Binary precision for the `positive` label; 0 when nothing is predicted positive."""
    tp, predicted, _ = _binary(y_true, y_pred, positive, classes, "precision")
    return tp / predicted if predicted else 0.0


def recall(y_true: Sequence, y_pred: Sequence, positive: Any = 1, classes: Sequence | None = None) -> float:
    """Binary recall for the `positive` label; 0 when nothing is positive."""
    tp, _, actual = _binary(y_true, y_pred, positive, classes, "recall")
    return tp / actual if actual else 0.0


def f1(y_true: Sequence, y_pred: Sequence, positive: Any = 1, classes: Sequence | None = None) -> float:
    """Binary F1 for the `positive` label; 0 when there are no positives."""
    tp, predicted, actual = _binary(y_true, y_pred, positive, classes, "f1")
    return 2 * tp / (predicted + actual) if predicted + actual else 0.0


def f1_macro(y_true: Sequence, y_pred: Sequence) -> float:
    """Unweighted mean F1 over every label that is true or predicted somewhere."""
    per_label, _, _ = _f1_per_label(y_true, y_pred)
    return float(np.mean(per_label))


def f1_weighted(y_true: Sequence, y_pred: Sequence) -> float:
    """Mean F1 weighted by each label's true count."""
    per_label, actual, _ = _f1_per_label(y_true, y_pred)
    return float(np.sum(per_label * actual) / np.sum(actual))


def _rank_average(values: np.ndarray) -> np.ndarray:
    """1-based ranks, ties sharing their average rank (what the Mann-Whitney AUC needs)."""
    order = np.argsort(values, kind="mergesort")
    ordered = values[order]
    starts = np.r_[0, np.flatnonzero(ordered[1:] != ordered[:-1]) + 1]
    ends = np.r_[starts[1:], len(values)]
    ranks = np.empty(len(values))
    for start, end in zip(starts, ends):
        ranks[order[start:end]] = (start + end + 1) / 2
    return ranks


def _auc(is_positive: np.ndarray, score: np.ndarray) -> float:
    positives = int(is_positive.sum())
    negatives = len(is_positive) - positives
    ranks = _rank_average(score)
    return float((ranks[is_positive].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def roc_auc(y_true: Sequence, scores: Any, classes: Sequence, positive: Any = None) -> float:
    """Binary AUC of the positive class's score, or one-vs-rest macro AUC for more classes.

    `scores[:, j]` is the score of `classes[j]`. One-vs-rest averages over the
    classes that have both positive and negative rows in `y_true`.
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
        return _auc(is_positive, scores[:, classes.index(positive)])
    aucs = []
    for j, label in enumerate(classes):
        is_positive = truth == label
        if is_positive.any() and not is_positive.all():
            aucs.append(_auc(is_positive, scores[:, j]))
    if not aucs:
        raise ValueError("roc_auc is undefined: the holdout has rows of only one class")
    return float(np.mean(aucs))


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
    true, pred = _numbers(y_true, y_pred)
    return float(np.sqrt(np.mean((true - pred) ** 2)))


def mae(y_true: Sequence, y_pred: Sequence) -> float:
    """Mean absolute error."""
    true, pred = _numbers(y_true, y_pred)
    return float(np.mean(np.abs(true - pred)))


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
