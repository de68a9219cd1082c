"""Metrics against hand-computed values and, where it has them, scikit-learn."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn import metrics as sk

from pipespec.schemas.catalog import METRICS
from pipespec.tasklib.model import metrics as m


def test_multiclass_by_hand():
    truth = ["a", "a", "b", "b", "c", "c"]
    guess = ["a", "b", "b", "b", "c", "a"]
    # a: P=1/2 R=1/2 F1=1/2; b: P=2/3 R=1 F1=4/5; c: P=1 R=1/2 F1=2/3
    assert m.accuracy(truth, guess) == pytest.approx(4 / 6)
    assert m.f1_macro(truth, guess) == pytest.approx((1 / 2 + 4 / 5 + 2 / 3) / 3)
    weighted_truth = ["a", "a", "a", "b", "c", "c"]
    weighted_guess = ["a", "a", "b", "b", "c", "a"]
    # a: P=2/3 R=2/3 F1=2/3 (3 rows); b: P=1/2 R=1 F1=2/3 (1 row); c: P=1 R=1/2 F1=2/3 (2 rows)
    assert m.f1_weighted(weighted_truth, weighted_guess) == pytest.approx(2 / 3)


def test_binary_by_hand():
    truth = [1, 0, 1, 1, 0, 0, 1]
    guess = [1, 0, 0, 1, 1, 0, 1]
    assert m.accuracy(truth, guess) == pytest.approx(5 / 7)
    assert m.precision(truth, guess) == m.recall(truth, guess) == m.f1(truth, guess) == pytest.approx(0.75)
    assert m.precision(truth, guess, positive=0) == pytest.approx(2 / 3)
    assert m.precision(["no"] * 3, ["no"] * 3, positive="yes", classes=["no", "yes"]) == 0.0  # never predicted


def test_roc_auc_by_hand_with_ties():
    assert m.roc_auc([0, 0, 1, 1], [[0.9, 0.1], [0.6, 0.4], [0.65, 0.35], [0.2, 0.8]], [0, 1]) == pytest.approx(0.75)
    # positive 0.5 ties negative 0.5 (counts 1/2); every other pair is ordered right: 3.5 / 4
    scores = [[0.5, 0.5], [0.5, 0.5], [0.8, 0.2], [0.1, 0.9]]
    assert m.roc_auc(["n", "y", "n", "y"], scores, ["n", "y"]) == pytest.approx(0.875)
    assert m.roc_auc(["n", "y", "n", "y"], scores, ["n", "y"], positive="n") == pytest.approx(0.875)


def test_regression_by_hand():
    assert m.mae([1, 2, 3], [1, 3, 5]) == pytest.approx(1.0)
    assert m.rmse([1, 2, 3], [1, 3, 5]) == pytest.approx(math.sqrt(5 / 3))


@pytest.mark.parametrize("seed", range(12))
def test_classification_agrees_with_sklearn(seed):
    rng = np.random.default_rng(seed)
    classes = ["cat", "dog", "eel", "fox"][: 2 + seed % 3]
    truth = list(rng.choice(classes, 60))
    guess = [t if rng.random() < 0.6 else rng.choice(classes) for t in truth]
    scores = rng.dirichlet(np.ones(len(classes)), 60)
    scores[np.arange(60), [classes.index(t) for t in truth]] += rng.random(60)  # some signal, some ties broken
    scores = np.round(scores / scores.sum(axis=1, keepdims=True), 2)  # rounding creates ties
    scores = scores / scores.sum(axis=1, keepdims=True)
    assert m.accuracy(truth, guess) == pytest.approx(sk.accuracy_score(truth, guess))
    assert m.f1_macro(truth, guess) == pytest.approx(sk.f1_score(truth, guess, average="macro", zero_division=0))
    assert m.f1_weighted(truth, guess) == pytest.approx(sk.f1_score(truth, guess, average="weighted", zero_division=0))
    if len(classes) == 2:
        positive = classes[1]
        for ours, theirs in ((m.precision, sk.precision_score), (m.recall, sk.recall_score), (m.f1, sk.f1_score)):
            assert ours(truth, guess, positive=positive) == pytest.approx(
                theirs(truth, guess, pos_label=positive, zero_division=0))
        expected = sk.roc_auc_score([t == positive for t in truth], scores[:, 1])
    else:
        expected = sk.roc_auc_score(truth, scores, multi_class="ovr", average="macro", labels=classes)
    assert m.roc_auc(truth, scores, classes) == pytest.approx(expected)


def test_regression_agrees_with_sklearn():
    rng = np.random.default_rng(3)
    truth, guess = rng.normal(10, 3, 50), rng.normal(10, 3, 50)
    assert m.rmse(truth, guess) == pytest.approx(math.sqrt(sk.mean_squared_error(truth, guess)))
    assert m.mae(truth, guess) == pytest.approx(sk.mean_absolute_error(truth, guess))


def test_undefined_metrics_are_none_unless_they_decide():
    truth, guess = ["a", "b", "c", "a"], ["a", "b", "b", "a"]
    scores = np.full((4, 3), 1 / 3)
    with pytest.raises(ValueError, match="binary metric but there are 3 classes .*f1_macro"):
        m.precision(truth, guess, positive="c", classes=["a", "b", "c"])
    every = m.classification_scores(truth, guess, scores, ["a", "b", "c"])
    assert every["precision"] is None and every["f1"] is None and every["accuracy"] == pytest.approx(0.75)
    with pytest.raises(ValueError, match="binary metric"):
        m.classification_scores(truth, guess, scores, ["a", "b", "c"], required="f1")
    one_class = m.classification_scores(["a", "a"], ["a", "b"], [[0.6, 0.4], [0.3, 0.7]], ["a", "b"])
    assert one_class["roc_auc"] is None and one_class["accuracy"] == 0.5
    with pytest.raises(ValueError, match="only one class"):
        m.classification_scores(["a", "a"], ["a", "b"], [[0.6, 0.4], [0.3, 0.7]], ["a", "b"], required="roc_auc")
    with pytest.raises(ValueError, match="does not apply"):
        m.regression_scores([1.0], [2.0], required="f1_macro")
    with pytest.raises(ValueError, match="2 true labels but 1"):
        m.accuracy(["a", "b"], ["a"])


def test_every_catalog_metric_is_computed_for_its_task():
    by_task = {
        "classification": m.classification_scores(["a", "b"], ["a", "b"], [[0.9, 0.1], [0.2, 0.8]], ["a", "b"]),
        "regression": m.regression_scores([1.0, 2.0], [1.0, 2.5]),
        "structured_generation": m.structured_scores(["f(a[1])"], ["f(a[1])"]),
    }
    for name, metric in METRICS.items():
        (task,) = metric.tasks
        assert by_task[task][name] is not None, name
    assert set().union(*by_task.values()) == set(METRICS)


@pytest.mark.parametrize("text, parsed", [
    ("request_explanation(release_year[2005], rating[excellent])",
     ("request_explanation", [("release_year", "2005"), ("rating", "excellent")])),
    ("inform(name[The Division], genres[role-playing, shooter], esrb[M (for Mature)])",
     ("inform", [("name", "The Division"), ("genres", "role-playing, shooter"), ("esrb", "M (for Mature)")])),
    ("  confirm ( name [ Tetris ] )  ", ("confirm", [("name", "Tetris")])),
    ("goodbye()", ("goodbye", [])),
])
def test_structured_outputs_parse(text, parsed):
    assert m.parse_structured(text) == parsed


@pytest.mark.parametrize("text", [
    "", "inform", "inform(name[X]", "inform name[X])", "inform(name[X] rating[good])", "inform(name[X],)",
    "inform(name[X[Y]])", "inform(name X)", "inform(name[X]) trailing", "(name[X])", None, 42,
])
def test_malformed_structured_outputs_are_none(text):
    assert m.parse_structured(text) is None


def test_structured_scores_by_hand():
    truth = ["inform(name[X], rating[good])", "request(year[2005])", "goodbye()"]
    guess = ["inform(name[X], rating[bad])", "request(year[2005]", " goodbye() "]
    # triples: truth 2 + 1 + 1 = 4, guess 2 + 0 (malformed) + 1 = 3, matched name[X] and goodbye: 2
    assert m.slot_f1(truth, guess) == pytest.approx(2 * 2 / (3 + 4))
    assert m.exact_match(truth, guess) == pytest.approx(1 / 3)
    assert m.exact_match(["a(b[c])"], ["a(b[c])  "]) == 1.0
    assert m.slot_f1(["a(b[c], d[e])"], ["a(d[e], b[c])"]) == 1.0  # slot order does not matter
    assert m.slot_f1(["a(b[c])"], ["z(b[c])"]) == 0.0  # the function is part of every triple
    assert m.slot_f1(["broken("], ["broken("]) == 0.0


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.text(max_size=40), st.text(alphabet="abc()[], ", max_size=40)), min_size=1, max_size=8))
def test_structured_metrics_never_crash(pairs):
    truth, guess = [t for t, _ in pairs], [g for _, g in pairs]
    assert 0.0 <= m.slot_f1(truth, guess) <= 1.0
    assert 0.0 <= m.exact_match(truth, guess) <= 1.0
    assert m.slot_f1(guess, guess) in (0.0, 1.0)  # 0 only when nothing in them parses
