"""Champion/challenger decision: pure, so every branch is easy to test.

One metric (`evaluate.metric`, with the spec's floor and min_improvement), or several
(`evaluate.decision`): each rule names a metric, its direction, and optionally a floor
and a minimum improvement. Floors always all hold ("never deploy below"). Against a
champion, `all` promotes only when the challenger improves on every metric by at least
its minimum (seed 000: the champion stays if it is better on either accuracy), `any`
when it does so on at least one. Every rule's figures and verdict are in the result, for
the report and the alerts.
"""

from __future__ import annotations

from typing import Any, Literal

from pipespec.tasklib.context import RunContext


def decide(ctx: RunContext, *, scores: dict, direction: Literal["max", "min"],
           floor: float | None, min_improvement: float, rules: list[dict] | None = None,
           combine: Literal["all", "any"] = "all") -> dict:
    """`scores` holds `challenger` and `champion` (None when there is no champion yet) on one holdout,
    and under `scores` every metric of both, which `rules` read."""
    if rules:
        return _decide_on_rules(scores, rules, combine)
    challenger, champion = scores["challenger"], scores.get("champion")
    sign = 1 if direction == "max" else -1
    record = {"challenger": challenger, "champion": champion, "floor": floor, "min_improvement": min_improvement}
    if floor is not None and sign * (challenger - floor) < 0:
        return {**record, "decision": "reject", "reason": f"challenger {challenger:.4f} misses the floor {floor}"}
    if champion is None:
        return {**record, "decision": "promote", "reason": "no champion yet and the floor is met"}
    improvement = sign * (challenger - champion)
    record["improvement"] = improvement
    if improvement < min_improvement or improvement <= 0:
        return {**record, "decision": "reject",
                "reason": f"improvement {improvement:+.4f} over champion {champion:.4f} is below {min_improvement}"}
    return {**record, "decision": "promote", "reason": f"beats the champion by {improvement:+.4f}"}


def _decide_on_rules(scores: dict, rules: list[dict], combine: str) -> dict:
    both = scores.get("scores") or {}
    challenger_scores, champion_scores = both.get("challenger") or {}, both.get("champion")
    judged = [judge_rule(rule, challenger_scores, champion_scores) for rule in rules]
    first = judged[0]
    record: dict[str, Any] = {"challenger": first["challenger"], "champion": first["champion"],
                              "floor": first["floor"], "min_improvement": first["min_improvement"],
                              "rules": judged, "combine": combine}
    missed = [rule for rule in judged if not rule["floor_met"]]
    if missed:
        return {**record, "decision": "reject", "reason": "; ".join(rule["reason"] for rule in missed)}
    if champion_scores is None:
        return {**record, "decision": "promote", "reason": "no champion yet and every floor is met"}
    improved = [rule for rule in judged if rule["improved"]]
    wins = len(improved) == len(judged) if combine == "all" else bool(improved)
    verdicts = "; ".join(rule["reason"] for rule in judged)
    if wins:
        return {**record, "decision": "promote", "reason": f"{combine} of {len(judged)} metrics: {verdicts}"}
    return {**record, "decision": "reject", "reason": f"needs {combine} of {len(judged)} metrics: {verdicts}"}


def judge_rule(rule: dict, challenger_scores: dict, champion_scores: dict | None) -> dict:
    """One metric's verdict: floor met, improvement over the champion, and why, in words."""
    metric, direction = rule["metric"], rule.get("direction", "max")
    floor, minimum = rule.get("floor"), float(rule.get("min_improvement") or 0.0)
    sign = 1 if direction == "max" else -1
    challenger = challenger_scores.get(metric)
    if challenger is None:
        raise ValueError(f"evaluation produced no `{metric}` for the challenger (it has "
                         f"{', '.join(sorted(challenger_scores)) or 'no metrics'})")
    champion = champion_scores.get(metric) if champion_scores else None
    floor_met = floor is None or sign * (challenger - floor) >= 0
    improvement = sign * (challenger - champion) if champion is not None else None
    improved = improvement is not None and improvement > 0 and improvement >= minimum
    if not floor_met:
        reason = f"{metric} {challenger:.4f} misses the floor {floor}"
    elif improvement is None:
        reason = f"{metric} {challenger:.4f} (no champion)"
    else:
        reason = (f"{metric} {challenger:.4f} vs {champion:.4f} ({improvement:+.4f}, needs {minimum:+.4f}): "
                  f"{'better' if improved else 'not better'}")
    return {"metric": metric, "direction": direction, "challenger": challenger, "champion": champion,
            "floor": floor, "min_improvement": minimum, "improvement": improvement, "floor_met": floor_met,
            "improved": improved, "reason": reason}
