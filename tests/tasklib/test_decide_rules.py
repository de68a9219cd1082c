"""Decisions on several metrics: all-of / any-of, per-metric floors and minimum improvements,
each rule's verdict in the result (seed 000 keeps the champion if it is better on either)."""

from __future__ import annotations

import pytest
from hypothesis import given, strategies as st

from pipespec.tasklib.context import RunContext
from pipespec.tasklib.rollout.decide import decide

CTX = RunContext(dag_id="p__train", task_id="decide", run_id="r")
RULES = [{"metric": "exact_match", "direction": "max", "floor": 0.5, "min_improvement": 0.02},
         {"metric": "slot_f1", "direction": "max", "min_improvement": 0.0}]


def scores(challenger: dict, champion: dict | None) -> dict:
    first = next(iter(challenger))
    return {"challenger": challenger[first], "champion": champion and champion[first],
            "scores": {"challenger": challenger, "champion": champion}}


def run(challenger, champion, combine="all", rules=RULES):
    return decide(CTX, scores=scores(challenger, champion), direction="max", floor=None, min_improvement=0.0,
                  rules=rules, combine=combine)


def test_all_of_keeps_the_champion_when_it_is_better_on_either_metric():
    result = run({"exact_match": 0.80, "slot_f1": 0.90}, {"exact_match": 0.70, "slot_f1": 0.92})
    assert result["decision"] == "reject"
    assert [r["improved"] for r in result["rules"]] == [True, False]
    assert "slot_f1 0.9000 vs 0.9200 (-0.0200, needs +0.0000): not better" in result["reason"]


def test_all_of_promotes_when_better_on_every_metric_by_its_minimum():
    result = run({"exact_match": 0.80, "slot_f1": 0.93}, {"exact_match": 0.70, "slot_f1": 0.92})
    assert result["decision"] == "promote" and result["combine"] == "all"
    assert result["challenger"] == 0.80 and result["champion"] == 0.70  # the first rule's, for old readers


def test_any_of_promotes_when_better_on_one():
    result = run({"exact_match": 0.80, "slot_f1": 0.90}, {"exact_match": 0.70, "slot_f1": 0.92}, combine="any")
    assert result["decision"] == "promote"


def test_a_minimum_improvement_is_per_metric():
    result = run({"exact_match": 0.71, "slot_f1": 0.99}, {"exact_match": 0.70, "slot_f1": 0.92})
    assert result["decision"] == "reject" and result["rules"][0]["improved"] is False


def test_every_floor_holds_even_with_any_of_and_no_champion():
    result = run({"exact_match": 0.40, "slot_f1": 0.99}, None, combine="any")
    assert result["decision"] == "reject" and "exact_match 0.4000 misses the floor 0.5" in result["reason"]
    assert run({"exact_match": 0.60, "slot_f1": 0.10}, None)["decision"] == "promote"


def test_a_lower_is_better_metric_improves_downwards():
    rules = [{"metric": "rmse", "direction": "min", "floor": 10.0, "min_improvement": 0.5}]
    assert run({"rmse": 3.0}, {"rmse": 4.0}, rules=rules)["decision"] == "promote"
    assert run({"rmse": 3.8}, {"rmse": 4.0}, rules=rules)["decision"] == "reject"
    assert run({"rmse": 11.0}, None, rules=rules)["decision"] == "reject"


def test_a_metric_the_evaluation_did_not_produce_is_an_error_naming_what_it_has():
    with pytest.raises(ValueError, match="no `f1_macro` for the challenger.*exact_match, slot_f1"):
        run({"exact_match": 0.8, "slot_f1": 0.9}, None, rules=[{"metric": "f1_macro"}])


unit = st.floats(0, 1)


@given(unit, unit, unit, unit, st.sampled_from(["all", "any"]))
def test_promotion_means_the_challenger_beat_the_champion_as_the_rules_say(c1, c2, k1, k2, combine):
    result = run({"exact_match": c1, "slot_f1": c2}, {"exact_match": k1, "slot_f1": k2}, combine=combine)
    better = [c1 - k1 >= 0.02 and c1 > k1, c2 > k2]
    expected = c1 >= 0.5 and (all(better) if combine == "all" else any(better))
    assert (result["decision"] == "promote") == expected
